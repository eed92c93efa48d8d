"""Twilio end to end: status callbacks posted as signed forms over real HTTP into a real engine
(both stores), every status and its folded state, duplicates and reordering, the refusals
(forged, wrong-URL and missing signatures; forms that are no status callback; JSON), the
public URL, the known answers of Twilio's own documentation and SDK, the forwarder's
re-signature checked by an independent HMAC, and `simulate --provider twilio` end to end.

Signatures here are computed with hmac + base64 in this file, never with the production
`sign()`, so a wrong scheme cannot agree with itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
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
from smswatch.gateways.base import credentials_of
from smswatch.gateways.registry import GATEWAYS
from smswatch.gateways.twilio.webhook import Twilio, sign
from smswatch.live.engine import Engine
from smswatch.store.sqlite.files import connect_log
from smswatch.timefmt import to_us
from tests.conftest import running

TOKEN = "twilio-auth-token-7f3a9c"
ACCOUNT = "AC" + "3f" * 16
TOKENS = {"twilio_auth_token": TOKEN}
FORM = "application/x-www-form-urlencoded"

# Twilio's documentation ("Validating signatures from Twilio"): auth token 12345, this URL,
# these fields, this signature. twilio-python's own tests use +14158675309 for Caller/From and
# pin RSOYDt4T1cUTdK1PDd93/VVr8B8=, and the port variants below (tests/unit/
# test_request_validator.py); each one recomputed by hand with hmac and base64.
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_FIELDS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675310"),
    ("Digits", "1234"),
    ("From", "+14158675310"),
    ("To", "+18005551212"),
]
DOC_SIGNATURE = "GvWf1cFY/Q7PnoempGyD5oXAezc="
SDK_FIELDS = [(k, v.replace("5310", "5309")) for k, v in DOC_FIELDS]
SDK_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def signature(token: str, url: str, fields: list[tuple[str, str]]) -> str:
    """Twilio's scheme written out independently: the URL, then name + value sorted by name."""
    data = url + "".join(name + value for name, value in sorted(fields))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def callback(sid: str, status: str, to: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    """A status callback's fields, in the order Twilio posts them."""
    return [
        *extra,
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("To", to),
        ("MessagingServiceSid", "MG" + "1" * 32),
        ("MessageSid", sid),
        ("AccountSid", ACCOUNT),
        ("From", "+14155550100"),
        ("ApiVersion", "2010-04-01"),
    ]


async def post(
    session: aiohttp.ClientSession,
    url: str,
    fields: list[tuple[str, str]] | bytes,
    *,
    token: str | None = TOKEN,
    signed_url: str | None = None,
    content_type: str = FORM,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """POST a form, signed over `signed_url` (default: the URL posted to) unless token is None."""
    body = fields if isinstance(fields, bytes) else urlencode(fields).encode()
    hdrs = {"Content-Type": content_type, **(headers or {})}
    if token is not None and not isinstance(fields, bytes):
        hdrs["X-Twilio-Signature"] = signature(token, signed_url or url, fields)
    async with session.post(url, data=body, headers=hdrs) as resp:
        return resp.status, await resp.json(content_type=None)


@contextlib.asynccontextmanager
async def twilio_engine(
    make_engine: Callable[..., Engine], **overrides: Any
) -> AsyncIterator[Engine]:
    engine = make_engine(credentials=Credentials(tokens=TOKENS), **overrides)
    async with running(engine):
        yield engine


def hook(engine: Engine, query: str = "") -> str:
    return f"{engine.listener.base_url}/webhooks/twilio{query}"


# --- known answers -------------------------------------------------------------------------------


def test_the_documented_signature_is_computed_and_accepted() -> None:
    assert signature("12345", DOC_URL, DOC_FIELDS) == DOC_SIGNATURE  # the test's own is right
    assert sign("12345", DOC_URL, DOC_FIELDS) == DOC_SIGNATURE
    assert sign("12345", DOC_URL, SDK_FIELDS) == SDK_SIGNATURE
    body = urlencode(DOC_FIELDS).encode()
    Twilio("12345").check_auth({"X-Twilio-Signature": DOC_SIGNATURE}, body, DOC_URL)
    for wrong_token, wrong_url in (("12346", DOC_URL), ("12345", DOC_URL + "&x=1")):
        with pytest.raises(Rejected) as refused:
            Twilio(wrong_token).check_auth({"X-Twilio-Signature": DOC_SIGNATURE}, body, wrong_url)
        assert refused.value.status == 401


@pytest.mark.parametrize(
    ("url", "given"),
    [
        # twilio-python: a port in the URL is also tried without it (https and http) ...
        ("https://mycompany.com:1234/myapp.php?foo=1&bar=2", SDK_SIGNATURE),
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        # ... and a URL without one is also tried with the scheme's default port.
        ("https://mycompany.com/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),
        ("http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
    ],
)
def test_the_sdks_port_variants_are_accepted(url: str, given: str) -> None:
    Twilio("12345").check_auth({"X-Twilio-Signature": given}, urlencode(SDK_FIELDS).encode(), url)


def test_a_repeated_field_signs_its_distinct_values_sorted_as_the_sdk_does() -> None:
    fields = [
        ("Sid", "CA123"),
        ("SidAccount", "AC123"),
        ("Digits", "5678"),
        ("Digits", "1234"),
        ("Digits", "1234"),
    ]
    assert sign("12345", DOC_URL, fields) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_a_receipt_received_within_its_minute_is_timed_by_its_arrival() -> None:
    fields = callback(A, "delivered", PHONE[A], ("RawDlrDoneDate", DLR))
    body = urlencode(fields).encode()
    [within] = Twilio().parse(body, DLR_US + 12_345_678)
    assert (within.occurred_at, within.time_estimated) == (DLR_US + 12_345_678, False)
    [late] = Twilio().parse(body, DLR_US + 3_600_000_000)  # a retry an hour on: the receipt's
    assert (late.occurred_at, late.time_estimated) == (DLR_US, False)
    assert within.dedupe_key == late.dedupe_key


def test_its_credential_is_declared_once_and_read_by_its_gateway() -> None:
    [declared] = [c for c in GATEWAY_CREDENTIALS if c.gateway == "twilio"]
    assert (declared.key, declared.flag, declared.envvar) == (
        "twilio_auth_token",
        "--twilio-auth-token",
        "SMSWATCH_TWILIO_AUTH_TOKEN",
    )
    for credential in GATEWAY_CREDENTIALS:
        # A gateway's credential is its secret; a setting beside it (a method) is not one.
        taken = credentials_of(GATEWAYS[credential.gateway])
        assert (credential.key in taken) is credential.secret, credential.key
    adapter = GATEWAYS["twilio"].provider(Credentials(tokens={declared.key: "t"}))
    assert adapter.auth_mode().verified
    assert not GATEWAYS["twilio"].provider(Credentials()).auth_mode().verified


# --- every status, duplicates and reordering, over HTTP ------------------------------------------

DLR = "2612071142"  # RawDlrDoneDate: 2026-12-07 11:42 UTC
DLR_US = to_us(datetime(2026, 12, 7, 11, 42, tzinfo=UTC))
A, B, C, D, E, F, G, H = (f"SM{i:032x}" for i in range(1, 9))
PHONE = {sid: f"+1415555{i:04d}" for i, sid in enumerate((A, B, C, D, E, F, G, H))}
# (sid, status, extra fields), in the order posted: finals before the steps that led there,
# and duplicates, as Twilio's unordered, retried posts may come.
TRAFFIC: list[tuple[str, str, tuple[tuple[str, str], ...]]] = [
    (A, "delivered", (("RawDlrDoneDate", DLR),)),
    (A, "queued", ()),
    (A, "sent", ()),
    (A, "delivered", (("RawDlrDoneDate", DLR),)),  # a duplicate
    (A, "sending", ()),
    (B, "scheduled", ()),
    (B, "undelivered", (("ErrorCode", "30003"), ("RawDlrDoneDate", DLR))),
    (B, "accepted", ()),
    (B, "sent", ()),
    (B, "queued", ()),
    (C, "failed", (("ErrorCode", "30034"), ("ErrorMessage", "Unregistered Number"))),
    (C, "queued", ()),
    (D, "partially_delivered", ()),
    (D, "sent", ()),
    (E, "read", ()),
    (E, "sent", ()),
    (E, "delivered", ()),
    (F, "queued", ()),
    (F, "canceled", ()),
    (G, "queued", ()),
    (G, "rerouted", ()),  # a status of tomorrow: stored as unknown, acknowledged
    (H, "sending", ()),
    (H, "sending", ()),  # a duplicate
]
# What each recipient must end as, worked out by hand from Twilio's meanings.
EXPECTED = {
    A: (State.DELIVERED, None),
    B: (State.FAILED, "30003"),
    C: (State.FAILED, "30034"),
    D: (State.SENT, None),  # partially delivered: more segments may come
    E: (State.DELIVERED, None),
    F: (State.FAILED, None),
    G: (State.QUEUED, None),
    H: (State.PROCESSING, None),
}


@pytest.mark.both_stores
async def test_every_status_folds_right_whatever_the_order_with_duplicates_stored_once(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    async with twilio_engine(make_engine) as engine:
        answers = []
        for sid, status, extra in TRAFFIC:
            code, answer = await post(
                session, hook(engine), callback(sid, status, PHONE[sid], *extra)
            )
            assert code == 200, answer
            answers.append(answer["status"])
        await asyncio.wrap_future(engine.writer.settle())
    assert answers.count("duplicate") == 2 and answers.count("stored") == len(TRAFFIC) - 2
    r = await reader()
    for sid, (state, error_code) in EXPECTED.items():
        [rec] = await r.recipients(sid)
        assert (rec.recipient, rec.provider) == (PHONE[sid], "twilio")
        assert (rec.state, rec.error_code) == (state, error_code), sid
        assert not rec.conflict
    events = [e async for e in r.iter_events()]
    assert len(events) == len(TRAFFIC) - 2
    by_type = {(e.message_id, e.event_type): e for e in events}
    delivered = by_type[(A, "delivered")]
    assert (delivered.occurred_at, delivered.time_estimated) == (DLR_US, False)
    sent = by_type[(A, "sent")]
    assert sent.time_estimated and sent.occurred_at == sent.received_at
    assert by_type[(G, "rerouted")].state is State.UNKNOWN
    assert by_type[(C, "failed")].error_message == "Unregistered Number"
    # The payload is the form as a JSON object, fields in the order they came.
    payload = json.loads(by_type[(B, "undelivered")].payload)
    assert list(payload)[:2] == ["ErrorCode", "RawDlrDoneDate"]
    assert payload["MessageSid"] == B and payload["To"] == PHONE[B]


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.both_stores
async def test_forged_wrong_url_and_missing_signatures_are_refused_and_nothing_stored(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    fields = callback(A, "delivered", PHONE[A])
    async with twilio_engine(make_engine) as engine:
        url = hook(engine)
        tries = [
            ("bad_signature", {"token": "not-the-token"}),
            ("bad_signature", {"signed_url": url.replace("/webhooks/twilio", "/elsewhere")}),
            ("bad_signature", {"signed_url": url + "?x=1"}),
            ("missing_signature", {"token": None}),
        ]
        for code, how in tries:
            status, answer = await post(session, url, fields, **how)
            assert (status, answer["error"]) == (401, code), how
        # A body changed after signing: the signature covers the fields.
        tampered = [(k, "failed" if v == "delivered" else v) for k, v in fields]
        status, _ = await post(
            session,
            url,
            urlencode(tampered).encode(),
            headers={"X-Twilio-Signature": signature(TOKEN, url, fields)},
        )
        assert status == 401
        await asyncio.sleep(0.2)  # the quarantine rides with the next batch
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert [e async for e in r.iter_events()] == []
    kept = await r.quarantine()
    assert sorted(q.code for q in kept) == ["bad_signature"] * 4 + ["missing_signature"]
    assert all(q.provider == "twilio" and q.status == 401 for q in kept)


@pytest.mark.both_stores
async def test_a_form_that_is_no_status_callback_is_400_and_quarantined(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    async with twilio_engine(make_engine) as engine:
        url = hook(engine)
        # Signed right, but an inbound-call form (no MessageStatus, no AccountSid).
        status, answer = await post(session, url, DOC_FIELDS)
        assert (status, answer["error"]) == (400, "unknown_envelope")
        # Not a form at all (a field without `=`), and a form with a bad percent-escape.
        for raw in (b"MessageSid", b"MessageStatus=%FF%FE"):
            sig = {"X-Twilio-Signature": "x"}
            status, answer = await post(session, url, raw, headers=sig)
            assert (status, answer["error"]) == (400, "malformed_form"), raw
        # JSON on a form route: 415, as the seeds' routes answer a form.
        status, answer = await post(
            session, url, b'{"MessageStatus":"sent"}', content_type="application/json"
        )
        assert (status, answer["error"]) == (415, "unsupported_media_type")
        await asyncio.sleep(0.2)
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert [e async for e in r.iter_events()] == []
    kept = {q.code: q for q in await r.quarantine()}
    assert set(kept) == {"unknown_envelope", "malformed_form", "unsupported_media_type"}
    assert kept["unknown_envelope"].body == urlencode(DOC_FIELDS).encode()


async def test_without_a_token_it_takes_posts_on_loopback_only(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession
) -> None:
    fields = callback(A, "sent", PHONE[A])
    async with running(make_engine()) as engine:
        assert (await post(session, hook(engine), fields, token=None))[0] == 200
    public = make_engine(host="0.0.0.0", credentials=Credentials(yebolink_secret="s"))
    async with running(public):
        url = f"http://127.0.0.1:{public.listener.port}/webhooks/twilio"
        status, answer = await post(session, url, fields, token=None)
        assert (status, answer["error"]) == (401, "auth_required")
        assert {g.name: g.accepting for g in public.gateways()}["twilio"] is False


async def test_the_detecting_route_takes_a_twilio_callback_by_its_signature_header(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    async with twilio_engine(make_engine) as engine:
        url = f"{engine.listener.base_url}/webhooks"
        fields = callback(A, "sent", PHONE[A])
        assert (await post(session, url, fields))[0] == 200
        # Without the header it is no gateway's: a form is not JSON.
        status, answer = await post(session, url, fields, token=None)
        assert (status, answer["error"]) == (415, "unsupported_media_type")
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert [(e.provider, e.message_id) async for e in r.iter_events()] == [("twilio", A)]


# --- the public URL ------------------------------------------------------------------------------


async def test_behind_a_public_url_the_signature_is_checked_over_it(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    public = "https://Hooks.Example.com:8443/sms"
    async with twilio_engine(make_engine, public_url=public) as engine:
        local = hook(engine, "?tag=a%20b")
        fields = callback(A, "sent", PHONE[A])
        # Over the URL Twilio called, path and query as sent: accepted.
        signed = f"{public}/webhooks/twilio?tag=a%20b"
        assert (await post(session, local, fields, signed_url=signed))[0] == 200
        # Over the address this listener has: what Twilio never signed.
        status, answer = await post(session, local, callback(B, "sent", PHONE[B]))
        assert (status, answer["error"]) == (401, "bad_signature")
        assert "--public-url" in answer["detail"]
        [twilio] = [g for g in engine.gateways() if g.name == "twilio"]
        assert twilio.url == f"{public}/webhooks/twilio"
    r = await reader()
    assert [e.message_id async for e in r.iter_events()] == [A]


# --- forwarding ----------------------------------------------------------------------------------


async def test_forwards_are_resigned_over_the_apps_url(tmp_path: Path) -> None:
    """The forwarder posts the stored callback as a form, signed for the app's URL with the
    auth token: the app's own Twilio validator (here: hmac by hand) passes."""
    got: list[tuple[str, dict[str, str], bytes]] = []

    async def app_hook(request: web.Request) -> web.Response:
        got.append((str(request.url), dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/twilio/status", app_hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    target = f"http://127.0.0.1:{port}/twilio/status?app=1"
    db = tmp_path / "fwd.db"
    with contextlib.closing(connect_log(db)):
        pass
    fields = callback(A, "delivered", PHONE[A], ("RawDlrDoneDate", DLR))
    payload = Twilio().parse(urlencode(fields).encode(), 1)[0].payload
    config = ForwardConfig(targets=(Target(target),), tokens=TOKENS)
    job = Job(1, target, 0, "twilio", "e1", A, payload, "delivered")
    try:
        async with aiohttp.ClientSession() as session:
            outcome = await Forwarder(db, config).send(session, job)
    finally:
        await runner.cleanup()
    assert outcome.delivered
    [(url, headers, body)] = got
    assert headers["Content-Type"] == FORM
    assert parse_qsl(body.decode(), strict_parsing=True) == fields
    assert headers["X-Twilio-Signature"] == signature(TOKEN, target, fields)
    assert url == target


# --- the simulator end to end --------------------------------------------------------------------


@pytest.mark.both_stores
async def test_simulate_provider_twilio_end_to_end(
    make_engine: Callable[..., Engine], reader: Any
) -> None:
    from smswatch.devtools.simulate import Sender, SimConfig, plan_campaign

    async with twilio_engine(make_engine) as engine:
        config = SimConfig(
            url=engine.listener.base_url,
            provider="twilio",
            messages=2,
            recipients=25,
            seed=21,
            rate=4000.0,
            speed=50.0,
            fail_rate=0.3,
            duplicate_rate=0.2,
            tokens=TOKENS,
        )
        plan = plan_campaign(config)
        result = await Sender(config).run(plan.deliveries)
        assert result.ok and result.rejected == 0
        assert result.acked == len(plan.deliveries) and result.acked_duplicate > 0
        await asyncio.wrap_future(engine.writer.settle())
    assert len(plan.truth) == 50
    assert {t.state for t in plan.truth} == {"delivered", "failed"}
    r = await reader()
    for t in plan.truth:
        rec = await r.recipient(t.message_id, t.recipient)
        assert rec is not None and rec.provider == "twilio"
        assert (rec.state.value, rec.error_code) == (t.state, t.error_code), t
    assert len([e async for e in r.iter_events()]) == plan.events


@pytest.mark.parametrize(
    "bad",
    [
        "hooks.example.com",
        "ftp://hooks.example.com",
        "https://",
        "https://h/?x=1",
        "https://u:p@h",
        "https://h:99999",
        "https://h/a b",
    ],
)
def test_a_public_url_that_cannot_be_one_is_a_usage_error(bad: str) -> None:
    import click

    from smswatch.cli.engine_config import public_url

    with pytest.raises(click.BadParameter):
        public_url(bad)


def test_a_public_url_keeps_what_twilio_signs_but_the_trailing_slash() -> None:
    from smswatch.cli.engine_config import public_url

    assert (
        public_url(" https://Hooks.Example.com:8443/sms/ ") == "https://Hooks.Example.com:8443/sms"
    )
    assert public_url("") is None
