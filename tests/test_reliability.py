"""Reliability: a full disk, a duplicate-and-reorder storm, and property fuzzing of both adapters.

The long crash rounds are in tests/test_soak.py (`make soak`).
"""

from __future__ import annotations

import json
import random
import resource
import sqlite3
import subprocess
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from smswatch.core.domain import State
from smswatch.core.rejected import Rejected
from smswatch.devtools.simulate import Delivery, Sender, SimConfig, plan_campaign
from smswatch.gateways.lisoloo.webhook import STATES as LISOLOO_TYPES
from smswatch.gateways.lisoloo.webhook import Lisoloo
from smswatch.gateways.yebolink.webhook import STATES as YEBOLINK_TYPES
from smswatch.gateways.yebolink.webhook import YeboLink
from smswatch.live.engine import EngineConfig
from smswatch.live.thread import EngineThread
from smswatch.store.queries.rows import EVENT_COLUMNS, event_row, placeholders
from smswatch.store.sqlite.reader import Reader
from smswatch.store.sqlite.schema import migrate
from tests.conftest import Client, fill_until_503

# --- a full disk ------------------------------------------------------------------------------


class TinyDisk:
    """A folder whose disk can be made full and emptied again: a 4 MB tmpfs (a real ENOSPC)
    where this user may mount one, else a cap on the size of any file this process writes
    (RLIMIT_FSIZE; Python ignores SIGXFSZ, so writes past it fail as on a full disk)."""

    def __init__(self, path: Path, mounted: bool) -> None:
        self.path, self.mounted = path, mounted
        self._filler = path / "filler"
        self._limit = resource.getrlimit(resource.RLIMIT_FSIZE)
        # What SQLite reports: ENOSPC is SQLITE_FULL; a write past the cap (EFBIG) is an I/O
        # error, unless it was cut short, which SQLite also reports as a full disk.
        self.error = "full" if mounted else "disk"

    def fill(self) -> None:
        if self.mounted:
            self._filler.write_bytes(b"\0" * 3_000_000)  # leave well under a megabyte free
            return
        biggest = max(f.stat().st_size for f in self.path.iterdir())
        resource.setrlimit(resource.RLIMIT_FSIZE, (biggest + 1_000_000, self._limit[1]))

    def free(self) -> None:
        if self.mounted:
            self._filler.unlink()
        else:
            resource.setrlimit(resource.RLIMIT_FSIZE, self._limit)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[TinyDisk]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        warnings.warn(
            f"no tmpfs for the full-disk test ({done.stderr.strip()}): the disk is filled by"
            " a file-size cap (RLIMIT_FSIZE) instead",
            stacklevel=1,
        )
    disk = TinyDisk(mount, mounted=done.returncode == 0)
    try:
        yield disk
    finally:
        if disk.mounted:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        else:
            disk.free()


async def test_a_full_disk_answers_503_never_2xx_and_recovers_when_space_returns(
    tiny_disk: TinyDisk, make_engine, session: aiohttp.ClientSession
) -> None:
    eng = make_engine(db_path=tiny_disk.path / "full.db")
    await eng.start()
    try:
        client = Client(session, eng.listener.base_url)
        tiny_disk.fill()
        acked, refused = await fill_until_503(client, "d", 3000)
        assert refused, "the disk never filled up"
        assert eng.hub.store_error and tiny_disk.error in eng.hub.store_error
        async with session.get(eng.listener.base_url + "/healthz") as resp:
            assert (await resp.json())["status"] == "degraded"
        tiny_disk.free()  # space returns: the very next request is stored, nothing restarted
        status, _, answer = await client.post(
            "/webhooks/lisoloo",
            json.dumps(
                {
                    "event_id": refused[0],
                    "event_type": "sms.sent",
                    "message_id": "m",
                    "data": {"recipient_phone": "+0"},
                }
            ),
        )
        assert (status, answer["status"]) == (200, "stored")
        assert eng.hub.store_error is None
    finally:
        await eng.stop()
    async with await Reader.open(tiny_disk.path / "full.db") as r:
        stored = [e.event_id async for e in r.iter_events()]
    assert stored == [*acked, refused[0]]  # every 2xx is there; no 503'd event slipped in


# --- duplicate and reorder storm ---------------------------------------------------------------


@pytest.mark.both_stores
async def test_duplicate_and_reorder_storm_ends_in_the_simulators_truth(engine, reader) -> None:
    config = SimConfig(
        provider="mixed", messages=16, recipients=25, duplicate_rate=0.0, fail_rate=0.2, seed=77
    )
    plan = plan_campaign(config)
    rng = random.Random(3)
    storm = [d for d in plan.deliveries for _ in range(rng.randint(1, 4))]
    rng.shuffle(storm)
    sends = [Delivery(0.0, i, d.provider, d.body, d.label) for i, d in enumerate(storm)]
    sender = Sender(SimConfig(url=engine.listener.base_url, rate=100_000, concurrency=32))
    result = await sender.run(sends)
    assert (result.acked, result.rejected, result.dropped) == (len(sends), 0, 0)
    assert result.acked_duplicate == len(sends) - plan.events
    r = await reader()
    for t in plan.truth:
        rec = await r.recipient(t.message_id, t.recipient)
        assert (rec.state.value, rec.error_code, rec.carrier) == (t.state, t.error_code, t.carrier)
    assert len([e async for e in r.iter_events()]) == plan.events


# --- property fuzzing of the adapters ------------------------------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
data_keys = st.sampled_from(
    [
        "recipient_phone",
        "carrier",
        "sent_at",
        "delivered_at",
        "failed_at",
        "error_code",
        "error_message",
        "retryable",
        "segments",
        "total_recipients",
        "total_messages",
        "total_cost",
        "currency",
        "scheduled_at",
        "message_id",
        "channel",
        "recipient",
        "status",
        "credits_used",
        "metadata",
        "provider_message_id",
    ]
)
data_objects = st.dictionaries(data_keys | st.text(max_size=8), json_values, max_size=8)


def lisoloo_bodies() -> st.SearchStrategy[object]:
    envelope = st.fixed_dictionaries(
        {
            "event_type": st.sampled_from(list(LISOLOO_TYPES)) | json_values,
            "data": data_objects | json_values,
        },
        optional={
            "event_id": json_values,
            "timestamp": json_values | st.just("2026-11-23T10:00:00Z"),
            "message_id": json_values,
        },
    )
    return envelope | json_values


def yebolink_bodies() -> st.SearchStrategy[object]:
    envelope = st.fixed_dictionaries(
        {
            "event": st.sampled_from(list(YEBOLINK_TYPES)) | json_values,
            "data": data_objects | json_values,
        },
        optional={"timestamp": json_values | st.just("2026-11-23T10:00:00Z")},
    )
    return envelope | json_values


def storable(events: list) -> None:
    """Every normalized event must go into SQLite as is: nothing may poison a batch."""
    conn = sqlite3.connect(":memory:")
    migrate(conn)
    conn.executemany(
        f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({placeholders(14)}) ON CONFLICT DO NOTHING",
        [event_row(e if e.message_id else e.with_message_id("m")) for e in events],
    )
    conn.close()


def parses_or_rejects_400(adapter, body: bytes) -> None:
    try:
        events = adapter.parse(body, 1_800_000_000_000_000)
    except Rejected as exc:
        assert exc.status == 400 and exc.code and exc.detail
        return
    assert len(events) == 1
    ev = events[0]
    assert isinstance(ev.state, State)
    assert ev.payload == body.decode()
    storable(events)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lisoloo_bodies())
def test_lisoloo_any_json_is_stored_or_rejected_with_400(body: object) -> None:
    parses_or_rejects_400(Lisoloo(), json.dumps(body).encode())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(yebolink_bodies())
def test_yebolink_any_json_is_stored_or_rejected_with_400(body: object) -> None:
    parses_or_rejects_400(YeboLink(), json.dumps(body).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_stored_or_rejected_with_400(body: bytes) -> None:
    parses_or_rejects_400(Lisoloo(), body)
    parses_or_rejects_400(YeboLink(), body)
    # The authentication checks never raise anything but a 401 either.
    for adapter in (Lisoloo(("u", "p")), YeboLink("s")):
        headers = CIMultiDict(
            {
                "Authorization": body.decode("latin-1"),
                "X-YeboLink-Signature": body.decode("latin-1"),
            }
        )
        try:
            adapter.check_auth(headers, body)
        except Rejected as exc:
            assert exc.status == 401


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(lisoloo_bodies(), yebolink_bodies()))
def test_no_fuzzed_body_yields_a_500_over_http(http_target, body: object) -> None:
    url, session_post = http_target
    for path in ("/webhooks/lisoloo", "/webhooks/yebolink", "/webhooks"):
        status = session_post(url + path, json.dumps(body).encode())
        assert status in (200, 400), (path, body, status)


@pytest.fixture(scope="module")
def http_target(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Callable[[str, bytes], int]]]:
    """An engine with no credentials on loopback, so every body gets parsed."""
    db = tmp_path_factory.mktemp("fuzz") / "f.db"
    thread = EngineThread(EngineConfig(db_path=db, port=0)).start()

    def post(url: str, data: bytes) -> int:
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code

    yield thread.engine.listener.base_url, post
    thread.stop()
