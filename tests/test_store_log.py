"""The append-only commit path: the log is durable before each answer, the state is derived
from it at checkpoints, and a crash anywhere (in a checkpoint too) ends in the same state as a
run without one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from smswatch.core.domain import Event
from smswatch.gateways.lisoloo.webhook import Lisoloo
from smswatch.gateways.yebolink.webhook import YeboLink
from smswatch.store.errors import DatabaseInUse
from smswatch.store.queries.rows import MESSAGE_COLUMNS, RECIPIENT_COLUMNS
from smswatch.store.sqlite.files import connect_log, stored_after
from smswatch.store.sqlite.reader import Reader
from smswatch.store.sqlite.schema import read_checkpoint
from smswatch.store.sqlite.writer import Writer
from smswatch.store.state import StateCache, copy_message

T0 = 1_795_400_000_000_000


def campaign(n_messages: int = 6, n_recipients: int = 40) -> list[Event]:
    """Both gateways, every state, conflicts, duplicates and events without a message id."""
    lisoloo, yebolink = Lisoloo(), YeboLink()
    events: list[Event] = []
    n = 0

    def lisoloo_event(kind: str, mid: str | None, at: int, **data: Any) -> None:
        nonlocal n
        n += 1
        body: dict[str, Any] = {
            "event_id": f"10910910-0000-4000-8000-{n:012d}",
            "event_type": kind,
            "timestamp": f"2026-11-23T10:{at // 60 % 60:02d}:{at % 60:02d}Z",
            "data": data,
        }
        if mid is not None:
            body["message_id"] = mid
        events.extend(lisoloo.parse(json.dumps(body).encode(), T0 + n * 1000))

    for m in range(n_messages):
        mid = f"{m:024x}"
        lisoloo_event("sms.queued", mid, m, total_recipients=n_recipients, total_cost=0.8)
        for r in range(n_recipients):
            phone = f"+24381{m:02d}{r:05d}"
            lisoloo_event("sms.processing", mid, m + r, recipient_phone=phone, carrier="vodacom")
            lisoloo_event("sms.sent", mid if r % 7 else None, m + r + 1, recipient_phone=phone)
            final = "sms.failed" if r % 5 == 0 else "sms.delivered"
            data = {"recipient_phone": phone}
            if final == "sms.failed":
                data |= {"error_code": "1502", "error_message": "rejected", "retryable": False}
            lisoloo_event(final, mid, m + r + 3, **data)
            if r % 11 == 0:  # the other outcome, later: a conflict
                other = "sms.delivered" if final == "sms.failed" else "sms.failed"
                lisoloo_event(other, mid, m + r + 9, recipient_phone=phone)
    for r in range(30):
        for k, kind in enumerate(("queued", "sent", "delivered" if r % 4 else "failed")):
            body = {
                "event": f"message.{kind}",
                "timestamp": f"2026-11-23T11:00:{r + k:02d}Z",
                "data": {
                    "message_id": f"ye{r:04d}",
                    "recipient": f"+2687600{r:04d}",
                    "credits_used": 1,
                    "metadata": {"campaign": "spring"},
                    "error_code": "30006",
                },
            }
            events.extend(yebolink.parse(json.dumps(body).encode(), T0 + 10**9 + r * 10 + k))
    return events


def campaign_truth(n_messages: int = 6, n_recipients: int = 40) -> dict[tuple[str, str], Any]:
    """What campaign() must end in, by its construction and the domain rules, with no code of
    smswatch's: (message, recipient) -> (state, conflict)."""
    truth: dict[tuple[str, str], Any] = {}
    for m in range(n_messages):
        for r in range(n_recipients):
            final = "failed" if r % 5 == 0 else "delivered"
            if r % 11 == 0:  # the other outcome came later: it wins, and is a conflict
                final = "delivered" if final == "failed" else "failed"
            truth[(f"{m:024x}", f"+24381{m:02d}{r:05d}")] = (final, r % 11 == 0)
    for r in range(30):
        truth[(f"ye{r:04d}", f"+2687600{r:04d}")] = ("delivered" if r % 4 else "failed", False)
    return truth


def recipient_states(path: Path) -> dict[tuple[str, str], Any]:
    with contextlib.closing(connect_log(path)) as db:
        rows = db.execute("SELECT message_id, recipient, state, conflict FROM recipients")
        return {(m, r): (s, bool(c)) for m, r, s, c in rows}


async def store(path: Path, events: list[Event], **options: Any) -> Writer:
    writer = Writer(path, **options)
    await writer.open()
    for i in range(0, len(events), 25):
        chunk = events[i : i + 25]
        await asyncio.gather(*(writer.submit([ev]) for ev in chunk), writer.submit(chunk[:3]))
    return writer


def tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with contextlib.closing(connect_log(path)) as db:
        return {
            "recipients": db.execute(
                f"SELECT {RECIPIENT_COLUMNS} FROM recipients ORDER BY 1, 2"
            ).fetchall(),
            "messages": db.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages ORDER BY 1").fetchall(),
            "timeline": db.execute("SELECT * FROM timeline ORDER BY 1, 2, 3, 4").fetchall(),
            "events": db.execute("SELECT count(*) FROM events").fetchall(),
        }


def folded_from_scratch(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The state the whole log leads to, folded in a fresh cache (never from the tables)."""
    with contextlib.closing(connect_log(path)) as db:
        db.execute("CREATE TEMP TABLE recipients AS SELECT * FROM state.recipients WHERE 0")
        db.execute("CREATE TEMP TABLE messages AS SELECT * FROM state.messages WHERE 0")
        state = StateCache(keep_recipients=10**9, keep_messages=10**9)
        for _, chunk in stored_after(db, 0):
            state.replay(db, chunk)
    recipients, messages = state.dirty_rows()
    return {"recipients": sorted(recipients), "messages": sorted(messages)}


def assert_state_is_the_fold_of_the_log(path: Path) -> None:
    got, want = tables(path), folded_from_scratch(path)
    assert got["recipients"] == want["recipients"]
    assert got["messages"] == want["messages"]
    with contextlib.closing(connect_log(path)) as db:
        events = db.execute("SELECT count(*) FROM events").fetchone()[0]
        assert len(got["timeline"]) == events  # every event, once, in the timeline
        assert read_checkpoint(db) == db.execute("SELECT max(id) FROM events").fetchone()[0]


async def test_a_clean_run_leaves_tables_equal_to_the_fold_of_the_log(tmp_path: Path) -> None:
    db = tmp_path / "clean.db"
    writer = await store(db, campaign())
    await writer.close()
    assert_state_is_the_fold_of_the_log(db)
    assert recipient_states(db) == campaign_truth()


async def test_the_answer_comes_before_the_checkpoint_and_the_log_has_it(tmp_path: Path) -> None:
    db = tmp_path / "lag.db"
    events = campaign(1, 3)
    writer = await store(db, events[:4], checkpoint_interval=3600)
    try:
        with contextlib.closing(connect_log(db)) as conn:
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 4
            assert read_checkpoint(conn) == 0  # nothing folded into the tables yet
        # A reader of the tables alone lags; a current one and every timeline do not.
        async with await Reader.open(db) as lagging:
            assert await lagging.message(events[0].message_id) is None
            assert len(await lagging.timeline(events[1].message_id, events[1].recipient)) == 3
        async with await Reader.open(db, current=True) as current:
            msg = await current.message(events[0].message_id)
            assert msg is not None and msg.events == 4
            assert (await current.totals()).events == 4
        await asyncio.wrap_future(writer.settle())
        async with await Reader.open(db) as settled:
            assert (await settled.message(events[0].message_id)).events == 4  # type: ignore[union-attr]
    finally:
        await writer.close()


async def test_after_a_crash_the_log_tail_is_folded_again(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    events = campaign()
    writer = await store(db, events, checkpoint_interval=3600)
    # Like kill -9: the process is gone without a checkpoint or a close.
    await writer._on_thread(writer._disconnect)
    writer._executor = None  # type: ignore[assignment]
    writer._task.cancel()  # type: ignore[union-attr]

    again = Writer(db)
    await again.open()
    assert again.replayed == len({ev.dedupe_key for ev in events})
    await again.close()
    assert_state_is_the_fold_of_the_log(db)
    assert recipient_states(db) == campaign_truth()
    reference = tmp_path / "reference.db"
    await (await store(reference, events)).close()
    assert tables(db) == tables(reference)


KILL_IN_CHECKPOINT = textwrap.dedent(
    """
    import asyncio, os, pickle, signal, sys
    from smswatch.store.sqlite.writer import Writer

    class KillAtMarker:
        # SIGKILL once the checkpoint has written the state, before it records its marker.
        def __init__(self, conn):
            self.conn = conn
        def __getattr__(self, name):
            return getattr(self.conn, name)
        def execute(self, sql, *args):
            if sql.startswith("UPDATE meta"):
                os.kill(os.getpid(), signal.SIGKILL)
            return self.conn.execute(sql, *args)

    async def main():
        events = pickle.load(open(sys.argv[2], "rb"))
        writer = Writer(sys.argv[1], checkpoint_interval=3600)
        await writer.open()
        for ev in events:
            await writer.submit([ev])
        writer._state_db = KillAtMarker(writer._state_db)
        await asyncio.wrap_future(writer.settle())

    asyncio.run(main())
    """
)


async def test_kill_in_the_middle_of_a_checkpoint_ends_in_the_state_of_a_run_without_one(
    tmp_path: Path,
) -> None:
    import pickle

    events = campaign(4, 25)
    first, second = events[: len(events) // 2], events[len(events) // 2 :]
    db = tmp_path / "killed.db"
    # A first part checkpointed normally, then a second part whose checkpoint is killed.
    await (await store(db, first)).close()
    dump = tmp_path / "events.pickle"
    dump.write_bytes(pickle.dumps(second))
    script = tmp_path / "kill.py"
    script.write_text(KILL_IN_CHECKPOINT)
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(script), str(db), str(dump)],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    with contextlib.closing(connect_log(db)) as conn:
        before = read_checkpoint(conn)
        assert before < conn.execute("SELECT max(id) FROM events").fetchone()[0]

    reopened = Writer(db)
    await reopened.open()
    assert reopened.replayed > 0
    await reopened.close()
    assert_state_is_the_fold_of_the_log(db)
    reference = tmp_path / "reference.db"
    await (await store(reference, events)).close()
    assert tables(db) == tables(reference)


async def test_a_second_writer_on_the_same_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "one.db"
    writer = Writer(db)
    await writer.open()
    try:
        with pytest.raises(DatabaseInUse, match=str(os.getpid())):
            await Writer(db).open()
    finally:
        await writer.close()
    again = Writer(db)  # the lock goes with the writer
    await again.open()
    await again.close()


async def test_a_version_1_database_is_upgraded_with_its_state(tmp_path: Path) -> None:
    from smswatch.store.sqlite import schema

    db = tmp_path / "v1.db"
    with sqlite3.connect(db, isolation_level=None) as conn:
        conn.executescript(schema.MIGRATIONS[0] + "PRAGMA user_version = 1;")
        conn.execute(
            "INSERT INTO events (dedupe_key, event_id, provider, event_type, state, message_id,"
            " recipient, occurred_at, received_at, payload) VALUES "
            "('lisoloo|a', 'a', 'lisoloo', 'sms.sent', 'sent', 'm1', '+1', 5, 6, '{}')"
        )
        conn.execute(
            "INSERT INTO recipients (message_id, recipient, provider, state, events) "
            "VALUES ('m1', '+1', 'lisoloo', 'sent', 1)"
        )
        conn.execute(
            "INSERT INTO messages (message_id, provider, n_sent, known_recipients, events) "
            "VALUES ('m1', 'lisoloo', 1, 1, 1)"
        )
    writer = Writer(db)
    await writer.open()
    assert writer.replayed == 0  # a version-1 file's tables were current
    await writer.close()
    async with await Reader.open(db) as r:
        assert [e.event_id for e in await r.timeline("m1", "+1")] == ["a"]
        assert (await r.totals()).funnel["sent"] == 1  # type: ignore[index]


def test_message_copies_are_equal_and_independent() -> None:
    from smswatch.core.domain import MessageState, State

    msg = MessageState("m", "lisoloo", 3, 3, 0.06, "USD", 5, "sms", "{}")
    msg.counts[State.SENT] = 2
    msg.known_recipients, msg.conflicts, msg.events = 2, 1, 7
    msg.queued_at, msg.first_at, msg.last_at = 1, 2, 3
    msg.first_received_at, msg.last_received_at, msg.finished_at = 4, 5, 6
    copy = copy_message(msg)
    assert copy == msg
    copy.counts[State.SENT] = 0
    assert msg.counts[State.SENT] == 2


@pytest.mark.slow
def test_kill_9_at_random_points_under_load_ends_in_the_truth(tmp_path: Path) -> None:
    """serve checkpointing twenty times a second, killed four times mid-campaign: checkpoints
    are often under way when the kill lands."""
    import random
    import time

    from tests.helpers import Server, acked_ids, export_records, free_port, start_simulate

    db, acked, truth = tmp_path / "r.db", tmp_path / "acked.jsonl", tmp_path / "truth.jsonl"
    port = free_port()
    options = ("--checkpoint-interval", "0.05", "--no-feed")
    server = Server(db, port, *options).start()
    sim = start_simulate(
        *("--url", server.url, "--messages", "30", "--recipients", "40", "--speed", "20"),
        *("--rate", "2000", "--seed", "5", "--acked", str(acked), "--truth", str(truth)),
        *("--max-attempts", "60", "-q"),
    )
    rng = random.Random(11)
    try:
        for _ in range(4):
            time.sleep(rng.uniform(0.3, 1.0))
            server.kill9()
            server = Server(db, port, *options).start()
        _, err = sim.communicate(timeout=240)
        assert sim.returncode == 0, err
    finally:
        server.stop()
        if sim.poll() is None:
            sim.kill()
    assert acked_ids(acked) <= {r["event_id"] for r in export_records(db)}
    assert_state_is_the_fold_of_the_log(db)
    with contextlib.closing(connect_log(db)) as conn:
        got = {
            (m, r): (s, e)
            for m, r, s, e in conn.execute(
                "SELECT message_id, recipient, state, error_code FROM recipients"
            )
        }
    want = {
        (t["message_id"], t["recipient"]): (t["state"], t["error_code"])
        for t in map(json.loads, truth.read_text().splitlines())
    }
    assert got == want


@pytest.mark.parametrize(("total", "known"), [(None, 3), (10, 3), (2, 3), (3, 3)])
def test_a_baseline_counts_as_the_message_does(total: int | None, known: int) -> None:
    from smswatch.core.domain import FUNNEL, MessageState, State
    from smswatch.store.state import baseline

    msg = MessageState("m", "lisoloo", total_recipients=total)
    msg.counts[State.SENT], msg.counts[State.FAILED] = known - 1, 1
    msg.known_recipients = known
    assert baseline(msg) == (tuple(msg.count(s) for s in FUNNEL), msg.finished, msg.conflicts)
