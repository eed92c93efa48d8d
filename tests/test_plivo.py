"""Plivo end to end: status callbacks posted as forms signed with X-Plivo-Signature-V3 over real
HTTP into a real engine (both stores), every status and its folded state against the truth,
duplicates and reordering, Sequence ordering the callbacks that arrive together, cost and
grouping; the refusals (forged, wrong-URL, missing signatures or nonces, a body changed after
signing) with nothing stored; forms that are no status callback quarantined; V2 accepted; the
public URL; the known answers of plivo-python; the forwarder's re-signature checked by an
independent HMAC; and `simulate --provider plivo` end to end.

Signatures here are computed with hmac + base64 in this file, never with the production
`sign()`, so a wrong scheme cannot agree with itself; and the V3 ones are pinned to what
plivo-python's own `plivo.utils.signature_v3` computes (4.63.0: construct_post_url +
get_signature_v3), the V2 one to its tests/resources/test_signature.py.
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
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

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
from smswatch.gateways.catalogue import explain, suppressible
from smswatch.gateways.plivo.webhook import Plivo, sign, sign_v2
from smswatch.gateways.registry import GATEWAYS
from smswatch.live.engine import Engine
from smswatch.store.sqlite.files import connect_log
from smswatch.timefmt import to_us
from tests.conftest import running

TOKEN = "plivo-auth-token-4c1d8e"
TOKENS = {"plivo_auth_token": TOKEN}
FORM = "application/x-www-form-urlencoded"
V3, V3_NONCE = "X-Plivo-Signature-V3", "X-Plivo-Signature-V3-Nonce"
V2, V2_NONCE = "X-Plivo-Signature-V2", "X-Plivo-Signature-V2-Nonce"

# plivo-python's tests/resources/test_signature.py: V2 over https://answer.url + nonce 12345.
SDK_V2 = ("https://answer.url", "12345", "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc=")
# A delivered callback, as Plivo posts it; signed by plivo-python 4.63.0 (validate_v3_signature's
# own construct_post_url + get_signature_v3) with token my_auth_token and nonce 12345, at two
# URLs: one bare, one with a port, a path prefix and a query (sorted and decoded, then `.`).
SDK_FIELDS = [
    ("From", "14155550100"),
    ("To", "14155550123"),
    ("Type", "sms"),
    ("Status", "delivered"),
    ("MessageUUID", "5b40a428-bfc7-4daf-9d06-726c558bf3b8"),
    ("Units", "1"),
    ("TotalRate", "0.00500"),
    ("TotalAmount", "0.00500"),
    ("MCC", "310"),
    ("MNC", "260"),
    ("ErrorCode", ""),
    ("PowerpackUUID", ""),
    ("Sequence", "3"),
    ("MessageTime", "2026-12-07 11:42:01.120000"),
    ("QueuedTime", "2026-12-07 11:42:01.250000"),
    ("SentTime", "2026-12-07 11:42:02.500000"),
    ("DeliveryReportTime", "2026-12-07 11:42:05.750000"),
]
SDK_V3 = [
    ("https://hooks.example.com/webhooks/plivo", "1zi4m9e9O+rI+e1W5WIFGWyxIF7n/Kzk4hhvRqaKv5k="),
    (
        "https://hooks.example.com:8443/sms/webhooks/plivo?tag=a%20b&a=1",
        "S/p+HC2KDvKSG9yFuhhHiUXC22YUQT/2fQgV8xkSw6o=",
    ),
]
# A name sent twice: each value, sorted (plivo-python, params {"Digits": ["5678", "1234"]}).
SDK_REPEATED = ([("Digits", "5678"), ("Sid", "CA1"), ("Digits", "1234")],)
SDK_REPEATED_V3 = "MkDEutCp80zM9LG6i9Q+AdPL3Xe/lOLrNHyMDVkBFYs="


def v3_signature(token: str, url: str, fields: list[tuple[str, str]], nonce: str) -> str:
    """V3 written out independently from plivo-python's algorithm: scheme://host/path, `?`, the
    URL's query decoded and sorted as k=v&k=v then `.` (if it has one), the fields as name +
    value sorted by name (values of a repeated name sorted), `.`, the nonce."""
    parts = urlsplit(url)
    text = f"{parts.scheme}://{parts.netloc}{parts.path}"
    query = sorted(parse_qsl(parts.query, keep_blank_values=True))
    posted = "".join(name + value for name, value in sorted(fields))
    if query or posted:
        text += "?"
    if query:
        text += "&".join(f"{k}={v}" for k, v in query) + ("." if posted else "")
    text += posted + "." + nonce
    mac = hmac.new(token.encode(), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def v2_signature(token: str, url: str, nonce: str) -> str:
    parts = urlsplit(url)
    text = f"{parts.scheme}://{parts.netloc}{parts.path}{nonce}"
    return base64.b64encode(
        hmac.new(token.encode(), text.encode(), hashlib.sha256).digest()
    ).decode()


def plivo_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")


def callback(
    uuid: str, status: str, to: str, sequence: int | None, **extra: str
) -> list[tuple[str, str]]:
    """A status callback's fields, in the order Plivo posts them."""
    fields = [
        ("From", extra.pop("From", "14155550100")),
        ("To", to),
        ("Type", "sms"),
        ("Status", status),
        ("MessageUUID", uuid),
        ("ParentMessageUUID", uuid),
        ("Units", "2"),
        ("TotalRate", "0.00500"),
        ("TotalAmount", "0.01000"),
        ("MCC", "310"),
        ("MNC", "260"),
        ("ErrorCode", extra.pop("ErrorCode", "")),
        ("PowerpackUUID", extra.pop("PowerpackUUID", "")),
    ]
    if sequence is not None:
        fields.append(("Sequence", str(sequence)))
    return fields + list(extra.items())


async def post(
    session: aiohttp.ClientSession,
    url: str,
    fields: list[tuple[str, str]] | bytes,
    *,
    token: str | None = TOKEN,
    signed_url: str | None = None,
    nonce: str = "31415926535",
    content_type: str = FORM,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """POST a form, V3-signed over `signed_url` (default: the URL posted to) unless token is
    None or the body is given as bytes."""
    body = fields if isinstance(fields, bytes) else urlencode(fields).encode()
    hdrs = {"Content-Type": content_type}
    if token is not None and not isinstance(fields, bytes):
        hdrs[V3] = v3_signature(token, signed_url or url, fields, nonce)
        hdrs[V3_NONCE] = nonce
    hdrs.update(headers or {})
    async with session.post(url, data=body, headers=hdrs) as resp:
        return resp.status, await resp.json(content_type=None)


@contextlib.asynccontextmanager
async def plivo_engine(
    make_engine: Callable[..., Engine], **overrides: Any
) -> AsyncIterator[Engine]:
    engine = make_engine(credentials=Credentials(tokens=TOKENS), **overrides)
    async with running(engine):
        yield engine


def hook(engine: Engine, query: str = "") -> str:
    return f"{engine.listener.base_url}/webhooks/plivo{query}"


# --- known answers -------------------------------------------------------------------------------


def test_plivo_pythons_v2_vector_is_computed_and_accepted() -> None:
    url, nonce, given = SDK_V2
    assert v2_signature("my_auth_token", url, nonce) == given  # the test's own is right
    assert sign_v2("my_auth_token", url, nonce) == given
    headers = {V2: given, V2_NONCE: nonce}
    Plivo("my_auth_token").check_auth(headers, b"", url)
    # V2 ignores the query (and signs no field): the same signature holds with one.
    Plivo("my_auth_token").check_auth(headers, urlencode(SDK_FIELDS).encode(), url + "?x=1")
    for token, nonce_given in (("my_auth_tokens", nonce), ("my_auth_token", "12346")):
        with pytest.raises(Rejected) as refused:
            Plivo(token).check_auth({V2: given, V2_NONCE: nonce_given}, b"", url)
        assert (refused.value.status, refused.value.code) == (401, "bad_signature")


@pytest.mark.parametrize(("url", "given"), SDK_V3)
def test_plivo_pythons_v3_signatures_are_computed_and_accepted(url: str, given: str) -> None:
    assert v3_signature("my_auth_token", url, SDK_FIELDS, "12345") == given
    assert sign("my_auth_token", url, SDK_FIELDS, "12345") == given
    body = urlencode(SDK_FIELDS).encode()
    Plivo("my_auth_token").check_auth({V3: given, V3_NONCE: "12345"}, body, url)
    wrong = [
        ("my_auth_tokens", url, "12345", body),
        ("my_auth_token", url, "12346", body),
        ("my_auth_token", url.replace("/webhooks", "/hooks"), "12345", body),
        ("my_auth_token", url + ("&" if "?" in url else "?") + "b=2", "12345", body),
        ("my_auth_token", url, "12345", body.replace(b"delivered", b"failed")),
    ]
    for token, signed, nonce, data in wrong:
        with pytest.raises(Rejected) as refused:
            Plivo(token).check_auth({V3: given, V3_NONCE: nonce}, data, signed)
        assert (refused.value.status, refused.value.code) == (401, "bad_signature")


def test_a_repeated_field_signs_each_value_sorted_as_the_sdk_does() -> None:
    [fields] = SDK_REPEATED
    assert sign("my_auth_token", "https://answer.url", fields, "12345") == SDK_REPEATED_V3


def test_several_comma_separated_signatures_any_one_of_them_is_enough() -> None:
    url, given = SDK_V3[0]
    body = urlencode(SDK_FIELDS).encode()
    other = v3_signature("an-older-token", url, SDK_FIELDS, "12345")
    for header in (f"{other},{given}", f"{given},{other}", f"{other}, {given}", f"x,{given},y"):
        Plivo("my_auth_token").check_auth({V3: header, V3_NONCE: "12345"}, body, url)
    with pytest.raises(Rejected):
        Plivo("my_auth_token").check_auth({V3: f"{other},x", V3_NONCE: "12345"}, body, url)
    # A V3 header that fails is not rescued by a V2 one beside it.
    v2 = {V2: v2_signature("my_auth_token", url, "1"), V2_NONCE: "1"}
    with pytest.raises(Rejected):
        Plivo("my_auth_token").check_auth({V3: other, V3_NONCE: "12345", **v2}, body, url)


def test_its_credential_is_declared_once_and_read_by_its_gateway() -> None:
    [declared] = [c for c in GATEWAY_CREDENTIALS if c.gateway == "plivo"]
    assert (declared.key, declared.flag, declared.envvar, declared.opens_api) == (
        "plivo_auth_token",
        "--plivo-auth-token",
        "SMSWATCH_PLIVO_AUTH_TOKEN",
        True,
    )
    gateway = GATEWAYS["plivo"]
    assert gateway.credential == declared.key
    assert list(GATEWAYS).index("plivo") == list(GATEWAYS).index("telnyx") + 1  # after Telnyx
    assert gateway.provider(Credentials(tokens={declared.key: "t"})).auth_mode().verified
    assert not gateway.provider(Credentials()).auth_mode().verified
    assert Credentials(tokens=TOKENS).any


def test_parsing_rules_on_their_own() -> None:
    adapter = Plivo()
    at = datetime(2026, 12, 7, 11, 42, 5, 750123, tzinfo=UTC)
    fields = callback(
        "u-1",
        "undelivered",
        "14155550123",
        3,
        ErrorCode="80",
        PowerpackUUID="pp-1",
        QueuedTime="2026-12-07 11:42:01.250000",
        DeliveryReportTime=plivo_time(at),
    )
    [ev] = adapter.parse(urlencode(fields).encode(), 1)
    # The latest time it carries, to the millisecond, Sequence in its microseconds.
    assert (ev.occurred_at, ev.time_estimated) == (to_us(at) // 1000 * 1000 + 3, False)
    assert (ev.state, ev.error_code, ev.carrier) == (State.FAILED, "80", "310-260")
    assert ev.dedupe_key == "plivo|u-1|undelivered|3"
    info = ev.message_info
    assert info is not None
    assert (info.total_cost, info.currency, info.group, info.channel) == (
        0.01,
        "USD",
        "pp-1",
        "sms",
    )
    # No Powerpack: the sender groups the send. No time at all: the arrival, estimated.
    [bare] = adapter.parse(urlencode(callback("u-2", "sent", "1415", None)).encode(), 5_000_123)
    assert bare.message_info is not None and bare.message_info.group == "14155550100"
    assert (bare.occurred_at, bare.time_estimated) == (5_000_123, True)
    assert bare.dedupe_key == "plivo|u-2|sent|"
    # 000 is Plivo's "no error"; no MessageUUID: the body's digest keys it.
    fields = [(k, v) for k, v in callback("u-3", "delivered", "1", 2, ErrorCode="000")]
    [ok] = adapter.parse(urlencode(fields).encode(), 1)
    assert ok.error_code is None
    body = urlencode([(k, v if k != "MessageUUID" else " ") for k, v in fields]).encode()
    [anonymous] = adapter.parse(body, 1)
    assert anonymous.message_id is None and anonymous.dedupe_key.startswith("plivo|sha256:")
    # A timezone, as the Message API writes its times, is honoured.
    zoned = callback("u-4", "sent", "1", 2, SentTime="2026-12-07 17:12:02+05:30")
    [z] = adapter.parse(urlencode(zoned).encode(), 1)
    assert z.occurred_at == to_us(datetime(2026, 12, 7, 11, 42, 2, tzinfo=UTC)) + 2


def test_the_catalogue_suppresses_numbers_not_senders() -> None:
    for code in ("50", "70", "200"):
        assert suppressible("plivo", code, None, None), code
    for code in ("20", "30", "40", "80", "90", "1000"):
        assert not suppressible("plivo", code, None, None), code
    info = explain("plivo", "80")
    assert info is not None and info.known and info.retry == "yes"
    unknown = explain("plivo", "150")
    assert unknown is not None and not unknown.known and unknown.group is not None


# --- every status, duplicates and reordering, over HTTP ------------------------------------------

T0 = datetime(2026, 12, 7, 11, 42, 1, 250000, tzinfo=UTC)
QUEUED = {"MessageTime": plivo_time(T0), "QueuedTime": plivo_time(T0)}
SENT = {**QUEUED, "SentTime": "2026-12-07 11:42:02.500000"}
DONE = {**SENT, "DeliveryReportTime": "2026-12-07 11:42:05.750000"}
DONE_US = to_us(datetime(2026, 12, 7, 11, 42, 5, 750000, tzinfo=UTC))
A, B, C, D, E, F, G, H = (f"5b40a428-bfc7-4daf-9d06-{i:012x}" for i in range(1, 9))
PHONE = {u: f"1415555{i:04d}" for i, u in enumerate((A, B, C, D, E, F, G, H))}
# (uuid, status, Sequence, extra fields), in the order posted: finals before the steps that led
# there, and duplicates, as Plivo's unordered, retried posts may come.
TRAFFIC: list[tuple[str, str, int, dict[str, str]]] = [
    (A, "delivered", 3, DONE),
    (A, "queued", 1, QUEUED),
    (A, "sent", 2, SENT),
    (A, "delivered", 3, DONE),  # a duplicate
    (B, "undelivered", 3, {**DONE, "ErrorCode": "70"}),
    (B, "sent", 2, SENT),
    (B, "queued", 1, QUEUED),
    (C, "failed", 2, {**QUEUED, "ErrorCode": "200"}),
    (C, "queued", 1, QUEUED),
    (D, "sent", 2, SENT),
    (D, "queued", 1, QUEUED),
    (E, "read", 4, DONE),  # WhatsApp's read
    (E, "delivered", 3, DONE),
    (F, "rejected", 1, {**QUEUED, "ErrorCode": "40"}),
    (G, "queued", 1, QUEUED),
    (G, "scheduled", 2, QUEUED),  # a status of tomorrow: stored as unknown, acknowledged
    (H, "queued", 1, QUEUED),
    (H, "queued", 1, QUEUED),  # a duplicate
]
# What each recipient must end as, worked out by hand from Plivo's meanings.
EXPECTED = {
    A: (State.DELIVERED, None),
    B: (State.FAILED, "70"),
    C: (State.FAILED, "200"),
    D: (State.SENT, None),
    E: (State.DELIVERED, None),
    F: (State.FAILED, "40"),
    G: (State.QUEUED, None),
    H: (State.QUEUED, None),
}


@pytest.mark.both_stores
async def test_every_status_folds_right_whatever_the_order_with_duplicates_stored_once(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    async with plivo_engine(make_engine) as engine:
        answers = []
        for uuid, status, seq, extra in TRAFFIC:
            fields = callback(uuid, status, PHONE[uuid], seq, **extra)
            code, answer = await post(session, hook(engine), fields)
            assert code == 200, answer
            answers.append(answer["status"])
        await asyncio.wrap_future(engine.writer.settle())
    assert answers.count("duplicate") == 2 and answers.count("stored") == len(TRAFFIC) - 2
    r = await reader()
    for uuid, (state, error_code) in EXPECTED.items():
        [rec] = await r.recipients(uuid)
        assert (rec.recipient, rec.provider) == (PHONE[uuid], "plivo")
        assert (rec.state, rec.error_code) == (state, error_code), uuid
        assert rec.carrier == "310-260" and not rec.conflict
    events = [e async for e in r.iter_events()]
    assert len(events) == len(TRAFFIC) - 2
    by_type = {(e.message_id, e.event_type): e for e in events}
    delivered = by_type[(A, "delivered")]
    assert (delivered.occurred_at, delivered.time_estimated) == (DONE_US + 3, False)
    assert by_type[(G, "scheduled")].state is State.UNKNOWN
    # The payload is the form as a JSON object, fields in the order they came.
    payload = json.loads(by_type[(B, "undelivered")].payload)
    assert list(payload)[:3] == ["From", "To", "Type"]
    assert payload["MessageUUID"] == B and payload["ErrorCode"] == "70"
    # The timeline is in Plivo's order, whatever the arrival's.
    timeline = await r.timeline(A, PHONE[A])
    assert [e.event_type for e in timeline] == ["queued", "sent", "delivered"]
    msg = await r.message(A)
    assert msg is not None and (msg.total_cost, msg.currency) == (0.01, "USD")
    # A send from one number, no Powerpack: the sender is its campaign.
    assert await r.campaign_of(A) == "14155550100"


@pytest.mark.both_stores
async def test_sequence_orders_callbacks_that_arrive_together(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    """Callbacks of one message that carry the same time (a failed whose latest time is the
    queued one's; a retried pair) sort by Sequence, whatever order they arrive in; and of two
    outcomes with one time, the later Sequence wins, not the later arrival."""
    async with plivo_engine(make_engine) as engine:
        posts = [
            (A, "failed", 2, {**QUEUED, "ErrorCode": "90"}),
            (A, "queued", 1, QUEUED),
            # B: an undelivered Plivo corrected by a later delivered (Sequence 4), both of one
            # report time, arriving the other way round: delivered wins.
            (B, "delivered", 4, DONE),
            (B, "undelivered", 3, {**DONE, "ErrorCode": "1000"}),
            (B, "sent", 2, SENT),
            # C: the same the other way: the later Sequence is the failure.
            (C, "undelivered", 4, {**DONE, "ErrorCode": "80"}),
            (C, "delivered", 3, DONE),
        ]
        await asyncio.gather(
            *(post(session, hook(engine), callback(u, s, PHONE[u], q, **x)) for u, s, q, x in posts)
        )
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert [e.event_type for e in await r.timeline(A, PHONE[A])] == ["queued", "failed"]
    [a] = await r.recipients(A)
    assert (a.state, a.error_code) == (State.FAILED, "90")
    assert [e.event_type for e in await r.timeline(B, PHONE[B])] == [
        "sent",
        "undelivered",
        "delivered",
    ]
    [b] = await r.recipients(B)
    assert b.state is State.DELIVERED
    [c] = await r.recipients(C)
    assert (c.state, c.error_code) == (State.FAILED, "80")


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.both_stores
async def test_forged_wrong_url_and_missing_signatures_are_refused_and_nothing_stored(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    fields = callback(A, "delivered", PHONE[A], 3, **DONE)
    async with plivo_engine(make_engine) as engine:
        url = hook(engine)
        good = v3_signature(TOKEN, url, fields, "7")
        tries = [
            ("bad_signature", {"token": "not-the-token"}),
            ("bad_signature", {"signed_url": url.replace("/webhooks/plivo", "/elsewhere")}),
            ("bad_signature", {"signed_url": url + "?x=1"}),
            ("bad_signature", {"headers": {V3_NONCE: "8"}}),  # signed with another nonce
            ("bad_signature", {"headers": {V3: f"{good[:-2]}x=,y", V3_NONCE: "7"}}),
            ("missing_signature", {"token": None}),
            ("missing_signature", {"token": None, "headers": {V3: good}}),  # no nonce
            ("bad_signature", {"token": None, "headers": {V2: good, V2_NONCE: "7"}}),
        ]
        for code, how in tries:
            status, answer = await post(session, url, fields, **how)
            assert (status, answer["error"]) == (401, code), how
        # A body changed after signing: the signature covers the fields.
        tampered = [(k, "failed" if v == "delivered" else v) for k, v in fields]
        status, _ = await post(
            session, url, urlencode(tampered).encode(), headers={V3: good, V3_NONCE: "7"}
        )
        assert status == 401
        await asyncio.sleep(0.2)  # the quarantine rides with the next batch
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert [e async for e in r.iter_events()] == []
    kept = await r.quarantine()
    assert sorted(q.code for q in kept) == ["bad_signature"] * 7 + ["missing_signature"] * 2
    assert all(q.provider == "plivo" and q.status == 401 for q in kept)


@pytest.mark.both_stores
async def test_v2_signatures_are_accepted_too(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    async with plivo_engine(make_engine) as engine:
        url = hook(engine, "?tag=x")
        headers = {V2: v2_signature(TOKEN, url, "271828"), V2_NONCE: "271828"}
        fields = callback(A, "sent", PHONE[A], 2, **SENT)
        status, answer = await post(session, url, fields, token=None, headers=headers)
        assert (status, answer["status"]) == (200, "stored")
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert [(e.message_id, e.state) async for e in r.iter_events()] == [(A, State.SENT)]


@pytest.mark.both_stores
async def test_a_form_that_is_no_status_callback_is_400_and_quarantined(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    async with plivo_engine(make_engine) as engine:
        url = hook(engine)
        # Signed right, but an inbound message (no Status) and a form with no MessageUUID.
        inbound = [("From", "14155550123"), ("To", "14155550100"), ("Text", "hi")]
        status, answer = await post(session, url, inbound)
        assert (status, answer["error"]) == (400, "unknown_envelope")
        no_uuid = [(k, v) for k, v in callback(A, "sent", "1", 2) if k != "MessageUUID"]
        status, answer = await post(session, url, no_uuid)
        assert (status, answer["error"]) == (400, "unknown_envelope")
        # Not a form at all (a field without `=`), and a form with a bad percent-escape.
        for raw in (b"MessageUUID", b"Status=%FF%FE"):
            sig = {V3: "x", V3_NONCE: "1"}
            status, answer = await post(session, url, raw, headers=sig)
            assert (status, answer["error"]) == (400, "malformed_form"), raw
        # JSON on a form route: 415.
        status, answer = await post(
            session, url, b'{"Status":"sent"}', content_type="application/json"
        )
        assert (status, answer["error"]) == (415, "unsupported_media_type")
        await asyncio.sleep(0.2)
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert [e async for e in r.iter_events()] == []
    kept = [q.code for q in await r.quarantine()]
    assert sorted(kept) == sorted(
        ["unknown_envelope"] * 2 + ["malformed_form"] * 2 + ["unsupported_media_type"]
    )
    bodies = {q.body for q in await r.quarantine() if q.code == "unknown_envelope"}
    assert urlencode(inbound).encode() in bodies


async def test_without_a_token_it_takes_posts_on_loopback_only(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession
) -> None:
    fields = callback(A, "sent", PHONE[A], 2)
    async with running(make_engine()) as engine:
        assert (await post(session, hook(engine), fields, token=None))[0] == 200
    public = make_engine(host="0.0.0.0", credentials=Credentials(yebolink_secret="s"))
    async with running(public):
        url = f"http://127.0.0.1:{public.listener.port}/webhooks/plivo"
        status, answer = await post(session, url, fields, token=None)
        assert (status, answer["error"]) == (401, "auth_required")
        assert {g.name: g.accepting for g in public.gateways()}["plivo"] is False
    # Its token alone makes a public bind safe: its route verifies, the open ones refuse.
    signed = make_engine(host="0.0.0.0", credentials=Credentials(tokens=TOKENS))
    async with running(signed):
        accepting = {g.name: g.accepting for g in signed.gateways()}
        assert accepting["plivo"] is True and accepting["twilio"] is False
        url = f"http://127.0.0.1:{signed.listener.port}/webhooks/plivo"
        assert (await post(session, url, fields))[0] == 200


async def test_the_detecting_route_takes_a_plivo_callback_by_its_signature_header(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    async with plivo_engine(make_engine) as engine:
        url = f"{engine.listener.base_url}/webhooks"
        assert (await post(session, url, callback(A, "sent", PHONE[A], 2)))[0] == 200
        status, answer = await post(session, url, callback(B, "sent", PHONE[B], 2), token=None)
        assert (status, answer["error"]) == (415, "unsupported_media_type")
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert [(e.provider, e.message_id) async for e in r.iter_events()] == [("plivo", A)]


# --- the public URL ------------------------------------------------------------------------------


async def test_behind_a_public_url_the_signature_is_checked_over_it(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    public = "https://Hooks.Example.com:8443/sms"
    async with plivo_engine(make_engine, public_url=public) as engine:
        local = hook(engine, "?tag=a%20b&a=1")
        fields = callback(A, "sent", PHONE[A], 2)
        signed = f"{public}/webhooks/plivo?tag=a%20b&a=1"
        assert unquote(signed).endswith("a b&a=1")
        assert (await post(session, local, fields, signed_url=signed))[0] == 200
        status, answer = await post(session, local, callback(B, "sent", PHONE[B], 2))
        assert (status, answer["error"]) == (401, "bad_signature")
        assert "--public-url" in answer["detail"]
        [plivo] = [g for g in engine.gateways() if g.name == "plivo"]
        assert plivo.url == f"{public}/webhooks/plivo"
    r = await reader()
    assert [e.message_id async for e in r.iter_events()] == [A]


# --- forwarding ----------------------------------------------------------------------------------


async def test_forwards_are_resigned_v3_over_the_apps_url(tmp_path: Path) -> None:
    """The forwarder posts the stored callback as a form, signed V3 for the app's URL with the
    auth token and a fresh nonce: the app's own Plivo validator (here: hmac by hand) passes."""
    got: list[tuple[str, dict[str, str], bytes]] = []

    async def app_hook(request: web.Request) -> web.Response:
        got.append((str(request.url), dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/plivo/status", app_hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    target = f"http://127.0.0.1:{runner.addresses[0][1]}/plivo/status?app=1"
    db = tmp_path / "fwd.db"
    with contextlib.closing(connect_log(db)):
        pass
    fields = callback(A, "delivered", PHONE[A], 3, **DONE)
    [event] = Plivo().parse(urlencode(fields).encode(), 1)
    config = ForwardConfig(targets=(Target(target),), tokens=TOKENS)
    job = Job(1, target, 0, "plivo", event.event_id, A, event.payload, "delivered")
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                assert (await Forwarder(db, config).send(session, job)).delivered
    finally:
        await runner.cleanup()
    (url, headers, body), (_, again, _) = got
    assert url == target and headers["Content-Type"] == FORM
    assert parse_qsl(body.decode(), strict_parsing=True, keep_blank_values=True) == fields
    nonce = headers[V3_NONCE]
    assert headers[V3] == v3_signature(TOKEN, target, fields, nonce)
    assert again[V3_NONCE] != nonce  # a fresh nonce each time


# --- the simulator end to end --------------------------------------------------------------------


@pytest.mark.both_stores
async def test_simulate_provider_plivo_end_to_end(
    make_engine: Callable[..., Engine], reader: Any
) -> None:
    from smswatch.devtools.simulate import Sender, SimConfig, plan_campaign

    async with plivo_engine(make_engine) as engine:
        config = SimConfig(
            url=engine.listener.base_url,
            provider="plivo",
            messages=4,
            recipients=12,
            seed=23,
            rate=4000.0,
            speed=50.0,
            fail_rate=0.35,
            duplicate_rate=0.2,
            tokens=TOKENS,
        )
        plan = plan_campaign(config)
        result = await Sender(config).run(plan.deliveries)
        assert result.ok and result.rejected == 0, result.first_errors
        assert result.acked == len(plan.deliveries) and result.acked_duplicate > 0
        await asyncio.wrap_future(engine.writer.settle())
    assert len(plan.truth) == 48
    assert {t.state for t in plan.truth} == {"delivered", "failed"}
    r = await reader()
    for t in plan.truth:
        rec = await r.recipient(t.message_id, t.recipient)
        assert rec is not None and rec.provider == "plivo"
        assert (rec.state.value, rec.error_code, rec.carrier) == (
            t.state,
            t.error_code,
            t.carrier,
        ), t
    assert len([e async for e in r.iter_events()]) == plan.events
    # Each send groups as one campaign: its Powerpack, or its sender when it used none.
    for record in plan.ledger:
        group = record.fields["powerpack"] or record.fields["from"]
        assert await r.campaign_of(record.truth.message_id) == group
    msg = await r.message(plan.truth[0].message_id)
    assert msg is not None and msg.currency == "USD" and msg.total_cost
