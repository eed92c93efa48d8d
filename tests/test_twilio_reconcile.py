"""Twilio's Messages resource: the client against the sandbox over real HTTP (Basic auth with
the account SID and auth token, Twilio's answers and errors, the token kept secret), and the
reconciler finding the final statuses whose callbacks Twilio gave up on, within the limit."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from smswatch.devtools.sandbox import ManualClock, SandboxAPI, SandboxLimits
from smswatch.devtools.simulate import SimConfig, plan_campaign
from smswatch.gateways.sandboxing import SandboxKeys
from smswatch.gateways.twilio.api import TwilioApi
from smswatch.gateways.twilio.sim import ACCOUNT_SID
from smswatch.live.engine import Engine
from smswatch.reconcile.api import AuthError
from smswatch.reconcile.clients import build
from smswatch.reconcile.config import ApiConfig, ApiConfigError, ApiKey
from tests.reconciling import assert_polled_failure, looked_up, reconcile_dropped_finals

TOKEN = "tw_token_5b0e9a1c7d3f2e4a6b8c"
TOKENS = {"twilio_auth_token": TOKEN}


def plan(drop_rate: float = 0.0, seed: int = 7) -> Any:
    config = SimConfig(
        provider="twilio",
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


def api_config(url: str, token: str = TOKEN, sid: str = ACCOUNT_SID) -> ApiConfig:
    config = ApiConfig.from_settings(
        twilio_account_sid=sid, twilio_auth_token=token, twilio_api_url=url
    )
    assert config is not None
    return config


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxAPI, Any]]:
    planned = plan()
    # The clock stands at the end of the run: every recipient has its final status.
    clock = ManualClock(max(r.steps[-1][0] for r in planned.ledger) + 1_000_000)
    api = SandboxAPI(planned.ledger, clock=clock, keys=SandboxKeys(twilio_auth_token=TOKEN))
    await api.start()
    try:
        yield api, planned
    finally:
        await api.stop()


async def test_the_client_reads_the_messages_resource(sandbox: tuple[SandboxAPI, Any]) -> None:
    api, planned = sandbox
    [client] = build(api_config(api.url)).values()
    assert isinstance(client, TwilioApi)
    try:
        for truth in planned.truth[:10]:
            msg = await client.message(truth.message_id)
            assert msg is not None
            assert (msg.sid, msg.to, msg.state.value) == (
                truth.message_id,
                truth.recipient,
                truth.state,
            )
            assert msg.error_code == truth.error_code
            assert msg.date_updated is not None and msg.date_created is not None
        assert await client.message("SM" + "0" * 32) is None  # Twilio's JSON 404
    finally:
        await client.close()


async def test_the_lookup_is_a_polled_event_of_the_recipient(
    sandbox: tuple[SandboxAPI, Any],
) -> None:
    api, planned = sandbox
    [client] = build(api_config(api.url)).values()
    failed = next(t for t in planned.truth if t.state == "failed")
    [found] = await looked_up(client, planned, failed.message_id)
    assert_polled_failure(found, failed, "twilio")


@pytest.mark.parametrize(
    ("token", "sid"),
    [("not-the-token", ACCOUNT_SID), (TOKEN, "AC" + "0" * 32)],
)
async def test_a_wrong_token_or_account_is_refused_and_never_shown(
    sandbox: tuple[SandboxAPI, Any], token: str, sid: str
) -> None:
    api, planned = sandbox
    [client] = build(api_config(api.url, token, sid)).values()
    try:
        with pytest.raises(AuthError) as refused:
            await client.message(planned.truth[0].message_id)
    finally:
        await client.close()
    text = f"{refused.value} {refused.value!r} {client!r}"
    basic = base64.b64encode(f"{sid}:{token}".encode()).decode()
    assert token not in text and basic not in text
    assert api.stats()["twilio"]["unauthorized"] == 1


async def test_the_sandbox_checks_basic_auth_as_twilio_does(
    sandbox: tuple[SandboxAPI, Any],
) -> None:
    api, planned = sandbox
    sid = planned.truth[0].message_id
    url = f"{api.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"
    good = base64.b64encode(f"{ACCOUNT_SID}:{TOKEN}".encode()).decode()
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            assert resp.status == 401 and (await resp.json())["code"] == 20003
        async with session.get(url, headers={"Authorization": f"Basic {good}"}) as resp:
            assert resp.status == 200
            body = await resp.json()
    assert body["sid"] == sid and body["account_sid"] == ACCOUNT_SID
    assert body["date_updated"].endswith("GMT")


def test_the_settings_poll_only_with_sid_and_token() -> None:
    # The token alone checks webhooks and polls nothing.
    assert ApiConfig.from_settings(twilio_auth_token=TOKEN) is None
    with pytest.raises(ApiConfigError, match="--twilio-auth-token"):
        ApiConfig.from_settings(twilio_account_sid=ACCOUNT_SID)
    with pytest.raises(ApiConfigError, match="32 hexadecimal"):
        ApiConfig.from_settings(twilio_account_sid="AC123", twilio_auth_token=TOKEN)
    config = api_config("https://api.twilio.com")
    assert config.gateways == ("twilio",)
    assert TOKEN not in repr(config)
    assert isinstance(config.twilio_key, ApiKey)


@pytest.mark.both_stores
@pytest.mark.timeout(240)
async def test_reconciling_finds_the_final_statuses_twilio_gave_up_on(
    make_engine: Callable[..., Engine], db_path: Any
) -> None:
    planned = plan(drop_rate=0.2, seed=9)
    # The client paces itself at its rate; the sandbox counts every call it makes.
    limits = SandboxLimits(twilio_per_window=20)
    await reconcile_dropped_finals(
        make_engine,
        db_path,
        planned,
        "twilio",
        SandboxKeys(twilio_auth_token=TOKEN),
        limits,
        TOKENS,
        lambda url: replace(api_config(url), twilio_rate=20),
    )
