"""Store mechanics: migrations, bounded quarantine, poison isolation, group commit under load."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from smswatch.core.domain import Event, State
from smswatch.core.records import Rejection
from smswatch.store import StoreUnavailable, Unstorable
from smswatch.store.errors import NoDatabase
from smswatch.store.sqlite import schema
from smswatch.store.sqlite.reader import Reader
from smswatch.store.sqlite.writer import Writer


def event(i: int, **kw) -> Event:
    values = dict(
        provider="lisoloo",
        event_id=f"e{i}",
        dedupe_key=f"lisoloo|e{i}",
        event_type="sms.sent",
        state=State.SENT,
        message_id="m",
        recipient=f"+{i}",
        occurred_at=i,
        received_at=i,
        payload="{}",
    )
    values.update(kw)
    return Event(**values)


async def test_group_commit_many_concurrent_submits_share_batches(tmp_path: Path) -> None:
    batches = []
    writer = Writer(tmp_path / "g.db", on_commit=batches.append)
    await writer.open()
    try:
        results = await asyncio.gather(*(writer.submit([event(i)]) for i in range(500)))
    finally:
        await writer.close()
    assert all(not r[0].duplicate for r in results)
    assert sum(len(b.events) for b in batches) == 500
    assert len(batches) < 50  # queued submits ride together
    async with await Reader.open(tmp_path / "g.db") as r:
        msg = await r.message("m")
        assert msg.count(State.SENT) == 500


async def test_a_value_sqlite_refuses_fails_only_its_own_request(tmp_path: Path) -> None:
    writer = Writer(tmp_path / "p.db")
    await writer.open()
    try:
        good = [writer.submit([event(i)]) for i in range(5)]
        bad = writer.submit([event(99, payload="\ud800")])  # not encodable as UTF-8
        results = await asyncio.gather(*good, bad, return_exceptions=True)
    finally:
        await writer.close()
    assert [type(r) for r in results[:5]] == [list] * 5
    assert isinstance(results[5], Unstorable)


async def test_quarantine_is_bounded(tmp_path: Path) -> None:
    writer = Writer(tmp_path / "q.db", quarantine_keep=10, quarantine_body_max=100)
    await writer.open()
    try:
        for i in range(25):
            writer.quarantine(
                Rejection(
                    received_at=i, status=400, code="malformed_json", reason="x", body=b"y" * 1000
                )
            )
            await asyncio.sleep(0)
        await writer.submit([event(1)])
    finally:
        await writer.close()
    async with await Reader.open(tmp_path / "q.db") as r:
        kept = await r.quarantine(100)
    assert len(kept) == 10
    assert kept[0].received_at == 24 and all(len(k.body) == 100 for k in kept)


async def test_submit_after_close_is_unavailable(tmp_path: Path) -> None:
    writer = Writer(tmp_path / "c.db")
    await writer.open()
    await writer.close()
    with pytest.raises(StoreUnavailable):
        await writer.submit([event(1)])


async def test_a_database_from_a_newer_smswatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(schema.SchemaError, match="newer"):
        await Writer(path).open()
    with pytest.raises(NoDatabase, match="newer"):
        await Reader.open(path)


async def test_an_older_database_is_migrated_in_place(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "old.db"
    writer = Writer(path)
    await writer.open()
    await writer.submit([event(1)])
    await writer.close()
    # A made-up next version of each file: the mechanism must apply it once and keep the data.
    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.SCHEMA_VERSION + 1)
    monkeypatch.setitem(
        schema.MIGRATIONS, schema.SCHEMA_VERSION - 1, "ALTER TABLE events ADD COLUMN note TEXT;"
    )
    monkeypatch.setattr(schema, "STATE_SCHEMA_VERSION", schema.STATE_SCHEMA_VERSION + 1)
    monkeypatch.setitem(
        schema.STATE_MIGRATIONS,
        schema.STATE_SCHEMA_VERSION - 1,
        "ALTER TABLE messages ADD COLUMN note TEXT;",
    )
    writer = Writer(path)
    await writer.open()
    await writer.close()
    conn = sqlite3.connect(path)
    conn.execute("ATTACH DATABASE ? AS state", (str(schema.state_path(path)),))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    assert conn.execute("PRAGMA state.user_version").fetchone()[0] == schema.STATE_SCHEMA_VERSION
    assert conn.execute(
        "SELECT count(*), min(e.note), min(m.note) FROM events e JOIN messages m USING (message_id)"
    ).fetchone() == (1, None, None)
    conn.close()


async def test_reader_refuses_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(NoDatabase, match="no smswatch database"):
        await Reader.open(tmp_path / "nope.db")
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    with pytest.raises(NoDatabase, match="not an smswatch database"):
        await Reader.open(other)


async def test_an_empty_search_lists_recent_messages_and_can_keep_only_failures(
    tmp_path: Path,
) -> None:
    writer = Writer(tmp_path / "s.db")
    await writer.open()
    await writer.submit([event(1, message_id="ok")])
    await writer.submit([event(2, message_id="bad", state=State.FAILED, event_type="sms.failed")])
    await writer.close()
    async with await Reader.open(tmp_path / "s.db") as r:
        assert [m.message_id for m in await r.search_messages("")] == ["bad", "ok"]
        assert [m.message_id for m in await r.search_messages("", failed_only=True)] == ["bad"]
