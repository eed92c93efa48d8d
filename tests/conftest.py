"""Shared fixtures: a real engine on 127.0.0.1:0 with a real SQLite file, and an HTTP client."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from smswatch import store
from smswatch.config import Credentials
from smswatch.gateways.yebolink.webhook import sign
from smswatch.live.engine import Engine, EngineConfig
from smswatch.store.sqlite.reader import Reader
from tests.pg_server import PostgresServer, start_postgres

SECRET = "whsec_test_0123456789"
BASIC = ("lisoloo-hook", "s3cret:with:colons")


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Client:
    """Posts webhooks to a running engine over real HTTP."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def post(
        self,
        path: str,
        body: bytes | str,
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/json",
    ) -> tuple[int, dict[str, Any], Any]:
        data = body.encode() if isinstance(body, str) else body
        hdrs = dict(headers or {})
        if content_type is not None:
            hdrs.setdefault("Content-Type", content_type)
        async with self.session.post(self.base + path, data=data, headers=hdrs) as resp:
            try:
                answer = await resp.json(content_type=None)
            except ValueError:
                answer = await resp.text()
            return resp.status, dict(resp.headers), answer

    async def lisoloo(
        self, body: bytes | str, auth: tuple[str, str] | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": basic_header(*auth)} if auth else None
        status, _, answer = await self.post("/webhooks/lisoloo", body, headers)
        return status, answer

    async def yebolink(self, body: bytes | str, secret: str | None = None) -> tuple[int, Any]:
        data = body.encode() if isinstance(body, str) else body
        headers = {"X-YeboLink-Signature": sign(secret, data)} if secret else None
        status, _, answer = await self.post("/webhooks/yebolink", data, headers)
        return status, answer


async def fill_until_503(
    client: Client, prefix: str, pad: int, posts: int = 400, refusals: int = 5
) -> tuple[list[str], list[str]]:
    """Post padded Lisoloo events until the store has refused `refusals` of them. Every answer
    must be 200, or 503 with a Retry-After. Returns (acknowledged ids, refused ids)."""
    acked: list[str] = []
    refused: list[str] = []
    for i in range(posts):
        event_id = f"{prefix}{i}"
        body = json.dumps(
            {
                "event_id": event_id,
                "event_type": "sms.sent",
                "message_id": "m",
                "data": {"recipient_phone": f"+{i}", "pad": "x" * pad},
            }
        )
        status, headers, _ = await client.post("/webhooks/lisoloo", body)
        if status == 200:
            acked.append(event_id)
            continue
        assert status == 503
        assert int(headers["Retry-After"]) > 0
        refused.append(event_id)
        if len(refused) >= refusals:
            break
    return acked, refused


# pytest-xdist's workers (make test runs them: -n auto) get COLUMNS=80 and LINES=24 in their
# environment, which a serial run does not have. Children inherit it: the monitor in a 120x40
# pty then draws 80x24, and rich sizes every command's output to it. Tests start from the
# environment a serial run has.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `both_stores` run against a SQLite file and a PostgreSQL database."""
    marked = metafunc.definition.get_closest_marker
    if (
        "store_kind" in metafunc.fixturenames
        and marked("both_stores")
        and not marked("sqlite_only")
    ):
        metafunc.parametrize("store_kind", ["sqlite", "postgresql"])


@pytest.fixture
def store_kind() -> str:
    return "sqlite"


@pytest.fixture
def db_path(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path | str:
    """Where the engine stores: a SQLite file, or (both_stores tests) a fresh PostgreSQL
    database's URL."""
    if store_kind == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return tmp_path / "smswatch.db"


@pytest.fixture
def make_engine(db_path: Path) -> Callable[..., Engine]:
    def make(**overrides: Any) -> Engine:
        values: dict[str, Any] = {"db_path": db_path, "port": 0, "hub_tick": 0.05}
        values.update(overrides)
        return Engine(EngineConfig(**values))

    return make


@contextlib.asynccontextmanager
async def running(engine: Engine) -> AsyncIterator[Engine]:
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


@pytest.fixture
async def engine(make_engine: Callable[..., Engine]) -> AsyncIterator[Engine]:
    async with running(make_engine()) as eng:
        yield eng


@pytest.fixture
async def secured_engine(make_engine: Callable[..., Engine]) -> AsyncIterator[Engine]:
    async with running(make_engine(credentials=Credentials(BASIC, SECRET))) as eng:
        yield eng


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def client(engine: Engine, session: aiohttp.ClientSession) -> Client:
    return Client(session, engine.listener.base_url)


@pytest.fixture
def secured_client(secured_engine: Engine, session: aiohttp.ClientSession) -> Client:
    return Client(session, secured_engine.listener.base_url)


@pytest.fixture
async def reader(db_path: Path) -> AsyncIterator[Callable[[], Any]]:
    """Opens a reader on demand (after the engine has created the file). It sees the state as
    of the newest stored event, as the command-line tools do, not only the last checkpoint."""
    opened: list[Reader] = []

    async def open_reader() -> Reader:
        r = await store.open_reader(db_path, current=True)
        opened.append(r)
        return r

    yield open_reader
    for r in opened:
        await r.close()


# PostgreSQL (tests/pg_server.py): one throwaway server for the session, started by the first
# test that asks for it, and a fresh empty database per test.
@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()


_pg_databases = itertools.count(1)


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"test_{next(_pg_databases)}"
    yield postgres_server.create_database(name)
    with contextlib.suppress(Exception):
        postgres_server.drop_database(name)
