"""Remote viewers: `serve` publishes the feed, `attach` apps show the same screens from it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from smswatch.core.live import Delta
from smswatch.feed import server as feed_server
from smswatch.feed.client import RemoteSource
from smswatch.feed.protocol import SERVER_FRAME, Hello, Reply, Resync, SnapshotFrame
from smswatch.live.engine import Engine
from smswatch.source.api import Connection, Snapshot
from smswatch.tui.app import SmsWatchApp
from smswatch.tui.screens.dashboard import DashboardScreen, MessagesTable
from smswatch.tui.screens.message import MessageScreen, RecipientsTable
from smswatch.tui.screens.recipient import RecipientScreen
from smswatch.tui.widgets.transitions import TransitionLog
from tests.conftest import Client, running
from tests.helpers import Server, free_port
from tests.tui_support import lisoloo_event

TOKEN = "test-feed-token"
MID = "feed0000000000000000000a"


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSWATCH_CONFIG_DIR", str(tmp_path / "config"))


def post(url: str, body: dict[str, Any]) -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


async def until(pilot: Any, condition: Callable[[], bool], within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)


def shows(app: SmsWatchApp, recipient: str) -> bool:
    if not isinstance(app.screen, DashboardScreen):
        return False
    log = app.screen.query_one(TransitionLog)
    return any(e.recipient == recipient for e in log.shown)


def viewer(url: str, token: str = TOKEN) -> SmsWatchApp:
    return SmsWatchApp(
        RemoteSource(url, token, backoff=(0.2, 0.5)), theme="dark", remember_theme=False
    )


async def test_two_viewers_see_a_webhook_and_survive_a_restart_of_serve(tmp_path: Path) -> None:
    db, port, feed_port = tmp_path / "f.db", free_port(), free_port()
    args = ("--feed-port", str(feed_port), "--feed-token", TOKEN)
    server = Server(db, port, *args).start()
    feed = f"ws://127.0.0.1:{feed_port}"
    apps = [viewer(feed), viewer(feed)]
    step = asyncio.Event()
    results: list[str] = []
    live: list[SmsWatchApp] = []  # viewers connected to the feed
    progress = asyncio.Condition()

    async def reached(stage: str) -> None:
        async with progress:
            results.append(stage)
            progress.notify_all()

    async def wait_until(count: int) -> None:
        async with progress:
            await progress.wait_for(lambda: len(results) >= count)

    async def watch(app: SmsWatchApp) -> None:
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: app.connected and isinstance(app.screen, DashboardScreen))
            async with progress:
                live.append(app)
                progress.notify_all()
            await until(pilot, lambda: shows(app, "+243810000001"))
            assert app.screen.query_one(MessagesTable).rows[0].message_id == MID
            # The status bar says where the data comes from and that it is live.
            await reached("first")
            await step.wait()
            await until(
                pilot, lambda: app.connection is not None and app.connection.state == "reconnecting"
            )
            assert "reconnecting" in str(app.screen.query_one("#pulse").content)
            await until(pilot, lambda: app.connected and shows(app, "+243810000002"))
            # Queries go over the feed too: the message screen and a recipient's timeline.
            app.open_message(MID)
            await until(
                pilot,
                lambda: isinstance(app.screen, MessageScreen) and app.screen.detail is not None,
            )
            assert len(app.screen.query_one(RecipientsTable).rows) == 2
            app.open_recipient(MID, "+243810000002")
            await until(
                pilot,
                lambda: isinstance(app.screen, RecipientScreen) and app.screen.detail is not None,
            )
            assert [e.event_type for e in app.screen.detail.events] == ["sms.sent"]
            await reached("second")

    async def drive() -> None:
        await wait_until(2)
        url = f"{server.url}/webhooks/lisoloo"
        await asyncio.to_thread(server.stop)
        # The viewers look for "reconnecting" while serve is down: set after the restart, a fast
        # reconnect could come before they look, and the state they wait for would be gone.
        step.set()
        restarted = await asyncio.to_thread(Server(db, port, *args).start)
        try:
            status = await asyncio.to_thread(
                post, url, lisoloo_event(2, "sms.sent", MID, 1, recipient_phone="+243810000002")
            )
            assert status == 200
            await wait_until(4)
        finally:
            await asyncio.to_thread(restarted.stop)

    tasks = [asyncio.create_task(watch(app)) for app in apps]

    # The webhook comes once both viewers are on the feed, so they see it pushed, not backfilled.
    async with progress:
        await asyncio.wait_for(progress.wait_for(lambda: len(live) == len(apps)), 30)
    assert (
        await asyncio.to_thread(
            post,
            f"{server.url}/webhooks/lisoloo",
            lisoloo_event(1, "sms.sent", MID, 1, recipient_phone="+243810000001"),
        )
        == 200
    )
    await asyncio.wait_for(asyncio.gather(*tasks, drive()), 90)
    assert results.count("second") == 2


async def test_a_wrong_token_is_refused_and_shown(tmp_path: Path) -> None:
    feed_port = free_port()
    server = Server(
        tmp_path / "t.db", free_port(), "--feed-port", str(feed_port), "--feed-token", TOKEN
    ).start()
    try:
        # Something to leak: the server holds an event the refused viewer must never see.
        event = lisoloo_event(1, "sms.sent", MID, 1, recipient_phone="+243810000001")
        assert post(server.url + "/webhooks/lisoloo", event) == 200
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                f"ws://127.0.0.1:{feed_port}", additional_headers={"Authorization": "Bearer nope"}
            ):
                pass
        assert refused.value.response.status_code == 401
        with pytest.raises(InvalidStatus):
            async with connect(f"ws://127.0.0.1:{feed_port}"):
                pass
        app = viewer(f"ws://127.0.0.1:{feed_port}", token="nope")
        async with app.run_test(size=(120, 36)) as pilot:
            await until(
                pilot, lambda: app.connection is not None and app.connection.state == "refused"
            )
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
            assert "token" in str(app.screen.query_one("#pulse").content)
            assert app.model.counters.events == 0  # nothing from the server leaked through
    finally:
        server.stop()


# --- the protocol, against an in-process engine ------------------------------------------------


@pytest.fixture
async def feed_engine(make_engine) -> AsyncIterator[Engine]:
    async with running(make_engine(feed_port=0, feed_token=TOKEN)) as eng:
        yield eng


@pytest.fixture
def feed_client(feed_engine: Engine, session) -> Client:
    return Client(session, feed_engine.listener.base_url)


async def recv(ws: Any) -> Any:
    return SERVER_FRAME.validate_json(await asyncio.wait_for(ws.recv(), 10))


async def test_hello_snapshot_then_deltas_then_answers(
    feed_engine: Engine, feed_client: Client
) -> None:
    assert feed_engine.feed is not None
    async with connect(
        feed_engine.feed.url, additional_headers={"Authorization": f"Bearer {TOKEN}"}
    ) as ws:
        hello = await recv(ws)
        assert isinstance(hello, Hello) and hello.info.gateways
        snapshot = await recv(ws)
        assert isinstance(snapshot, SnapshotFrame) and snapshot.data.counters.events == 0
        assert (
            await feed_client.lisoloo(
                json.dumps(lisoloo_event(1, "sms.sent", MID, 1, recipient_phone="+1"))
            )
        )[0] == 200
        while True:
            frame = await recv(ws)
            if frame.type == "delta" and frame.data.transitions:
                assert frame.data.transitions[0].event.recipient == "+1"
                break
        await ws.send(
            json.dumps(
                {"type": "query", "id": 7, "method": "message", "params": {"message_id": MID}}
            )
        )
        await ws.send("not json")
        await ws.send(json.dumps({"type": "query", "id": 8, "method": "drop_tables", "params": {}}))
        await ws.send(
            json.dumps(
                {"type": "query", "id": 9, "method": "messages", "params": {"limit": "many"}}
            )
        )
        replies: dict[int, Reply] = {}
        while len(replies) < 4:
            frame = await recv(ws)
            if isinstance(frame, Reply):
                replies[frame.id] = frame
        assert replies[7].ok and replies[7].result["message"]["message_id"] == MID
        assert not replies[-1].ok and "not a query" in replies[-1].error
        assert not replies[8].ok and "unknown method" in replies[8].error
        assert not replies[9].ok and "bad parameters" in replies[9].error


async def test_the_token_may_also_come_in_the_query_string(feed_engine: Engine) -> None:
    async with connect(f"{feed_engine.feed.url}/?token={TOKEN}") as ws:
        assert isinstance(await recv(ws), Hello)


async def test_a_viewer_that_falls_behind_is_told_to_resync(
    feed_engine: Engine, monkeypatch
) -> None:
    client = feed_server._Client(ws=None)  # type: ignore[arg-type]
    client.queue = asyncio.Queue(3)
    for n in range(10):
        client.push(f"delta {n}")
    frames = [client.queue.get_nowait() for _ in range(client.queue.qsize())]
    assert client.resyncs >= 1
    assert Resync.model_validate_json(frames[-2]).reason
    assert frames[-1] is feed_server.SNAPSHOT  # a fresh snapshot follows the resync
    # Big frames hit the byte budget before the frame count.
    monkeypatch.setattr(feed_server, "QUEUE_BYTES", 1000)
    client = feed_server._Client(ws=None)  # type: ignore[arg-type]
    for _ in range(3):
        client.push("x" * 400)
    assert client.resyncs == 1 and client.queued_bytes == 0


async def test_a_stuck_viewer_does_not_hold_up_ingest(
    feed_engine: Engine, feed_client: Client
) -> None:
    """A viewer that completes the handshake and then never reads: every webhook is still
    acknowledged at once, and the hub keeps ticking."""
    reader, writer = await asyncio.open_connection("127.0.0.1", feed_engine.feed.port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n"
    )
    await writer.drain()
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    started = asyncio.get_running_loop().time()
    for i in range(300):
        status, _ = await feed_client.lisoloo(
            json.dumps(lisoloo_event(i, "sms.sent", MID, i, recipient_phone=f"+{i}"))
        )
        assert status == 200
    assert asyncio.get_running_loop().time() - started < 30
    assert len(feed_engine.feed.clients) == 1
    writer.close()


async def test_remote_source_delivers_snapshots_deltas_and_connection_changes(
    feed_engine: Engine, feed_client: Client
) -> None:
    source = RemoteSource(feed_engine.feed.url, TOKEN)
    updates: list[object] = []
    source.subscribe(updates.append)
    await source.open()
    try:
        for _ in range(100):
            if any(isinstance(u, Connection) and u.live for u in updates):
                break
            await asyncio.sleep(0.05)
        assert any(isinstance(u, Snapshot) for u in updates)
        await feed_client.lisoloo(
            json.dumps(lisoloo_event(1, "sms.delivered", MID, 1, recipient_phone="+9"))
        )
        for _ in range(100):
            if any(isinstance(u, Delta) and u.transitions for u in updates):
                break
            await asyncio.sleep(0.05)
        detail = await source.message(MID)
        assert detail is not None and detail.recipients[0].recipient == "+9"
        timeline = await source.recipient(MID, "+9")
        assert timeline is not None and timeline.events[0].event_type == "sms.delivered"
        out = feed_engine.config.db_path.parent / "remote-export.jsonl"
        assert await source.export(out) == 1
        assert json.loads(out.read_text())["recipient"] == "+9"
    finally:
        await source.close()


def test_the_readme_lists_every_file_serve_keeps_beside_the_database(tmp_path: Path) -> None:
    """Read from what `serve` really creates (a feed, a forward target, a stored webhook), not
    from a list kept in the test."""
    import fnmatch
    import re
    import urllib.request

    home = tmp_path / "data"
    home.mkdir()
    db = home / "side.db"
    args = ("--feed-port", str(free_port()), "--forward-to", "http://127.0.0.1:9/hook")
    server = Server(db, free_port(), *args, log=tmp_path / "serve.log").start()
    try:
        body = json.dumps(lisoloo_event(1, "sms.sent", "m-side", 1_795_400_000_000_000)).encode()
        req = urllib.request.Request(
            server.url + "/webhooks/lisoloo", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        beside = sorted(p.name.replace(db.name, "smswatch.db") for p in home.iterdir())
    finally:
        server.stop()
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = readme[readme.index("| file | what it holds |") :].split("\n\n")[0]
    listed = [
        name
        for row in table.splitlines()[2:]
        for name in re.findall(r"`([^`]+)`", row.split("|")[1])
    ]
    assert "smswatch.db.feed-token" in beside and "smswatch.db-forward" in beside, beside
    missing = [f for f in beside if not any(fnmatch.fnmatch(f, name) for name in listed)]
    assert not missing, f"not in the README's table: {missing} (it lists {listed})"
