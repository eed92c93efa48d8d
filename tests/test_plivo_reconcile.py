"""Plivo's Message API: the client against the sandbox over real HTTP (Basic auth with the Auth
ID and auth token, Plivo's answers and errors, the token kept secret), and the reconciler
finding the final statuses whose callbacks Plivo gave up on, within the limit."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from smswatch.core.domain import State
from smswatch.devtools.sandbox import ManualClock, SandboxAPI, SandboxLimits
from smswatch.devtools.simulate import SimConfig, plan_campaign
from smswatch.gateways.plivo.api import PlivoApi, parse_message
from smswatch.gateways.plivo.sim import AUTH_ID
from smswatch.gateways.sandboxing import SandboxKeys
from smswatch.live.engine import Engine
from smswatch.reconcile.api import AuthError
from smswatch.reconcile.clients import build
from smswatch.reconcile.config import ApiConfig, ApiConfigError, ApiKey
from smswatch.timefmt import to_us
from tests.reconciling import assert_polled_failure, looked_up, reconcile_dropped_finals

TOKEN = "pl_token_9c2e4a6b8d0f1e3a5c7b"
TOKENS = {"plivo_auth_token": TOKEN}


def plan(drop_rate: float = 0.0, seed: int = 7) -> Any:
    config = SimConfig(
        provider="plivo",
        messages=2,
        recipients=40,
        seed=seed,
        drop_rate=drop_rate,
        rate=4000.0,
        speed=40.0,
        fail_rate=0.25,
        duplicate_rate=0.0,
        tokens=TOKENS,
    )
    return plan_campaign(config)


def api_config(url: str, token: str = TOKEN, auth_id: str = AUTH_ID) -> ApiConfig:
    config = ApiConfig.from_settings(
        plivo_auth_id=auth_id, plivo_auth_token=token, plivo_api_url=url
    )
    assert config is not None
    return config


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxAPI, Any]]:
    planned = plan()
    # The clock stands at the end of the run: every recipient has its final status.
    clock = ManualClock(max(r.steps[-1][0] for r in planned.ledger) + 1_000_000)
    api = SandboxAPI(planned.ledger, clock=clock, keys=SandboxKeys(plivo_auth_token=TOKEN))
    await api.start()
    try:
        yield api, planned
    finally:
        await api.stop()


async def test_the_client_reads_the_message_detail_records(
    sandbox: tuple[SandboxAPI, Any],
) -> None:
    api, planned = sandbox
    [client] = build(api_config(api.url)).values()
    assert isinstance(client, PlivoApi)
    try:
        for truth in planned.truth[:12]:
            msg = await client.message(truth.message_id)
            assert msg is not None
            assert (msg.uuid, msg.to, msg.state.value) == (
                truth.message_id,
                truth.recipient,
                truth.state,
            )
            assert msg.error_code == truth.error_code  # `000` on a delivered one reads as none
            assert msg.updated_time is not None and msg.message_time is not None
        assert await client.message("00000000-0000-4000-8000-000000000000") is None  # a 404
    finally:
        await client.close()


def test_the_sdks_fixture_reads_as_a_message() -> None:
    # plivo-python's tests/resources/fixtures/messageGetResponse.json, as Plivo answers it.
    fixture = {
        "api_id": "95747262-3f08-11e7-8bc8-065f6a74a84a",
        "error_code": None,
        "from_number": "911231231230",
        "message_direction": "outbound",
        "message_state": "sent",
        "message_time": "2017-05-22 21:36:14+05:30",
        "message_type": "sms",
        "message_uuid": "5b40a428-bfc7-4daf-9d06-726c558bf3b8",
        "to_number": "911231231231",
        "total_amount": "0.00250",
        "units": 1,
        "message_sent_time": "2024-08-21 18:28:49.244057+05:30",
        "message_updated_time": "2024-08-21 18:28:51.94772+05:30",
    }
    msg = parse_message(fixture, "x")
    assert msg is not None
    assert (msg.uuid, msg.state, msg.to, msg.error_code) == (
        "5b40a428-bfc7-4daf-9d06-726c558bf3b8",
        State.SENT,
        "911231231231",
        None,
    )
    assert msg.message_time == to_us(datetime(2017, 5, 22, 16, 6, 14, tzinfo=UTC))
    assert parse_message({"api_id": "a", "error": "not found"}, "x") is None


async def test_the_lookup_is_a_polled_event_of_the_recipient(
    sandbox: tuple[SandboxAPI, Any],
) -> None:
    api, planned = sandbox
    [client] = build(api_config(api.url)).values()
    failed = next(t for t in planned.truth if t.state == "failed")
    [found] = await looked_up(client, planned, failed.message_id)
    assert_polled_failure(found, failed, "plivo")


@pytest.mark.parametrize(
    ("token", "auth_id"),
    [("not-the-token", AUTH_ID), (TOKEN, "MA" + "0" * 18)],
)
async def test_a_wrong_token_or_account_is_refused_and_never_shown(
    sandbox: tuple[SandboxAPI, Any], token: str, auth_id: str
) -> None:
    api, planned = sandbox
    [client] = build(api_config(api.url, token, auth_id)).values()
    try:
        with pytest.raises(AuthError) as refused:
            await client.message(planned.truth[0].message_id)
    finally:
        await client.close()
    text = f"{refused.value} {refused.value!r} {client!r}"
    basic = base64.b64encode(f"{auth_id}:{token}".encode()).decode()
    assert token not in text and basic not in text
    assert api.stats()["plivo"]["unauthorized"] == 1


async def test_the_sandbox_checks_basic_auth_as_plivo_does(
    sandbox: tuple[SandboxAPI, Any],
) -> None:
    api, planned = sandbox
    uuid = planned.truth[0].message_id
    url = f"{api.url}/v1/Account/{AUTH_ID}/Message/{uuid}/"
    good = base64.b64encode(f"{AUTH_ID}:{TOKEN}".encode()).decode()
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            assert resp.status == 401 and "error" in await resp.json()
        async with session.get(url, headers={"Authorization": f"Basic {good}"}) as resp:
            assert resp.status == 200
            body = await resp.json()
    assert body["message_uuid"] == uuid and body["message_direction"] == "outbound"
    assert body["message_updated_time"].endswith("+00:00")
    assert body["resource_uri"] == f"/v1/Account/{AUTH_ID}/Message/{uuid}/"


def test_the_settings_poll_only_with_auth_id_and_token() -> None:
    # The token alone checks webhooks and polls nothing.
    assert ApiConfig.from_settings(plivo_auth_token=TOKEN) is None
    with pytest.raises(ApiConfigError, match="--plivo-auth-token"):
        ApiConfig.from_settings(plivo_auth_id=AUTH_ID)
    with pytest.raises(ApiConfigError, match="MA or SA"):
        ApiConfig.from_settings(plivo_auth_id="MA123", plivo_auth_token=TOKEN)
    config = api_config("https://api.plivo.com")
    assert config.gateways == ("plivo",)
    assert config.access("plivo") is not None and config.access("plivo").user == AUTH_ID
    assert TOKEN not in repr(config)
    assert isinstance(config.plivo_key, ApiKey)
    # A subaccount's Auth ID is taken too.
    assert api_config("https://api.plivo.com", auth_id="SA" + "B" * 18).gateways == ("plivo",)


def test_an_auth_id_that_is_none_is_refused_at_start(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from smswatch.cli import main

    db = str(tmp_path / "x.db")
    for args, flag in (
        (["--plivo-auth-id", "MA123", "--plivo-auth-token", TOKEN], "--plivo-auth-id"),
        (["--plivo-auth-id", AUTH_ID], "--plivo-auth-token"),
    ):
        result = CliRunner().invoke(main, ["serve", "--db", db, *args])
        assert result.exit_code == 2 and flag in result.output, result.output
        assert TOKEN not in result.output  # the token is never repeated
    for command in ("serve", "reconcile"):
        help_text = CliRunner().invoke(main, [command, "--help"]).output
        assert "--plivo-auth-id" in help_text and "--plivo-auth-token" in help_text


@pytest.mark.both_stores
@pytest.mark.timeout(240)
async def test_reconciling_finds_the_final_statuses_plivo_gave_up_on(
    make_engine: Callable[..., Engine], db_path: Any
) -> None:
    planned = plan(drop_rate=0.2, seed=9)
    # The client paces itself at its rate; the sandbox counts every call it makes.
    limits = SandboxLimits(plivo_per_window=20)
    await reconcile_dropped_finals(
        make_engine,
        db_path,
        planned,
        "plivo",
        SandboxKeys(plivo_auth_token=TOKEN),
        limits,
        TOKENS,
        lambda url: replace(api_config(url), plivo_rate=20),
    )
