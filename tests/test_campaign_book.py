"""The campaign book (campaigns/book.py) keeps campaigns in memory and catches up from the
store a few rows at a time; whatever happened in between, it must answer what the store
answers when asked afresh: the same summaries, and the same campaign views."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from smswatch.campaigns.tally import campaign_view
from smswatch.config import stuck_deadlines
from smswatch.live.datasource import StoreQueries
from smswatch.store import open_reader, tag_messages
from smswatch.timefmt import now_us
from tests.conftest import running
from tests.helpers import run

pytestmark = [pytest.mark.both_stores, pytest.mark.timeout(240)]

DEADLINES = stuck_deadlines({})


def simulate(url: str, provider: str, messages: int, recipients: int, seed: int) -> None:
    run(
        "simulate",
        "--url",
        url,
        "--provider",
        provider,
        "--messages",
        str(messages),
        "--recipients",
        str(recipients),
        "--rate",
        "4000",
        "--speed",
        "20",
        "--fail-rate",
        "0.2",
        "--seed",
        str(seed),
        "--quiet",
    )


async def agree(queries: StoreQueries, db: Path | str, engine: Any) -> list[str]:
    """The book's answers against the store's, asked afresh (after the state caught up)."""
    await asyncio.wrap_future(engine.writer.settle())
    book = await queries.campaigns()
    reader = await open_reader(db, current=True)
    try:
        fresh = await reader.campaigns()
        assert [s.name for s in sorted(book, key=lambda s: s.name)] == sorted(s.name for s in fresh)
        for mine_s, theirs_s in zip(
            sorted(book, key=lambda s: s.name), sorted(fresh, key=lambda s: s.name), strict=True
        ):
            assert mine_s == theirs_s, f"{mine_s}\n{theirs_s}"
        now = now_us()
        for s in fresh:
            mine = await queries.campaign(s.name, DEADLINES, now)
            theirs = await campaign_view(reader, s, now, DEADLINES)
            assert mine == theirs, s.name
        return [s.name for s in fresh]
    finally:
        await reader.close()


async def test_book_follows_sends_tags_and_restarts(make_engine: Any, db_path: Path | str) -> None:
    engine = make_engine(campaign="payday")
    async with running(engine):
        url = engine.listener.base_url
        queries = StoreQueries(
            await open_reader(db_path), lambda: asyncio.wrap_future(engine.writer.settle())
        )
        try:
            assert await queries.campaigns() == []
            # A Lisoloo multi-send joins the run's campaign; a YeboLink bulk send its metadata's.
            await asyncio.to_thread(simulate, url, "lisoloo", 3, 40, 1)
            names = await agree(queries, db_path, engine)
            assert "payday" in names
            # Watch the campaigns (their recipient rows are kept), then more traffic.
            for name in names:
                assert await queries.campaign(name, DEADLINES, now_us()) is not None
            await asyncio.to_thread(simulate, url, "yebolink", 2, 30, 2)
            names = await agree(queries, db_path, engine)
            assert len(names) >= 2
            # Untagged traffic makes a burst; then part of it is tagged by hand.
            engine.campaigns.active = None
            await asyncio.to_thread(simulate, url, "lisoloo", 2, 20, 3)
            names = await agree(queries, db_path, engine)
            bursts = [n for n in names if n.startswith("lisoloo-")]
            assert len(bursts) == 1
            burst = await (await queries.settled()).campaign(bursts[0])
            assert burst is not None
            ids = [m.message_id for m in await queries.campaign_messages(bursts[0])]
            await tag_messages(db_path, "renamed", ids[:1], now_us())
            names = await agree(queries, db_path, engine)
            assert "renamed" in names
            # The same book keeps up with a message that moves between named campaigns.
            await tag_messages(db_path, "payday", ids[:1], now_us())
            names = await agree(queries, db_path, engine)
            assert "renamed" not in names
        finally:
            if queries._reader is not None:
                await queries._reader.close()
