"""Hostile requests: each gets its documented status, the server keeps serving, and nothing
unauthenticated (or malformed) is stored beyond the bounded quarantine.

Runs against a listener with credentials for both gateways, so a body is only parsed once its
credentials are right: the malformed-body cases carry valid credentials, the auth cases do not.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from smswatch.config import Credentials
from smswatch.gateways.yebolink.webhook import sign
from smswatch.live.engine import Engine
from smswatch.store import open_reader
from tests.conftest import BASIC, SECRET, basic_header, running

README = Path(__file__).parents[1] / "README.md"

# The whole suite, with each store behind the listener.
pytestmark = pytest.mark.both_stores

VALID = json.dumps(
    {
        "event_id": "ok-1",
        "event_type": "sms.sent",
        "timestamp": "2026-11-23T10:00:00Z",
        "message_id": "m-hostile",
        "data": {"recipient_phone": "+243810000001", "carrier": "vodacom_drc"},
    }
).encode()
YEBO = json.dumps(
    {
        "event": "message.sent",
        "timestamp": "2026-11-23T10:00:00Z",
        "data": {"message_id": "y1", "recipient": "+1"},
    }
).encode()
NASTY = "[bold red]x[/] \x1b[31mred\x1b[0m \x1b]0;title\x07 \u202eevil 🌍 é"


def lis(**fields: object) -> bytes:
    body: dict[str, object] = {
        "event_id": "h-1",
        "event_type": "sms.sent",
        "message_id": "m-h",
        "data": {},
    }
    body.update(fields)
    return json.dumps(body).encode()


@dataclass(frozen=True)
class Case:
    id: str
    body: bytes = VALID
    status: int = 400
    code: str | None = None
    path: str = "/webhooks/lisoloo"
    method: str = "POST"
    auth: str | None = "lisoloo"  # add valid credentials for this gateway
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/json"
    stored: int = 0  # events the case itself must store


CASES = [
    # --- not JSON ------------------------------------------------------------------------------
    Case("truncated", b'{"event_type": "sms.sent"', code="malformed_json"),
    Case("trailing-garbage", b'{"event_type":"sms.sent","data":{}} xyz', code="malformed_json"),
    Case("single-quotes", b"{'event_type': 'sms.sent'}", code="malformed_json"),
    Case("comment", b'{"event_type":"sms.sent" /* c */}', code="malformed_json"),
    Case("bom", b"\xef\xbb\xbf" + VALID, code="malformed_json"),
    Case("nan", b'{"event_type":"sms.sent","data":{"segments":NaN}}', code="malformed_json"),
    Case(
        "infinity", b'{"event_type":"sms.sent","data":{"segments":Infinity}}', code="malformed_json"
    ),
    Case(
        "minus-infinity",
        b'{"event_type":"sms.sent","data":{"segments":-Infinity}}',
        code="malformed_json",
    ),
    Case("unterminated-string", b'{"event_type":"sms.sent', code="malformed_json"),
    Case(
        "control-char-in-string", b'{"event_type":"sms.\x01sent","data":{}}', code="malformed_json"
    ),
    Case("invalid-escape", b'{"event_type":"\\x41","data":{}}', code="malformed_json"),
    Case(
        "lone-surrogate",
        b'{"event_type":"sms.sent","data":{"carrier":"\\ud800"}}',
        code="malformed_json",
    ),
    Case("non-utf8", b'{"event_type":"sms.sent\xff\xfe","data":{}}', code="malformed_json"),
    Case(
        "latin1",
        '{"event_type":"sms.sent","data":{"carrier":"é"}}'.encode("latin-1"),
        code="malformed_json",
    ),
    Case("empty", b"", code="malformed_json"),
    Case("whitespace", b"  \n\t ", code="malformed_json"),
    Case(
        "deep-nesting",
        b'{"event_type":"sms.sent","data":' + b"[" * 5000 + b"]" * 5000 + b"}",
        code="malformed_json",
    ),
    # --- JSON, but no envelope -----------------------------------------------------------------
    Case("array", b"[1, 2]", code="unknown_envelope"),
    Case("number", b"42", code="unknown_envelope"),
    Case("string", b'"sms.sent"', code="unknown_envelope"),
    Case("null", b"null", code="unknown_envelope"),
    Case("true", b"true", code="unknown_envelope"),
    Case("empty-object", b"{}", code="invalid_envelope"),
    Case("event-type-int", lis(event_type=5), code="invalid_envelope"),
    Case("event-type-null", lis(event_type=None), code="invalid_envelope"),
    Case("event-type-list", lis(event_type=["sms.sent"]), code="invalid_envelope"),
    Case("event-type-huge", lis(event_type="sms." + "x" * 200), code="invalid_envelope"),
    Case("data-string", lis(data="x"), code="invalid_envelope"),
    Case("data-list", lis(data=[1]), code="invalid_envelope"),
    Case("data-null", lis(data=None), code="invalid_envelope"),
    Case("event-id-int", lis(event_id=7), code="invalid_envelope"),
    Case("event-id-huge", lis(event_id="e" * 300), code="invalid_envelope"),
    Case("message-id-object", lis(message_id={"id": 1}), code="invalid_envelope"),
    Case("timestamp-words", lis(timestamp="yesterday"), code="invalid_envelope"),
    Case("timestamp-bool", lis(timestamp=True), code="invalid_envelope"),
    Case(
        "yebolink-no-event",
        b'{"data":{"message_id":"y"}}',
        code="invalid_envelope",
        path="/webhooks/yebolink",
        auth="yebolink",
    ),
    Case(
        "yebolink-event-int",
        b'{"event":7,"data":{}}',
        code="invalid_envelope",
        path="/webhooks/yebolink",
        auth="yebolink",
    ),
    Case(
        "yebolink-data-list",
        b'{"event":"message.sent","data":[]}',
        code="invalid_envelope",
        path="/webhooks/yebolink",
        auth="yebolink",
    ),
    Case("autodetect-nothing", b'{"foo": 1}', code="unknown_envelope", path="/webhooks", auth=None),
    # --- a valid envelope with odd contents: stored, never rejected -----------------------------
    Case("phone-is-object", lis(data={"recipient_phone": {"x": 1}}), status=200, stored=1),
    Case(
        "huge-integer",
        lis(event_type="sms.delivered", data={"recipient_phone": "+1", "segments": 10**40}),
        status=200,
        stored=1,
    ),
    Case(
        "huge-float",
        lis(event_type="sms.queued", data={"total_cost": 1e308 * 10}).replace(
            b"Infinity", b"1e400"
        ),
        status=200,
        stored=1,
    ),
    Case(
        "markup-and-escapes-everywhere",
        lis(
            event_id=NASTY,
            message_id=NASTY,
            event_type="sms.failed",
            data={
                "recipient_phone": NASTY,
                "carrier": NASTY,
                "error_code": NASTY,
                "error_message": NASTY,
            },
        ),
        status=200,
        stored=1,
    ),
    # --- size ------------------------------------------------------------------------------------
    Case(
        "10MB-body",
        b'{"event_type":"sms.sent","data":{"pad":"' + b"x" * 10_000_000 + b'"}}',
        status=413,
        code="payload_too_large",
    ),
    Case(
        "gzip-bomb",
        gzip.compress(b" " * 20_000_000),
        status=413,
        headers={"Content-Encoding": "gzip"},
    ),
    Case(
        "bad-gzip",
        b"not gzip at all",
        status=400,
        code="unreadable_body",
        headers={"Content-Encoding": "gzip"},
    ),
    # --- credentials ---------------------------------------------------------------------------
    Case("no-basic-auth", status=401, code="unauthorized", auth=None),
    Case(
        "wrong-password",
        status=401,
        code="unauthorized",
        auth=None,
        headers={"Authorization": basic_header(BASIC[0], "nope")},
    ),
    Case(
        "wrong-user",
        status=401,
        code="unauthorized",
        auth=None,
        headers={"Authorization": basic_header("root", BASIC[1])},
    ),
    Case(
        "bearer",
        status=401,
        code="unauthorized",
        auth=None,
        headers={"Authorization": "Bearer abc"},
    ),
    Case(
        "bad-base64",
        status=401,
        code="unauthorized",
        auth=None,
        headers={"Authorization": "Basic @@@"},
    ),
    Case(
        "empty-basic",
        status=401,
        code="unauthorized",
        auth=None,
        headers={"Authorization": "Basic "},
    ),
    Case(
        "no-signature",
        YEBO,
        status=401,
        code="missing_signature",
        path="/webhooks/yebolink",
        auth=None,
    ),
    Case(
        "wrong-secret",
        YEBO,
        status=401,
        code="bad_signature",
        path="/webhooks/yebolink",
        auth=None,
        headers={"X-YeboLink-Signature": sign("other", YEBO)},
    ),
    Case(
        "signature-of-other-body",
        YEBO,
        status=401,
        code="bad_signature",
        path="/webhooks/yebolink",
        auth=None,
        headers={"X-YeboLink-Signature": sign(SECRET, YEBO + b" ")},
    ),
    Case(
        "signature-garbage",
        YEBO,
        status=401,
        code="bad_signature",
        path="/webhooks/yebolink",
        auth=None,
        headers={"X-YeboLink-Signature": "zz-not-hex-ünïcode"},
    ),
    Case(
        "signature-truncated",
        YEBO,
        status=401,
        code="bad_signature",
        path="/webhooks/yebolink",
        auth=None,
        headers={"X-YeboLink-Signature": sign(SECRET, YEBO)[:-2]},
    ),
    Case(
        "yebolink-signature-on-lisoloo",
        status=401,
        code="unauthorized",
        auth=None,
        headers={"X-YeboLink-Signature": sign(SECRET, VALID)},
    ),
    Case(
        "signature-empty",
        YEBO,
        status=401,
        code="bad_signature",
        path="/webhooks/yebolink",
        auth=None,
        headers={"X-YeboLink-Signature": ""},
    ),
    # --- method, path, content type -------------------------------------------------------------
    Case("get", status=405, code="method_not_allowed", method="GET"),
    Case("put", status=405, code="method_not_allowed", method="PUT"),
    Case("delete", status=405, code="method_not_allowed", method="DELETE"),
    Case("patch", status=405, code="method_not_allowed", method="PATCH"),
    Case("wrong-path", status=404, code="not_found", path="/webhook"),
    Case("unknown-gateway", status=404, code="unknown_gateway", path="/webhooks/nosuchgw"),
    Case("deeper-path", status=404, code="not_found", path="/webhooks/lisoloo/extra"),
    Case("html", status=415, code="unsupported_media_type", content_type="text/html"),
    Case(
        "form",
        status=415,
        code="unsupported_media_type",
        content_type="application/x-www-form-urlencoded",
    ),
    Case(
        "multipart",
        status=415,
        code="unsupported_media_type",
        content_type="multipart/form-data; boundary=x",
    ),
    Case("xml", status=415, code="unsupported_media_type", content_type="application/xml"),
]

HEAD = b"POST /webhooks/lisoloo HTTP/1.1\r\nHost: x\r\n"
RAW = [
    (
        "2000-headers",
        b"POST /webhooks/lisoloo HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(2000))
        + b"Content-Length: 2\r\n\r\n{}",
        b"HTTP/1.0 400",
    ),
    (
        "content-length-and-chunked",
        HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.0 400",
    ),
    (
        "negative-content-length",
        b"POST /webhooks/lisoloo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"HTTP/1.0 400",
    ),
    (
        "20KB-header",
        b"POST /webhooks/lisoloo HTTP/1.1\r\nHost: x\r\nX-Big: "
        + b"a" * 20000
        + b"\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.0 400",
    ),
    (
        "20KB-url",
        b"POST /webhooks/" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.0 400",
    ),
    (
        "null-in-path",
        b"POST /webhooks/lis\x00oloo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.0 400",
    ),
    ("garbage-request-line", b"HELLO THERE\r\n\r\n", b"HTTP/1.0 400"),
    (
        "bad-chunk-size",
        HEAD + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.0 400",
    ),
    ("http2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"HTTP/1.0 400"),
    (
        "slowloris-body",
        HEAD + b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{",
        b"HTTP/1.1 408",
    ),
    (
        "slowloris-headers",
        b"POST /webhooks/lisoloo HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        b"",
    ),  # closed, unanswered
]


@pytest.fixture
async def hostile_engine(make_engine) -> AsyncIterator[Engine]:
    eng = make_engine(credentials=Credentials(BASIC, SECRET), read_timeout=0.5, idle_timeout=1.0)
    async with running(eng):
        yield eng


def credentials(case: Case, body: bytes) -> dict[str, str]:
    if case.auth == "lisoloo":
        return {"Authorization": basic_header(*BASIC)}
    if case.auth == "yebolink":
        return {"X-YeboLink-Signature": sign(SECRET, body)}
    return {}


async def still_serving(engine: Engine, session: aiohttp.ClientSession) -> None:
    body = VALID.replace(b"ok-1", b"control")
    async with session.post(
        engine.listener.url("lisoloo"),
        data=body,
        headers={"Authorization": basic_header(*BASIC), "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 200, await resp.text()


async def stored(engine: Engine) -> list[str]:
    async with await open_reader(engine.config.db_path) as r:
        return [e.event_id async for e in r.iter_events() if e.event_id != "control"]


def test_the_readme_count_of_hostile_requests_is_what_the_suite_sends() -> None:
    """The README promises "N+ hostile requests": this file holds that many distinct cases,
    each run against the server by test_hostile_request or test_hostile_bytes below."""
    claim = re.search(r"includes (\d+)\+ hostile requests", README.read_text())
    assert claim, "the README no longer says how many hostile requests the tests send"
    ids = [c.id for c in CASES] + [r[0] for r in RAW]
    assert len(set(ids)) == len(ids), "two cases share an id"
    assert len(ids) >= int(claim[1]), f"{len(ids)} cases; the README says {claim[1]}+"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_hostile_request(
    hostile_engine: Engine, session: aiohttp.ClientSession, case: Case
) -> None:
    headers = {**credentials(case, case.body), **case.headers}
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    url = hostile_engine.listener.base_url + case.path
    async with session.request(case.method, url, data=case.body, headers=headers) as resp:
        text = await resp.text()
        assert resp.status == case.status, text[:300]
        answer = json.loads(text)  # every answer of ours is JSON
        if case.code:
            assert answer["error"] == case.code
    await still_serving(hostile_engine, session)
    assert len(await stored(hostile_engine)) == case.stored


async def test_markup_and_escapes_are_stored_exactly(
    hostile_engine: Engine, session: aiohttp.ClientSession
) -> None:
    [case] = [c for c in CASES if c.id == "markup-and-escapes-everywhere"]
    async with session.post(
        hostile_engine.listener.url("lisoloo"),
        data=case.body,
        headers={**credentials(case, case.body), "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 200
    async with await open_reader(hostile_engine.config.db_path) as r:
        [ev] = [e async for e in r.iter_events()]
    assert ev.event_id == NASTY and ev.recipient == NASTY and ev.error_message == NASTY
    assert json.loads(ev.payload)["data"]["carrier"] == NASTY


@pytest.mark.parametrize(("name", "raw", "answer"), RAW, ids=[r[0] for r in RAW])
async def test_hostile_bytes(
    hostile_engine: Engine, session: aiohttp.ClientSession, name: str, raw: bytes, answer: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", hostile_engine.listener.port)
    writer.write(raw)
    await writer.drain()
    got = await asyncio.wait_for(reader.read(100), 5)  # the server answers or closes, never hangs
    writer.close()
    if answer:
        assert got.startswith(answer), got
    else:
        assert got == b""  # closed after the idle timeout, without an answer
    await still_serving(hostile_engine, session)
    assert await stored(hostile_engine) == []


async def test_unauthenticated_bodies_stay_in_the_bounded_quarantine(
    hostile_engine: Engine, session: aiohttp.ClientSession
) -> None:
    for i in range(700):
        body = VALID.replace(b"ok-1", f"spam-{i}".encode())
        async with session.post(
            hostile_engine.listener.url("lisoloo"),
            data=body,
            headers={"Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 401
    await still_serving(hostile_engine, session)
    await asyncio.sleep(0.2)
    assert await stored(hostile_engine) == []
    async with await open_reader(hostile_engine.config.db_path) as r:
        assert await r.quarantine_count() == hostile_engine.writer.quarantine_keep
