"""The database goes away under a running instance: 503 with Retry-After, never a 2xx, and the
instance reconnects by itself when the database is back."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest

from smswatch.live.engine import Engine, EngineConfig
from smswatch.store import open_reader
from tests.conftest import Client

pytestmark = pytest.mark.timeout(90)


def body(i: int) -> str:
    return json.dumps(
        {
            "event_id": f"out-{i}",
            "event_type": "sms.sent",
            "message_id": "m-outage",
            "data": {"recipient_phone": f"+243{i:09d}"},
        }
    )


async def set_reachable(admin_url: str, db: str, reachable: bool) -> None:
    """Refuse (or allow again) new connections to `db` and cut the ones it has: to its clients
    that is the database going away."""
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS {str(reachable).lower()}')
        if not reachable:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid != pg_backend_pid()",
                db,
            )
    finally:
        await admin.close()


async def test_an_outage_is_answered_503_and_the_instance_comes_back_by_itself(
    pg_url: str, postgres_server
) -> None:
    db = urlsplit(pg_url).path.lstrip("/")
    admin = postgres_server.url("postgres")
    engine = Engine(EngineConfig(db_path=pg_url, port=0, hub_tick=0.05))
    await engine.start()
    acked: list[int] = []
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(session, engine.listener.base_url)
            for i in range(5):
                status, _ = await client.lisoloo(body(i))
                assert status == 200
                acked.append(i)
            await set_reachable(admin, db, False)
            # Noticed with no webhook arriving: the follower's next look fails.
            for _ in range(50):
                if engine.hub.store_error:
                    break
                await asyncio.sleep(0.1)
            assert engine.hub.store_error and "unreachable" in engine.hub.store_error
            refused = 0
            for i in range(5, 15):
                status, headers, answer = await client.post("/webhooks/lisoloo", body(i))
                assert status in (200, 503), (status, answer)  # never another 4xx or 5xx
                if status == 503:
                    assert int(headers["Retry-After"]) > 0
                    refused += 1
                else:
                    acked.append(i)
            assert refused >= 9  # a request may still ride a connection being cut
            assert engine.hub.store_error and "unreachable" in engine.hub.store_error
            async with session.get(engine.listener.base_url + "/healthz") as resp:
                assert (await resp.json())["status"] == "degraded"
            await set_reachable(admin, db, True)
            # Nothing restarted, and no webhook needed: the alarm clears once it is reachable.
            for _ in range(50):
                if engine.hub.store_error is None:
                    break
                await asyncio.sleep(0.1)
            assert engine.hub.store_error is None
            for _ in range(100):
                status, _ = await client.lisoloo(body(100))
                if status == 200:
                    acked.append(100)
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the instance never came back after the database did")
            # The writer's next look clears the alarm: waited for, under a generous ceiling.
            deadline = asyncio.get_running_loop().time() + 30
            while engine.hub.store_error is not None:
                assert asyncio.get_running_loop().time() < deadline, engine.hub.store_error
                await asyncio.sleep(0.05)
    finally:
        await engine.stop()
    async with await open_reader(pg_url) as r:
        stored = sorted([int(e.event_id[4:]) async for e in r.iter_events()])
    assert stored == sorted(acked)  # every 2xx is stored, and no 503'd event slipped in


async def test_rows_restored_from_another_cluster_are_not_read_again_at_every_look(
    pg_url: str,
) -> None:
    from smswatch.store import make_writer
    from tests.test_store_conformance import event

    writer = make_writer(pg_url)
    await writer.open()
    await writer.submit([event(1), event(2)])
    await writer.close()
    conn = await asyncpg.connect(pg_url)
    try:  # as a pg_dump of a busier cluster would bring them
        await conn.execute("UPDATE events SET xid = '4000000000'::xid8")
        await conn.execute("UPDATE messages SET xid = '4000000000'::xid8")
    finally:
        await conn.close()
    commits: list = []
    writer = make_writer(pg_url, on_commit=commits.append)
    await writer.open()
    try:
        for _ in range(3):
            await writer.pull_changes(copies=True)
        assert commits == []  # nothing new: the restored rows are old news
        # ... and the follower does not carry them from look to look (each look would read
        # and skip every restored row until this cluster's transaction ids caught up).
        assert len(writer.follower._seen) == 0
        await writer.submit([event(3)])
        await writer.pull_changes(copies=True)
        assert [e.event_id for c in commits for e in c.events] == ["e3"]
    finally:
        await writer.close()
