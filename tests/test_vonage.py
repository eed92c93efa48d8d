"""Vonage end to end: SMS API delivery receipts as a GET's query, a form and JSON, signed with
each of the dashboard's five methods, and Messages API status callbacks signed with a JWT, over
real HTTP into a real engine (both stores): every status and its folded state, duplicates and
reordering, error codes, cost and group; the refusals (forged, wrong-method, stale and missing
signatures, bad, forged and expired JWTs, a wrong payload_hash) with nothing stored; bodies that
are no receipt quarantined; GET elsewhere still 405; the known answers of Vonage's own SDKs;
the settings; the forwarder's re-signature checked by an independent verifier; and
`simulate --provider vonage` end to end.

Signatures and JWTs here are computed with hashlib, hmac and base64 in this file, never with the
production code (nor PyJWT), so a wrong scheme cannot agree with itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from aiohttp import web

from smswatch.config import Credentials
from smswatch.core.credentials import GATEWAY_CREDENTIALS
from smswatch.core.domain import State
from smswatch.core.forwarding import Job, Target
from smswatch.core.rejected import Rejected
from smswatch.forward.config import ForwardConfig
from smswatch.forward.worker import Forwarder
from smswatch.gateways.registry import GATEWAYS
from smswatch.gateways.vonage.webhook import METHODS, VIA, Vonage, signature
from smswatch.live.engine import Engine
from smswatch.store.sqlite.files import connect_log
from smswatch.timefmt import to_us
from tests.conftest import running

SECRET = "vonage-signature-secret-0123456789abcdef"  # 40 bytes: no short-key warnings
FORM_TYPE = "application/x-www-form-urlencoded"


def tokens(method: str = "md5hash", secret: str = SECRET) -> dict[str, str]:
    return {"vonage_signature_secret": secret, "vonage_signature_method": method}


# --- the schemes, written out independently ------------------------------------------------------


def sig(secret: str, method: str, fields: list[tuple[str, str]]) -> str:
    """Vonage's `sig`: every field but sig, sorted by name, `&` and `=` in values as `_`, as
    `&k=v&k=v`; md5hash = md5(string + secret), the others hex HMAC(secret, string)."""
    text = "".join(
        "&" + k + "=" + v.replace("&", "_").replace("=", "_")
        for k, v in sorted(f for f in fields if f[0] != "sig")
    )
    if method == "md5hash":
        return hashlib.md5((text + secret).encode()).hexdigest()
    return hmac.new(secret.encode(), text.encode(), getattr(hashlib, method)).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(secret: str, claims: dict[str, Any]) -> str:
    """A JWT signed HS256, by hand."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


def jwt_for(body: bytes, secret: str = SECRET, iat: float | None = None, **claims: Any) -> str:
    base = {
        "iat": int(time.time() if iat is None else iat),
        "jti": "c5ba8f24-1a14-4c10-bfdf-3fbe8ce511b5",
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        "api_key": "a1b2c3d4",
    }
    return hs256(secret, {**base, **claims})


# --- known answers -------------------------------------------------------------------------------

# vonage-python-sdk 2.x tests (test_signature*): secret "secret" and these params.
PY_PARAMS = [("a", "1"), ("b", "2"), ("timestamp", "1461605396")]
PY_ANSWERS = {
    "md5hash": "6af838ef94998832dbfc29020b564830",
    "md5": "c15c21ced558c93a226c305f58f902f2",
    "sha1": "3e19a4e6880fdc2c1426bfd0587c98b9532f0210",
    "sha256": "a321e824b9b816be7c3f28859a31749a098713d39f613c80d455bbaffae1cd24",
    "sha512": "812a18f76680fa0fe1b8bd9ee1625466ceb1bd96242e4d050d2cfd9a7b40166c63ed26ec9702168781b"
    "6edcf1633db8ff95af9341701004eec3fcf9550572ee8",
}
# vonage-node-sdk packages/sms/__tests__/__dataSets__/signature.ts: an inbound SMS's fields,
# secret my_secret_key_for_testing, the HMACs written in upper case.
NODE_PARAMS = [
    ("message-timestamp", "2013-11-21 15:27:30"),
    ("messageId", "020000001B0FE827"),
    ("msisdn", "14843472194"),
    ("text", "Test again"),
    ("timestamp", "1385047698"),
    ("to", "13239877404"),
    ("type", "text"),
]
NODE_SECRET = "my_secret_key_for_testing"
NODE_ANSWERS = {
    "md5hash": "d2e7b1dc968737c5998ad624e02f90b7",
    "md5": "DDEBD46008C2D4E93CCE578A332A52D5",
    "sha1": "27D0D05C2876C7CB1720DBCDBA4D492E1E55C09A",
    "sha256": "DDB8397C2B90AAC7F3882D306475C9A5058C92322EEF43C92B298B6E0FC0D330",
    "sha512": "E0D3C650F8C9D1A5C174D10DDDBFB003E561F59B265616208B0487C5D819481CD3C311D59CF6165E"
    "CD1139622D5BA3A256C0D763AC4A9AD9144B5A426B94FE82",
}


@pytest.mark.parametrize("method", METHODS)
def test_the_sdks_known_signatures_are_computed_and_accepted(method: str) -> None:
    assert sig("secret", method, PY_PARAMS) == PY_ANSWERS[method]  # the test's own is right
    assert signature("secret", method, PY_PARAMS) == PY_ANSWERS[method]
    assert sig(NODE_SECRET, method, NODE_PARAMS) == NODE_ANSWERS[method].lower()
    assert signature(NODE_SECRET, method, NODE_PARAMS) == NODE_ANSWERS[method].lower()
    # Checked case-insensitively (the Node SDK's answers are upper case), at the request's time.
    at = 1385047698 + 30
    adapter = Vonage(NODE_SECRET, method, clock=lambda: at)
    query = b"?" + urlencode([*NODE_PARAMS, ("sig", NODE_ANSWERS[method])]).encode()
    adapter.check_auth({}, query)
    for other in METHODS:
        if other != method:
            with pytest.raises(Rejected) as refused:
                Vonage(NODE_SECRET, other, clock=lambda: at).check_auth({}, query)
            assert refused.value.status == 401
            # The method that did sign it is named, so the setting can be fixed.
            assert f"sig is {method}" in refused.value.detail


def test_ampersands_and_equals_in_values_are_signed_as_underscores() -> None:
    fields = [("text", "a=b & c"), ("a=7", "1"), ("timestamp", "1461605396")]
    assert signature(SECRET, "sha256", fields) == sig(SECRET, "sha256", fields)
    changed = [("text", "a_b _ c"), ("a=7", "1"), ("timestamp", "1461605396")]
    assert signature(SECRET, "md5hash", fields) == signature(SECRET, "md5hash", changed)


def test_its_settings_are_declared_once_and_read_by_its_gateway() -> None:
    declared = {c.key: c for c in GATEWAY_CREDENTIALS if c.gateway == "vonage"}
    secret, method = declared["vonage_signature_secret"], declared["vonage_signature_method"]
    assert (secret.flag, secret.envvar, secret.secret) == (
        "--vonage-signature-secret",
        "SMSWATCH_VONAGE_SIGNATURE_SECRET",
        True,
    )
    assert (method.flag, method.envvar, method.secret, method.default) == (
        "--vonage-signature-method",
        "SMSWATCH_VONAGE_SIGNATURE_METHOD",
        False,
        "md5hash",
    )
    assert method.choices == METHODS
    gateway = GATEWAYS["vonage"]
    assert gateway.credential == secret.key
    adapter = gateway.provider(Credentials(tokens=tokens("sha512")))
    assert adapter.auth_mode().verified and "sha512" in adapter.auth_mode().label
    assert not gateway.provider(Credentials()).auth_mode().verified
    # A method alone authenticates nothing: it does not make a public bind safe.
    assert not Credentials(tokens={"vonage_signature_method": "sha1"}).any
    assert Credentials(tokens={"vonage_signature_secret": "s"}).any
    with pytest.raises(ValueError):
        Vonage(SECRET, "sha3")


def test_a_bad_method_is_refused_at_start_by_flag_and_by_config_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from smswatch import config
    from smswatch.cli import main

    result = CliRunner().invoke(main, ["serve", "--vonage-signature-method", "sha3"])
    assert result.exit_code == 2 and "sha3" in result.output
    cfg = tmp_path / "c.toml"
    cfg.write_text('vonage_signature_method = "sha3"\n')
    with pytest.raises(config.ConfigError, match="vonage_signature_method"):
        config.load(cfg)
    cfg.write_text('vonage_signature_method = "sha256"\n')
    assert config.load(cfg) == {"vonage_signature_method": "sha256"}
    help_text = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "--vonage-signature-secret" in help_text and "--vonage-signature-method" in help_text


# --- traffic over HTTP ---------------------------------------------------------------------------

NOW = time.time()
SCTS = datetime.fromtimestamp(NOW - 3600, UTC).strftime("%y%m%d%H%M")  # an hour ago
SCTS_US = to_us(datetime.strptime(SCTS, "%y%m%d%H%M").replace(tzinfo=UTC))
M = [f"0B0000012{i:07X}" for i in range(1, 11)]  # SMS API messageIds
U = [f"aaaaaaaa-bbbb-cccc-dddd-{i:012x}" for i in range(1, 5)]  # Messages API message_uuids
PHONE = {m: f"4477009001{i:02d}" for i, m in enumerate(M)}
PHONE[M[1]] = PHONE[M[0]]  # the second part of the same recipient's message
UPHONE = {u: f"4915100000{i:02d}" for i, u in enumerate(U)}


def receipt(mid: str, status: str, err: str = "0", *, scts: str = SCTS) -> list[tuple[str, str]]:
    """A delivery receipt's fields, in the order Vonage's docs list them."""
    return [
        ("msisdn", PHONE[mid]),
        ("to", "AcmeAlerts"),
        ("network-code", "23410"),
        ("messageId", mid),
        ("price", "0.03330000"),
        ("status", status),
        ("scts", scts),
        ("err-code", err),
        ("api-key", "a1b2c3d4"),
        ("client-ref", "cmp-spring" if mid in M[:2] else "cmp-other"),
        (
            "message-timestamp",
            datetime.fromtimestamp(NOW - 3590, UTC).strftime("%Y-%m-%d %H:%M:%S"),
        ),
    ]


def signed(
    fields: list[tuple[str, str]],
    method: str = "md5hash",
    secret: str = SECRET,
    at: float | None = None,
) -> list[tuple[str, str]]:
    # The time of the send, not of the module's import: a long run must not make them stale.
    now = time.time() if at is None else at
    out = [*fields, ("timestamp", str(int(now))), ("nonce", "n-0001")]
    return [*out, ("sig", sig(secret, method, out))]


async def send_receipt(
    session: aiohttp.ClientSession, url: str, fields: list[tuple[str, str]], via: str
) -> tuple[int, Any]:
    """A receipt as the account's setting sends it: a GET's query, a form, or JSON."""
    if via == "query":
        request = session.get(url + "?" + urlencode(fields))
    elif via == "form":
        request = session.post(url, data=urlencode(fields), headers={"Content-Type": FORM_TYPE})
    else:
        body = json.dumps(dict(fields)).encode()
        request = session.post(url, data=body, headers={"Content-Type": "application/json"})
    async with request as resp:
        return resp.status, await resp.json(content_type=None)


def status_body(uid: str, status: str, **extra: Any) -> bytes:
    obj: dict[str, Any] = {
        "message_uuid": uid,
        "to": UPHONE[uid],
        "from": "AcmeAlerts",
        "timestamp": datetime.fromtimestamp(NOW - 1800, UTC).strftime("%Y-%m-%dT%H:%M:%S.123Z"),
        "status": status,
        **extra,
        "client_ref": "cmp-messages",
        "channel": "sms",
    }
    return json.dumps(obj).encode()


async def send_status(
    session: aiohttp.ClientSession, url: str, body: bytes, token: str | None = ""
) -> tuple[int, Any]:
    """A Messages API status, with its JWT (token "" makes a valid one; None sends none)."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token or jwt_for(body)}"
    async with session.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


@contextlib.asynccontextmanager
async def vonage_engine(
    make_engine: Callable[..., Engine], method: str = "md5hash", **kw: Any
) -> AsyncIterator[Engine]:
    engine = make_engine(credentials=Credentials(tokens=tokens(method)), **kw)
    async with running(engine):
        yield engine


def hook(engine: Engine) -> str:
    return f"{engine.listener.base_url}/webhooks/vonage"


# (messageId, status, err-code) in the order posted: finals before the steps that led there,
# duplicates, an unknown that a later delivered replaces, a status of tomorrow.
SMS_TRAFFIC = [
    (M[0], "delivered", "0"),
    (M[0], "accepted", "0"),
    (M[0], "delivered", "0"),  # a duplicate (signed anew: another nonce would not matter)
    (M[1], "buffered", "0"),
    (M[1], "delivered", "0"),
    (M[2], "expired", "2"),
    (M[2], "accepted", "0"),
    (M[3], "failed", "3"),
    (M[4], "rejected", "6"),
    (M[5], "undelivered", "4"),
    (M[6], "accepted", "0"),
    (M[6], "unknown", "1"),
    (M[7], "delivered", "0"),
    (M[7], "unknown", "1"),  # Vonage had said unknown; the carrier's delivered came too
    (M[8], "accepted", "0"),
    (M[8], "deleted", "0"),  # taken off a queue: no state of ours, stored and acknowledged
    (M[9], "accepted", "0"),
]
SMS_EXPECTED = {
    M[0]: (State.DELIVERED, None),
    M[1]: (State.DELIVERED, None),
    M[2]: (State.FAILED, "2"),
    M[3]: (State.FAILED, "3"),
    M[4]: (State.FAILED, "6"),
    M[5]: (State.FAILED, "4"),
    M[6]: (State.UNCONFIRMED, None),
    M[7]: (State.DELIVERED, None),
    M[8]: (State.SENT, None),
    M[9]: (State.SENT, None),
}
ERROR_1050 = {
    "type": "https://developer.nexmo.com/api-errors/messages-olympus#1050",
    "title": 1050,
    "detail": "Number barred",
    "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf",
}
ERROR_1100 = {"type": "https://developer.nexmo.com/api-errors/messages-olympus#1100"}
USAGE = {"currency": "GBP", "price": "0.0287"}
MESSAGE_TRAFFIC = [
    (U[0], "delivered", {}),
    (U[0], "submitted", {"usage": USAGE}),
    (U[0], "read", {}),
    (U[0], "delivered", {}),  # a duplicate
    (U[1], "rejected", {"error": ERROR_1050}),
    (U[2], "submitted", {}),
    (U[2], "undeliverable", {"error": ERROR_1100}),
    (U[3], "submitted", {}),
    (U[3], "queued", {}),  # a status of tomorrow
]
MESSAGE_EXPECTED = {
    U[0]: (State.DELIVERED, None),
    U[1]: (State.FAILED, "1050"),
    U[2]: (State.FAILED, "1100"),
    U[3]: (State.SENT, None),
}
VIAS = ("query", "form", "json")


@pytest.mark.both_stores
@pytest.mark.parametrize("method", METHODS)
async def test_every_status_of_both_apis_folds_right_whatever_the_order_and_the_way(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any, method: str
) -> None:
    async with vonage_engine(make_engine, method) as engine:
        answers = []
        for n, (mid, status, err) in enumerate(SMS_TRAFFIC):
            fields = signed(receipt(mid, status, err), method)
            code, answer = await send_receipt(session, hook(engine), fields, VIAS[n % 3])
            assert code == 200, (mid, status, answer)
            answers.append(answer["status"])
        for uid, status, extra in MESSAGE_TRAFFIC:
            code, answer = await send_status(
                session, hook(engine), status_body(uid, status, **extra)
            )
            assert code == 200, (uid, status, answer)
            answers.append(answer["status"])
        await asyncio.wrap_future(engine.writer.settle())
    assert answers.count("duplicate") == 2
    r = await reader()
    for mid, (state, error_code) in {**SMS_EXPECTED, **MESSAGE_EXPECTED}.items():
        [rec] = await r.recipients(mid)
        assert rec.provider == "vonage"
        assert rec.recipient == (PHONE.get(mid) or UPHONE[mid])
        assert (rec.state, rec.error_code, rec.conflict) == (state, error_code, False), mid
    events = [e async for e in r.iter_events()]
    assert len(events) == len(SMS_TRAFFIC) + len(MESSAGE_TRAFFIC) - 2
    by = {(e.message_id, e.event_type): e for e in events}
    # The carrier's time (an hour ago, to the minute), and the receipt's cost and group.
    delivered = by[(M[0], "delivered")]
    assert (delivered.occurred_at, delivered.time_estimated) == (SCTS_US, False)
    assert delivered.carrier == "23410" and delivered.state is State.DELIVERED
    assert by[(M[8], "deleted")].state is State.UNKNOWN
    assert by[(U[3], "queued")].state is State.UNKNOWN
    assert by[(U[1], "rejected")].error_message == "Number barred"
    message = await r.message(M[0])
    assert (message.total_cost, message.currency) == (0.0333, "EUR")
    sent = await r.message(U[0])
    assert (sent.total_cost, sent.currency, sent.channel) == (0.0287, "GBP", "sms")
    # client-ref groups the parts of a send: the two parts of M[0]'s text are one campaign.
    assert await r.campaign_of(M[0]) == await r.campaign_of(M[1]) == "cmp-spring"
    assert await r.campaign_of(U[0]) == "cmp-messages"
    # A query's and a form's payload keep their fields as JSON, and how they came.
    payloads = {json.loads(e.payload).get(VIA) for e in events if e.message_id in M}
    assert payloads == {"query", "form", None}  # None: JSON, stored as it came
    first = json.loads(by[(M[0], "delivered")].payload)
    assert first[VIA] == "query" and first["messageId"] == M[0] and "sig" in first


@pytest.mark.both_stores
async def test_refused_receipts_and_callbacks_are_401_and_nothing_is_stored(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    fields = receipt(M[0], "delivered")
    body = status_body(U[0], "delivered")
    async with vonage_engine(make_engine, "sha256") as engine:
        url = hook(engine)
        tries = [
            ("bad_signature", signed(fields, "sha256", secret="not-the-secret")),
            ("bad_signature", signed(fields, "md5hash")),  # the dashboard's method is sha256
            ("stale_signature", signed(fields, "sha256", at=time.time() - 600)),
            ("stale_signature", signed(fields, "sha256", at=time.time() + 600)),
            ("missing_signature", fields),
            # Signed, then changed: the signature covers every field.
            (
                "bad_signature",
                [(k, "failed" if v == "delivered" else v) for k, v in signed(fields, "sha256")],
            ),
            # A field sent twice: which one was signed cannot be known.
            ("bad_signature", [*signed(fields, "sha256"), ("status", "failed")]),
        ]
        for via in VIAS:
            for code, sent in tries:
                if via == "json" and sent[-1][0] == "status":
                    continue  # JSON cannot repeat a key
                status, answer = await send_receipt(session, url, sent, via)
                assert (status, answer["error"]) == (401, code), (via, code, sent[-3:])
        old = signed(fields, "sha256", at=time.time() - 600)
        stale = await send_receipt(session, url, old, "query")
        assert "old" in stale[1]["detail"]
        jwts = [
            ("missing_signature", None),
            ("bad_signature", jwt_for(body, secret="not-the-secret")),
            ("bad_signature", jwt_for(body, payload_hash=hashlib.sha256(b"other").hexdigest())),
            ("stale_signature", jwt_for(body, iat=time.time() - 600)),
            ("stale_signature", jwt_for(body, exp=int(time.time()) - 60)),
            ("bad_signature", "not.a.jwt"),
            ("bad_signature", hs256(SECRET, {"payload_hash": hashlib.sha256(body).hexdigest()})),
        ]
        for code, token in jwts:
            status, answer = await send_status(session, url, body, token)
            assert (status, answer["error"]) == (401, code), (code, answer)
        # A valid JWT over another body: the payload_hash is the body's own.
        status, _ = await send_status(session, url, status_body(U[1], "delivered"), jwt_for(body))
        assert status == 401
        # HS512 or "none" is not how Vonage signs: refused even with the right secret.
        header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        unsigned = {"iat": int(time.time()), "payload_hash": hashlib.sha256(body).hexdigest()}
        claims = b64url(json.dumps(unsigned).encode())
        assert (await send_status(session, url, body, f"{header}.{claims}."))[0] == 401
        await asyncio.sleep(0.2)  # the quarantine rides with the next batch
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert [e async for e in r.iter_events()] == []
    kept = await r.quarantine()
    assert kept and all(q.provider == "vonage" and q.status == 401 for q in kept)
    assert {q.method for q in kept} == {"GET", "POST"}
    get = next(q for q in kept if q.method == "GET")
    assert get.body is not None and get.body.startswith(b"?msisdn=")


@pytest.mark.both_stores
async def test_bodies_that_are_no_receipt_are_400_and_quarantined(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    inbound = [("msisdn", "447700900001"), ("to", "447700900100"), ("messageId", "X1")]
    inbound += [("text", "hello"), ("type", "text"), ("keyword", "HELLO")]
    async with running(make_engine()) as engine:  # no secret: loopback takes them unsigned
        url = hook(engine)
        for via in VIAS:
            status, answer = await send_receipt(session, url, inbound, via)
            assert (status, answer["error"]) == (400, "unknown_envelope"), via
        # Not a form, not JSON, and a field named as smswatch marks a payload's way.
        for raw, ctype, code in [
            (b"msisdn", FORM_TYPE, "malformed_form"),
            (b"{not json", "application/json", "malformed_json"),
            (
                b'{"messageId":"X","status":"delivered","smswatch:via":"query"}',
                "application/json",
                "unknown_envelope",
            ),
        ]:
            async with session.post(url, data=raw, headers={"Content-Type": ctype}) as resp:
                assert (resp.status, (await resp.json())["error"]) == (400, code), raw
        # A content type that is neither a form nor JSON: 415.
        async with session.post(url, data=b"<x/>", headers={"Content-Type": "text/xml"}) as resp:
            assert resp.status == 415
        # An empty GET is a URL being tried out: 200, nothing stored, nothing quarantined.
        async with session.get(url) as resp:
            assert resp.status == 200
        # GET anywhere else is still 405, and PUT here is too.
        for path in ("/webhooks/lisoloo", "/webhooks/twilio", "/webhooks"):
            async with session.get(engine.listener.base_url + path + "?a=1") as resp:
                assert resp.status == 405 and resp.headers["Allow"] == "POST", path
        async with session.put(url, data=b"x") as resp:
            assert resp.status == 405 and resp.headers["Allow"] == "GET, POST"
        await asyncio.sleep(0.2)
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert [e async for e in r.iter_events()] == []
    kept = await r.quarantine()
    assert sorted(q.code for q in kept) == sorted(
        ["unknown_envelope"] * 4 + ["malformed_form", "malformed_json", "unsupported_media_type"]
    )


async def test_without_a_secret_it_takes_receipts_on_loopback_only(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession
) -> None:
    fields = receipt(M[0], "delivered")
    async with running(make_engine()) as engine:
        for via in VIAS:
            assert (await send_receipt(session, hook(engine), fields, via))[0] == 200
        assert (await send_status(session, hook(engine), status_body(U[0], "submitted"), None))[
            0
        ] == 200
    public = make_engine(host="0.0.0.0", credentials=Credentials(yebolink_secret="s"))
    async with running(public):
        url = f"http://127.0.0.1:{public.listener.port}/webhooks/vonage"
        status, answer = await send_receipt(session, url, fields, "query")
        assert (status, answer["error"]) == (401, "auth_required")
        assert {g.name: g.accepting for g in public.gateways()}["vonage"] is False


async def test_the_detecting_route_takes_vonage_json_by_its_shape(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    async with vonage_engine(make_engine) as engine:
        url = f"{engine.listener.base_url}/webhooks"
        accepted = signed(receipt(M[0], "accepted"))
        assert (await send_receipt(session, url, accepted, "json"))[0] == 200
        assert (await send_status(session, url, status_body(U[0], "submitted")))[0] == 200
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    stored = sorted([(e.provider, e.message_id) async for e in r.iter_events()])
    assert stored == [("vonage", M[0]), ("vonage", U[0])]


def test_a_receipt_received_within_its_minute_is_timed_by_its_arrival() -> None:
    body = b"?" + urlencode(receipt(M[0], "delivered")).encode()
    [within] = Vonage().parse(body, SCTS_US + 12_345_678)
    assert (within.occurred_at, within.time_estimated) == (SCTS_US + 12_345_678, False)
    [late] = Vonage().parse(body, SCTS_US + 3_600_000_000)
    assert (late.occurred_at, late.time_estimated) == (SCTS_US, False)
    assert within.dedupe_key == late.dedupe_key == f"vonage|{M[0]}|delivered|{SCTS}"
    # No scts: the push time; blank ids are absent, and the key is the fields' digest.
    bare = [(k, "" if k == "messageId" else v) for k, v in receipt(M[0], "accepted") if k != "scts"]
    [ev] = Vonage().parse(b"?" + urlencode(bare).encode(), 1)
    assert ev.message_id is None and ev.dedupe_key.startswith("vonage|sha256:")
    assert ev.occurred_at == to_us(datetime.fromtimestamp(NOW - 3590, UTC).replace(microsecond=0))


# --- forwarding ----------------------------------------------------------------------------------


async def test_forwards_are_resigned_as_vonage_signs_them(tmp_path: Path) -> None:
    """The forwarder sends each stored webhook the way it came (a GET's query, a form, JSON),
    re-signed as Vonage signs with the app's method: a fresh timestamp, nonce and sig, or a
    fresh JWT over the body as forwarded; checked here by hand, as the app's own code would."""
    got: list[tuple[str, str, dict[str, str], bytes]] = []

    async def app_hook(request: web.Request) -> web.Response:
        got.append((request.method, str(request.url), dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/vonage/dlr", app_hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    target = f"http://127.0.0.1:{runner.addresses[0][1]}/vonage/dlr?app=1"
    db = tmp_path / "fwd.db"
    with contextlib.closing(connect_log(db)):
        pass
    old = signed(receipt(M[0], "delivered"), "sha1", at=time.time() - 86400)  # a day old
    adapter = Vonage()
    jobs = []
    for n, via in enumerate(VIAS):
        if via == "query":
            raw = b"?" + urlencode(old).encode()
        elif via == "form":
            raw = urlencode(old).encode()
        else:
            raw = json.dumps(dict(old)).encode()
        payload = adapter.parse(raw, 1)[0].payload
        jobs.append(Job(n + 1, target, 0, "vonage", f"e{n}", M[0], payload, "delivered"))
    status = status_body(U[0], "delivered")
    payload = adapter.parse(status, 1)[0].payload
    jobs.append(Job(9, target, 0, "vonage", "e9", U[0], payload, "delivered"))
    config = ForwardConfig(targets=(Target(target),), tokens=tokens("sha1"))
    try:
        async with aiohttp.ClientSession() as session:
            for job in jobs:
                assert (await Forwarder(db, config).send(session, job)).delivered
    finally:
        await runner.cleanup()
    (m1, u1, _, b1), (m2, _, h2, b2), (m3, _, h3, b3), (m4, _, h4, b4) = got
    query = parse_qsl(u1.split("?", 1)[1])
    assert (m1, b1, query[0]) == ("GET", b"", ("app", "1"))
    fields_by_way = [query[1:], parse_qsl(b2.decode()), list(json.loads(b3).items())]
    assert h2["Content-Type"] == FORM_TYPE and h3["Content-Type"] == "application/json"
    assert (m2, m3, m4) == ("POST", "POST", "POST")
    for fields in fields_by_way:
        given = dict(fields)
        assert given.pop("sig") == sig(SECRET, "sha1", [f for f in fields if f[0] != "sig"])
        assert abs(int(given["timestamp"]) - time.time()) < 60  # fresh, not the stored one
        assert given["nonce"] != "n-0001"
        assert {k: v for k, v in given.items() if k not in ("timestamp", "nonce")} == {
            k: v for k, v in receipt(M[0], "delivered")
        }
        assert VIA not in given
    # The Messages API callback: the body as stored, with a fresh JWT over it.
    assert b4 == status
    head, claims_b64, mac = h4["Authorization"].removeprefix("Bearer ").split(".")
    expect = hmac.new(SECRET.encode(), f"{head}.{claims_b64}".encode(), hashlib.sha256).digest()
    assert mac == b64url(expect)
    claims = json.loads(base64.urlsafe_b64decode(claims_b64 + "=" * (-len(claims_b64) % 4)))
    assert claims["payload_hash"] == hashlib.sha256(b4).hexdigest()
    assert abs(claims["iat"] - time.time()) < 60


def test_a_replayed_export_goes_the_way_it_came() -> None:
    """An exported receipt that came as a GET is replayed as a GET (its payload says so), one
    that came as JSON as JSON, each signed afresh for this listener."""
    from smswatch.devtools.replay import load
    from smswatch.devtools.simulate import signed_request

    adapter = Vonage()
    query = b"?" + urlencode(signed(receipt(M[0], "delivered"))).encode()
    as_json = json.dumps(dict(signed(receipt(M[1], "delivered")))).encode()
    lines = [
        json.dumps({"provider": "vonage", "payload": json.loads(adapter.parse(raw, 1)[0].payload)})
        for raw in (query, as_json)
    ]
    got, via_json = load(lines, speed=0)
    credentials = Credentials(tokens=tokens("sha256"))
    method, url, _, data = signed_request(
        "vonage", got.body, credentials, "http://h/webhooks/vonage"
    )
    fields = parse_qsl(url.split("?", 1)[1])
    assert (method, data) == ("GET", None)
    assert dict(fields)["sig"] == sig(SECRET, "sha256", fields)
    method, _, headers, data = signed_request("vonage", via_json.body, credentials, "http://h/x")
    assert (method, headers["Content-Type"]) == ("POST", "application/json")
    obj = json.loads(data or b"")
    assert obj["sig"] == sig(SECRET, "sha256", [(k, v) for k, v in obj.items()])


# --- the simulator end to end --------------------------------------------------------------------


@pytest.mark.both_stores
async def test_simulate_provider_vonage_end_to_end(
    make_engine: Callable[..., Engine], reader: Any
) -> None:
    from smswatch.devtools.simulate import Sender, SimConfig, plan_campaign

    async with vonage_engine(make_engine, "sha512") as engine:
        config = SimConfig(
            url=engine.listener.base_url,
            provider="vonage",
            messages=8,
            recipients=12,
            seed=21,
            rate=4000.0,
            speed=50.0,
            fail_rate=0.3,
            duplicate_rate=0.2,
            tokens=tokens("sha512"),
        )
        plan = plan_campaign(config)
        result = await Sender(config).run(plan.deliveries)
        assert result.ok and result.rejected == 0, result.first_errors
        assert result.acked == len(plan.deliveries) and result.acked_duplicate > 0
        await asyncio.wrap_future(engine.writer.settle())
    states = {t.state for t in plan.truth}
    assert states == {"delivered", "failed", "unconfirmed"}
    # Several parts per recipient share the send's client-ref; both APIs were used.
    assert len(plan.truth) > 8 * 12
    apis = {r.fields["api"] for r in plan.ledger}
    assert apis == {"sms", "messages"}
    r = await reader()
    for t in plan.truth:
        rec = await r.recipient(t.message_id, t.recipient)
        assert rec is not None and rec.provider == "vonage"
        assert (rec.state.value, rec.error_code, rec.carrier) == (
            t.state,
            t.error_code,
            t.carrier,
        ), t
    assert len([e async for e in r.iter_events()]) == plan.events
    refs = {r.fields["client_ref"] for r in plan.ledger}
    for ref in refs:
        ids = [rec.truth.message_id for rec in plan.ledger if rec.fields["client_ref"] == ref]
        assert {await r.campaign_of(i) for i in ids} == {ref}
