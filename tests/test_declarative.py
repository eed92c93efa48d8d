"""Gateways described in TOML files (`--gateway-file`).

- The loader: the shipped examples load; every kind of bad file is refused with its line and
  reason; hostile files (huge, deep, paths of any length or count) are refused, and a path that
  never matches is a 400, quarantined, never a crash.
- The verifiers by name, against the gateways' own schemes: MessageBird's SDK test vectors for
  `jwt-hs256`, and the built-ins' signers (Twilio, YeboLink, Telnyx) for HMAC and Ed25519.
- A gateway that exists only in this file (Acme: JSON batches, HMAC-SHA512 in base64) over real
  HTTP into a real engine on both stores: real signatures, duplicates, reordering, every status
  against the truth, bad requests refused and quarantined.
- The shipped Bird and Kannel examples over HTTP: GETs with a JWT over the URL, a token in it.
- Conformance: the built-ins' simulated traffic (their sim.py) parsed by the built-in and by
  its description in TOML gives the same events, field by field, but for the fields that
  differ by design (each listed at its gateway, with why).

Signatures here are made by hand with hmac, PyJWT and cryptography, never with the verifiers'
own signers, except where a signer is what is under test.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import jwt
import pytest
from yarl import URL

from smswatch import gateways
from smswatch.config import Credentials
from smswatch.core.domain import Event, State
from smswatch.core.rejected import Rejected
from smswatch.devtools.simulate import SimConfig, plan_campaign
from smswatch.gateways import registry, verifiers
from smswatch.gateways.base import derived_id
from smswatch.gateways.declarative import DeclaredGateway, SpecError, install, load
from smswatch.gateways.declarative.spec import MAX_FILE
from smswatch.gateways.registry import GATEWAYS
from smswatch.live.engine import Engine
from tests.conftest import running

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "docs" / "gateway-files"
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def registered() -> Iterator[Callable[..., list[DeclaredGateway]]]:
    """Installs gateway files for one test and takes their gateways out after it: the
    registry is the process's, shared with every other test."""

    def install_files(*paths: Path) -> list[DeclaredGateway]:
        return install(paths)

    yield install_files
    for name in registry.file_gateways():
        registry.unregister(name)


def write(tmp_path: Path, text: str, name: str = "gw.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


MINIMAL = """\
name = "acme"
[report]
status = "s"
[status]
ok = "delivered"
"""


# --- the loader ------------------------------------------------------------------------------


def test_the_shipped_examples_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSWATCH_BIRD_SIGNING_KEY", "k" * 32)
    monkeypatch.setenv("SMSWATCH_KANNEL_TOKEN", "t" * 16)
    bird, kannel = load([EXAMPLES / "bird.toml", EXAMPLES / "kannel.toml"])
    assert (bird.name, bird.spec.verify.method, bird.spec.body) == ("bird", "jwt-hs256", "query")
    assert bird.spec.verify.from_env == {"secret": "SMSWATCH_BIRD_SIGNING_KEY"}
    assert (kannel.name, kannel.spec.verify.method) == ("kannel", "url-token")
    assert kannel.spec.statuses["16"] is State.FAILED
    for g in (bird, kannel):
        assert g.provider(Credentials()).auth_mode().verified
        assert g.status_api() is None and g.sandbox() is None


BAD_FILES = [
    # (the file, the line named, a fragment of the reason)
    ('name = "acme"\n[report\nstatus = "s"\n', 2, "not TOML"),
    ('name = "Acme!"\n', 1, "name: required"),
    (MINIMAL.replace('name = "acme"', 'name = "twilio"'), 1, "built-in"),
    ("colour = 3\n" + MINIMAL, 1, "unknown key"),
    ('name = "acme"\n[report]\nstatus = "s"\n', 1, "status: required"),
    ('name = "acme"\n[report]\nmessage_id = "m"\n[status]\nok = "sent"\n', 2, "needs status"),
    (MINIMAL.replace('ok = "delivered"', 'ok = "arrived"'), 5, "one of our states"),
    (MINIMAL.replace('ok = "delivered"', 'ok = "delivered"\nOK = "sent"'), 6, "twice"),
    (MINIMAL.replace('status = "s"', 'status = "s"\nwhen = "t"'), 4, "unknown key"),
    (MINIMAL.replace('status = "s"', 'status = "a..b"'), 3, "dotted path"),
    (MINIMAL.replace('status = "s"', "status = []"), 3, "list of 1 to"),
    (MINIMAL.replace('status = "s"', "status = 5"), 3, "must be a path"),
    (MINIMAL.replace('status = "s"', 'status = "s"\ntime_format = "whenever"'), 4, "strptime"),
    (MINIMAL.replace('status = "s"', 'status = "s"\ndedupe = ["colour"]'), 4, "dedupe"),
    (MINIMAL.replace('status = "s"', 'status = "^.s"'), 2, "batches"),
    (MINIMAL + '[verify]\nmethod = "rot13"\n', 7, "must be one of none"),
    (MINIMAL + '[verify]\nmethod = "hmac"\nsecret = "x"\n', 6, "needs header"),
    (MINIMAL + '[verify]\nmethod = "hmac"\nheader = "X-S"\nsecret = "x"\ndigest = "md5"\n', 10, ""),
    (MINIMAL + '[verify]\nmethod = "hmac"\nheader = "X S"\nsecret = "x"\n', 8, "header's name"),
    (MINIMAL + '[verify]\nmethod = "url-token"\nheader = "X"\nsecret = "x"\n', 8, "not a param"),
    (MINIMAL + '[verify]\nmethod = "basic-auth"\nuser = "u"\n', 6, "needs secret"),
    (
        MINIMAL + '[verify]\nmethod = "url-token"\nsecret_env = "SMSWATCH_NO_SUCH_VARIABLE_X"\n',
        8,
        "is not set",
    ),
    (MINIMAL + '[verify]\nmethod = "ed25519"\nheader = "X"\npublic_key = "abc"\n', 9, "32 bytes"),
    (MINIMAL + '[verify]\nmethod = "jwt-hs256"\nsecret = "x"\nleeway_s = -1\n', 9, "seconds"),
    ('name = "acme"\nbody = "xml"\n', 2, "must be one of json"),
    (
        'name = "acme"\nbody = "form"\n[report]\nbatch = "r"\nstatus = "s"\n[status]\nok = "sent"',
        4,
        "a form carries one report",
    ),
]


@pytest.mark.parametrize(("text", "line", "reason"), BAD_FILES)
def test_a_bad_file_is_refused_with_its_line_and_the_reason(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as refused:
        load([path])
    message = str(refused.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert reason in message


def test_a_secret_is_never_repeated_in_a_refusal(tmp_path: Path) -> None:
    text = MINIMAL + '[verify]\nmethod = "basic-auth"\nsecret = "hunter2-secret"\nuser = 5\n'
    with pytest.raises(SpecError) as refused:
        load([write(tmp_path, text)])
    assert "hunter2" not in str(refused.value) and "verify.user" in str(refused.value)


def test_hostile_files_are_refused_quickly(tmp_path: Path) -> None:
    started = time.monotonic()
    huge = write(tmp_path, MINIMAL + "# " + "x" * MAX_FILE + "\n", "huge.toml")
    deep = write(tmp_path, MINIMAL + "x = " + "[" * 20_000 + "]" * 20_000 + "\n", "deep.toml")
    nested = write(tmp_path, MINIMAL.replace("[status]", "[status.a.b.c]"), "nested.toml")
    long_path = write(tmp_path, MINIMAL.replace('"s"', '"' + "a" * 201 + '"'), "long.toml")
    many_parts = write(tmp_path, MINIMAL.replace('"s"', '"' + ".".join("a" * 17) + '"'), "p.toml")
    many_paths = write(tmp_path, MINIMAL.replace('"s"', str([f"s{i}" for i in range(9)])), "n.toml")
    statuses = "\n".join(f's{i} = "sent"' for i in range(257))
    many_rows = write(tmp_path, MINIMAL.replace('ok = "delivered"', statuses), "rows.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"name = \xff\xfe\n")
    for path, reason in (
        (huge, "KiB"),
        (deep, "nested"),
        (nested, "nested deeper"),
        (long_path, "1 to 200 characters"),
        (many_parts, "1 to 16 parts"),
        (many_paths, "1 to 8 paths"),
        (many_rows, "256 at most"),
        (binary, "not UTF-8"),
    ):
        with pytest.raises(SpecError) as refused:
            load([path])
        assert reason in str(refused.value), (path.name, str(refused.value))
    assert time.monotonic() - started < 5
    with pytest.raises(SpecError, match="cannot read"):
        load([tmp_path / "missing.toml"])


def test_two_files_of_one_name_are_refused(tmp_path: Path) -> None:
    a, b = write(tmp_path, MINIMAL, "a.toml"), write(tmp_path, MINIMAL, "b.toml")
    with pytest.raises(SpecError, match=r"a\.toml's too"):
        load([a, b])


def test_a_path_that_never_matches_is_a_400_not_a_crash(tmp_path: Path) -> None:
    text = MINIMAL.replace('"s"', '["no.such.path", "neither.0.this"]')
    text = text.replace("[report]", '[report]\nbatch = "items"\nrecipient = "^.x.y.z"')
    [gateway] = load([write(tmp_path, text)])
    adapter = gateway.provider(Credentials())
    for body in (
        b'{"items": [{"no": {"such": 5}}, {"neither": ["x"]}]}',
        b'{"items": [{"neither": {"0": {"this": null}}}]}',
        b'{"items": [[], 5, "x", null]}',
    ):
        with pytest.raises(Rejected) as refused:
            adapter.parse(body, 1)
        assert (refused.value.status, refused.value.code) == (400, "invalid_envelope")
    for body, code in (
        (b'{"items": {"a": 1}}', "invalid_envelope"),
        (b'{"other": []}', "invalid_envelope"),
        (b'{"items": []}', "invalid_envelope"),
        (b'{"items": [' + b"{}," * 1000 + b"{}]}", "invalid_envelope"),  # over 1000 reports
        (b"[1, 2]", "invalid_envelope"),
        (b"not json", "malformed_json"),
        (b'{"items": [{"s": NaN}]}', "malformed_json"),
    ):
        with pytest.raises(Rejected) as refused:
            adapter.parse(body, 1)
        assert (refused.value.status, refused.value.code) == (400, code), body
    # A path into a deeply nested body walks only as far as its own length.
    deep = b'{"items": [{"no": ' + b'{"such": ' * 100 + b"1" + b"}" * 100 + b"}]}"
    with pytest.raises(Rejected):
        adapter.parse(deep, 1)


# --- the verifiers ---------------------------------------------------------------------------

# MessageBird's own test vectors for its RequestValidator (github.com/messagebird/python-rest-api
# tests/test_request_validator/webhook_signature_test_data.json at 2371520, BSD-2-Clause).
VECTORS = json.loads((FIXTURES / "messagebird_webhook_signatures.json").read_text())


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_jwt_hs256_agrees_with_messagebirds_sdk_vectors(
    case: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    at = datetime.fromisoformat(case["timestamp"])

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:  # type: ignore[override]
            return at.astimezone(tz)

    monkeypatch.setattr(jwt.api_jwt, "datetime", Frozen)
    check = verifiers.JwtCheck(case.get("secret") or "not-the-secret")
    payload = (case.get("payload") or "").encode()
    headers = {"MessageBird-Signature-JWT": case["token"]}
    if case["valid"]:
        check.check(headers, payload, [case["url"]])
        return
    with pytest.raises(Rejected) as refused:
        check.check(headers, payload, [case["url"]])
    assert refused.value.status == 401


def test_jwt_hs256_signs_what_it_checks_and_refuses_a_missing_token() -> None:
    check = verifiers.JwtCheck("s" * 32)
    url, body = "https://hooks.example.com/webhooks/bird?id=1", b"x"
    token = check.sign(url, body)
    check.check({"MessageBird-Signature-JWT": token}, body, [url])
    claims = jwt.decode(token, "s" * 32, algorithms=["HS256"], issuer="MessageBird")
    assert claims["url_hash"] == hashlib.sha256(url.encode()).hexdigest()
    assert claims["payload_hash"] == hashlib.sha256(body).hexdigest()
    with pytest.raises(Rejected, match="missing"):
        check.check({}, body, [url])
    old = check.sign(url, body, now=time.time() - 3600)
    with pytest.raises(Rejected) as refused:
        check.check({"MessageBird-Signature-JWT": old}, body, [url])
    assert refused.value.code == "stale_signature"


def test_hmac_of_the_url_and_sorted_params_is_twilios_signature() -> None:
    from smswatch.gateways.twilio.webhook import sign

    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    # twilio-python's own example (tests/unit/test_request_validator.py).
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    expected = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert sign("12345", url, params.items()) == expected
    check = verifiers.HmacCheck("12345", "X-Twilio-Signature", "sha1", "base64")
    message = (url + verifiers.sorted_params(params.items())).encode()
    assert check.mac(message) == expected
    check.check(expected, [message], "the URL")
    with pytest.raises(Rejected):
        check.check(expected, [message + b"x"], "the URL")
    # A name sent twice signs its distinct values, sorted, as the SDK does.
    twice = [("b", "2"), ("a", "9"), ("a", "1"), ("a", "1")]
    assert verifiers.sorted_params(twice) == "a1a9b2"
    assert sign("12345", url, twice) == check.mac((url + "a1a9b2").encode())


def test_hmac_of_the_body_in_each_digest_and_encoding() -> None:
    body, key = b'{"a": 1}', "k3y"
    for digest in verifiers.DIGESTS:
        mac = hmac.new(key.encode(), body, digest).digest()
        for encoding, given in (("hex", mac.hex()), ("base64", base64.b64encode(mac).decode())):
            check = verifiers.HmacCheck(key, "X-S", digest, encoding, "v1=")  # type: ignore[arg-type]
            check.check(f"v1={given}", [body], "the body")
            check.check(given, [body], "the body")  # the prefix is optional
            if encoding == "hex":
                check.check(given.upper(), [body], "the body")
            with pytest.raises(Rejected) as refused:
                check.check(given, [body + b" "], "the body")
            assert refused.value.code == "bad_signature"
    with pytest.raises(Rejected) as missing:
        verifiers.HmacCheck(key, "X-S").check(None, [body], "the body")
    assert missing.value.code == "missing_signature"


def test_ed25519_over_the_timestamp_and_body_is_telnyxs() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from smswatch.gateways.telnyx.webhook import sign

    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public = base64.b64encode(key.public_key().public_bytes_raw()).decode()
    body, now = b'{"data": {}}', 1_800_000_000.0
    headers = sign(base64.b64encode(key.private_bytes_raw()).decode(), body, now)
    check = verifiers.Ed25519Check(
        public, "telnyx-signature-ed25519", "telnyx-timestamp", clock=lambda: now
    )
    check.check(headers, body)
    for changed, code in (
        ({**headers, "telnyx-timestamp": str(int(now) + 1)}, "bad_signature"),
        ({"telnyx-timestamp": headers["telnyx-timestamp"]}, "missing_signature"),
        ({**headers, "telnyx-signature-ed25519": "!!"}, "bad_signature"),
    ):
        with pytest.raises(Rejected) as refused:
            check.check(changed, body)
        assert refused.value.code == code
    late = verifiers.Ed25519Check(
        public, "telnyx-signature-ed25519", "telnyx-timestamp", clock=lambda: now + 600
    )
    with pytest.raises(Rejected) as stale:
        late.check(headers, body)
    assert stale.value.code == "stale_signature"
    # Over the body alone, with no timestamp.
    bare = verifiers.Ed25519Check(public, "X-Sig")
    bare.check({"X-Sig": base64.b64encode(key.sign(body)).decode()}, body)


def test_a_url_token_is_compared_once_and_whole() -> None:
    verifiers.check_query_token("https://h/w?token=abc", "token", b"abc")
    for url, code in (
        ("https://h/w", "missing_token"),
        ("https://h/w?token=abd", "bad_token"),
        ("https://h/w?token=abc&token=abc", "bad_token"),
        (None, "missing_token"),
    ):
        with pytest.raises(Rejected) as refused:
            verifiers.check_query_token(url, "token", b"abc")
        assert (refused.value.status, refused.value.code) == (401, code)
        assert "abc" not in refused.value.detail


# --- a gateway that exists only in TOML, over real HTTP ----------------------------------------

ACME_SECRET = "acme-webhook-secret-0123456789"
ACME = """\
# A gateway smswatch does not ship: JSON batches, an HMAC-SHA512 in base64 with a prefix.
name = "acme"
title = "Acme SMS"
body = "json"
console = "Acme portal > Settings > Delivery receipts"

[report]
batch = "data.reports"
event_id = "eventId"
message_id = "msg.id"
recipient = "msg.to"
status = "state.code"
time = "state.at"
time_format = "unix_ms"
error_code = "state.error.code"
error_message = "state.error.text"
carrier = "network"
group = "^.data.campaign"
cost = "price.value"
currency = "price.unit"
recipients_per_message = 1
errors_only_when_failed = true

[status]
ACCEPTED = "queued"
ROUTING = "processing"
SUBMITTED = "sent"
DELIVERED = "delivered"
UNDELIVERABLE = "failed"
REJECTED = "failed"
NO_RECEIPT = "unconfirmed"

[verify]
method = "hmac"
header = "X-Acme-Signature"
digest = "sha512"
encoding = "base64"
prefix = "v1="
secret_env = "ACME_TEST_SECRET"
"""
M = [f"acme-msg-{i:04d}" for i in range(10)]
PHONE = {m: f"+2547000{i:05d}" for i, m in enumerate(M)}
T0 = 1_796_700_000_000  # ms
_ids = iter(range(1, 10_000))


def acme_report(
    mid: str, code: str, at_ms: int, error: tuple[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    state: dict[str, Any] = {"code": code, "at": at_ms}
    if error:
        state["error"] = {"code": error[0], "text": error[1]}
    return {
        "eventId": f"evt-{next(_ids):06d}",
        "msg": {"id": mid, "to": PHONE[mid]},
        "state": state,
        "network": "Safaricom",
        "price": {"value": 0.8, "unit": "KES"},
        **extra,
    }


def acme_body(reports: list[Any], campaign: str = "december") -> bytes:
    return json.dumps({"data": {"campaign": campaign, "reports": reports}}).encode()


def acme_signed(body: bytes, secret: str = ACME_SECRET) -> dict[str, str]:
    mac = hmac.new(secret.encode(), body, hashlib.sha512).digest()
    return {"Content-Type": "application/json", "X-Acme-Signature": "v1=" + b64(mac)}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    async with session.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


DELIVERED_0 = acme_report(M[0], "DELIVERED", T0 + 9000)
FAILED_2 = acme_report(M[2], "UNDELIVERABLE", T0 + 8000, ("EC_ABSENT", "Absent subscriber"))
# Posted in this order: finals before the steps that led to them, a batch re-sent whole, one
# report re-sent inside another batch, every status, one the table does not know.
ACME_POSTS = [
    [DELIVERED_0, acme_report(M[1], "ROUTING", T0 + 2000), FAILED_2],
    [acme_report(M[0], "SUBMITTED", T0 + 1000), acme_report(M[0], "ACCEPTED", T0)],
    [DELIVERED_0, acme_report(M[3], "ACCEPTED", T0)],  # one report re-sent
    [acme_report(M[2], "SUBMITTED", T0 + 1000)],
    [acme_report(M[4], "REJECTED", T0 + 500, ("E_SPAM", "Blocked as spam"))],
    [acme_report(M[5], "SUBMITTED", T0 + 1000), acme_report(M[5], "NO_RECEIPT", T0 + 90_000)],
    [acme_report(M[6], "NO_RECEIPT", T0 + 90_000), acme_report(M[6], "DELIVERED", T0 + 95_000)],
    [acme_report(M[7], "PAUSED", T0 + 500)],  # a status of tomorrow: unknown, kept
    # An error beside a status that is no failure is not the recipient's error.
    [acme_report(M[8], "DELIVERED", T0 + 5000, ("0", "OK"))],
]
ACME_TRUTH = {
    M[0]: (State.DELIVERED, None),
    M[1]: (State.PROCESSING, None),
    M[2]: (State.FAILED, "EC_ABSENT"),
    M[3]: (State.QUEUED, None),
    M[4]: (State.FAILED, "E_SPAM"),
    M[5]: (State.UNCONFIRMED, None),
    M[6]: (State.DELIVERED, None),
    M[8]: (State.DELIVERED, None),
}


@pytest.fixture
def acme(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    registered: Callable[..., list[DeclaredGateway]],
) -> DeclaredGateway:
    monkeypatch.setenv("ACME_TEST_SECRET", ACME_SECRET)
    [gateway] = registered(write(tmp_path, ACME, "acme.toml"))
    return gateway


@pytest.mark.both_stores
async def test_a_gateway_only_in_toml_folds_every_status_right_whatever_the_order(
    acme: DeclaredGateway,
    make_engine: Callable[..., Engine],
    session: aiohttp.ClientSession,
    reader: Any,
    db_path: Path | str,
) -> None:
    assert "acme" in gateways.NAMES and gateways.ADAPTERS["acme"].title == "Acme SMS"
    async with running(make_engine()) as engine:
        hook = f"{engine.listener.base_url}/webhooks/acme"
        # The screens' status bar and serve's banner name it as any gateway.
        shown = {g.name: g for g in engine.info().gateways}["acme"]
        assert (shown.title, shown.url, shown.verified, shown.accepting) == (
            "Acme SMS",
            hook,
            True,
            True,
        )
        assert "HMAC-SHA-512" in shown.auth and ACME_SECRET not in shown.auth
        answers = []
        for reports in ACME_POSTS:
            body = acme_body(reports)
            status, answer = await post(session, hook, body, acme_signed(body))
            assert status == 200, answer
            answers.append(answer)
        # The same batch again, signed afresh: nothing stored twice.
        again = acme_body(ACME_POSTS[0])
        status, answer = await post(session, hook, again, acme_signed(again))
        assert (status, answer["status"], answer["duplicates"]) == (200, "duplicate", 3)
        await asyncio.wrap_future(engine.writer.settle())
    assert (answers[2]["stored"], answers[2]["duplicates"]) == (1, 1)
    r = await reader()
    for mid, (state, code) in ACME_TRUTH.items():
        rec = await r.recipient(mid, PHONE[mid])
        assert rec is not None and rec.provider == "acme", mid
        assert (rec.state, rec.error_code, rec.conflict) == (state, code, False), mid
        assert rec.carrier == "Safaricom"
    events = [e async for e in r.iter_events()]
    assert len(events) == sum(len(p) for p in ACME_POSTS) - 1  # DELIVERED_0 once
    by = {(e.message_id, e.event_type): e for e in events}
    paused = by[(M[7], "PAUSED")]
    assert paused.state is State.UNKNOWN
    delivered = by[(M[0], "DELIVERED")]
    assert (delivered.occurred_at, delivered.time_estimated) == ((T0 + 9000) * 1000, False)
    assert json.loads(delivered.payload) == DELIVERED_0  # each event its own report
    assert delivered.event_id == DELIVERED_0["eventId"]
    assert by[(M[8], "DELIVERED")].error_code is None
    assert by[(M[2], "UNDELIVERABLE")].error_message == "Absent subscriber"
    # The body's campaign groups the messages; each report's price is its message's cost.
    assert await r.campaign_of(M[0]) == "december"
    message = await r.message(M[0])
    assert message is not None and (message.total_cost, message.currency) == (0.8, "KES")
    # `smswatch inspect` and `smswatch export` read it as any gateway's.
    from click.testing import CliRunner

    from smswatch.cli import main

    shown = await asyncio.to_thread(
        CliRunner().invoke, main, ["inspect", "--db", str(db_path), M[2], "--json"]
    )
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["provider"] == "acme"
    exported = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["export", "--db", str(db_path), "--format", "jsonl"],
    )
    assert exported.exit_code == 0, exported.output
    rows = [json.loads(line) for line in exported.output.splitlines() if line.strip()]
    assert {row["provider"] for row in rows} == {"acme"} and len(rows) == len(events)


@pytest.mark.both_stores
async def test_a_gateway_only_in_toml_refuses_bad_requests_and_quarantines_them(
    acme: DeclaredGateway,
    make_engine: Callable[..., Engine],
    session: aiohttp.ClientSession,
    reader: Any,
) -> None:
    body = acme_body([acme_report(M[0], "DELIVERED", T0)])
    good = acme_signed(body)
    mac = hmac.new(ACME_SECRET.encode(), body, hashlib.sha512)
    unsigned = {"Content-Type": "application/json"}
    async with running(make_engine()) as engine:
        hook = f"{engine.listener.base_url}/webhooks/acme"
        for headers, code in (
            (acme_signed(body, "another-secret"), "bad_signature"),
            ({**good, "X-Acme-Signature": "v1=" + b64(bytes(64))}, "bad_signature"),
            ({**unsigned, "X-Acme-Signature": "v1=" + mac.hexdigest()}, "bad_signature"),
            (unsigned, "missing_signature"),
        ):
            status, answer = await post(session, hook, body, headers)
            assert (status, answer["error"]) == (401, code), answer
        changed = body.replace(b"DELIVERED", b"REJECTED")
        status, answer = await post(session, hook, changed, good)
        assert (status, answer["error"]) == (401, "bad_signature")
        for bad, code in (
            (b"{not json", "malformed_json"),
            (b'{"data": {"reports": "none"}}', "invalid_envelope"),
            (acme_body([{"msg": {"id": M[1]}}]), "invalid_envelope"),  # no status anywhere
            (b'{"data": {"reports": [{"state": {"code": NaN}}]}}', "malformed_json"),
        ):
            status, answer = await post(session, hook, bad, acme_signed(bad))
            assert (status, answer["error"]) == (400, code), (bad, answer)
        # One report without a status in a batch: it alone is quarantined.
        mixed = acme_body([acme_report(M[1], "SUBMITTED", T0), {"msg": {"id": M[2]}}, 7])
        status, answer = await post(session, hook, mixed, acme_signed(mixed))
        assert (status, answer["stored"], answer["quarantined"]) == (200, 1, 2), answer
        # A form where JSON is due: the content type is refused.
        async with session.post(
            hook, data="a=1", headers={**good, "Content-Type": "application/x-www-form-urlencoded"}
        ) as resp:
            assert resp.status == 415
        await asyncio.sleep(0.2)  # the quarantine rides with the next batch
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    events = [e async for e in r.iter_events()]
    assert [(e.message_id, e.event_type) for e in events] == [(M[1], "SUBMITTED")]
    kept = await r.quarantine()
    assert all(q.provider == "acme" for q in kept if q.provider)
    assert {q.status for q in kept} >= {400, 401}
    parts = [q for q in kept if q.code == "malformed_report"]
    assert len(parts) == 2 and all(q.status == 400 for q in parts)


def test_a_file_gateways_forward_is_signed_as_its_own_posts_are(acme: DeclaredGateway) -> None:
    """What the forwarder (and replay) post of a stored event: the stored bytes, signed as the
    gateway signs, which the gateway's own check (and so the team's app) accepts."""
    body = acme_body([acme_report(M[0], "DELIVERED", T0)])
    [event] = acme.provider(Credentials()).parse(body, 1)
    wire = acme.post_body(event.payload)
    signed = acme.resign(wire, Credentials(), "https://app.example.com/hooks")
    assert signed.headers["X-Acme-Signature"] == acme_signed(wire)["X-Acme-Signature"]
    acme.provider(Credentials()).check_auth(signed.headers, wire)


def test_the_registry_keeps_the_built_ins_first_and_takes_file_gateways_out(
    acme: DeclaredGateway,
) -> None:
    names = tuple(GATEWAYS)
    assert names[-1] == "acme" and set(names[:-1]) == registry.BUILT_IN
    assert registry.file_gateways() == ("acme",)
    assert list(gateways.build(Credentials())) == list(names)
    with pytest.raises(ValueError):
        registry.register(acme)
    with pytest.raises(ValueError):
        registry.unregister("lisoloo")
    registry.unregister("acme")
    assert "acme" not in gateways.NAMES and "acme" not in gateways.ADAPTERS


# --- the shipped examples over HTTP -------------------------------------------------------------

BIRD_KEY = "bird-signing-key-0123456789abcdef"
KANNEL_TOKEN = "kannel-token-42"


@pytest.fixture
def examples(
    monkeypatch: pytest.MonkeyPatch, registered: Callable[..., list[DeclaredGateway]]
) -> list[DeclaredGateway]:
    monkeypatch.setenv("SMSWATCH_BIRD_SIGNING_KEY", BIRD_KEY)
    monkeypatch.setenv("SMSWATCH_KANNEL_TOKEN", KANNEL_TOKEN)
    return registered(EXAMPLES / "bird.toml", EXAMPLES / "kannel.toml")


def bird_token(url: str, body: bytes = b"", key: str = BIRD_KEY, at: float | None = None) -> str:
    now = int(time.time() if at is None else at)
    claims: dict[str, Any] = {
        "iss": "MessageBird",
        "nbf": now,
        "exp": now + 60,
        "jti": "59a244dc-e9ad-4e23-9778-371faa238f72",
        "url_hash": hashlib.sha256(url.encode()).hexdigest(),
    }
    if body:
        claims["payload_hash"] = hashlib.sha256(body).hexdigest()
    return jwt.encode(claims, key, algorithm="HS256")


async def test_birds_status_reports_and_kannels_dlrs_come_in_as_gets(
    examples: list[DeclaredGateway],
    make_engine: Callable[..., Engine],
    session: aiohttp.ClientSession,
    reader: Any,
) -> None:
    async with running(make_engine()) as engine:
        base = engine.listener.base_url
        bird = [
            ("sent", "2026-12-07T18:10:02+00:00", {}),
            ("delivered", "2026-12-07T18:10:05+00:00", {}),
            ("delivery_failed", "2026-12-07T18:10:06+00:00", {"statusErrorCode": "104"}),
        ]
        for n, (status, at, extra) in enumerate(bird):
            query = urlencode(
                {
                    "id": f"efa6405d518d4c0c88cce11f7db775f{n}",
                    "reference": "winter-sale",
                    "recipient": "31612345678",
                    "status": status,
                    "statusDatetime": at,
                    "statusReason": "unknown subscriber" if extra else "successfully delivered",
                    "price[amount]": "0.07",
                    "price[currency]": "EUR",
                    **extra,
                }
            )
            url = f"{base}/webhooks/bird?{query}"
            # Sent as written: what Bird signs is the URL as it calls it.
            wire = URL(url, encoded=True)
            signed = {"MessageBird-Signature-JWT": bird_token(url)}
            async with session.get(wire, headers=signed) as resp:
                assert resp.status == 200, await resp.text()
            # The same report again: a duplicate; another URL's token: refused.
            async with session.get(wire, headers=signed) as resp:
                assert (await resp.json())["status"] == "duplicate"
            other = bird_token(url.replace("31612345678", "31600000000"))
            async with session.get(wire, headers={"MessageBird-Signature-JWT": other}) as resp:
                assert (resp.status, (await resp.json())["error"]) == (401, "bad_signature")
        async with session.get(f"{base}/webhooks/bird?id=x&status=sent") as resp:
            assert (resp.status, (await resp.json())["error"]) == (401, "missing_signature")
        wrong_key = bird_token(f"{base}/webhooks/bird?id=x", key="k" * 32)
        async with session.get(
            f"{base}/webhooks/bird?id=x", headers={"MessageBird-Signature-JWT": wrong_key}
        ) as resp:
            assert resp.status == 401
        # Kannel: the dlr-url's escapes filled in, the token last.
        for smsc_id, dlr_type, at in (("k-1", 8, 1_796_700_000), ("k-1", 1, 1_796_700_030)):
            query = urlencode(
                {
                    "id": smsc_id,
                    "status": dlr_type,
                    "to": "+254700000001",
                    "at": at,
                    "smsc": "safaricom",
                    "token": KANNEL_TOKEN,
                }
            )
            async with session.get(f"{base}/webhooks/kannel?{query}") as resp:
                assert resp.status == 200, await resp.text()
        for token, code in (("wrong", "bad_token"), (None, "missing_token")):
            query = "id=k-2&status=1&to=%2B254700000002" + (f"&token={token}" if token else "")
            async with session.get(f"{base}/webhooks/kannel?{query}") as resp:
                assert (resp.status, (await resp.json())["error"]) == (401, code)
        query = urlencode({"id": "k-3", "to": "+254700000003", "token": KANNEL_TOKEN})
        async with session.get(f"{base}/webhooks/kannel?{query}") as resp:  # no status
            assert (resp.status, (await resp.json())["error"]) == (400, "invalid_envelope")
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    failed = await r.recipient("efa6405d518d4c0c88cce11f7db775f2", "31612345678")
    assert failed is not None and (failed.state, failed.error_code) == (State.FAILED, "104")
    delivered = await r.recipient("efa6405d518d4c0c88cce11f7db775f1", "31612345678")
    assert delivered is not None and delivered.state is State.DELIVERED
    assert await r.campaign_of("efa6405d518d4c0c88cce11f7db775f1") == "winter-sale"
    kannel = await r.recipient("k-1", "+254700000001")
    assert kannel is not None and (kannel.state, kannel.carrier) == (State.DELIVERED, "safaricom")
    events = [e async for e in r.iter_events()]
    assert len(events) == 5
    # The token that rode in Kannel's query is no field of the report: it is never stored.
    assert not any(KANNEL_TOKEN in e.payload for e in events)
    kannel_event = next(e for e in events if e.provider == "kannel" and e.event_type == "1")
    urls = {g.name: g.url for g in engine.gateways()}
    assert urls["kannel"] == f"{base}/webhooks/kannel?token=…"  # to paste, the token elided
    assert kannel_event.occurred_at == 1_796_700_030 * 1_000_000
    # Replayed or forwarded, a query goes out as the GET it came as.
    wire = GATEWAYS["kannel"].post_body(kannel_event.payload)
    assert wire.startswith(b"?") and b"token" not in wire


# --- conformance: the built-ins' traffic through their TOML twins -------------------------------

TWINS = {
    "lisoloo": """
name = "lisoloo_file"
body = "json"
[report]
event_id = "event_id"
message_id = "message_id"
recipient = "data.recipient_phone"
status = "event_type"
time = ["data.delivered_at", "data.failed_at", "data.sent_at", "timestamp"]
carrier = "data.carrier"
error_code = "data.error_code"
error_message = "data.error_message"
retryable = "data.retryable"
total_recipients = "data.total_recipients"
total_messages = "data.total_messages"
cost = "data.total_cost"
currency = "data.currency"
errors_only_when_failed = true
[status]
"sms.queued" = "queued"
"sms.processing" = "processing"
"sms.sent" = "sent"
"sms.delivered" = "delivered"
"sms.failed" = "failed"
[verify]
method = "basic-auth"
user = "ops"
secret = "s3cret"
""",
    "yebolink": """
name = "yebolink_file"
body = "json"
[report]
message_id = "data.message_id"
recipient = "data.recipient"
status = "event"
time = ["data.delivered_at", "timestamp"]
error_code = "data.error_code"
error_message = "data.error_message"
cost = "data.credits_used"
recipients_per_message = 1
dedupe = ["status", "message_id", "time"]
[status]
"message.queued" = "queued"
"message.sent" = "sent"
"message.delivered" = "delivered"
"message.failed" = "failed"
[verify]
method = "hmac"
header = "X-YeboLink-Signature"
digest = "sha256"
encoding = "hex"
secret = "yebo-secret"
""",
    "twilio": """
name = "twilio_file"
body = "form"
[report]
message_id = ["MessageSid", "SmsSid"]
recipient = "To"
status = ["MessageStatus", "SmsStatus"]
time = "RawDlrDoneDate"
time_format = "%y%m%d%H%M"
error_code = "ErrorCode"
error_message = "ErrorMessage"
group = "MessagingServiceSid"
recipients_per_message = 1
required = ["AccountSid"]
dedupe = ["message_id", "status", "time"]
[status]
accepted = "queued"
scheduled = "queued"
queued = "queued"
sending = "processing"
sent = "sent"
partially_delivered = "sent"
delivered = "delivered"
read = "delivered"
undelivered = "failed"
failed = "failed"
canceled = "failed"
[verify]
method = "hmac"
over = "url-and-params"
header = "X-Twilio-Signature"
digest = "sha1"
encoding = "base64"
secret = "twilio-auth-token"
""",
    "africastalking": """
name = "africastalking_file"
body = "form"
[report]
message_id = "id"
recipient = "phoneNumber"
status = "status"
error_code = "failureReason"
carrier = "networkCode"
recipients_per_message = 1
required = ["id"]
dedupe = ["message_id", "status"]
[status]
sent = "sent"
submitted = "sent"
buffered = "sent"
success = "delivered"
failed = "failed"
rejected = "failed"
expired = "failed"
absentsubscriber = "failed"
[verify]
method = "url-token"
secret = "at-token"
""",
}
TELNYX_SEED = bytes(range(32))


def _telnyx_public() -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return b64(Ed25519PrivateKey.from_private_bytes(TELNYX_SEED).public_key().public_bytes_raw())


TWINS["telnyx"] = f"""
name = "telnyx_file"
body = "json"
[report]
batch = "data.payload.to"
event_id = "^.data.id"
message_id = "^.data.payload.id"
recipient = "phone_number"
status = "status"
carrier = "carrier"
time = ["^.data.occurred_at", "^.data.payload.completed_at", "^.data.payload.sent_at"]
cost = "^.data.payload.cost.amount"
currency = "^.data.payload.cost.currency"
group = ["^.data.payload.tags.0", "^.data.payload.messaging_profile_id"]
[status]
queued = "queued"
sending = "processing"
sent = "sent"
delivered = "delivered"
sending_failed = "failed"
delivery_failed = "failed"
expired = "failed"
delivery_unconfirmed = "unconfirmed"
[verify]
method = "ed25519"
header = "telnyx-signature-ed25519"
timestamp_header = "telnyx-timestamp"
public_key = "{_telnyx_public()}"
"""
CREDENTIALS = Credentials(
    ("ops", "s3cret"),
    "yebo-secret",
    {
        "twilio_auth_token": "twilio-auth-token",
        "africastalking_token": "at-token",
        "telnyx_public_key": _telnyx_public(),
        "telnyx_signing_key": b64(TELNYX_SEED),
    },
)
# The fields that differ by design, per gateway, and why.
BY_DESIGN: dict[str, dict[str, str]] = {
    "lisoloo": {},
    "yebolink": {
        # Its key holds the timestamp in microseconds; a file's holds the time as written.
        "dedupe_key": "the time as written, not in microseconds",
        "event_id": "derived from the key",
        # Its channel, `credits` as the currency and metadata come from its own fields.
        "message_info": "channel, currency and metadata are YeboLink's own",
    },
    "twilio": {},
    "telnyx": {
        # Its stored payload is the whole webhook (one body for every recipient of its to[]);
        # a file's batch keeps each recipient's report.
        "payload": "each report of the batch, not the whole body",
        # Its message info counts the to[] and names the channel by the message's type.
        "message_info": "total_recipients is len(to[]); channel is the message's type",
        # Its error is the one of errors[] whose source.pointer is the recipient's.
        "error_code": "errors[] matched by source.pointer",
        "error_message": "errors[] matched by source.pointer",
    },
    "africastalking": {
        "dedupe_key": "status words are not folded to lower case in a file's key",
        "event_id": "derived from the key",
        "carrier": "the network code, not its name (the built-in has a table of networks)",
        "error_code": "a failure without a failureReason is not named after its status",
    },
}
COMPARED = [f.name for f in dataclass_fields(Event) if f.name != "provider"]


def twin_of(name: str, tmp_path: Path) -> DeclaredGateway:
    [twin] = load([write(tmp_path, TWINS[name], f"{name}.toml")])
    return twin


def key_for(event: Event, name: str) -> str:
    """The dedupe key with the gateway's name swapped for the twin's."""
    assert event.dedupe_key.startswith(f"{name}|")
    return f"{name}_file" + event.dedupe_key[len(name) :]


@pytest.mark.parametrize("name", list(TWINS))
def test_the_built_ins_traffic_gives_the_same_events_through_their_toml_twins(
    name: str, tmp_path: Path
) -> None:
    built_in = GATEWAYS[name]
    twin = twin_of(name, tmp_path)
    mine, theirs = built_in.provider(CREDENTIALS), twin.provider(CREDENTIALS)
    plan = plan_campaign(
        SimConfig(provider=name, messages=6, recipients=4, seed=22, fail_rate=0.4),
        t0_us=1_796_700_000_000_000,
    )
    assert plan.deliveries
    url = f"https://hooks.example.com/webhooks/{name}"
    differs = BY_DESIGN[name]
    keys: dict[str, str] = {}
    states = set()
    for delivery in plan.deliveries:
        body = delivery.body
        # Signed as the built-in gateway signs (its simulator's, its forwarder's signer).
        signed = built_in.resign(body, CREDENTIALS, url)
        headers = dict(signed.headers)
        if signed.basic_auth:
            headers["Authorization"] = "Basic " + b64(":".join(signed.basic_auth).encode())
        called = CREDENTIALS.in_url(name, url)
        for adapter in (mine, theirs):
            adapter.check_auth(headers, body, called if adapter.checks_url else None)
        # Received long before any time a report carries: Twilio's receipt-minute rule (a
        # callback in its receipt's minute is timed by its arrival) never applies.
        expected, got = mine.parse(body, 0), theirs.parse(body, 0)
        assert len(expected) == len(got) >= 1
        for e, g in zip(expected, got, strict=True):
            compare(name, e, g, body, differs, keys)
            states.add(e.state)
    assert len(set(keys.values())) == len(keys)
    assert State.DELIVERED in states and State.FAILED in states
    # A forged request is refused by the twin as by the built-in.
    body = plan.deliveries[0].body
    for adapter in (mine, theirs):
        with pytest.raises(Rejected) as refused:
            adapter.check_auth(
                {
                    "Authorization": "Basic " + b64(b"ops:wrong"),
                    "X-YeboLink-Signature": "00",
                    "X-Twilio-Signature": "AAAA",
                    "telnyx-timestamp": str(int(time.time())),
                    "telnyx-signature-ed25519": b64(bytes(64)),
                },
                body,
                url + "?token=wrong",
            )
        assert refused.value.status == 401


def compare(
    name: str, e: Event, g: Event, body: bytes, differs: dict[str, str], keys: dict[str, str]
) -> None:
    """One event of the built-in's against its twin's, field by field."""
    assert g.provider == f"{name}_file"
    for field in COMPARED:
        if field in differs:
            continue
        want, have = getattr(e, field), getattr(g, field)
        if field == "dedupe_key":
            want = key_for(e, name)
        elif field == "event_id" and e.event_id == derived_id(e.dedupe_key):
            want = derived_id(key_for(e, name))  # derived from the key, which names it
        assert have == want, (name, field, body[:200])
    # Whatever the keys, one event's copies are one event under both, and two events two.
    assert keys.setdefault(e.dedupe_key, g.dedupe_key) == g.dedupe_key


def test_twilios_twin_signs_forwards_as_twilio_does(tmp_path: Path) -> None:
    twin = twin_of("twilio", tmp_path)
    plan = plan_campaign(SimConfig(provider="twilio", messages=1, recipients=1, seed=3))
    body = plan.deliveries[0].body
    url = "https://app.example.com/sms/status"
    theirs = GATEWAYS["twilio"].resign(body, CREDENTIALS, url).headers
    mine = twin.resign(body, CREDENTIALS, url).headers
    assert mine["X-Twilio-Signature"] == theirs["X-Twilio-Signature"]
    assert mine["Content-Type"] == "application/x-www-form-urlencoded"
    # Stored and posted again, the form is the same fields: the signature still holds.
    [event] = twin.provider(CREDENTIALS).parse(body, 0)
    again = twin.post_body(event.payload)
    twin.provider(CREDENTIALS).check_auth(
        {"X-Twilio-Signature": mine["X-Twilio-Signature"]}, again, url
    )


def test_the_settings_name_gateway_files_relative_to_the_config_file(tmp_path: Path) -> None:
    from smswatch.config import load as load_config

    (tmp_path / "gw").mkdir()
    config = write(tmp_path, 'gateway_files = ["gw/acme.toml", "/abs/other.toml"]\n', "c.toml")
    assert load_config(config)["gateway_files"] == [
        str(tmp_path / "gw/acme.toml"),
        "/abs/other.toml",
    ]
    single = write(tmp_path, 'gateway_files = "acme.toml"\n', "d.toml")
    assert load_config(single)["gateway_files"] == [str(tmp_path / "acme.toml")]


def test_the_time_formats(tmp_path: Path) -> None:
    from smswatch.gateways.declarative.webhook import read_time

    at = int(datetime(2026, 12, 7, 18, 10, tzinfo=UTC).timestamp())
    assert read_time(at, "unix") == at * 1_000_000
    assert read_time(str(at * 1000), "unix_ms") == at * 1_000_000
    assert read_time("2612071810", "%y%m%d%H%M") == at * 1_000_000
    assert read_time("2026-12-07 20:10 +0200", "%Y-%m-%d %H:%M %z") == at * 1_000_000
    assert read_time("2026-12-07T18:10:00Z", "iso") == at * 1_000_000
    for value, fmt in (
        ("soon", "unix"),
        (1e300, "unix"),
        (-5, "unix"),
        (True, "unix"),
        ("2613071810", "%y%m%d%H%M"),  # no month 13
        ("x" * 100, "%Y"),
        ("yesterday", "iso"),
    ):
        assert read_time(value, fmt) is None, (value, fmt)


async def test_an_exported_file_gateway_replays_into_another_smswatch_as_it_came(
    acme: DeclaredGateway,
    make_engine: Callable[..., Engine],
    session: aiohttp.ClientSession,
    tmp_path: Path,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`export` then `replay --gateway-file`: each report posted as a batch of its own, signed
    by the file's verifier, folds to the same states in a second database."""
    from click.testing import CliRunner

    from smswatch import store
    from smswatch.cli import main

    async with running(make_engine()) as engine:
        hook = f"{engine.listener.base_url}/webhooks/acme"
        for reports in ACME_POSTS:
            body = acme_body(reports)
            assert (await post(session, hook, body, acme_signed(body)))[0] == 200
        await asyncio.wrap_future(engine.writer.settle())
    exported = tmp_path / "acme.jsonl"
    export = ["export", "--db", str(db_path), "--out", str(exported)]
    result = await asyncio.to_thread(CliRunner().invoke, main, export)  # it runs its own loop
    assert result.exit_code == 0, result.output
    second = tmp_path / "second.db"
    async with running(make_engine(db_path=second)) as engine:
        args = [
            "replay",
            str(exported),
            "--url",
            engine.listener.base_url,
            "--speed",
            "0",
            "-q",
            "--gateway-file",
            str(tmp_path / "acme.toml"),
        ]
        replayed = await asyncio.to_thread(CliRunner().invoke, main, args)
        assert replayed.exit_code == 0, replayed.output
        await asyncio.wrap_future(engine.writer.settle())
    async with await store.open_reader(second, current=True) as r:
        for mid, (state, code) in ACME_TRUTH.items():
            rec = await r.recipient(mid, PHONE[mid])
            assert rec is not None and (rec.state, rec.error_code) == (state, code), mid
        events = [e async for e in r.iter_events()]
    assert len(events) == sum(len(p) for p in ACME_POSTS) - 1


async def test_the_forwarder_posts_a_file_gateways_events_as_that_gateway_does(
    acme: DeclaredGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acme's report goes as a batch of its own, its HMAC over the bytes sent made by the
    file's secret; Kannel's as the GET it came as, without the token that rode in its URL."""
    import contextlib

    from aiohttp import web

    from smswatch.core.forwarding import Job, Target
    from smswatch.forward.config import ForwardConfig
    from smswatch.forward.worker import Forwarder
    from smswatch.store.sqlite.files import connect_log

    monkeypatch.setenv("SMSWATCH_KANNEL_TOKEN", KANNEL_TOKEN)
    [_, kannel] = install([tmp_path / "acme.toml", EXAMPLES / "kannel.toml"])
    got: list[tuple[str, str, dict[str, str], bytes]] = []

    async def app_hook(request: web.Request) -> web.Response:
        got.append((request.method, request.path_qs, dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/in", app_hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    target = f"http://127.0.0.1:{runner.addresses[0][1]}/in"
    db = tmp_path / "fwd.db"
    with contextlib.closing(connect_log(db)):
        pass
    report = acme_report(M[0], "DELIVERED", T0)
    [acme_event] = acme.provider(Credentials()).parse(acme_body([report]), 1)
    query = urlencode({"id": "k-9", "status": "1", "to": "+2547", "token": KANNEL_TOKEN})
    [kannel_event] = kannel.provider(Credentials()).parse(b"?" + query.encode(), 1)
    jobs = [
        Job(1, target, 0, "acme", acme_event.event_id, M[0], acme_event.payload, "DELIVERED"),
        Job(2, target, 0, "kannel", kannel_event.event_id, "k-9", kannel_event.payload, "1"),
    ]
    try:
        async with aiohttp.ClientSession() as session:
            forwarder = Forwarder(db, ForwardConfig(targets=(Target(target),)))
            for job in jobs:
                assert (await forwarder.send(session, job)).delivered
    finally:
        await runner.cleanup()
    (m1, path1, h1, b1), (m2, path2, _, b2) = got
    assert (m1, path1) == ("POST", "/in")
    assert json.loads(b1) == {"data": {"reports": [report]}}
    mac = hmac.new(ACME_SECRET.encode(), b1, hashlib.sha512).digest()
    assert h1["X-Acme-Signature"] == "v1=" + b64(mac)
    assert (m2, b2) == ("GET", b"")
    assert path2.startswith("/in?id=k-9&status=1&to=") and KANNEL_TOKEN not in path2


def test_a_verifying_file_gateway_makes_a_public_bind_safe(
    registered: Callable[..., list[DeclaredGateway]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from smswatch.live.engine import BindRefused, EngineConfig, open_gateways

    public = EngineConfig(db_path=tmp_path / "x.db", host="0.0.0.0", port=0)
    with pytest.raises(BindRefused):
        open_gateways(public)
    registered(write(tmp_path, MINIMAL, "open.toml"))  # verifies nothing: still refused
    with pytest.raises(BindRefused):
        open_gateways(public)
    monkeypatch.setenv("ACME_TEST_SECRET", ACME_SECRET)
    registered(write(tmp_path, ACME, "acme.toml"))
    assert open_gateways(public) == frozenset()  # none is open: the others are refused
    loopback = EngineConfig(db_path=tmp_path / "x.db", host="127.0.0.1", port=0)
    assert "acme" in open_gateways(loopback)


def test_a_query_or_form_field_is_named_as_it_is_dots_and_brackets_included(
    tmp_path: Path,
) -> None:
    text = """
name = "dots"
body = "query"
[report]
message_id = "msg.id"
status = "status[code]"
cost = "price.amount"
required = ["account.sid"]
[status]
ok = "delivered"
"""
    [gateway] = load([write(tmp_path, text)])
    adapter = gateway.provider(Credentials())
    query = urlencode(
        {"msg.id": "m1", "status[code]": "OK", "price.amount": "0.5", "account.sid": "A"}
    )
    for body in (b"?" + query.encode(), query.encode()):  # a GET's query, a POSTed form
        [event] = adapter.parse(body, 1)
        assert (event.message_id, event.state, event.message_info.total_cost) == (  # type: ignore[union-attr]
            "m1",
            State.DELIVERED,
            0.5,
        )
    # The same paths walk a JSON body of a `query` gateway.
    [event] = adapter.parse(
        b'{"msg": {"id": "m2"}, "status[code]": "ok", "account": {"sid": "A"}}', 1
    )
    assert event.message_id == "m2"
    with pytest.raises(Rejected) as refused:
        adapter.parse(b"?msg.id=m3&status%5Bcode%5D=ok", 1)  # no account.sid
    assert (refused.value.status, refused.value.code) == (400, "unknown_envelope")


def test_a_url_that_is_not_utf_8_is_refused_not_a_crash() -> None:
    check = verifiers.JwtCheck("s" * 32)
    odd = "https://h/webhooks/bird?id=\udcff"
    token = check.sign(odd, b"")
    check.check({"MessageBird-Signature-JWT": token}, b"", [odd])
    with pytest.raises(Rejected):
        check.check({"MessageBird-Signature-JWT": token}, b"", ["https://h/webhooks/bird?id=%FF"])


@pytest.mark.both_stores
@pytest.mark.parametrize("name", ["twilio", "telnyx"])
async def test_a_twin_over_http_ends_each_recipient_where_the_simulators_truth_says(
    name: str,
    tmp_path: Path,
    registered: Callable[..., list[DeclaredGateway]],
    make_engine: Callable[..., Engine],
    session: aiohttp.ClientSession,
    reader: Any,
) -> None:
    """The built-in's simulated campaign (duplicates, arrival out of order, failures) posted to
    its twin over real HTTP, each request signed by the twin's verifier's scheme: a form signed
    over the URL (Twilio's), JSON batches signed with Ed25519 (Telnyx's)."""
    [twin] = registered(write(tmp_path, TWINS[name], f"{name}.toml"))
    plan = plan_campaign(
        SimConfig(
            provider=name, messages=8, recipients=3, seed=7, fail_rate=0.3, duplicate_rate=0.3
        )
    )
    copies = len(plan.deliveries) - plan.events
    assert copies > 0
    async with running(make_engine()) as engine:
        url = f"{engine.listener.base_url}/webhooks/{twin.name}"
        duplicates = 0
        for delivery in plan.deliveries:
            # Signed as the built-in signs (for Telnyx, by the pair whose public half the twin's
            # file holds): the twin checks it by its own verifier.
            signed = GATEWAYS[name].resign(delivery.body, CREDENTIALS, url)
            headers = {"Content-Type": "application/json", **signed.headers}
            status, answer = await post(session, url, delivery.body, headers)
            assert status == 200, answer
            duplicates += answer["status"] == "duplicate"
        forged = {
            **headers,
            "X-Twilio-Signature": "AAAA",
            "telnyx-signature-ed25519": b64(bytes(64)),
        }
        assert (await post(session, url, plan.deliveries[0].body, forged))[0] == 401
        await asyncio.wrap_future(engine.writer.settle())
    assert duplicates >= 1
    r = await reader()
    for truth in plan.truth:
        rec = await r.recipient(truth.message_id, truth.recipient)
        assert rec is not None and rec.provider == twin.name, truth
        assert rec.state.value == truth.state, truth
        if name == "twilio":  # Telnyx's error is matched by pointer: not in its file
            assert rec.error_code == truth.error_code, truth


def test_without_an_event_id_the_dedupe_fields_tell_events_apart(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        'status = "s"', 'status = "s"\nmessage_id = "m"\ntime = "t"\ntime_format = "unix"'
    )
    [gateway] = load([write(tmp_path, text)])
    adapter = gateway.provider(Credentials())
    keys = [
        adapter.parse(body, 1)[0].dedupe_key
        for body in (
            b'{"m": "a", "s": "ok", "t": 1796700000.25}',
            b'{"m": "a", "s": "ok", "t": 1796700000.5}',  # a float: no text, its microseconds
            b'{"m": "a", "s": "ok", "t": "1796700000"}',
            b'{"m": "a", "s": "ok"}',
            b'{"s": "ok", "t": 1}',  # no message id: the bytes' digest
        )
    ]
    assert len(set(keys)) == len(keys)
    assert keys[3] == "acme|a|ok" and keys[4].startswith("acme|sha256:")
    again = adapter.parse(b'{"m": "a", "s": "ok", "t": 1796700000.25}', 2)[0]
    assert again.dedupe_key == keys[0]


def test_an_ed25519_timestamp_that_is_no_number_is_refused_even_when_signed() -> None:
    """'nan' compares false with any window: a signed 'nan' must not pass as fresh."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from smswatch.core.rejected import Rejected
    from smswatch.gateways.verifiers import Ed25519Check

    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes_raw()).decode()
    check = Ed25519Check(public, "x-sig", timestamp_header="x-ts")
    for stamp in ("nan", "inf"):
        signed = base64.b64encode(key.sign(stamp.encode() + b"|" + b"{}")).decode()
        with pytest.raises(Rejected) as refused:
            check.check({"x-sig": signed, "x-ts": stamp}, b"{}")
        assert refused.value.status == 401
