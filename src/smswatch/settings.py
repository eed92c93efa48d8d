"""The settings a config file may hold: one pydantic model, a docstring per key.

Imported only when a config file is read (pydantic costs every command's start otherwise).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from smswatch.core.credentials import GATEWAY_CREDENTIALS

Port = Annotated[int, Field(ge=0, le=65535)]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Text = str | None


class _Settings(BaseModel):
    """Every key a config file may set: the accepted keys are this model's fields, so the
    documentation, the file and the commands cannot drift apart. Each key is read by the
    commands whose option has its name (click applies the file as their `default_map`), or by
    the monitor directly (`silence_after`, `[stuck]`). Values are checked here so that a bad
    one names the file and the key; the options' own conversions still apply."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    # The listener (`serve` and the monitor).
    host: Text = None
    """Address the webhook listener binds."""
    port: Port | None = None
    """Webhook port (0 picks a free one)."""
    db: Text = None
    """SQLite file or postgresql:// URL, for every command."""
    durability: Literal["full", "normal"] | None = None
    """full: fsync every commit; normal: survives a crash of smswatch, not a power loss."""
    checkpoint_interval: Annotated[float, Field(ge=0.01, le=60, allow_inf_nan=False)] | None = None
    """Seconds between writes of the folded state."""
    basic_auth: Text = None
    """Lisoloo webhook Basic auth, USER:PASS (also what simulate and replay send)."""
    yebolink_secret: Text = None
    """YeboLink webhook secret (also what simulate and replay sign with)."""
    insecure: bool | None = None
    """Accept unauthenticated webhooks on a non-loopback address."""
    public_url: Text = None
    """The base URL the gateways call (behind a tunnel or proxy): signed URLs are checked as it."""
    max_body: Annotated[int, Field(ge=1024)] | None = None
    """Largest webhook body in bytes."""
    max_db_mb: Annotated[int, Field(ge=1)] | None = None
    """Database size cap in MB (then webhooks get 503)."""
    read_timeout: Annotated[float, Field(ge=0.1, allow_inf_nan=False)] | None = None
    """Seconds a client may take to send a body."""
    tls_cert: Text = None
    """PEM certificate (chain first): serve HTTPS."""
    tls_key: Text = None
    """The PEM private key of tls_cert."""
    campaign: Text = None
    """Campaign of every message first seen while serve or the monitor runs."""
    campaign_keys: str | list[str] | None = None
    """YeboLink metadata keys that name a message's campaign (a list, or comma-separated)."""
    gateway_files: str | list[str] | None = None
    """Gateways described in TOML files (a list; relative to the config file's directory)."""
    # The viewers' feed.
    feed_host: Text = None
    """Address of the viewers' feed."""
    feed_port: Port | None = None
    """Port of the viewers' feed."""
    feed_token: Text = None
    """Token viewers present (serve and the monitor require it, attach sends it)."""
    # serve only.
    log_format: Literal["text", "json"] | None = None
    """serve's output: text, or one JSON object per line."""
    summary_interval: Annotated[float, Field(ge=0.5, allow_inf_nan=False)] | None = None
    """Seconds between serve's summary lines."""
    metrics_host: Text = None
    """Address of serve's Prometheus metrics."""
    metrics_port: Port | None = None
    """Port of serve's Prometheus metrics (off unless set)."""
    # Forwarding to your app.
    forward_to: str | list[str] | None = None
    """[GATEWAY=]URL, or a list of them: where every stored event is forwarded."""
    forward_basic_auth: Text = None
    """Basic auth on Lisoloo forwards (default: basic_auth)."""
    forward_secret: Text = None
    """Signs YeboLink forwards (default: yebolink_secret)."""
    forward_timeout: Annotated[float, Field(ge=0.1, allow_inf_nan=False)] | None = None
    """Seconds the app has to answer a forward."""
    forward_concurrency: Annotated[int, Field(ge=1, le=256)] | None = None
    """Forwards in flight to one app at most."""
    forward_max_attempts: Annotated[int, Field(ge=1)] | None = None
    """Attempts before a forward is marked failed."""
    forward_retry_4xx: bool | None = None
    """Retry 4xx answers too."""
    forward_polled: bool | None = None
    """Forward the status APIs' answers too, marked X-Smswatch-Polled."""
    # The gateways' status APIs.
    lisoloo_app_key: Text = None
    """Lisoloo API key: poll its status API to reconcile."""
    lisoloo_api_url: Text = None
    """Lisoloo API base URL."""
    yebolink_api_key: Text = None
    """YeboLink API key: look messages up to reconcile."""
    yebolink_api_url: Text = None
    """YeboLink API base URL."""
    twilio_account_sid: Text = None
    """Twilio account SID (AC…): with twilio_auth_token, look messages up to reconcile."""
    twilio_api_url: Text = None
    """Twilio API base URL."""
    vonage_api_key: Text = None
    """Vonage API key (the account id): with vonage_api_secret, look messages up to reconcile."""
    vonage_api_secret: Text = None
    """Vonage API secret, for the Reports API (not the signature secret)."""
    vonage_api_url: Text = None
    """Vonage Reports API base URL."""
    infobip_api_key: Text = None
    """Infobip API key: with infobip_api_url, look messages up to reconcile."""
    infobip_api_url: Text = None
    """Infobip API base URL (the account's own, https://XXXXX.api.infobip.com)."""
    telnyx_api_key: Text = None
    """Telnyx API key: look messages up to reconcile (not the webhooks' public key)."""
    telnyx_api_url: Text = None
    """Telnyx API base URL."""
    plivo_auth_id: Text = None
    """Plivo Auth ID (MA… or SA…): with plivo_auth_token, look messages up to reconcile."""
    plivo_api_url: Text = None
    """Plivo API base URL."""
    sinch_service_plan_id: Text = None
    """Sinch service plan id: with sinch_api_token, read delivery reports to reconcile."""
    sinch_api_token: Text = None
    """Sinch API token of the service plan (a Bearer token; not the webhook secret)."""
    sinch_api_url: Text = None
    """Sinch SMS API base URL of the plan's region (https://us.sms.api.sinch.com)."""
    # The screens.
    theme: Text = None
    """Theme of the monitor and attach."""
    silence_after: Seconds | None = None
    """Seconds without webhooks before the monitor warns."""
    stuck: dict[str, Any] | None = None
    """Table: seconds a recipient may sit in queued, processing or sent before it is stuck."""
    # The senders.
    url: Text = None
    """The listener simulate and replay post to."""


def _credential_type(choices: tuple[str, ...]) -> Any:
    """A credential's value: any text, or one of its few choices (any other is refused)."""
    return Literal[choices] | None if choices else Text  # type: ignore[valid-type]


# The gateways' own credentials (core/credentials.py GATEWAY_CREDENTIALS) are keys too, each
# described there.
Settings = create_model(
    "Settings",
    __base__=_Settings,
    __doc__=_Settings.__doc__,
    **{
        c.key: (_credential_type(c.choices), Field(None, description=c.help))
        for c in GATEWAY_CREDENTIALS
    },  # type: ignore[call-overload]
)
