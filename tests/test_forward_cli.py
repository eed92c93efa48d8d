"""`smswatch forward status` and `smswatch forward retry`, run as the real command against a real
SQLite log and its outbox, built by a real engine forwarding over HTTP to an app that answers
500 and 404 (one attempt each: `max_attempts=1`, so they end failed at once)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from smswatch.cli.forward import parse_duration
from smswatch.config import Credentials
from smswatch.forward.config import parse_targets
from smswatch.live.engine import Engine, EngineConfig
from smswatch.store.sqlite.outbox import outbox_path
from tests.conftest import BASIC, SECRET, Client, running
from tests.helpers import free_port, run
from tests.test_forward import App, forward_config, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

# An answer no terminal may see as it is: an escape sequence and a zero-width space.
HOSTILE = '{"error": "db locked \x1b[2J\u200b"}'
PASSWORD = "pa55word"


@dataclass
class Scripted(App):
    """The team's app, answering by event id: `fail_with[id]`, else 200; 200 to all once
    `healthy`."""

    fail_with: dict[str, int] = field(default_factory=dict)
    healthy: bool = False

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event_id = request.headers.get("X-Smswatch-Event-Id", "")
        self.received[event_id].append({"body": body, "headers": dict(request.headers)})
        status = 200 if self.healthy else self.fail_with.get(event_id, 200)
        self.answers.append(status)
        if status != 200:
            return web.Response(status=status, text=HOSTILE)
        return web.json_response({"ok": True})

    def url_with_password(self) -> str:
        return f"http://hook:{PASSWORD}@127.0.0.1:{self.port}/hooks/sms"

    def count(self, event_id: str) -> int:
        return len(self.received.get(event_id, ()))

    def counts(self) -> dict[str, int]:
        return {e: len(r) for e, r in self.received.items()}

    def sent_again(self, event_ids: list[str], before: dict[str, int]) -> bool:
        """Each event reached the app again since `before` (at least once: maybe twice)."""
        return all(self.count(e) > before.get(e, 0) for e in event_ids)


def lisoloo(event_id: str) -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "event_type": "sms.sent",
            "message_id": "fwd-cli",
            "data": {"recipient_phone": "+243800000001"},
        }
    ).encode()


def engine(db: Path | str, *targets: str) -> Engine:
    """An engine forwarding to `targets` (`[GATEWAY=]URL`), one attempt per forward. No Basic
    auth of its own: a target URL with a password carries that one."""
    forward = forward_config(
        "", targets=parse_targets(list(targets)), basic_auth=None, max_attempts=1
    )
    config = EngineConfig(
        db_path=db, port=0, hub_tick=0.05, credentials=Credentials(BASIC, SECRET), forward=forward
    )
    return Engine(config)


async def post(session: aiohttp.ClientSession, eng: Engine, *event_ids: str) -> None:
    client = Client(session, eng.listener.base_url)
    for event_id in event_ids:
        status, _ = await client.lisoloo(lisoloo(event_id), BASIC)
        assert status == 200


def counts(eng: Engine) -> list[tuple[int, int, int]]:
    """(backlog, failed, delivered) of each target, as the running engine sees it, sorted."""
    return sorted((t.backlog, t.failed, t.delivered) for t in eng.hub.forwarding)


async def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run, "forward", *args, check=check, timeout=60)


async def status_json(db: Path | str) -> list[dict[str, Any]]:
    out = (await cli("status", "--db", str(db), "--json")).stdout
    assert PASSWORD not in out
    records: list[dict[str, Any]] = json.loads(out)
    return records


async def test_status_reports_failures_then_retry_sends_them_and_since_resends_delivered(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    ok = [f"ok-{i}" for i in range(5)]
    bad = {"e500-0": 500, "e500-1": 500, "e500-2": 500, "e404-0": 404, "e404-1": 404}
    app = await Scripted(fail_with={**bad, "last-500": 500}).start()
    db = tmp_path / "fw.db"
    try:
        async with running(engine(db, app.url_with_password())) as eng:
            await post(session, eng, *ok, *bad)
            await wait_until(lambda: counts(eng) == [(0, 5, 5)], within=20)
            await post(session, eng, "last-500")  # so that the last attempt is known
            await wait_until(lambda: counts(eng) == [(0, 6, 5)], within=20)

        [target] = await status_json(db)
        masked = f"http://hook:***@127.0.0.1:{app.port}/hooks/sms"
        assert target["target"] == masked
        assert (target["backlog"], target["delivered"], target["failed"]) == (0, 5, 6)
        assert target["failures_by_status"] == [
            {"status": 500, "count": 4},
            {"status": 404, "count": 2},
        ]
        last = target["last_attempt"]
        assert (last["status"], last["error"]) == (500, HOSTILE)
        assert last["at"].endswith("Z") and isinstance(last["ms"], int)
        assert target["failing_since"] is not None
        assert target["recent_seconds"] == 5 and isinstance(target["delivered_recent"], int)

        # The human output: the password masked, the app's answer drawn inert.
        text = (await cli("status", "--db", str(db))).stdout
        assert masked in text and PASSWORD not in text
        assert "\x1b" not in text and "\u200b" not in text and "␛[2J\\u200b" in text
        assert "500 ×4, 404 ×2" in text

        # The app is fixed; with a forwarder running, `retry` (--failed by default) sends the
        # failed ones again, within about a second, and only them.
        app.healthy = True
        failed = [*bad, "last-500"]
        before = app.counts()
        async with running(engine(db, app.url_with_password())) as eng:
            result = await cli("retry", "--db", str(db))
            assert result.stdout.startswith("queued 6 failed forwards to be sent again\n")
            assert "within about a second" in result.stdout
            await wait_until(lambda: app.sent_again(failed, before), within=5)
            await wait_until(lambda: counts(eng) == [(0, 0, 11)], within=5)
            assert {e: app.count(e) for e in ok} == {e: before[e] for e in ok}  # not queued

            nothing = await cli("retry", "--db", str(db), "--failed")
            assert nothing.stdout.startswith("nothing to send again: no failed forwards")

            # --since: every event received since then, delivered ones too.
            before = app.counts()
            result = await cli("retry", "--db", str(db), "--since", "1h")
            assert "queued 11 forwards of events received in the last 1h00m" in result.stdout
            await wait_until(lambda: app.sent_again([*ok, *failed], before), within=5)
            await wait_until(lambda: counts(eng) == [(0, 0, 11)], within=5)
        # (At least once: a forward may reach the app twice; the outbox counts it once.)
        for event_id in [*ok, *failed]:
            assert {r["body"] for r in app.received[event_id]} == {lisoloo(event_id)}
    finally:
        await app.stop()


async def test_retry_gives_a_new_target_only_the_events_asked_for(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    first, second = await Scripted().start(), await Scripted().start()
    ids = [f"ev-{i}" for i in range(4)]
    db = tmp_path / "two.db"
    try:
        async with running(engine(db, first.url)) as eng:
            await post(session, eng, *ids)
            await wait_until(lambda: counts(eng) == [(0, 0, 4)], within=20)

        # An unknown id: an error, and nothing queued.
        bad = await cli("retry", "--db", str(db), "--event", "ev-1", "--event", "nope", check=False)
        assert bad.returncode == 1 and "no event 'nope'" in bad.stderr
        assert [t["backlog"] for t in await status_json(db)] == [0]

        # A delivered event is not failed, so --failed leaves it be.
        kept = await cli("retry", "--db", str(db), "--event", "ev-1", "--failed")
        assert kept.stdout.startswith("nothing to send again")

        # --event: to the target that had it, and to one named that never had it.
        args = ("--event", "ev-1", "--forward-to", f"lisoloo={second.url}")
        result = await cli("retry", "--db", str(db), *args)
        assert result.stdout.startswith("queued 2 forwards of 1 event named")
        by_target = {t["target"]: t for t in await status_json(db)}
        assert {u: t["backlog"] for u, t in by_target.items()} == {first.url: 1, second.url: 1}

        before = first.counts()
        async with running(engine(db, first.url, f"lisoloo={second.url}")) as eng:
            await wait_until(lambda: first.sent_again(["ev-1"], before), within=5)
            await wait_until(lambda: counts(eng) == [(0, 0, 1), (0, 0, 4)], within=5)
            # The new target got that event, not the whole log before it; the first, only it.
            assert set(second.delivered()) == {"ev-1"}
            assert {e: n for e, n in first.counts().items() if e != "ev-1"} == {
                e: n for e, n in before.items() if e != "ev-1"
            }

            # --since with the new target named: the events stored before it was configured.
            before, before_second = first.counts(), second.counts()
            args = ("--since", "1d", "--forward-to", f"lisoloo={second.url}")
            result = await cli("retry", "--db", str(db), *args)
            assert "queued 8 forwards" in result.stdout  # 4 again + ev-1 again + 3 new
            await wait_until(lambda: first.sent_again(ids, before), within=5)
            await wait_until(lambda: second.sent_again(ids, before_second), within=5)
            await wait_until(lambda: counts(eng) == [(0, 0, 4), (0, 0, 4)], within=5)
    finally:
        await first.stop()
        await second.stop()


async def test_a_database_never_forwarded_and_bad_arguments(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    db = tmp_path / "plain.db"
    async with running(Engine(EngineConfig(db_path=db, port=0, hub_tick=0.05))) as eng:
        status, _ = await Client(session, eng.listener.base_url).lisoloo(lisoloo("plain-1"))
        assert status == 200

    said = await cli("status", "--db", str(db))
    assert said.stdout.startswith("forwarding (--forward-to) was never turned on for ")
    as_json = await cli("status", "--db", str(db), "--json")
    assert json.loads(as_json.stdout) == [] and "never turned on" in as_json.stderr
    nothing = await cli("retry", "--db", str(db))
    assert nothing.stdout.startswith("nothing to send again")
    assert not outbox_path(db).exists()  # asking created nothing

    for args, words in [
        (("retry", "--since", "2 hours"), "'2 hours' is not a duration"),
        (("retry", "--since", "10"), "is not a duration"),
        (("retry", "--since", "0s"), "must be more than 0"),
        (("retry", "--since", "1h", "--forward-to", "sms=http://127.0.0.1:9/x"), "gateway"),
        (("retry", "--since", "1h", "--forward-to", "ftp://x"), "http(s) URL"),
    ]:
        result = await cli(*args, "--db", str(db), check=False)
        assert result.returncode == 2, result
        assert words in result.stderr
    assert not outbox_path(db).exists()

    missing = await cli("status", "--db", str(tmp_path / "none.db"), check=False)
    assert missing.returncode == 1 and "no smswatch database" in missing.stderr
    gone = f"postgresql://u:{PASSWORD}@127.0.0.1:{free_port()}/x"
    pg = await cli("retry", "--db", gone, check=False)
    assert pg.returncode == 1 and "cannot open the forwarding outbox" in pg.stderr
    assert "postgresql://u:***@127.0.0.1" in pg.stderr and PASSWORD not in pg.stderr

    # Events stored before forwarding was ever on, for a target named: the outbox starts here.
    url = f"http://hook:{PASSWORD}@127.0.0.1:9/hooks"
    result = await cli("retry", "--db", str(db), "--since", "1h", "--forward-to", url)
    assert result.stdout.startswith("queued 1 forward of")
    [target] = await status_json(db)
    assert target["target"] == "http://hook:***@127.0.0.1:9/hooks" and target["backlog"] == 1
    assert target["last_attempt"] is None and target["failures_by_status"] == []


async def test_a_postgresql_store(pg_url: str, session: aiohttp.ClientSession) -> None:
    """The same commands on a shared PostgreSQL store's outbox."""
    app = await Scripted(fail_with={"pg-bad": 503}).start()
    try:
        async with running(engine(pg_url, app.url)) as eng:
            await post(session, eng, "pg-ok", "pg-bad")
            await wait_until(lambda: counts(eng) == [(0, 1, 1)], within=20)
        [target] = await status_json(pg_url)
        assert (target["target"], target["delivered"], target["failed"]) == (app.url, 1, 1)
        assert target["failures_by_status"] == [{"status": 503, "count": 1}]
        assert target["last_attempt"]["status"] in (200, 503)

        app.healthy = True
        before = app.counts()
        async with running(engine(pg_url, app.url)) as eng:
            result = await cli("retry", "--db", pg_url)
            assert result.stdout.startswith("queued 1 failed forward to")
            await wait_until(lambda: app.sent_again(["pg-bad"], before), within=5)
            await wait_until(lambda: counts(eng) == [(0, 0, 2)], within=5)
            assert app.count("pg-ok") == before["pg-ok"]

            before = app.counts()
            result = await cli("retry", "--db", pg_url, "--event", "pg-ok")
            assert result.stdout.startswith("queued 1 forward of 1 event named")
            await wait_until(lambda: app.sent_again(["pg-ok"], before), within=5)
        missing = await cli("retry", "--db", pg_url, "--event", "nope", check=False)
        assert missing.returncode == 1 and "no event 'nope'" in missing.stderr
    finally:
        await app.stop()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), (" 2H ", 7200)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "1.5h", "-5m", "30m1h", "2 hours", "0d"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
