"""The webhook credentials of the gateways beyond the seeds, declared once as settings: each
gateway's flag, `SMSWATCH_*` variable and config key, which the command line, the config
file's model (smswatch.settings), `config.Credentials.tokens`, the simulator and the forwarder
read. Plain values: no I/O, nothing of ours imported."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GatewayCredential:
    """One gateway's webhook credential beyond the seeds' two: its setting (the config key, the
    `--flag` with dashes, `SMSWATCH_` + the key in capitals), declared once here and read by the
    command line, the config file's model, the engine, the simulator and the forwarder alike.
    Its gateway finds it in `Credentials.tokens` by `key` (the gateway's `credential`)."""

    gateway: str  # the provider name of the gateway that checks it
    key: str  # e.g. "twilio_auth_token"
    metavar: str
    help: str
    # A setting of how the credential is checked rather than a credential (Vonage's signature
    # method): it opens nothing, so on its own it does not make a public bind safe.
    secret: bool = True
    choices: tuple[str, ...] = ()  # the values it takes, when a fixed few; any other is refused
    default: str | None = None  # what the gateway takes when it is not set
    # The query parameter it travels in, for a gateway that signs nothing and is called at a
    # URL carrying a shared secret (Africa's Talking: `?token=`): the simulator posts to the
    # URL with it, and screens and logs show that URL with the value elided. None: it never
    # appears in a URL.
    query: str | None = None
    # Its gateway's status API takes it too (Twilio's auth token): `smswatch reconcile` has
    # the option.
    opens_api: bool = False
    # Its value is Basic auth's `USER:PASS` (Infobip's): refused at start without the colon,
    # and split on the first one by `config.parse_basic_auth`.
    basic_auth: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    @property
    def envvar(self) -> str:
        return "SMSWATCH_" + self.key.upper()


# Here, not in the gateways' packages: the command line reads this table on every start, and
# importing the gateways (pydantic, every adapter) would double the start-up time of each
# command; and in core, as plain values, so that both the settings' model (settings.py) and
# the settings' reader (config.py) use it without importing each other.
# tests/test_twilio.py checks each entry against its registered gateway.
GATEWAY_CREDENTIALS: tuple[GatewayCredential, ...] = (
    GatewayCredential(
        "twilio",
        "twilio_auth_token",
        "TOKEN",
        "Twilio auth token: X-Twilio-Signature is verified with it (over the public URL, see "
        "--public-url). Prefer SMSWATCH_TWILIO_AUTH_TOKEN (a flag shows in ps).",
        opens_api=True,
    ),
    GatewayCredential(
        "africastalking",
        "africastalking_token",
        "TOKEN",
        "Africa's Talking callback token: the delivery-report URL set in its dashboard ends in "
        "?token=TOKEN, compared in constant time (Africa's Talking signs nothing). Use a "
        "URL-safe token and prefer SMSWATCH_AFRICASTALKING_TOKEN (a flag shows in ps).",
        query="token",
    ),
    GatewayCredential(
        "vonage",
        "vonage_signature_secret",
        "SECRET",
        "Vonage signature secret: SMS receipts' `sig` (timestamp within 5 min) and Messages API "
        "callbacks' Bearer JWT are verified with it. Prefer SMSWATCH_VONAGE_SIGNATURE_SECRET.",
    ),
    GatewayCredential(
        "vonage",
        "vonage_signature_method",
        "METHOD",
        "How Vonage signs SMS receipts, as the dashboard's signature method says (the Messages "
        "API's JWT is always HS256).",
        secret=False,
        choices=("md5hash", "md5", "sha1", "sha256", "sha512"),
        default="md5hash",
    ),
    GatewayCredential(
        "infobip",
        "infobip_basic_auth",
        "USER:PASS",
        "Infobip webhook Basic auth: the username and password set as BASIC security on the "
        "delivery-report subscription (or in the notify URL). Prefer SMSWATCH_INFOBIP_BASIC_AUTH "
        "(a flag shows in ps).",
        basic_auth=True,
    ),
    GatewayCredential(
        "telnyx",
        "telnyx_public_key",
        "BASE64",
        "Telnyx public key (the portal's, base64): telnyx-signature-ed25519 is verified with it "
        "over telnyx-timestamp|body (timestamp within 5 min).",
    ),
    GatewayCredential(
        "telnyx",
        "telnyx_signing_key",
        "BASE64",
        "An Ed25519 private key of your own (base64 of 32 bytes; Telnyx never gives out its "
        "own): what simulate, replay and the forwarder sign Telnyx posts with; without "
        "--telnyx-public-key, webhooks are verified by its public half. Prefer "
        "SMSWATCH_TELNYX_SIGNING_KEY (a flag shows in ps).",
        # Not the gateway's credential (Telnyx's is its public key): a key of smswatch's own
        # for what it signs, so on its own it does not make a public bind safe.
        secret=False,
    ),
    GatewayCredential(
        "plivo",
        "plivo_auth_token",
        "TOKEN",
        "Plivo auth token: X-Plivo-Signature-V3 (or V2) is verified with it (over the public "
        "URL, see --public-url). Prefer SMSWATCH_PLIVO_AUTH_TOKEN (a flag shows in ps).",
        opens_api=True,
    ),
    GatewayCredential(
        "sinch",
        "sinch_webhook_secret",
        "SECRET",
        "Sinch webhook secret (the HMAC secret Sinch signs callbacks with): "
        "x-sinch-webhook-signature is verified over body.nonce.timestamp (timestamp within "
        "5 min). Prefer SMSWATCH_SINCH_WEBHOOK_SECRET (a flag shows in ps).",
    ),
    GatewayCredential(
        "sinch",
        "sinch_basic_auth",
        "USER:PASS",
        "Sinch webhook Basic auth: the user and password written in the callback URL "
        "(https://USER:PASS@host/webhooks/sinch). Prefer SMSWATCH_SINCH_BASIC_AUTH (a flag "
        "shows in ps).",
        basic_auth=True,
    ),
)
