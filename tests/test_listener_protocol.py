"""The listener's connection handling over raw sockets: pipelining, keep-alive, 100-continue,
streaming limits, timeouts, head limits, encodings and backpressure. The HTTP contract itself
(which status for which request) is in test_http_contract.py and test_hostile.py."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import sqlite3
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from smswatch import gateways, loops
from smswatch.config import Credentials
from smswatch.core.domain import Event
from smswatch.core.live import Stored as Outcome
from smswatch.ingest.webhooks import Listener, ListenerConfig
from smswatch.live.engine import Engine, EngineConfig
from smswatch.live.hub import Hub
from smswatch.live.thread import EngineThread
from smswatch.store.sqlite.reader import Reader
from tests.conftest import Client, running


def event(i: int, prefix: str = "p") -> bytes:
    return json.dumps(
        {
            "event_id": f"{prefix}-{i}",
            "event_type": "sms.sent",
            "timestamp": "2026-11-23T10:00:00Z",
            "message_id": f"m-{prefix}",
            "data": {"recipient_phone": f"+24381000{i:04d}"},
        }
    ).encode()


def post(body: bytes, path: str = "/webhooks/lisoloo", extra: bytes = b"") -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n%s\r\n%s" % (path.encode(), len(body), extra, body)
    )


GET_HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


class Answer:
    def __init__(self, head: bytes, body: bytes) -> None:
        self.head = head
        lines = head.decode("latin-1").split("\r\n")
        self.version, status, _ = lines[0].split(" ", 2)
        self.status = int(status)
        self.headers = {k.lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if x)}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


async def read_answer(reader: asyncio.StreamReader, head_request: bool = False) -> Answer:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    answer = Answer(head[:-4], b"")
    if not head_request:
        answer.body = await reader.readexactly(int(answer.headers["content-length"]))
    return answer


async def closed(reader: asyncio.StreamReader, within: float = 5.0) -> bool:
    """True if the server closes the connection without sending anything more."""
    try:
        return await asyncio.wait_for(reader.read(1), within) == b""
    except ConnectionResetError:
        return True


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


@pytest.fixture
async def eng(make_engine: Callable[..., Engine]) -> AsyncIterator[Engine]:
    async with running(make_engine(max_body=4096, read_timeout=1.0, idle_timeout=1.0)) as e:
        yield e


async def stored_ids(engine: Engine) -> list[str]:
    async with await Reader.open(engine.config.db_path) as r:
        return [e.event_id async for e in r.iter_events()]


# --- keep-alive, pipelining, Connection: close --------------------------------------------------


async def test_pipelined_requests_are_answered_in_order(eng: Engine) -> None:
    # Answers that are ready at once (404, healthz, 400) must wait for the commits before them.
    requests = [
        post(event(1)),
        GET_HEALTH,
        post(b'{"x": 1}', "/nowhere"),
        post(b"{not json"),
        post(event(2)),
        b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        post(event(1)),
        post(event(3), "/webhooks/lisoloo?via=pipeline"),
    ]
    reader, writer = await connect(eng.listener.port)
    writer.write(b"".join(requests))
    answers = [await read_answer(reader, head_request=i == 5) for i, _ in enumerate(requests)]
    writer.close()
    assert [a.status for a in answers] == [200, 200, 404, 400, 200, 200, 200, 200]
    stored = [answers[i].json()["event_id"] for i in (0, 4, 6, 7)]
    assert stored == ["p-1", "p-2", "p-1", "p-3"]
    assert answers[6].json()["status"] == "duplicate"
    assert answers[2].json()["error"] == "not_found"
    assert answers[3].json()["error"] == "malformed_json"
    assert int(answers[5].headers["content-length"]) > 0 and answers[5].body == b""
    assert sorted(await stored_ids(eng)) == ["p-1", "p-2", "p-3"]


async def test_a_body_sent_to_a_route_that_reads_none_is_not_glued_to_the_next_request(
    eng: Engine,
) -> None:
    # The health check answers without reading a body; one sent anyway is dropped with it, not
    # left in front of the next webhook's body on the same connection.
    reader, writer = await connect(eng.listener.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    writer.write(post(event(7)))
    health, stored = await read_answer(reader), await read_answer(reader)
    writer.close()
    assert health.status == 200
    assert stored.status == 200, stored.body
    assert stored.json()["event_id"] == "p-7"
    assert await stored_ids(eng) == ["p-7"]


async def test_keep_alive_is_the_default_of_http_1_1_and_close_is_honoured(eng: Engine) -> None:
    reader, writer = await connect(eng.listener.port)
    for i in range(3):  # one connection, one request after another
        writer.write(post(event(i)))
        answer = await read_answer(reader)
        assert answer.status == 200 and "connection" not in answer.headers
    # Connection: close is answered, then the connection closes; what was sent after it is not
    # read at all.
    writer.write(post(event(9), extra=b"Connection: close\r\n") + post(event(10)))
    answer = await read_answer(reader)
    assert (answer.status, answer.headers["connection"]) == (200, "close")
    assert await closed(reader)
    assert sorted(await stored_ids(eng)) == ["p-0", "p-1", "p-2", "p-9"]


async def test_http_1_0_closes_unless_asked_to_keep_alive(eng: Engine) -> None:
    reader, writer = await connect(eng.listener.port)
    writer.write(b"GET /healthz HTTP/1.0\r\n\r\n")
    answer = await read_answer(reader)
    assert (answer.status, answer.headers["connection"]) == (200, "close")
    assert await closed(reader)

    reader, writer = await connect(eng.listener.port)
    for _ in range(2):
        writer.write(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        answer = await read_answer(reader)
        assert (answer.status, answer.headers["connection"]) == (200, "keep-alive")
    writer.close()


async def test_a_client_that_half_closes_still_gets_its_answers(eng: Engine) -> None:
    reader, writer = await connect(eng.listener.port)
    writer.write(post(event(1)) + post(event(2)))
    writer.write_eof()
    assert [(await read_answer(reader)).status for _ in range(2)] == [200, 200]
    assert await closed(reader)


async def test_an_idle_keep_alive_connection_is_closed(eng: Engine) -> None:
    reader, writer = await connect(eng.listener.port)
    writer.write(GET_HEALTH)
    assert (await read_answer(reader)).status == 200
    # Kept alive after an answer: the next request on it is served...
    writer.write(GET_HEALTH)
    assert (await read_answer(reader)).status == 200
    # ...and, with none coming, the idle timeout (1.0 s) closes it, unanswered.
    assert await closed(reader, within=30)


# --- Expect: 100-continue -------------------------------------------------------------------


async def test_100_continue_only_when_the_headers_pass(eng: Engine) -> None:
    body = event(1)
    reader, writer = await connect(eng.listener.port)
    writer.write(post(body, extra=b"Expect: 100-continue\r\n")[: -len(body)])
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    assert (await read_answer(reader)).status == 200
    # The connection stays usable.
    writer.write(GET_HEALTH)
    assert (await read_answer(reader)).status == 200
    writer.close()


@pytest.mark.parametrize(
    ("head", "status", "code"),
    [
        (
            b"POST /webhooks/lisoloo HTTP/1.1\r\nContent-Type: text/html\r\nContent-Length: 10\r\n",
            415,
            "unsupported_media_type",
        ),
        (b"POST /webhooks/lisoloo HTTP/1.1\r\nContent-Length: 5000\r\n", 413, "payload_too_large"),
        (b"POST /webhooks/nosuchgw HTTP/1.1\r\nContent-Length: 10\r\n", 404, "unknown_gateway"),
        (b"PUT /webhooks/lisoloo HTTP/1.1\r\nContent-Length: 10\r\n", 405, "method_not_allowed"),
        (
            b"POST /webhooks/lisoloo HTTP/1.1\r\nContent-Encoding: br\r\nContent-Length: 10\r\n",
            415,
            "unsupported_media_type",
        ),
    ],
)
async def test_100_continue_refused_gets_the_final_answer_at_once(
    eng: Engine, head: bytes, status: int, code: str
) -> None:
    reader, writer = await connect(eng.listener.port)
    writer.write(head + b"Expect: 100-continue\r\n\r\n")  # and no body: the client waits
    answer = await read_answer(reader)
    assert (answer.status, answer.json()["error"]) == (status, code)
    assert answer.headers["connection"] == "close"
    assert await closed(reader)


async def test_an_expectation_other_than_100_continue_is_417(eng: Engine) -> None:
    reader, writer = await connect(eng.listener.port)
    writer.write(post(event(1), extra=b"Expect: something-else\r\n"))
    answer = await read_answer(reader)
    assert (answer.status, answer.json()["error"]) == (417, "expectation_failed")
    assert await closed(reader)
    assert await stored_ids(eng) == []


# --- bodies -----------------------------------------------------------------------------------


async def test_a_chunked_body_is_refused_413_as_soon_as_it_outgrows_the_limit(eng: Engine) -> None:
    reader, writer = await connect(eng.listener.port)
    writer.write(
        b"POST /webhooks/lisoloo HTTP/1.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    for _ in range(5):  # 5,000 bytes against a 4,096-byte limit, and no last chunk
        writer.write(b"3e8\r\n" + b" " * 1000 + b"\r\n")
    answer = await read_answer(reader)
    assert (answer.status, answer.json()["error"]) == (413, "payload_too_large")
    assert answer.headers["connection"] == "close"
    writer.write(b"3e8\r\n" + b" " * 1000 + b"\r\n")  # still sending: read and dropped, no reset
    assert await closed(reader)


async def test_a_chunked_body_under_the_limit_is_stored(eng: Engine) -> None:
    body = event(7)
    reader, writer = await connect(eng.listener.port)
    writer.write(
        b"POST /webhooks/lisoloo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 50]), body[i : i + 50])
            for i in range(0, len(body), 50)
        )
        + b"0\r\n\r\n"
    )
    assert (await read_answer(reader)).status == 200
    writer.close()
    assert await stored_ids(eng) == ["p-7"]


async def test_a_stalled_body_is_408_and_the_head_is_not_held_open(eng: Engine) -> None:
    reader, writer = await connect(eng.listener.port)
    writer.write(post(event(1))[:-10])
    answer = await read_answer(reader)
    assert (answer.status, answer.json()["error"]) == (408, "request_timeout")
    assert await closed(reader)


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped, as RFC 9110 says
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw, as many senders send it
        ("gzip", lambda b: gzip.compress(b[:40]) + gzip.compress(b[40:])),  # two members
        ("identity", lambda b: b),
    ],
)
async def test_compressed_bodies_are_decoded(
    eng: Engine, session: Any, encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    client = Client(session, eng.listener.base_url)
    status, _, answer = await client.post(
        "/webhooks/lisoloo", encode(event(1)), {"Content-Encoding": encoding}
    )
    assert (status, answer["event_id"]) == (200, "p-1")


@pytest.mark.parametrize(
    ("encoding", "body", "status", "code"),
    [
        ("deflate", zlib.compress(b" " * 100_000), 413, "payload_too_large"),
        ("gzip", gzip.compress(event(1), mtime=0)[:-12], 400, "unreadable_body"),  # truncated
        ("gzip", gzip.compress(event(1), mtime=0) + b"junk", 400, "unreadable_body"),
        ("deflate", b"\x78\x9cnot deflate", 400, "unreadable_body"),
        ("br", b"whatever", 415, "unsupported_media_type"),
        ("gzip, deflate", b"whatever", 415, "unsupported_media_type"),
    ],
)
async def test_bodies_that_do_not_decode(
    eng: Engine, session: Any, encoding: str, body: bytes, status: int, code: str
) -> None:
    client = Client(session, eng.listener.base_url)
    got, _, answer = await client.post("/webhooks/lisoloo", body, {"Content-Encoding": encoding})
    assert (got, answer["error"]) == (status, code)
    assert (await client.lisoloo(event(2)))[0] == 200  # and the listener keeps serving


async def test_routes_take_a_query_string_and_a_gateway_name_in_capitals(
    eng: Engine, session: Any
) -> None:
    client = Client(session, eng.listener.base_url)
    assert (await client.post("/webhooks/LISOLOO?x=1", event(1)))[0] == 200
    assert (await client.post("/webhooks/lisoloo/?x=1", event(2)))[0] == 200
    async with session.get(eng.listener.base_url + "/healthz?probe=1") as resp:
        assert resp.status == 200
    async with session.post(eng.listener.base_url + "/healthz", data=b"{}") as resp:
        assert (resp.status, resp.headers["Allow"]) == (405, "GET, HEAD")
    reader, writer = await connect(eng.listener.port)
    writer.write(b"GET http://example.com/healthz HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert (await read_answer(reader)).status == 200  # absolute form
    writer.close()


async def test_an_upgrade_request_is_answered_and_never_upgraded(eng: Engine) -> None:
    reader, writer = await connect(eng.listener.port)
    writer.write(
        b"GET /healthz HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n" + GET_HEALTH
    )
    answer = await read_answer(reader)
    assert (answer.status, answer.headers["connection"]) == (200, "close")
    assert await closed(reader)


# --- slowloris and head limits ----------------------------------------------------------------


async def trickle(writer: asyncio.StreamWriter, data: bytes, size: int, pause: float) -> int:
    """Send `data` a few bytes at a time until done or the server hangs up; returns how many
    bytes were sent."""
    sent = 0
    with contextlib.suppress(ConnectionError):
        for i in range(0, len(data), size):
            writer.write(data[i : i + size])
            await writer.drain()
            sent = i + size
            await asyncio.sleep(pause)
    return min(sent, len(data))


async def test_headers_trickled_byte_by_byte_are_cut_by_the_idle_timeout(eng: Engine) -> None:
    reader, writer = await connect(eng.listener.port)
    # 1,000+ bytes, one each 50 ms: 50 s at least, however loaded the machine.
    head = b"POST /webhooks/lisoloo HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    sender = asyncio.create_task(trickle(writer, head, 1, 0.05))  # busy, never complete
    try:
        assert await closed(reader, within=30)  # closed, unanswered
        # The idle timeout (1.0 s) cut it while bytes were still coming, long before the end:
        # the sender's next writes fail.
        assert await asyncio.wait_for(sender, 30) < len(head)
    finally:
        sender.cancel()


async def test_head_limits(eng: Engine) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(127))  # with Host: 128, the limit
    reader, writer = await connect(eng.listener.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert (await read_answer(reader)).status == 200
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-One-Too-Many: v\r\n" + many + b"\r\n")
    answer = await read_answer(reader)
    assert (answer.version, answer.status, answer.json()["error"]) == (
        "HTTP/1.0",
        400,
        "bad_request",
    )
    assert await closed(reader)


async def test_a_header_that_never_ends_is_refused_before_it_grows_large(eng: Engine) -> None:
    reader, writer = await connect(eng.listener.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nX-Endless: ")
    await writer.drain()
    await asyncio.sleep(0.05)
    # 400 KB in separate reads, against 64 KiB of head: refused long before the end.
    sender = asyncio.create_task(trickle(writer, b"a" * 400_000, 4096, 0.01))
    try:
        answer = await read_answer(reader)
    finally:
        sender.cancel()
    assert (answer.version, answer.status, answer.json()["error"]) == (
        "HTTP/1.0",
        400,
        "bad_request",
    )
    assert not sender.done() or sender.cancelled()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        pytest.param(b"GET /healthz\r\n\r\n", "bad_request", id="http-0.9"),
        pytest.param(b"GET /healthz HTTP/2.0\r\n\r\n", "bad_request", id="http-2.0"),
        pytest.param(b"GET /healthz HTTP/1.1\nHost: x\n\n", "bad_request", id="bare-lf"),
        pytest.param(post(b"{}", extra=b"X-A: a\r\n folded\r\n"), "bad_request", id="obs-fold"),
        pytest.param(
            post(b"{}", extra=b"Content-Length: 2\r\n"), "bad_request", id="content-length-twice"
        ),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nBad Name: x\r\n\r\n", "bad_request", id="space-in-name"
        ),
        # The headers pass, then the body's framing cannot be read: the webhook's own refusal.
        pytest.param(
            b"POST /webhooks/lisoloo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n{}",
            "unreadable_body",
            id="transfer-encoding-not-chunked",
        ),
    ],
)
async def test_requests_httptools_refuses_get_http_1_0_400_and_a_close(
    eng: Engine, raw: bytes, code: str
) -> None:
    reader, writer = await connect(eng.listener.port)
    writer.write(raw + GET_HEALTH)  # nothing after a request that cannot be read is answered
    answer = await read_answer(reader)
    assert (answer.version, answer.status, answer.json()["error"]) == ("HTTP/1.0", 400, code)
    assert answer.headers["connection"] == "close"
    assert await closed(reader)
    assert await stored_ids(eng) == []


# --- backpressure -----------------------------------------------------------------------------


class GateWriter:
    """A writer whose commits wait for `gate`, and whose queue can be made to look deep."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.waiting = 0
        self.submitted = 0
        self.pretend_deep = 0
        self.failing: str | None = None
        self.quarantined: list[object] = []

    @property
    def depth(self) -> int:
        return self.waiting + self.pretend_deep

    async def submit(self, events: Sequence[Event]) -> list[Outcome]:
        self.submitted += 1
        self.waiting += 1
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1
        return [Outcome(e.event_id, e.message_id or "", False) for e in events]

    def submit_nowait(self, events: Sequence[Event]) -> asyncio.Future[list[Outcome]]:
        return asyncio.ensure_future(self.submit(events))

    def quarantine(self, rejection: object) -> None:
        self.quarantined.append(rejection)


@pytest.fixture
async def gated() -> AsyncIterator[tuple[Listener, GateWriter]]:
    writer = GateWriter()
    listener = Listener(
        ListenerConfig(port=0, max_queue=16, open_gateways=frozenset(gateways.NAMES)),
        gateways.build(Credentials()),
        writer,  # type: ignore[arg-type]
        Hub(),
    )
    await listener.start()
    try:
        yield listener, writer
    finally:
        writer.gate.set()
        await listener.stop()


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_reading_stops_while_the_writer_is_deep_and_resumes_when_it_drains(
    gated: tuple[Listener, GateWriter],
) -> None:
    listener, writer = gated
    writer.pretend_deep = 100  # over max_queue=16
    conns = [await connect(listener.port) for _ in range(3)]
    for i, (_, w) in enumerate(conns):
        w.write(post(event(i)))
    await until(lambda: writer.submitted == 3)
    # Each connection that submitted stopped reading: their next requests stay unread.
    for i, (_, w) in enumerate(conns):
        w.write(post(event(10 + i)))
    await asyncio.sleep(0.3)
    assert writer.submitted == 3
    writer.pretend_deep = 0
    writer.gate.set()  # the commits complete: the queue is shallow again, reading resumes
    for r, w in conns:
        assert [(await read_answer(r)).status for _ in range(2)] == [200, 200]
        w.close()
    assert writer.submitted == 6


async def test_a_flood_on_one_connection_is_not_read_past_what_can_wait(
    gated: tuple[Listener, GateWriter],
) -> None:
    listener, writer = gated
    total = 5000  # ~1.5 MB of pipelined requests while no commit completes
    reader, w = await connect(listener.port)
    w.write(b"".join(post(event(i)) for i in range(total)))
    await until(lambda: bool(listener._connections))
    conn = next(iter(listener._connections))
    await until(lambda: bool(conn.paused), within=30)  # stopped reading
    # Read in chunks of at most 256 KiB (under 1,000 requests), then stopped: memory is bounded
    # by what one read brings, not by what the client sends.
    assert 0 < writer.submitted < 1000
    writer.gate.set()
    answers = [await read_answer(reader) for _ in range(total)]
    assert [a.json()["event_id"] for a in answers] == [f"p-{i}" for i in range(total)]
    w.close()


async def test_with_commits_blocked_by_a_lock_everything_completes_after_it_goes(
    make_engine: Callable[..., Engine], db_path: Any
) -> None:
    eng = make_engine(max_queue=4)
    eng.writer.busy_timeout_ms = 30_000  # wait for the lock instead of answering 503
    per_connection, connections = 1500, 4  # ~500 KB each: more than one read can bring
    async with running(eng):
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        conns = [await connect(eng.listener.port) for _ in range(connections)]
        for c, (_, w) in enumerate(conns):
            w.write(b"".join(post(event(i, f"c{c}")) for i in range(per_connection)))
        depths = []
        for _ in range(30):
            depths.append(eng.writer.depth)
            await asyncio.sleep(0.01)
        blocker.execute("ROLLBACK")
        blocker.close()
        for c, (r, w) in enumerate(conns):
            answers = [await read_answer(r) for _ in range(per_connection)]
            assert {a.status for a in answers} == {200}
            ids = [a.json()["event_id"] for a in answers]
            assert ids == [f"c{c}-{i}" for i in range(per_connection)]
            w.close()
    # Each connection stopped reading after the read that took the queue past max_queue.
    assert max(depths) <= connections * 1000 < connections * per_connection
    assert len(await stored_ids(eng)) == connections * per_connection


async def test_a_client_that_does_not_read_its_answers_is_not_read_either(eng: Engine) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", eng.listener.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    total = 20_000
    writer.write(GET_HEALTH * total)
    # The answers pile up unread; the server stops taking requests rather than buffering
    # answers without bound.
    conn = next(iter(eng.listener._connections))
    await until(lambda: bool(conn.paused))
    answers = [await read_answer(reader) for _ in range(total)]
    assert {a.status for a in answers} == {200}
    writer.close()


# --- uvloop -----------------------------------------------------------------------------------


# uvloop is a dependency everywhere but Windows (pyproject.toml): missing, this fails.
@pytest.mark.skipif(sys.platform == "win32", reason="smswatch runs on asyncio's loop on Windows")
def test_the_engine_thread_runs_the_listener_on_uvloop(tmp_path: Any) -> None:
    assert loops.name() == "uvloop"
    with EngineThread(EngineConfig(db_path=tmp_path / "u.db", port=0)) as thread:
        assert type(thread.loop).__module__.startswith("uvloop")
        with socket.create_connection(("127.0.0.1", thread.engine.listener.port), 5) as s:
            s.sendall(b"".join(post(event(i)) for i in range(50)) + GET_HEALTH)
            data = b""
            while data.count(b"HTTP/1.1 200 OK") < 51:
                chunk = s.recv(65536)
                assert chunk
                data += chunk
        bodies = [json.loads(x.split(b"\r\n\r\n", 1)[1]) for x in data.split(b"HTTP/1.1 ")[1:]]
        assert [b.get("event_id") for b in bodies[:50]] == [f"p-{i}" for i in range(50)]
        assert bodies[50]["status"] == "ok"
