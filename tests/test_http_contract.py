"""Every status code of the listener's HTTP contract (the README, "What the listener answers"),
over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from smswatch.config import Credentials
from smswatch.core.domain import State
from tests.conftest import BASIC, SECRET, Client, basic_header, fill_until_503
from tests.fixtures.seeds import LISOLOO, YEBOLINK

# The contract holds whichever store is behind the listener.
pytestmark = pytest.mark.both_stores

EVENT = json.dumps(
    {
        "event_id": "2f6f0d3e-1111-4c4c-9d9d-000000000001",
        "event_type": "sms.sent",
        "timestamp": "2026-11-23T10:00:00Z",
        "message_id": "65a1b2c3d4e5f60718293a4b",
        "data": {
            "recipient_phone": "+243810000001",
            "carrier": "vodacom_drc",
            "sent_at": "2026-11-23T10:00:00Z",
        },
    }
)


@contextlib.asynccontextmanager
async def write_lock_held(db_path: Path | str) -> AsyncIterator[None]:
    """Another connection holds the store's write lock, so no commit can complete meanwhile
    (the writer waits for it: its busy timeout is longer than the hold)."""
    if isinstance(db_path, Path):
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        return
    conn = await asyncpg.connect(db_path)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE events IN EXCLUSIVE MODE")  # blocks every INSERT
            yield
    finally:
        await conn.close()


async def test_200_only_after_commit_and_200_again_for_a_duplicate(
    client: Client, reader, db_path: Path | str
) -> None:
    async with write_lock_held(db_path):
        posted = asyncio.ensure_future(client.lisoloo(EVENT))
        # While the commit cannot happen, no answer may come: not a 200, not anything.
        done, _ = await asyncio.wait([posted], timeout=0.5)
        assert not done, posted.result()
    status, answer = await asyncio.wait_for(posted, 30)  # the lock went: now it commits
    assert status == 200
    assert answer == {
        "status": "stored",
        "event_id": "2f6f0d3e-1111-4c4c-9d9d-000000000001",
        "message_id": "65a1b2c3d4e5f60718293a4b",
    }
    # The 200 means committed: a fresh connection sees the row at once.
    r = await reader()
    assert [e.event_id async for e in r.iter_events()] == ["2f6f0d3e-1111-4c4c-9d9d-000000000001"]
    status, answer = await client.lisoloo(EVENT)
    assert (status, answer["status"]) == (200, "duplicate")
    assert len([e async for e in r.iter_events()]) == 1


async def test_32_concurrent_copies_of_one_event_store_one_row(client: Client, reader) -> None:
    results = await asyncio.gather(*(client.lisoloo(EVENT) for _ in range(32)))
    assert [s for s, _ in results] == [200] * 32
    assert sorted(a["status"] for _, a in results) == ["duplicate"] * 31 + ["stored"]
    r = await reader()
    assert len([e async for e in r.iter_events()]) == 1
    [rec] = await r.recipients("65a1b2c3d4e5f60718293a4b")
    assert rec.events == 1


async def test_unknown_event_type_with_valid_envelope_is_stored_as_unknown(
    client: Client, reader
) -> None:
    body = EVENT.replace("sms.sent", "sms.expired")
    status, answer = await client.lisoloo(body)
    assert (status, answer["status"]) == (200, "stored")
    yl = YEBOLINK["message.sent"].replace("message.sent", "message.read")
    assert (await client.yebolink(yl))[0] == 200
    r = await reader()
    events = [e async for e in r.iter_events()]
    assert [(e.event_type, e.state) for e in events] == [
        ("sms.expired", State.UNKNOWN),
        ("message.read", State.UNKNOWN),
    ]


async def test_post_to_webhooks_detects_the_gateway(client: Client, reader) -> None:
    assert (await client.post("/webhooks", LISOLOO["sms.queued"]))[0] == 200
    assert (await client.post("/webhooks/", YEBOLINK["message.queued"]))[0] == 200
    r = await reader()
    assert sorted([e.provider async for e in r.iter_events()]) == ["lisoloo", "yebolink"]


async def test_healthz(client: Client) -> None:
    async with client.session.get(client.base + "/healthz") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["status"] == "ok"
    assert body["store"] == "ok"


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        pytest.param(*case, id=f"{case[2]}-{i}")
        for i, case in enumerate(
            [
                ("/webhooks/lisoloo", b"{not json", "malformed_json"),
                ("/webhooks/lisoloo", b"", "malformed_json"),
                ("/webhooks/lisoloo", b"[1, 2]", "unknown_envelope"),
                ("/webhooks/lisoloo", b'"just a string"', "unknown_envelope"),
                ("/webhooks/lisoloo", b'{"data": {}}', "invalid_envelope"),
                ("/webhooks/lisoloo", b'{"event_type": 5, "data": {}}', "invalid_envelope"),
                (
                    "/webhooks/lisoloo",
                    b'{"event_type": "sms.sent", "data": "x"}',
                    "invalid_envelope",
                ),
                (
                    "/webhooks/lisoloo",
                    b'{"event_type": "sms.sent", "timestamp": "yesterday", "data": {}}',
                    "invalid_envelope",
                ),
                (
                    "/webhooks/lisoloo",
                    b'{"event_type": "sms.sent", "data": {"segments": NaN}}',
                    "malformed_json",
                ),
                (
                    "/webhooks/lisoloo",
                    b'{"event_type": "sms.sent", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                    "malformed_json",
                ),
                (
                    "/webhooks/lisoloo",
                    b'{"event_type": "sms.sent\xff", "data": {}}',
                    "malformed_json",
                ),
                ("/webhooks/yebolink", b'{"data": {"message_id": "x"}}', "invalid_envelope"),
                ("/webhooks", b'{"hello": "world"}', "unknown_envelope"),
            ]
        )
    ],
)
async def test_400_for_bodies_that_fit_no_envelope(
    client: Client, reader, path: str, body: bytes, code: str
) -> None:
    status, _, answer = await client.post(path, body)
    assert status == 400
    assert answer["error"] == code
    assert answer["detail"]
    await asyncio.sleep(0.2)  # quarantine rides with the next batch
    r = await reader()
    [kept] = await r.quarantine()
    assert (kept.status, kept.code, kept.body) == (400, code, body or None)
    assert [e async for e in r.iter_events()] == []


async def test_wrong_types_inside_a_valid_envelope_are_kept_not_rejected(
    client: Client, reader
) -> None:
    body = json.dumps(
        {
            "event_id": "e-1",
            "event_type": "sms.delivered",
            "message_id": "m-1",
            "data": {
                "recipient_phone": 243810000002,
                "carrier": ["x"],
                "segments": "two",
                "delivered_at": 12,
            },
        }
    )
    assert (await client.lisoloo(body))[0] == 200
    r = await reader()
    [rec] = await r.recipients("m-1")
    assert (rec.recipient, rec.carrier, rec.state) == ("243810000002", None, State.DELIVERED)


async def test_401_basic_auth(secured_client: Client, reader) -> None:
    for auth in (None, ("lisoloo-hook", "wrong"), ("someone", BASIC[1])):
        status, headers, answer = await secured_client.post(
            "/webhooks/lisoloo", EVENT, {"Authorization": basic_header(*auth)} if auth else None
        )
        assert status == 401, auth
        assert answer["error"] == "unauthorized"
        assert headers["WWW-Authenticate"].startswith("Basic realm=")
    for header in ("Bearer abc", "Basic %%%", "Basic " + "bm9jb2xvbg=="):
        status, _, _ = await secured_client.post(
            "/webhooks/lisoloo", EVENT, {"Authorization": header}
        )
        assert status == 401, header
    # The password may itself contain colons: only the first one splits.
    assert (await secured_client.lisoloo(EVENT, BASIC))[0] == 200
    r = await reader()
    assert len([e async for e in r.iter_events()]) == 1


async def test_401_yebolink_signature(secured_client: Client, reader) -> None:
    body = YEBOLINK["message.delivered"]
    assert (await secured_client.yebolink(body))[0] == 401  # no signature
    status, answer = await secured_client.yebolink(body, "not-the-secret")
    assert (status, answer["error"]) == (401, "bad_signature")
    assert "secret" in answer["detail"]
    tampered = body.replace("delivered", "failed", 1)
    from smswatch.gateways.yebolink.webhook import sign

    status, _, _ = await secured_client.post(
        "/webhooks/yebolink", tampered, {"X-YeboLink-Signature": sign(SECRET, body.encode())}
    )
    assert status == 401
    assert (await secured_client.yebolink(body, SECRET))[0] == 200
    # Upper-case hex and a sha256= prefix are the same signature.
    other = YEBOLINK["message.sent"].encode()
    status, _, _ = await secured_client.post(
        "/webhooks/yebolink",
        other,
        {"X-YeboLink-Signature": "sha256=" + sign(SECRET, other).upper()},
    )
    assert status == 200
    await asyncio.sleep(0.2)
    r = await reader()
    assert {q.code for q in await r.quarantine()} == {"missing_signature", "bad_signature"}


async def test_401_for_a_gateway_without_credentials_on_a_public_bind(make_engine, session) -> None:
    eng = make_engine(host="0.0.0.0", credentials=Credentials(yebolink_secret=SECRET))
    await eng.start()
    try:
        c = Client(session, f"http://127.0.0.1:{eng.listener.port}")
        status, answer = await c.lisoloo(EVENT)
        assert (status, answer["error"]) == (401, "auth_required")
        assert (await c.yebolink(YEBOLINK["message.sent"], SECRET))[0] == 200
        status = {g.name: g.accepting for g in eng.gateways()}
        assert status == {
            "lisoloo": False,
            "yebolink": True,
            "twilio": False,
            "africastalking": False,
        }
    finally:
        await eng.stop()


def test_public_bind_without_any_credentials_is_refused(make_engine) -> None:
    from smswatch.live.engine import BindRefused

    with pytest.raises(BindRefused, match="--insecure"):
        make_engine(host="0.0.0.0")
    eng = make_engine(host="0.0.0.0", insecure=True)
    assert all(g.accepting for g in eng.gateways())


async def test_404_and_405(client: Client) -> None:
    status, _, answer = await client.post("/hooks", EVENT)
    assert (status, answer["error"]) == (404, "not_found")
    status, _, answer = await client.post("/webhooks/nosuchgw", EVENT)
    assert (status, answer["error"]) == (404, "unknown_gateway")
    assert "/webhooks/lisoloo" in answer["detail"]
    for method in ("GET", "PUT", "DELETE"):
        async with client.session.request(method, client.base + "/webhooks/lisoloo") as resp:
            assert resp.status == 405, method
            assert resp.headers["Allow"] == "POST"
            assert (await resp.json())["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "image/png",
        "application/xml",
    ],
)
async def test_415_for_content_types_that_are_clearly_not_json(
    client: Client, content_type: str
) -> None:
    status, _, answer = await client.post("/webhooks/lisoloo", EVENT, content_type=content_type)
    assert (status, answer["error"]) == (415, "unsupported_media_type")


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json; charset=utf-8", "text/plain", "application/vnd.lisoloo+json"],
)
async def test_json_like_content_types_are_accepted(
    client: Client, content_type: str | None
) -> None:
    status, _, _ = await client.post("/webhooks/lisoloo", EVENT, content_type=content_type)
    assert status == 200


async def test_413_for_a_body_over_the_limit(make_engine, session, reader) -> None:
    eng = make_engine(max_body=4096)
    await eng.start()
    try:
        c = Client(session, eng.listener.base_url)
        big = json.dumps({"event_type": "sms.sent", "data": {"pad": "x" * 5000}})
        status, _, answer = await c.post("/webhooks/lisoloo", big)
        assert (status, answer["error"]) == (413, "payload_too_large")

        async def chunks():
            for _ in range(10):
                yield b" " * 1000

        async with session.post(
            eng.listener.url("lisoloo"), data=chunks(), headers={"Content-Type": "application/json"}
        ) as resp:
            assert resp.status == 413  # no Content-Length: caught while reading
        assert (await c.lisoloo(EVENT))[0] == 200  # and the server keeps serving
    finally:
        await eng.stop()


async def test_408_when_the_body_stalls(make_engine, reader) -> None:
    eng = make_engine(read_timeout=0.3)
    await eng.start()
    try:
        reader_, writer = await asyncio.open_connection("127.0.0.1", eng.listener.port)
        writer.write(
            b"POST /webhooks/lisoloo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 500\r\n\r\n{"event_type": '
        )
        await writer.drain()
        head = await asyncio.wait_for(reader_.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 408")
        writer.close()
    finally:
        await eng.stop()


@pytest.mark.sqlite_only  # PostgreSQL's outage: tests/test_pg_outage.py
async def test_503_with_retry_after_while_the_database_is_locked_then_recovery(
    make_engine, session, db_path, reader
) -> None:
    eng = make_engine()
    eng.writer.busy_timeout_ms = 100
    await eng.start()
    try:
        c = Client(session, eng.listener.base_url)
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        status, headers, answer = await c.post("/webhooks/lisoloo", EVENT)
        assert status == 503
        assert answer["error"] == "store_unavailable"
        assert int(headers["Retry-After"]) > 0
        async with session.get(eng.listener.base_url + "/healthz") as resp:
            assert (await resp.json())["status"] == "degraded"
        blocker.execute("ROLLBACK")
        blocker.close()
        # The gateway's retry of the same event now succeeds: nothing was half-stored.
        status, answer = await c.lisoloo(EVENT)
        assert (status, answer["status"]) == (200, "stored")
        async with session.get(eng.listener.base_url + "/healthz") as resp:
            assert (await resp.json())["status"] == "ok"
    finally:
        await eng.stop()


@pytest.mark.sqlite_only  # PostgreSQL's size cap: tests/test_store_conformance.py
async def test_503_when_the_database_is_full_and_no_2xx_before_commit(
    make_engine, session, reader
) -> None:
    eng = make_engine(max_db_bytes=200 * 1024)
    await eng.start()
    try:
        acked, refused = await fill_until_503(Client(session, eng.listener.base_url), "e", 4000)
    finally:
        await eng.stop()
    assert refused and acked
    r = await reader()
    assert [e.event_id async for e in r.iter_events()] == acked


def test_the_readmes_hand_sent_webhooks_are_stored(tmp_path) -> None:
    """The README's curl commands (Basic auth, and the YeboLink signature computed with
    openssl), run as written against a `serve` with the credentials they name."""
    import re
    import shutil
    import subprocess
    from pathlib import Path

    from tests.helpers import Server, export_records, free_port

    if not (shutil.which("curl") and shutil.which("openssl")):
        pytest.skip("curl and openssl are needed to run the README's commands")
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("### Send a test webhook by hand") :]
    intro, block = re.search(r"(.*?)```sh\n(.*?)```", section, re.S).groups()  # type: ignore[union-attr]
    served = re.search(r"`smswatch serve (--basic-auth \S+ --yebolink-secret \S+)`", intro)
    assert served, intro
    server = Server(tmp_path / "curl.db", free_port(), "--no-feed", *served.group(1).split())
    server.start()
    try:
        script = block.replace("http://127.0.0.1:8787", server.url)
        done = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    answers, text = [], done.stdout.strip()
    while text:
        answer, end = json.JSONDecoder().raw_decode(text)
        answers.append(answer)
        text = text[end:].strip()
    assert [a["status"] for a in answers] == ["stored", "stored"], answers
    stored = {(r["provider"], r["message_id"]) for r in export_records(tmp_path / "curl.db")}
    assert stored == {("lisoloo", "test-msg"), ("yebolink", "test-yebo")}
