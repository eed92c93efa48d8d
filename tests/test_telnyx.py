"""Telnyx end to end: `message.sent` and `message.finalized` webhooks signed with real Ed25519
signatures, over real HTTP into a real engine (both stores): every recipient status and its
folded state, one event per recipient of a group MMS's `to[]`, duplicates and reordering, a
later delivered replacing delivery_unconfirmed without a conflict, error codes, cost and group;
the refusals (forged signatures, another key's, stale or future timestamps, missing headers, a
body changed after signing) with nothing stored; bodies that are no Telnyx webhook quarantined;
the settings; the forwarder's signature by the team's own key, checked by that key's public
half; and `simulate --provider telnyx` end to end.

Signatures here are made with `cryptography`'s Ed25519 in this file over `timestamp|body`, never
with the production `sign()`, so a wrong scheme cannot agree with itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from smswatch.config import Credentials
from smswatch.core.credentials import GATEWAY_CREDENTIALS
from smswatch.core.domain import State
from smswatch.core.forwarding import Job, Target
from smswatch.core.rejected import Rejected
from smswatch.forward.config import ForwardConfig
from smswatch.forward.worker import Forwarder
from smswatch.gateways.catalogue import explain, suppressible
from smswatch.gateways.registry import GATEWAYS
from smswatch.gateways.telnyx.webhook import Telnyx
from smswatch.live.engine import Engine
from smswatch.store.sqlite.files import connect_log
from tests.conftest import running

# Fixed seeds: the same keys every run, so a failure reproduces.
TELNYX = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # stands in for Telnyx's
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))  # another account's


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PUBLIC = b64(TELNYX.public_key().public_bytes_raw())
SIGNING = b64(TELNYX.private_bytes_raw())
TOKENS = {"telnyx_public_key": PUBLIC}


def signed_headers(
    body: bytes, key: Ed25519PrivateKey = TELNYX, at: float | None = None
) -> dict[str, str]:
    """The headers Telnyx sends: Ed25519 over `timestamp|body`, by hand."""
    stamp = str(int(time.time() if at is None else at))
    return {
        "Content-Type": "application/json",
        "telnyx-timestamp": stamp,
        "telnyx-signature-ed25519": b64(key.sign(stamp.encode() + b"|" + body)),
    }


# --- the credentials on their own ----------------------------------------------------------------


def test_its_settings_are_declared_once_and_read_by_its_gateway() -> None:
    declared = {c.key: c for c in GATEWAY_CREDENTIALS if c.gateway == "telnyx"}
    public, signing = declared["telnyx_public_key"], declared["telnyx_signing_key"]
    assert (public.flag, public.envvar, public.secret) == (
        "--telnyx-public-key",
        "SMSWATCH_TELNYX_PUBLIC_KEY",
        True,
    )
    # The signing key is smswatch's own, not the gateway's credential: alone, it does not
    # make a public bind safe.
    assert (signing.flag, signing.envvar, signing.secret) == (
        "--telnyx-signing-key",
        "SMSWATCH_TELNYX_SIGNING_KEY",
        False,
    )
    gateway = GATEWAYS["telnyx"]
    assert gateway.credential == public.key
    assert gateway.provider(Credentials(tokens=TOKENS)).auth_mode().verified
    assert not gateway.provider(Credentials()).auth_mode().verified
    # A signing key alone verifies by its public half: the simulator's pair, one variable.
    by_signing = gateway.provider(Credentials(tokens={"telnyx_signing_key": SIGNING}))
    assert "public half" in by_signing.auth_mode().label
    assert not Credentials(tokens={"telnyx_signing_key": SIGNING}).any
    assert Credentials(tokens=TOKENS).any
    for bad in ("not base64!", b64(b"short"), b64(bytes(33))):
        with pytest.raises(ValueError):
            Telnyx(bad)
        with pytest.raises(ValueError):
            Telnyx(None, bad)


def test_a_key_that_is_no_key_is_refused_at_start(tmp_path: Path) -> None:
    from smswatch.cli import main

    for flag in ("--telnyx-public-key", "--telnyx-signing-key"):
        result = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "x.db"), flag, "abc"])
        assert result.exit_code == 2 and flag in result.output, result.output
        assert "abc" not in result.output.replace(flag, "")  # the value is never repeated
    sim = CliRunner().invoke(
        main, ["simulate", "--provider", "telnyx", "--telnyx-signing-key", "x"]
    )
    assert sim.exit_code == 2 and "--telnyx-signing-key" in sim.output
    help_text = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "--telnyx-public-key" in help_text and "--telnyx-api-key" in help_text


# RFC 8032, section 7.1, TEST 1: the raw 32-byte seed and public key Telnyx's base64 keys are.
RFC_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC_SIGNATURE = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065"
    "224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_the_keys_are_read_as_rfc_8032s_raw_bytes() -> None:
    from smswatch.gateways.telnyx.keys import public_of, read_public, read_signing

    seed = b64(bytes.fromhex(RFC_SEED))
    assert public_of(read_signing(seed)) == b64(bytes.fromhex(RFC_PUBLIC))
    assert read_signing(seed).sign(b"") == bytes.fromhex(RFC_SIGNATURE)
    read_public(b64(bytes.fromhex(RFC_PUBLIC))).verify(bytes.fromhex(RFC_SIGNATURE), b"")
    # The URL-safe alphabet and missing padding read the same.
    urlsafe = base64.urlsafe_b64encode(bytes.fromhex(RFC_PUBLIC)).decode().rstrip("=")
    read_public(urlsafe).verify(bytes.fromhex(RFC_SIGNATURE), b"")


def test_the_signature_is_over_the_timestamp_bar_and_raw_body() -> None:
    body = b'{"data":{"event_type":"message.sent","id":"e","payload":{"id":"m","to":[]}}}'
    now = 1_800_000_000.0
    adapter = Telnyx(PUBLIC, clock=lambda: now)
    adapter.check_auth(signed_headers(body, at=now), body)
    # The production signer's headers verify with cryptography, by hand.
    from smswatch.gateways.telnyx.webhook import sign

    headers = sign(SIGNING, body, now)
    stamp = headers["telnyx-timestamp"]
    TELNYX.public_key().verify(
        base64.b64decode(headers["telnyx-signature-ed25519"]), stamp.encode() + b"|" + body
    )
    # Not over the body alone, nor with another separator, nor over a body re-encoded.
    for signed in (body, stamp.encode() + b"." + body, stamp.encode() + b"|" + body + b" "):
        forged = {**headers, "telnyx-signature-ed25519": b64(TELNYX.sign(signed))}
        with pytest.raises(Rejected) as refused:
            adapter.check_auth(forged, body)
        assert (refused.value.status, refused.value.code) == (401, "bad_signature")


# --- traffic over HTTP ---------------------------------------------------------------------------

PROFILE = "40017f5e-0000-4c0d-9b7a-000000000001"
M = [f"40385f64-5717-4562-b3fc-2c963f66a{i:03x}" for i in range(1, 13)]  # payload.id
PHONE = {m: f"+1415555{i:04d}" for i, m in enumerate(M)}
GROUP = M[11]
GROUP_PHONES = ["+16465550001", "+16465550002", "+16465550003"]
OCCURRED = "2026-12-07T18:10:02.574+00:00"
_ids = iter(range(1, 1000))


def to(phone: str, status: str) -> dict[str, str]:
    return {
        "phone_number": phone,
        "status": status,
        "carrier": "T-MOBILE USA, INC.",
        "line_type": "Wireless",
    }


def webhook(
    mid: str,
    event_type: str,
    recipients: list[dict[str, str]],
    errors: list[dict[str, Any]] | None = None,
    *,
    event_id: str | None = None,
    tags: list[str] | None = None,
    kind: str = "SMS",
) -> bytes:
    """A Telnyx webhook as its docs' examples are written, with its own event id."""
    body = {
        "data": {
            "event_type": event_type,
            "id": event_id or f"86f58db9-0fe3-4adc-9d1f-{next(_ids):012d}",
            "occurred_at": OCCURRED,
            "payload": {
                "completed_at": OCCURRED if event_type == "message.finalized" else None,
                "cost": {"amount": "0.0051", "currency": "USD"},
                "direction": "outbound",
                "errors": errors or [],
                "from": {"phone_number": "+18445550001", "carrier": "TELNYX LLC"},
                "id": mid,
                "messaging_profile_id": PROFILE,
                "record_type": "message",
                "sent_at": OCCURRED,
                "tags": ["spring-sale"] if tags is None else tags,
                "text": "Hello, World!",
                "to": recipients,
                "type": kind,
            },
            "record_type": "event",
        },
        "meta": {"attempt": 1, "delivered_to": "https://hooks.example.com/webhooks/telnyx"},
    }
    return json.dumps(body).encode()


def one(mid: str, event_type: str, status: str, code: str | None = None, **kw: Any) -> bytes:
    errors = [{"code": code, "title": "Not routable", "detail": f"code {code}"}] if code else None
    return webhook(mid, event_type, [to(PHONE[mid], status)], errors, **kw)


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with session.post(url, data=body, headers=headers or signed_headers(body)) as resp:
        return resp.status, await resp.json(content_type=None)


@contextlib.asynccontextmanager
async def telnyx_engine(make_engine: Callable[..., Engine], **kw: Any) -> AsyncIterator[Engine]:
    engine = make_engine(credentials=Credentials(tokens=TOKENS), **kw)
    async with running(engine):
        yield engine


def hook(engine: Engine) -> str:
    return f"{engine.listener.base_url}/webhooks/telnyx"


DUPLICATE = one(M[0], "message.finalized", "delivered")
LATE_DELIVERED = one(M[7], "message.finalized", "delivered")
GROUP_FINAL = webhook(
    GROUP,
    "message.finalized",
    [
        to(GROUP_PHONES[0], "delivered"),
        to(GROUP_PHONES[1], "delivery_failed"),
        to(GROUP_PHONES[2], "delivery_unconfirmed"),
    ],
    [
        {"code": "40002", "title": "Blocked as spam - temporary", "source": {"pointer": "/to/1"}},
        {"code": "40008", "title": "Undeliverable", "source": {"pointer": "/to/2"}},
    ],
    tags=[],
    kind="MMS",
)
# In the order posted: finals before the steps that led there, a duplicate (the same event:
# Telnyx's retry, signed afresh), every status, a status of tomorrow, an inbound message.
TRAFFIC = [
    DUPLICATE,
    one(M[0], "message.sent", "sent"),
    DUPLICATE,
    one(M[1], "message.sent", "queued"),
    one(M[2], "message.sent", "sending"),
    one(M[3], "message.finalized", "delivery_failed", "40001"),
    one(M[3], "message.sent", "sent"),
    one(M[4], "message.finalized", "sending_failed", "40300"),
    one(M[5], "message.sent", "sent"),
    one(M[5], "message.finalized", "expired", "40005"),
    one(M[6], "message.sent", "sent"),
    one(M[6], "message.finalized", "delivery_unconfirmed"),
    one(M[7], "message.finalized", "delivery_unconfirmed"),
    LATE_DELIVERED,  # the carrier's receipt came after all: no conflict
    one(M[8], "message.sent", "sent"),
    one(M[8], "message.finalized", "scheduled_later"),  # no state of ours: stored, acknowledged
    one(M[9], "message.sent", "sent", tags=[]),  # no tags: grouped by its messaging profile
    webhook(GROUP, "message.sent", [to(p, "sent") for p in GROUP_PHONES], tags=[], kind="MMS"),
    GROUP_FINAL,
    GROUP_FINAL,  # a duplicate of three recipients' events at once
    json.dumps(
        {
            "data": {
                "event_type": "message.received",
                "id": "inbound-0001",
                "occurred_at": OCCURRED,
                "payload": {"id": M[10], "direction": "inbound", "text": "STOP"},
                "record_type": "event",
            }
        }
    ).encode(),
]
EXPECTED = {
    (M[0], PHONE[M[0]]): (State.DELIVERED, None),
    (M[1], PHONE[M[1]]): (State.QUEUED, None),
    (M[2], PHONE[M[2]]): (State.PROCESSING, None),
    (M[3], PHONE[M[3]]): (State.FAILED, "40001"),
    (M[4], PHONE[M[4]]): (State.FAILED, "40300"),
    (M[5], PHONE[M[5]]): (State.FAILED, "40005"),
    (M[6], PHONE[M[6]]): (State.UNCONFIRMED, None),
    (M[7], PHONE[M[7]]): (State.DELIVERED, None),
    (M[8], PHONE[M[8]]): (State.SENT, None),
    (M[9], PHONE[M[9]]): (State.SENT, None),
    (GROUP, GROUP_PHONES[0]): (State.DELIVERED, None),
    (GROUP, GROUP_PHONES[1]): (State.FAILED, "40002"),
    (GROUP, GROUP_PHONES[2]): (State.UNCONFIRMED, None),
}


@pytest.mark.both_stores
async def test_every_status_folds_right_per_recipient_whatever_the_order(
    make_engine: Callable[..., Engine],
    session: aiohttp.ClientSession,
    reader: Any,
    db_path: Path | str,
) -> None:
    async with telnyx_engine(make_engine) as engine:
        answers = []
        for body in TRAFFIC:
            status, answer = await post(session, hook(engine), body)
            assert status == 200, (body[:120], answer)
            answers.append(answer["status"])
        await asyncio.wrap_future(engine.writer.settle())
    assert answers.count("duplicate") == 2
    r = await reader()
    for (mid, phone), (state, code) in EXPECTED.items():
        rec = await r.recipient(mid, phone)
        assert rec is not None and rec.provider == "telnyx", (mid, phone)
        assert (rec.state, rec.error_code, rec.conflict) == (state, code, False), (mid, phone)
    assert rec.carrier == "T-MOBILE USA, INC."
    # One event per recipient: 16 single ones, the group's three twice, the inbound one.
    events = [e async for e in r.iter_events()]
    assert len(events) == 16 + 3 + 3 + 1
    by = {(e.message_id, e.recipient, e.event_type): e for e in events}
    assert by[(M[8], PHONE[M[8]], "scheduled_later")].state is State.UNKNOWN
    inbound = by[(M[10], None, "message.received")]
    assert inbound.state is State.UNKNOWN and json.loads(inbound.payload)["data"]["id"]
    failed = by[(GROUP, GROUP_PHONES[1], "delivery_failed")]
    assert failed.error_message == "Blocked as spam - temporary"  # the title, with no detail
    assert by[(M[3], PHONE[M[3]], "delivery_failed")].error_message == "code 40001"
    # Its own time: data.occurred_at, to the millisecond.
    assert by[(M[0], PHONE[M[0]], "delivered")].time_estimated is False
    [group] = [await r.message(GROUP)]
    assert group is not None and group.total_recipients == 3
    assert (group.total_cost, group.currency, group.channel) == (0.0051, "USD", "mms")
    assert await r.campaign_of(M[0]) == "spring-sale"  # the first tag
    assert await r.campaign_of(M[9]) == PROFILE  # else the messaging profile
    # The payload is the body as received, byte for byte.
    assert by[(M[0], PHONE[M[0]], "delivered")].payload == DUPLICATE.decode()
    # `smswatch inspect` shows the group's recipients, the unconfirmed one apart.
    from smswatch.cli import main

    args = ["inspect", "--db", str(db_path), GROUP, "--json"]
    shown = await asyncio.to_thread(CliRunner().invoke, main, args)  # it runs its own loop
    assert shown.exit_code == 0, shown.output
    inspected = json.loads(shown.output)
    assert inspected["provider"] == "telnyx" and len(inspected["recipients"]) == 3
    counts = inspected["counts"]
    assert (counts["delivered"], counts["failed"], counts["unconfirmed"]) == (1, 1, 1)


@pytest.mark.both_stores
async def test_refused_webhooks_are_401_and_nothing_is_stored(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    body = one(M[0], "message.finalized", "delivered")
    good = signed_headers(body)
    tries = [
        ("bad_signature", signed_headers(body, OTHER)),  # another account's key
        ("bad_signature", {**good, "telnyx-signature-ed25519": b64(bytes(64))}),  # forged
        ("bad_signature", {**good, "telnyx-signature-ed25519": "not base64!"}),
        ("bad_signature", {**good, "telnyx-signature-ed25519": b64(bytes(32))}),  # too short
        ("bad_signature", {**good, "telnyx-timestamp": str(int(time.time()) + 1)}),  # re-dated
        ("stale_signature", signed_headers(body, at=time.time() - 600)),
        ("stale_signature", signed_headers(body, at=time.time() + 600)),
        (
            "missing_signature",
            {k: v for k, v in good.items() if k != "telnyx-signature-ed25519"},
        ),
        ("missing_signature", {k: v for k, v in good.items() if k != "telnyx-timestamp"}),
    ]
    async with telnyx_engine(make_engine) as engine:
        for code, headers in tries:
            status, answer = await post(session, hook(engine), body, headers)
            assert (status, answer["error"]) == (401, code), (code, answer)
        # Signed, then changed on the way: the signature covers every byte.
        changed = body.replace(b"delivered", b"delivery_failed")
        status, answer = await post(session, hook(engine), changed, good)
        assert (status, answer["error"]) == (401, "bad_signature")
        # A timestamp that is no time, signed as it is: refused all the same.
        stamp = "yesterday"
        odd = {
            **good,
            "telnyx-timestamp": stamp,
            "telnyx-signature-ed25519": b64(TELNYX.sign(stamp.encode() + b"|" + body)),
        }
        assert (await post(session, hook(engine), body, odd))[0] == 401
        stale = await post(session, hook(engine), body, signed_headers(body, at=time.time() - 600))
        assert "old" in stale[1]["detail"]
        await asyncio.sleep(0.2)  # the quarantine rides with the next batch
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert [e async for e in r.iter_events()] == []
    kept = await r.quarantine()
    assert kept and all(q.provider == "telnyx" and q.status == 401 for q in kept)


@pytest.mark.both_stores
async def test_bodies_that_are_no_telnyx_webhook_are_400_and_quarantined(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    bad = [
        (b'{"meta": {}}', "invalid_envelope"),  # no data
        (b'{"data": {"id": "e", "payload": {}}}', "invalid_envelope"),  # no event_type
        (b'{"data": {"event_type": "message.sent", "payload": "x"}}', "invalid_envelope"),
        (b"[1]", "unknown_envelope"),
        (b"{not json", "malformed_json"),
        (b'{"data": {"event_type": "message.sent", "payload": {"cost": NaN}}}', "malformed_json"),
    ]
    async with telnyx_engine(make_engine) as engine:
        for raw, code in bad:
            status, answer = await post(session, hook(engine), raw)
            assert (status, answer["error"]) == (400, code), raw
        many = webhook(M[0], "message.sent", [to(f"+1{i:010d}", "sent") for i in range(101)])
        assert (await post(session, hook(engine), many))[1]["error"] == "invalid_envelope"
        form = b"a=1"
        headers = {**signed_headers(form), "Content-Type": "application/x-www-form-urlencoded"}
        assert (await post(session, hook(engine), form, headers))[0] == 415
        await asyncio.sleep(0.2)
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert [e async for e in r.iter_events()] == []
    assert len(await r.quarantine()) == len(bad) + 2


async def test_without_a_key_it_takes_webhooks_on_loopback_only(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession
) -> None:
    body = one(M[0], "message.sent", "sent")
    plain = {"Content-Type": "application/json"}
    async with running(make_engine()) as engine:
        assert (await post(session, hook(engine), body, plain))[0] == 200
    public = make_engine(host="0.0.0.0", credentials=Credentials(yebolink_secret="s"))
    async with running(public):
        url = f"http://127.0.0.1:{public.listener.port}/webhooks/telnyx"
        status, answer = await post(session, url, body, plain)
        assert (status, answer["error"]) == (401, "auth_required")
        assert {g.name: g.accepting for g in public.gateways()}["telnyx"] is False


async def test_the_detecting_route_takes_telnyx_by_its_header_and_its_shape(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    async with telnyx_engine(make_engine) as engine:
        url = f"{engine.listener.base_url}/webhooks"
        signed = one(M[0], "message.sent", "sent")
        assert (await post(session, url, signed))[0] == 200
        assert Telnyx().claims_body(json.loads(signed))
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert [(e.provider, e.message_id) async for e in r.iter_events()] == [("telnyx", M[0])]


def test_parsing_rules_on_their_own() -> None:
    adapter = Telnyx()
    # No data.id: the body's digest stands in for it, the same for the same bytes.
    anonymous = json.loads(one(M[0], "message.sent", "sent"))
    del anonymous["data"]["id"]
    raw = json.dumps(anonymous).encode()
    [a], [b] = adapter.parse(raw, 1), adapter.parse(raw, 2)
    assert a.dedupe_key == b.dedupe_key and a.dedupe_key.startswith("telnyx|sha256:")
    # No occurred_at: the payload's completed_at, else sent_at, else the arrival, estimated.
    obj = json.loads(one(M[0], "message.finalized", "delivered"))
    del obj["data"]["occurred_at"]
    obj["data"]["payload"]["completed_at"] = "2026-12-07T18:11:00+00:00"
    [ev] = adapter.parse(json.dumps(obj).encode(), 5)
    assert not ev.time_estimated and ev.occurred_at != 5
    obj["data"]["payload"].update(completed_at=None, sent_at=None)
    [ev] = adapter.parse(json.dumps(obj).encode(), 5)
    assert (ev.occurred_at, ev.time_estimated) == (5, True)
    # An error pointing at no recipient goes to the failed one; delivered ones carry none.
    [ok, bad] = adapter.parse(
        webhook(
            M[1],
            "message.finalized",
            [to("+1", "delivered"), to("+2", "delivery_failed")],
            [{"code": "40006", "title": "Recipient server unavailable"}],
        ),
        1,
    )
    assert (ok.error_code, bad.error_code) == (None, "40006")
    # A message.sent with no to[] is one message-level unknown event.
    [lone] = adapter.parse(webhook(M[2], "message.sent", []), 1)
    assert (lone.recipient, lone.state, lone.message_id) == (None, State.UNKNOWN, M[2])


def test_the_catalogue_suppresses_numbers_not_senders() -> None:
    for code in ("40001", "40012", "40300", "40310"):
        assert suppressible("telnyx", code, None, None), code
    for code in ("40002", "40003", "40008", "40010", "40333"):
        assert not suppressible("telnyx", code, None, None), code
    info = explain("telnyx", "40077")
    assert info is not None and not info.known and info.group == "Delivery (Telnyx 400xx)"


# --- forwarding ----------------------------------------------------------------------------------


async def test_forwards_are_signed_by_the_teams_own_key_or_not_at_all(tmp_path: Path) -> None:
    """Telnyx's private key is Telnyx's: a forward cannot carry its signature. With
    --telnyx-signing-key the body goes byte for byte, signed as Telnyx signs with a fresh
    timestamp, for the app to verify by that key's public half; without, it goes unsigned."""
    got: list[tuple[dict[str, str], bytes]] = []

    async def app_hook(request: web.Request) -> web.Response:
        got.append((dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/telnyx", app_hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    target = f"http://127.0.0.1:{runner.addresses[0][1]}/telnyx"
    db = tmp_path / "fwd.db"
    with contextlib.closing(connect_log(db)):
        pass
    body = one(M[0], "message.finalized", "delivered")
    [event] = Telnyx().parse(body, 1)
    job = Job(1, target, 0, "telnyx", event.event_id, M[0], event.payload, "delivered")
    ours = Ed25519PrivateKey.from_private_bytes(bytes(range(64, 96)))
    signing = {**TOKENS, "telnyx_signing_key": b64(ours.private_bytes_raw())}
    try:
        async with aiohttp.ClientSession() as session:
            for tokens in (signing, TOKENS):
                config = ForwardConfig(targets=(Target(target),), tokens=tokens)
                assert (await Forwarder(db, config).send(session, job)).delivered
    finally:
        await runner.cleanup()
    (h1, b1), (h2, b2) = got
    assert b1 == b2 == body
    stamp = h1["telnyx-timestamp"]
    assert abs(int(stamp) - time.time()) < 60
    ours.public_key().verify(
        base64.b64decode(h1["telnyx-signature-ed25519"]), f"{stamp}|".encode() + b1
    )
    assert h1["Content-Type"] == "application/json"
    assert "telnyx-signature-ed25519" not in {k.lower() for k in h2}


def test_a_replayed_export_is_signed_afresh_by_the_signing_key() -> None:
    """An exported webhook replayed goes as the JSON it came as, signed as Telnyx signs by the
    signing key, with a fresh timestamp: the listener given that key's public half takes it."""
    from smswatch.devtools.replay import load
    from smswatch.devtools.simulate import signed_request

    events = Telnyx().parse(GROUP_FINAL, 1)
    lines = [json.dumps({"provider": "telnyx", "payload": json.loads(e.payload)}) for e in events]
    got = load(lines, speed=0)
    assert len(got) == 3 and {d.provider for d in got} == {"telnyx"}
    credentials = Credentials(tokens={"telnyx_signing_key": SIGNING})
    method, _, headers, data = signed_request("telnyx", got[0].body, credentials, "http://h/x")
    assert method == "POST" and data is not None and json.loads(data) == json.loads(GROUP_FINAL)
    Telnyx(PUBLIC).check_auth({k.lower(): v for k, v in headers.items()}, data)
    # The same event each time (one per recipient exported): stored once, then duplicates.
    assert {e.dedupe_key for e in Telnyx().parse(data, 2)} == {e.dedupe_key for e in events}


# --- the simulator end to end --------------------------------------------------------------------


@pytest.mark.both_stores
async def test_simulate_provider_telnyx_end_to_end(
    make_engine: Callable[..., Engine], reader: Any
) -> None:
    from smswatch.devtools.simulate import Sender, SimConfig, plan_campaign

    # The served instance verifies by the public key; the simulator signs with its private half.
    async with telnyx_engine(make_engine) as engine:
        config = SimConfig(
            url=engine.listener.base_url,
            provider="telnyx",
            messages=10,
            recipients=10,
            seed=22,
            rate=4000.0,
            speed=50.0,
            fail_rate=0.3,
            duplicate_rate=0.2,
            tokens={"telnyx_signing_key": SIGNING},
        )
        plan = plan_campaign(config)
        result = await Sender(config).run(plan.deliveries)
        assert result.ok and result.rejected == 0, result.first_errors
        assert result.acked == len(plan.deliveries) and result.acked_duplicate > 0
        await asyncio.wrap_future(engine.writer.settle())
    assert {t.state for t in plan.truth} == {"delivered", "failed", "unconfirmed"}
    groups = {r.truth.message_id for r in plan.ledger if r.fields["type"] == "MMS"}
    assert groups, "the seed plans a group MMS"
    r = await reader()
    for t in plan.truth:
        rec = await r.recipient(t.message_id, t.recipient)
        assert rec is not None and rec.provider == "telnyx"
        assert (rec.state.value, rec.error_code, rec.carrier) == (
            t.state,
            t.error_code,
            t.carrier,
        ), t
    for mid in groups:
        recipients = await r.recipients(mid)
        assert len(recipients) > 1
    tags = {r.fields["tags"] for r in plan.ledger}
    for tag in (t for t in tags if t):
        ids = {rec.truth.message_id for rec in plan.ledger if rec.fields["tags"] == tag}
        assert {await r.campaign_of(i) for i in ids} == {tag[0]}
    # Each recipient in a webhook's to[] is its own event: a group MMS's webhook is several.
    sent = {d.body for d in plan.deliveries}
    expected = sum(len(json.loads(body)["data"]["payload"]["to"]) for body in sent)
    assert len([e async for e in r.iter_events()]) == expected
