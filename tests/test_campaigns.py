"""Campaign grouping (campaigns/, store/campaigns.py), through real HTTP and the real commands.

A YeboLink bulk send is one campaign by its metadata, a Lisoloo multi-send campaign one by the
run's `--campaign`; untagged traffic falls into send bursts per gateway; hand tags move messages
and keep them. All of it is stored (or derived from what is stored), so it survives a restart
and a state rebuild, and both store back ends answer the campaign queries alike.

Engines run in this process on 127.0.0.1:0 (their clock frozen where bursts are at stake), and
one test runs `smswatch serve` itself. The traffic comes from `smswatch simulate` or from
webhooks posted by hand, and the figures are read back through `smswatch campaign list|show|tag`
and `smswatch stats`, as a user would: the real command line, in this process (click's runner,
in a thread) or, where the process boundary matters (tagging beside a running serve, what
reaches a pipe or a terminal), in a child process. The last test compares the reader's campaign
queries on SQLite and PostgreSQL directly.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from click.testing import CliRunner

from smswatch.campaigns.rule import MAX_NAME, CampaignRule
from smswatch.campaigns.tally import campaign_view
from smswatch.cli import main
from smswatch.core.campaigns import BURST_GAP_US, Selector, burst_name
from smswatch.core.domain import FUNNEL, Event, MessageInfo, State
from smswatch.devtools.simulate import SimConfig, plan_campaign
from smswatch.live.engine import Engine
from smswatch.store import make_writer, open_reader, tag_messages
from smswatch.store.sqlite.schema import state_path
from smswatch.timefmt import iso
from tests.conftest import Client, running
from tests.helpers import Server, free_port, on_a_terminal, run

pytestmark = [pytest.mark.slow, pytest.mark.both_stores]

T0 = 1_795_400_000_000_000  # a fixed receive time (2026-11-22) for tests with a frozen clock
SECOND = 1_000_000
STATES = [s.value for s in FUNNEL]
# Fast and faithful: realistic delays divided by 200, duplicates and failures in the mix.
SIM = {"fail_rate": 0.3, "duplicate_rate": 0.1, "speed": 200.0}


class Clock:
    """The engine's clock (receive times), moved by hand."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


# --- traffic ------------------------------------------------------------------------------------


class Sent:
    """What one `smswatch simulate` run sent: its truth, and the metadata of each message."""

    def __init__(self, truth: list[dict[str, Any]], metadata: dict[str, dict[str, Any]]) -> None:
        self.truth = truth
        self.metadata = metadata

    @property
    def ids(self) -> list[str]:
        return sorted({t["message_id"] for t in self.truth})

    def counts(self) -> dict[str, int]:
        found = collections.Counter(t["state"] for t in self.truth)
        return {s: found[s] for s in STATES}

    def campaigns(self, key: str = "campaign") -> dict[str, list[str]]:
        """Message ids by the value of a metadata key, as the sender named them."""
        out: dict[str, list[str]] = collections.defaultdict(list)
        for mid in self.ids:
            out[self.metadata[mid][key]].append(mid)
        return dict(out)


def _fields(body: bytes) -> dict[str, Any]:
    """A planned body's fields: JSON, or a form (Twilio)."""
    try:
        return json.loads(body)
    except ValueError:
        return dict(parse_qsl(body.decode()))


async def simulate(
    url: str,
    tmp: Path,
    provider: str,
    messages: int,
    recipients: int,
    seed: int,
    process: bool = False,
) -> Sent:
    """`smswatch simulate` against `url`; the plan (the same seed plans the same campaign) says
    which metadata each message carried."""
    truth = tmp / f"truth-{provider}-{seed}.jsonl"
    result = await smswatch(
        "simulate",
        "--url",
        url,
        "--provider",
        provider,
        "--messages",
        str(messages),
        "--recipients",
        str(recipients),
        "--seed",
        str(seed),
        "--fail-rate",
        str(SIM["fail_rate"]),
        "--duplicate-rate",
        str(SIM["duplicate_rate"]),
        "--speed",
        str(SIM["speed"]),
        "--rate",
        "5000",
        "--concurrency",
        "16",
        "--truth",
        str(truth),
        "-q",
        process=process,
    )
    assert "0 rejected, 0 given up" in result.stderr, result.stderr
    rows = [json.loads(line) for line in truth.read_text().splitlines()]
    plan = plan_campaign(
        SimConfig(provider=provider, messages=messages, recipients=recipients, seed=seed, **SIM)
    )
    metadata: dict[str, dict[str, Any]] = {}
    for d in plan.deliveries:
        data = _fields(d.body).get("data", {})
        if "metadata" in data:
            metadata[data["message_id"]] = data["metadata"]
    assert {t["message_id"] for t in rows} == (
        set(metadata) if provider == "yebolink" else {t.message_id for t in plan.truth}
    ), "the plan is not the one simulate sent"
    return Sent(rows, metadata)


def lisoloo_body(n: int, kind: str, message_id: str, at: int, **data: Any) -> str:
    return json.dumps(
        {
            "event_id": f"00000000-0000-4000-8000-{n:012d}",
            "event_type": kind,
            "timestamp": iso(at),
            "message_id": message_id,
            "data": data,
        }
    )


def yebolink_body(kind: str, message_id: str, at: int, recipient: str, **data: Any) -> str:
    status = kind.removeprefix("message.")
    return json.dumps(
        {
            "event": kind,
            "timestamp": iso(at),
            "data": {
                "message_id": message_id,
                "channel": "sms",
                "recipient": recipient,
                "status": status,
                **data,
            },
        }
    )


async def post_ok(client: Client, provider: str, body: str) -> None:
    status, answer = await (
        client.lisoloo(body) if provider == "lisoloo" else client.yebolink(body)
    )
    assert status == 200, answer


# --- the commands -------------------------------------------------------------------------------


async def smswatch(
    *args: str, check: bool = True, process: bool = False
) -> subprocess.CompletedProcess[str]:
    """A `smswatch` command, off the loop the engine runs on: the real command line in this
    process (a child process costs half a second of imports, and there are many here), or in
    a child process of its own with `process`."""
    if process:
        return await asyncio.to_thread(run, *args, check=check)
    result = await asyncio.to_thread(CliRunner().invoke, main, list(args), catch_exceptions=False)
    if check:
        assert result.exit_code == 0, f"smswatch {' '.join(args)}: {result.stderr}"
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


async def campaign_list(db: Path | str, process: bool = False) -> dict[str, dict[str, Any]]:
    out = await smswatch("campaign", "list", "--db", str(db), "--json", process=process)
    listing = json.loads(out.stdout)
    names = [c["name"] for c in listing]
    assert len(names) == len(set(names)), f"two campaigns share a name: {names}"
    return {c["name"]: c for c in listing}


async def campaign_show(db: Path | str, name: str, process: bool = False) -> dict[str, Any]:
    out = await smswatch("campaign", "show", name, "--db", str(db), "--json", process=process)
    return json.loads(out.stdout)


async def tag(db: Path | str, *args: str, process: bool = False) -> str:
    return (await smswatch("campaign", "tag", *args, "--db", str(db), process=process)).stderr


def assert_listed(entry: dict[str, Any]) -> None:
    """docs/json.md's shape of `campaign list --json`."""
    assert {"name", "messages", "recipients", "counts"} <= set(entry)
    assert isinstance(entry["name"], str)
    assert isinstance(entry["messages"], int) and isinstance(entry["recipients"], int)
    assert list(entry["counts"]) == STATES
    assert all(isinstance(v, int) for v in entry["counts"].values())


ANALYSIS = {
    "sent_per_s",
    "delivered_per_s",
    "eta",
    "latency",
    "carriers",
    "countries",
    "failures",
    "stuck",
}


async def assert_show_and_stats_agree(
    db: Path | str, entry: dict[str, Any], ids: Sequence[str]
) -> dict[str, Any]:
    """`campaign show NAME --json` is the list's object plus the ids and the analysis, and
    `stats --campaign NAME --json` has the same figures."""
    name = entry["name"]
    shown = await campaign_show(db, name)
    assert shown["messages"] == sorted(ids)
    # Without --json too, as the README says: every id, one a line, after the figures.
    human = (await smswatch("campaign", "show", name, "--db", str(db))).stdout.splitlines()
    assert human[-len(ids) :] == sorted(ids)
    assert human[-len(ids) - 1] == f"{len(ids):,} message{'' if len(ids) == 1 else 's'}"
    for key, value in entry.items():
        if key != "messages":
            assert shown[key] == value, f"campaign show's {key!r} is not campaign list's"
    assert shown["message_count"] == entry["messages"] == len(ids)
    assert set(shown) >= ANALYSIS
    assert sum(f["count"] for f in shown["failures"]) == entry["counts"]["failed"]
    stats = json.loads(
        (await smswatch("stats", "--db", str(db), "--campaign", name, "--json")).stdout
    )
    assert stats["recipients"] == shown["counts"]
    assert stats["delivery_rate"] == shown["delivery_rate"]
    assert stats["messages"] == shown["message_count"]
    assert stats["in_flight"] == shown["in_flight"]
    assert stats["conflicts"] == shown["conflicts"]
    assert set(stats["events_by_provider"]) == set(shown["providers"])
    assert stats["latency"] == shown["latency"]
    assert sum(f["count"] for f in stats["failures"]) == shown["counts"]["failed"]
    return shown


def drop_state(db: Path | str) -> None:
    """SQLite: remove the state file, so that the next open folds it again from the log."""
    if isinstance(db, Path):
        state = state_path(db)
        for path in (state, Path(f"{state}-wal"), Path(f"{state}-shm")):
            path.unlink(missing_ok=True)
        assert not state.exists()


# --- 1. a YeboLink bulk send, by its metadata ----------------------------------------------------


async def test_a_yebolink_bulk_send_is_one_campaign_by_its_metadata(
    make_engine: Callable[..., Engine], db_path: Path | str, tmp_path: Path
) -> None:
    async with running(make_engine()) as engine:
        url = engine.listener.base_url
        bulk = await simulate(url, tmp_path, "yebolink", 1, 12, seed=11, process=True)
        other = await simulate(url, tmp_path, "lisoloo", 1, 3, seed=12)
        listed = await campaign_list(db_path, process=True)

    (name,) = bulk.campaigns()
    counts = bulk.counts()
    assert counts["delivered"] and counts["failed"], "the seed should plan both outcomes"
    entry = listed[name]
    assert_listed(entry)
    assert (entry["messages"], entry["recipients"]) == (12, 12)
    assert entry["counts"] == counts
    assert (entry["source"], entry["kind"], entry["providers"]) == (
        "metadata",
        "named",
        ["yebolink"],
    )
    assert (entry["in_flight"], entry["finished"], entry["progress"]) == (0, True, 1.0)
    assert entry["cost"] == {"credits": 12.0}

    # The untagged Lisoloo message is a send burst of its own, not part of the campaign.
    bursts = [c for c in listed.values() if c["kind"] == "burst"]
    assert len(bursts) == 1 and set(listed) == {name, bursts[0]["name"]}
    burst = bursts[0]
    assert_listed(burst)
    assert burst["name"].startswith("lisoloo-") and burst["source"] == "burst"
    assert (burst["messages"], burst["recipients"], burst["counts"]) == (1, 3, other.counts())

    shown = await assert_show_and_stats_agree(db_path, entry, bulk.ids)
    assert shown["eta"]["state"] == "done"
    assert [c["provider"] for c in shown["costs"]] == ["yebolink"]
    assert sum(c["recipients"] for c in shown["countries"]) == 12
    await assert_show_and_stats_agree(db_path, burst, other.ids)


# --- 1b. Twilio sends through a messaging service, by the gateway's own grouping ---------------


async def test_twilio_sends_through_a_messaging_service_are_a_campaign_each_by_its_sid(
    make_engine: Callable[..., Engine], db_path: Path | str, tmp_path: Path
) -> None:
    async with running(make_engine()) as engine:
        url = engine.listener.base_url
        sent = await simulate(url, tmp_path, "twilio", 6, 3, seed=1, process=True)
        listed = await campaign_list(db_path, process=True)

    plan = plan_campaign(SimConfig(provider="twilio", messages=6, recipients=3, seed=1, **SIM))
    by_service: dict[str | None, set[str]] = collections.defaultdict(set)
    for d in plan.deliveries:
        f = _fields(d.body)
        by_service[f.get("MessagingServiceSid")].add(f["MessageSid"])
    services = {k: v for k, v in by_service.items() if k is not None}
    assert services and None in by_service, "the seed should plan sends with and without one"
    for service, sids in services.items():
        entry = listed[service]
        assert_listed(entry)
        assert (entry["source"], entry["kind"], entry["providers"]) == (
            "gateway",
            "named",
            ["twilio"],
        )
        assert (entry["messages"], entry["recipients"]) == (len(sids), len(sids))
        truth = [t for t in sent.truth if t["message_id"] in sids]
        assert entry["counts"] == {s: sum(t["state"] == s for t in truth) for s in STATES}, (
            "the campaign's counts are not its messages' truth"
        )
    # Sends from a bare number have no grouping of their own: a send burst.
    bursts = [c for c in listed.values() if c["kind"] == "burst"]
    assert [b["providers"] for b in bursts] == [["twilio"]]
    assert bursts[0]["messages"] == len(by_service[None])


# --- 2. a Lisoloo multi-send campaign, by --campaign ---------------------------------------------


async def test_a_run_campaign_takes_every_new_message_and_sender_metadata_wins(
    make_engine: Callable[..., Engine],
    db_path: Path | str,
    tmp_path: Path,
    session: aiohttp.ClientSession,
) -> None:
    async with running(make_engine(campaign="spring-launch")) as engine:
        url = engine.listener.base_url
        multi = await simulate(url, tmp_path, "lisoloo", 3, 5, seed=21)
        bulk = await simulate(url, tmp_path, "yebolink", 1, 4, seed=22)
        # A YeboLink send that names no campaign joins the run's.
        client = Client(session, url)
        await post_ok(
            client, "yebolink", yebolink_body("message.queued", "plain-1", T0, "+27820000001")
        )
        listed = await campaign_list(db_path)

    (named,) = bulk.campaigns()
    assert set(listed) == {"spring-launch", named}, "nothing is left to a burst"
    run_entry = listed["spring-launch"]
    assert_listed(run_entry)
    assert (run_entry["messages"], run_entry["recipients"]) == (3 + 1, 3 * 5 + 1)
    expected = multi.counts()
    expected["queued"] += 1  # plain-1
    assert run_entry["counts"] == expected
    assert run_entry["source"] == "run"
    assert run_entry["providers"] == ["lisoloo", "yebolink"]
    assert (run_entry["in_flight"], run_entry["finished"]) == (1, False)

    by_metadata = listed[named]
    assert (by_metadata["source"], by_metadata["messages"]) == ("metadata", 4)
    assert by_metadata["counts"] == bulk.counts()

    await assert_show_and_stats_agree(db_path, run_entry, [*multi.ids, "plain-1"])
    await assert_show_and_stats_agree(db_path, by_metadata, bulk.ids)


async def test_the_run_campaign_can_start_and_end_while_the_engine_runs(
    make_engine: Callable[..., Engine],
    db_path: Path | str,
    session: aiohttp.ClientSession,
) -> None:
    """What the TUI's palette does: set the live rule's `active`, read by the writer per batch."""
    clock = Clock(T0)
    n = iter(range(1, 100))
    async with running(make_engine(clock=clock)) as engine:
        client = Client(session, engine.listener.base_url)

        async def lisoloo(kind: str, message_id: str, **data: Any) -> None:
            await post_ok(client, "lisoloo", lisoloo_body(next(n), kind, message_id, T0, **data))

        await lisoloo("sms.queued", "before", total_recipients=2, currency="USD", total_cost=0.04)
        engine.campaigns.active = "from-the-palette"
        await lisoloo("sms.sent", "during", recipient_phone="+243810000001")
        # A message first seen before the run started stays out of it.
        await lisoloo("sms.sent", "before", recipient_phone="+243810000002")
        engine.campaigns.active = None
        await lisoloo("sms.sent", "after", recipient_phone="+243810000003")
        listed = await campaign_list(db_path)

    burst = burst_name("lisoloo", T0)
    assert set(listed) == {"from-the-palette", burst}
    assert listed["from-the-palette"]["source"] == "run"
    assert (await campaign_show(db_path, "from-the-palette"))["messages"] == ["during"]
    assert (await campaign_show(db_path, burst))["messages"] == ["after", "before"]


# --- 4. untagged traffic: send bursts per gateway -------------------------------------------------


async def test_untagged_sends_group_into_bursts_per_gateway_with_stable_names(
    make_engine: Callable[..., Engine],
    db_path: Path | str,
    session: aiohttp.ClientSession,
) -> None:
    clock = Clock(T0)
    n = iter(range(1, 1000))

    async with running(make_engine(clock=clock)) as engine:
        client = Client(session, engine.listener.base_url)

        async def lisoloo(message_id: str, recipient: str, kind: str = "sms.sent") -> None:
            body = lisoloo_body(next(n), kind, message_id, clock.now, recipient_phone=recipient)
            await post_ok(client, "lisoloo", body)

        # One send: three messages within seconds of each other, and a YeboLink message (no
        # metadata) at the same time, which is another gateway's burst.
        await lisoloo("early-1", "+243810000001")
        clock.now += 20 * SECOND
        await lisoloo("early-2", "+243810000002")
        yebo = yebolink_body("message.queued", "yebo-1", clock.now, "+27820000009")
        await post_ok(client, "yebolink", yebo)
        clock.now += 80 * SECOND  # 100 s after the first: still the same send
        await lisoloo("early-3", "+243810000003")
        early_end = clock.now
        # The next send, more than the gap later.
        clock.now = early_end + BURST_GAP_US + SECOND
        late_start = clock.now
        await lisoloo("late-1", "+243820000001")
        await lisoloo("early-1", "+243810000001", "sms.delivered")  # a late report: no move

        first = await campaign_list(db_path)
        early = burst_name("lisoloo", T0)
        late = burst_name("lisoloo", late_start)
        yebolink = burst_name("yebolink", T0 + 20 * SECOND)
        assert set(first) == {early, late, yebolink}
        for entry in first.values():
            assert_listed(entry)
            assert (entry["kind"], entry["source"]) == ("burst", "burst")
        assert (first[early]["messages"], first[late]["messages"], first[yebolink]["messages"]) == (
            3,
            1,
            1,
        )
        assert first[early]["counts"] == {**dict.fromkeys(STATES, 0), "sent": 2, "delivered": 1}
        assert first[early]["providers"] == ["lisoloo"] and first[yebolink]["providers"] == [
            "yebolink"
        ]

        # Asked again: the same names. More of the latest send joins its burst, whose name
        # (its first message's time) stays.
        assert await campaign_list(db_path) == first
        clock.now += 30 * SECOND
        await lisoloo("late-2", "+243820000002")
        again = await campaign_list(db_path)
        assert set(again) == set(first)
        assert again[late]["messages"] == 2
        assert again[early] == first[early]

        await assert_show_and_stats_agree(db_path, again[late], ["late-1", "late-2"])
        await assert_show_and_stats_agree(db_path, again[early], ["early-1", "early-2", "early-3"])
        await assert_show_and_stats_agree(db_path, again[yebolink], ["yebo-1"])

    missing = await smswatch(
        "campaign", "show", "lisoloo-20000101-000000", "--db", str(db_path), check=False
    )
    assert missing.returncode == 1 and "no campaign" in missing.stderr


# --- 5. restarts and rebuilds ---------------------------------------------------------------------


async def test_grouping_survives_a_restart_and_a_rebuild_and_the_run_campaign_ends_with_the_run(
    make_engine: Callable[..., Engine], db_path: Path | str, tmp_path: Path
) -> None:
    clock = Clock(T0)
    # Before the campaign: an untagged send (a burst).
    async with running(make_engine(clock=clock)) as engine:
        before = await simulate(engine.listener.base_url, tmp_path, "lisoloo", 1, 2, seed=30)
    clock.now += 10 * SECOND
    async with running(make_engine(clock=clock, campaign="launch")) as engine:
        launch = await simulate(engine.listener.base_url, tmp_path, "lisoloo", 2, 4, seed=31)
        bulk = await simulate(engine.listener.base_url, tmp_path, "yebolink", 1, 3, seed=32)
    listed = await campaign_list(db_path)
    (named,) = bulk.campaigns()
    burst = burst_name("lisoloo", T0)
    assert set(listed) == {"launch", named, burst}
    assert listed["launch"]["messages"] == 2 and listed[burst]["messages"] == 1

    drop_state(db_path)  # SQLite: the state is folded again from the log at the next open
    clock.now += 10 * SECOND
    async with running(make_engine(clock=clock)) as engine:
        after = await simulate(engine.listener.base_url, tmp_path, "lisoloo", 1, 3, seed=33)
        relisted = await campaign_list(db_path)
    if isinstance(db_path, Path):
        assert state_path(db_path).exists(), "the state was rebuilt"

    assert relisted["launch"] == listed["launch"]
    assert relisted[named] == listed[named]
    # The new message is not in the last run's campaign: it joins the untagged burst of its
    # gateway (within the gap of the first send), whose name stays.
    assert set(relisted) == {"launch", named, burst}
    assert relisted[burst]["messages"] == 2
    assert (await campaign_show(db_path, "launch"))["messages"] == launch.ids
    assert (await campaign_show(db_path, named))["messages"] == bulk.ids
    assert (await campaign_show(db_path, burst))["messages"] == sorted([*before.ids, *after.ids])


# --- 6. tagging by hand, beside a running engine -------------------------------------------------


async def test_tagging_by_hand_moves_messages_and_they_keep_the_tag(
    make_engine: Callable[..., Engine],
    db_path: Path | str,
    tmp_path: Path,
    session: aiohttp.ClientSession,
) -> None:
    db = str(db_path)
    async with running(make_engine()) as engine:
        url = engine.listener.base_url
        untagged = await simulate(url, tmp_path, "lisoloo", 3, 3, seed=41)
        bulk = await simulate(url, tmp_path, "yebolink", 1, 2, seed=42)
        (named,) = bulk.campaigns()
        m1, m2, m3 = untagged.ids
        y1, y2 = bulk.ids
        listed = await campaign_list(db_path)
        (burst,) = (n for n, c in listed.items() if c["kind"] == "burst")
        assert listed[burst]["messages"] == 3

        # Ids or unique prefixes, while the engine holds the database.
        assert "tagged 2 messages as vip" in await tag(db, "vip", m1[:12], m2)
        listed = await campaign_list(db_path)
        assert listed["vip"]["messages"] == 2 and listed["vip"]["source"] == "tag"
        (rest,) = (n for n, c in listed.items() if c["kind"] == "burst")
        assert (await campaign_show(db_path, rest))["messages"] == [m3]

        # A whole burst gets a name.
        assert "tagged 1 message as stragglers" in await tag(db, "stragglers", "--from", rest)
        # A message named by its sender's metadata can be moved too.
        assert "tagged 1 message as vip" in await tag(db, "vip", y1)
        listed = await campaign_list(db_path)
        assert set(listed) == {"vip", "stragglers", named}
        assert (await campaign_show(db_path, "vip"))["messages"] == sorted([m1, m2, y1])
        assert (await campaign_show(db_path, "stragglers"))["messages"] == [m3]
        assert (await campaign_show(db_path, named))["messages"] == [y2]

        # Later events of tagged messages (y1's still naming its metadata campaign) leave the
        # tags where they are; the engine kept taking webhooks all along.
        client = Client(session, url)
        late = lisoloo_body(99, "sms.sent", m1, T0, recipient_phone="+243990000099")
        await post_ok(client, "lisoloo", late)
        (phone,) = {t["recipient"] for t in bulk.truth if t["message_id"] == y1}
        resent = yebolink_body("message.sent", y1, T0, phone, metadata=bulk.metadata[y1])
        await post_ok(client, "yebolink", resent)
        vip = (await campaign_list(db_path))["vip"]
        assert vip["messages"] == 3 and vip["recipients"] == listed["vip"]["recipients"] + 1

    # Mistakes are one line each, and change nothing.
    for args, code, text in (
        (["vip", "no-such-message"], 1, "no message"),
        (["vip"], 2, "name the messages"),
        (["   ", m1], 2, "needs a name"),
        (["vip", "--from", "no-such-campaign"], 1, "no campaign"),
    ):
        result = await smswatch("campaign", "tag", *args, "--db", db, check=False)
        assert result.returncode == code and text in result.stderr, result.stderr
        assert "Traceback" not in result.stderr

    # After a restart (SQLite: and a rebuild of the state) the tags are still there.
    drop_state(db_path)
    async with running(make_engine()):
        relisted = await campaign_list(db_path)
    assert set(relisted) == {"vip", "stragglers", named}
    assert (await campaign_show(db_path, "vip"))["messages"] == sorted([m1, m2, y1])


async def test_serve_takes_the_campaign_flags_and_a_tag_while_it_runs(tmp_path: Path) -> None:
    """`serve --campaign` and `--campaign-keys` as typed, and `campaign tag` beside the serve
    process that holds the database's writer lock; a restart without the flags keeps it all."""
    db = tmp_path / "serve.db"
    flags = ("--no-feed", "--campaign", "  cli-run  ", "--campaign-keys", " batch ,")
    server = Server(db, free_port(), *flags).start()
    try:
        bulk = await simulate(server.url, tmp_path, "yebolink", 1, 3, seed=61, process=True)
        multi = await simulate(server.url, tmp_path, "lisoloo", 2, 2, seed=62, process=True)
        (batch,) = bulk.campaigns("batch")
        assert set(await campaign_list(db)) == {batch, "cli-run"}
        first, second = multi.ids
        assert "tagged 1 message as by-hand" in await tag(db, "by-hand", first, process=True)
        more = await simulate(server.url, tmp_path, "lisoloo", 1, 2, seed=63)
        listed = await campaign_list(db)
    finally:
        log = server.stop()
    assert "Traceback" not in log

    assert set(listed) == {batch, "cli-run", "by-hand"}
    assert (await campaign_show(db, batch))["messages"] == bulk.ids
    assert (await campaign_show(db, "cli-run"))["messages"] == sorted([second, *more.ids])
    assert (await campaign_show(db, "by-hand"))["messages"] == [first]
    assert listed["cli-run"]["counts"]["delivered"] + listed["cli-run"]["counts"]["failed"] == 4

    drop_state(db)
    server = Server(db, free_port(), "--no-feed").start()
    try:
        assert await campaign_list(db) == listed
    finally:
        server.stop()


# --- 7. metadata keys, and hostile names ----------------------------------------------------------


async def test_custom_metadata_keys_group_by_that_key_and_blank_values_are_ignored(
    make_engine: Callable[..., Engine],
    db_path: Path | str,
    tmp_path: Path,
    session: aiohttp.ClientSession,
) -> None:
    clock = Clock(T0)
    async with running(make_engine(clock=clock, campaign_keys=("batch", "campaign"))) as engine:
        url = engine.listener.base_url
        bulks = await simulate(url, tmp_path, "yebolink", 2, 3, seed=51)
        client = Client(session, url)
        odd = {
            "blank-then-campaign": {"batch": "", "campaign": "from-the-second-key"},
            "number": {"batch": 42},
            "spaces": {"batch": "   "},
            "null": {"batch": None},
            "object": {"batch": {"name": "x"}},
            "boolean": {"batch": True},
            "not-an-object": "batch=7",
            "other-keys-only": {"user_id": "10001"},
        }
        for i, (mid, metadata) in enumerate(odd.items()):
            body = yebolink_body("message.queued", mid, T0, f"+2782000{i:04d}", metadata=metadata)
            await post_ok(client, "yebolink", body)
        listed = await campaign_list(db_path)

    batches = bulks.campaigns("batch")
    assert len(batches) == 2 and all(len(ids) == 3 for ids in batches.values())
    burst = burst_name("yebolink", T0)
    assert set(listed) == {*batches, "from-the-second-key", "42", burst}
    for batch, ids in batches.items():
        assert listed[batch]["source"] == "metadata"
        assert (await campaign_show(db_path, batch))["messages"] == sorted(ids)
    assert (await campaign_show(db_path, "from-the-second-key"))["messages"] == [
        "blank-then-campaign"
    ]
    assert (await campaign_show(db_path, "42"))["messages"] == ["number"]
    assert (await campaign_show(db_path, burst))["messages"] == sorted(
        ["spaces", "null", "object", "boolean", "not-an-object", "other-keys-only"]
    )


HOSTILE = {
    "long": "L" * 500,
    "escape": "esc\x1b[2J\x07bell\x9b31m",
    "markup": "[bold red]markup[/bold red]",
}


async def test_hostile_campaign_names_are_bounded_and_printed_literally(
    make_engine: Callable[..., Engine],
    db_path: Path | str,
    session: aiohttp.ClientSession,
) -> None:
    async with running(make_engine()) as engine:
        client = Client(session, engine.listener.base_url)
        for i, (mid, name) in enumerate(HOSTILE.items()):
            body = yebolink_body(
                "message.queued", mid, T0, f"+2782100{i:04d}", metadata={"campaign": name}
            )
            await post_ok(client, "yebolink", body)
        # Metadata too big to keep whole (the adapter cuts it to fit its column) still names
        # its campaign.
        big = {"campaign": "roomy", "template_vars": "v" * 5000}
        body = yebolink_body("message.queued", "big", T0, "+27821009999", metadata=big)
        await post_ok(client, "yebolink", body)
        listed = await campaign_list(db_path)
    # Read in child processes: to a pipe, and to a terminal (where Rich adds its colours).
    table = (await smswatch("campaign", "list", "--db", str(db_path), process=True)).stdout
    markup = HOSTILE["markup"]
    shown = (await smswatch("campaign", "show", markup, "--db", str(db_path), process=True)).stdout
    tty = await asyncio.to_thread(on_a_terminal, "campaign", "list", "--db", str(db_path))
    tty_json = await asyncio.to_thread(
        on_a_terminal, "campaign", "list", "--json", "--db", str(db_path)
    )

    bounded = {mid: name[:MAX_NAME] for mid, name in HOSTILE.items()}
    assert set(listed) == {*bounded.values(), "roomy"}
    assert len(bounded["long"]) == MAX_NAME
    for mid, name in bounded.items():
        assert listed[name]["messages"] == 1
        assert (await campaign_show(db_path, name))["messages"] == [mid]
    assert (await campaign_show(db_path, "roomy"))["messages"] == ["big"]

    tty = re.sub("\x1b\\[[0-9;]*m", "", tty)  # the colours Rich asks for itself
    for out in (table, shown, tty, tty_json):
        assert not {"\x1b", "\x07", "\x9b"} & set(out), "a terminal control reached the output"
    for out in (table, shown, tty):
        assert "[bold red]markup[/bold red]" in out
    for out in (table, tty):
        assert "esc␛[2J" in out
        assert "L" * 30 in out and "L" * 60 not in out  # bounded on screen too
    assert {c["name"] for c in json.loads(tty_json)} == set(listed)


# --- 8. both back ends answer the campaign queries alike ------------------------------------------


def _event(
    n: int,
    provider: str,
    message_id: str,
    state: State,
    received: int,
    recipient: str | None = None,
    **kw: Any,
) -> Event:
    return Event(
        provider=provider,
        event_id=f"e{n}",
        dedupe_key=f"{provider}|e{n}",
        event_type=f"x.{state.value}",
        state=state,
        message_id=message_id,
        recipient=recipient,
        occurred_at=received - 500_000,
        received_at=received,
        payload=json.dumps({"n": n}),
        **kw,
    )


async def _write_traffic(db: Path | str) -> None:
    """The same events, in the same batches, whatever the back end."""
    rule = CampaignRule()
    writer = make_writer(db, campaigns=rule)
    await writer.open()
    n = iter(range(1, 10_000))
    try:
        # A YeboLink bulk send named by metadata; one of its messages names none.
        for i in range(4):
            meta = json.dumps({"campaign": "promo"} if i < 3 else {"campaign": ""})
            info = MessageInfo(
                total_recipients=1, total_cost=1.0, currency="credits", metadata=meta
            )
            at = T0 + i * SECOND
            mid, phone = f"y{i}", f"+2782{i:07d}"
            events = [
                _event(next(n), "yebolink", mid, State.QUEUED, at, phone, message_info=info),
                _event(next(n), "yebolink", mid, State.SENT, at + SECOND, phone, message_info=info),
            ]
            final = State.FAILED if i == 1 else State.DELIVERED
            extra = {"error_code": "30003", "error_message": "Unreachable"} if i == 1 else {}
            events.append(_event(next(n), "yebolink", mid, final, at + 3 * SECOND, phone, **extra))
            await writer.submit(events)
        # A Lisoloo message while a run campaign is on, with totals and cost.
        rule.active = "run-a"
        info = MessageInfo(total_recipients=4, total_messages=4, total_cost=0.08, currency="USD")
        events = [_event(next(n), "lisoloo", "l1", State.QUEUED, T0, message_info=info)]
        for j, (state, carrier) in enumerate(
            [
                (State.DELIVERED, "vodacom_drc"),
                (State.DELIVERED, "airtel_drc"),
                (State.FAILED, "airtel_drc"),
            ]
        ):
            phone = f"+24381{j:07d}"
            events.append(
                _event(next(n), "lisoloo", "l1", State.SENT, T0 + SECOND, phone, carrier=carrier)
            )
            extra = (
                {"error_code": "1502", "error_message": "Number unreachable", "retryable": False}
                if state is State.FAILED
                else {}
            )
            events.append(
                _event(
                    next(n),
                    "lisoloo",
                    "l1",
                    state,
                    T0 + (4 + j) * SECOND,
                    phone,
                    carrier=carrier,
                    **extra,
                )
            )
        await writer.submit(events)
        # The run ends; two untagged sends, more than the gap apart.
        rule.active = None
        for k, at in enumerate(
            (T0 + 10 * SECOND, T0 + 40 * SECOND, T0 + 40 * SECOND + BURST_GAP_US + SECOND)
        ):
            mid = f"l{k + 2}"
            state = State.FAILED if k == 1 else State.DELIVERED
            extra = {"error_code": "1503", "retryable": True} if k == 1 else {}
            await writer.submit(
                [
                    _event(
                        next(n),
                        "lisoloo",
                        mid,
                        State.SENT,
                        at,
                        "+243900000001",
                        carrier="orange_drc",
                    ),
                    _event(
                        next(n),
                        "lisoloo",
                        mid,
                        state,
                        at + 2 * SECOND,
                        "+243900000001",
                        carrier="orange_drc",
                        **extra,
                    ),
                ]
            )
    finally:
        await writer.close()
    await tag_messages(db, "hand", ["l3"], T0 + 60 * SECOND)


async def _answers(db: Path | str) -> dict[str, Any]:
    """Every campaign query the CLI, the TUI and the report use, for every campaign."""
    out: dict[str, Any] = {}
    async with await open_reader(db, current=True) as r:
        found = await r.campaigns()
        out["campaigns"] = found
        deadlines = {State.SENT: SECOND, State.QUEUED: SECOND}
        for s in found:
            sel = s.selector
            assert await r.campaign(s.name) == s
            out[s.name] = {
                "messages": sorted(m.message_id for m in await r.campaign_messages(sel)),
                "failed_messages": sorted(
                    m.message_id for m in await r.campaign_messages(sel, failed_only=True)
                ),
                "costs": await r.costs(sel),
                # What the campaign view's carriers, countries and latencies are computed from.
                "recipient_rows": sorted(await r.recipient_rows_of(sel), key=str),
                "message_rows": sorted(await r.message_rows_of(sel), key=str),
                "series": [
                    await r.series(sel, column, T0 - 10 * SECOND, 5 * SECOND, 60)
                    for column in ("queued_at", "sent_at", "delivered_at", "failed_at", "state_at")
                ],
                "suppression": await r.suppression(sel),
                "totals": await r.totals(campaign=sel),
                "failures": await r.failures(campaign=sel),
                "latency": await r.latency(campaign=sel),
                "stuck": await r.count_stuck(deadlines, T0 + 10**9, campaign=sel),
            }
        out["of"] = {m: await r.campaign_of(m) for m in ("y0", "y3", "l1", "l2", "l3", "nope")}
        out["everything"] = (await r.totals(), await r.costs(None), await r.suppression(None))
    return out


async def test_both_back_ends_answer_every_campaign_query_alike(
    tmp_path: Path, pg_url: str
) -> None:
    sqlite_db = tmp_path / "c.db"
    for db in (sqlite_db, pg_url):
        await _write_traffic(db)
    lite, pg = await _answers(sqlite_db), await _answers(pg_url)

    early, late = (
        burst_name("lisoloo", T0 + 10 * SECOND),
        burst_name("lisoloo", T0 + 40 * SECOND + BURST_GAP_US + SECOND),
    )
    yebo = burst_name("yebolink", T0 + 3 * SECOND)
    summaries = {s.name: s for s in lite["campaigns"]}
    assert set(summaries) == {"promo", "run-a", "hand", early, late, yebo}
    assert summaries["promo"].source == "metadata" and summaries["promo"].messages == 3
    assert summaries["run-a"].source == "run"
    assert (summaries["run-a"].recipients, summaries["run-a"].counts[State.QUEUED]) == (4, 1)
    assert summaries["run-a"].cost == {"USD": 0.08}
    assert summaries["hand"].source == "tag"
    assert summaries[early].selector == Selector(
        early, "burst", "lisoloo", T0 + 10 * SECOND, T0 + 10 * SECOND
    )
    assert lite[early]["messages"] == ["l2"] and lite["hand"]["messages"] == ["l3"]
    assert lite[late]["messages"] == ["l4"] and lite[yebo]["messages"] == ["y3"]
    assert lite["of"] == {
        "y0": "promo",
        "y3": None,
        "l1": "run-a",
        "l2": None,
        "l3": "hand",
        "nope": None,
    }
    async with await open_reader(sqlite_db, current=True) as r:
        view = await campaign_view(r, summaries["run-a"], T0 + 10**9, {})
    assert sorted((row.key, row.delivered, row.failed) for row in view.carriers) == [
        ("airtel_drc", 1, 1),
        ("vodacom_drc", 1, 0),
    ]
    assert [(c.currency, c.spent, c.delivered) for c in lite["promo"]["costs"]] == [
        ("credits", 3.0, 2)
    ]
    assert lite["run-a"]["costs"][0].wasted == pytest.approx(0.02)
    assert [row[0] for row in lite["run-a"]["suppression"]] == ["+243810000002"]
    assert lite["promo"]["totals"].funnel[State.DELIVERED] == 2

    assert pg == lite


@pytest.mark.parametrize(
    ("minutes", "label", "tick"),
    [
        (3, "event time, UTC (hh:mm:ss), 27 May 2026", r"10:1\d:\d\d"),
        (150, "event time, UTC (hh:mm), 27 May 2026", r"1[0-2]:\d\d"),
        (
            3 * 24 * 60,
            "event time, UTC (day month hh:mm), 27 May 2026 – 30 May 2026",
            r"\d\d May \d\d:\d\d",
        ),
    ],
)
def test_the_delivery_chart_time_axis_reads_whole_clock_times(
    minutes: int, label: str, tick: str
) -> None:
    """Every tick a whole time (not ConciseDateFormatter's bare `05 10 15` seconds), and the
    axis label names the zone, the format and the day."""
    import re

    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    from smswatch.campaigns.report_charts import time_axis
    from smswatch.timefmt import from_us

    start = 1_779_876_900_000_000  # 2026-05-27T10:15:00Z
    end = start + minutes * 60_000_000
    ax = Figure().add_subplot()
    ends = [from_us(t).replace(tzinfo=None) for t in (start, end)]
    ax.plot(ends, [0, 1])
    time_axis(ax, start, end)
    ticks = [t for t in ax.xaxis.get_major_locator()() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    labels = ax.xaxis.get_major_formatter().format_ticks(ticks)
    assert ax.get_xlabel() == label
    assert len(labels) >= 3, labels
    assert all(re.fullmatch(tick, text) for text in labels), labels
    assert len(set(labels)) == len(labels), labels  # no two ticks read the same
    assert mdates.num2date(ticks[0]).year == 2026
