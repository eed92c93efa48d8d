"""Telnyx's message detail records: the client against the sandbox over real HTTP (a Bearer API
key, Telnyx's answers and errors, a group MMS's recipient picked out, the key kept secret), and
the reconciler finding the final statuses whose `message.finalized` Telnyx gave up on, within
the limit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from smswatch.core.domain import State
from smswatch.devtools.sandbox import ManualClock, SandboxAPI, SandboxLimits
from smswatch.devtools.simulate import SimConfig, plan_campaign
from smswatch.gateways.sandboxing import SandboxKeys
from smswatch.gateways.telnyx.api import TelnyxApi
from smswatch.gateways.telnyx.keys import new_pair
from smswatch.live.engine import Engine
from smswatch.reconcile.api import AuthError
from smswatch.reconcile.clients import build
from smswatch.reconcile.config import ApiConfig, ApiKey
from tests.reconciling import assert_polled_failure, looked_up, reconcile_dropped_finals

API_KEY = "KEY0123456789ABCDEF_telnyx"
SIGNING_KEY, PUBLIC_KEY = new_pair()
SIGNING = {"telnyx_signing_key": SIGNING_KEY, "telnyx_public_key": PUBLIC_KEY}


def plan(drop_rate: float = 0.0, seed: int = 7, messages: int = 4) -> Any:
    config = SimConfig(
        provider="telnyx",
        messages=messages,
        recipients=10,
        seed=seed,
        drop_rate=drop_rate,
        rate=4000.0,
        speed=40.0,
        fail_rate=0.25,
        duplicate_rate=0.0,
        tokens=SIGNING,
    )
    return plan_campaign(config)


def api_config(url: str, key: str = API_KEY) -> ApiConfig:
    config = ApiConfig.from_settings(telnyx_api_key=key, telnyx_api_url=url)
    assert config is not None
    return config


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxAPI, Any]]:
    planned = plan(seed=5, messages=8)
    # The clock stands at the end of the run: every recipient has its final status.
    clock = ManualClock(max(r.steps[-1][0] for r in planned.ledger) + 1_000_000)
    api = SandboxAPI(planned.ledger, clock=clock, keys=SandboxKeys(telnyx_api_key=API_KEY))
    await api.start()
    try:
        yield api, planned
    finally:
        await api.stop()


async def test_the_client_reads_each_recipients_record(sandbox: tuple[SandboxAPI, Any]) -> None:
    api, planned = sandbox
    [client] = build(api_config(api.url)).values()
    assert isinstance(client, TelnyxApi)
    try:
        for truth in planned.truth:
            rec = await client.recipient(truth.message_id, truth.recipient)
            assert rec is not None
            assert (rec.message_id, rec.phone_number, rec.state.value) == (
                truth.message_id,
                truth.recipient,
                truth.state,
            )
            assert rec.error_code == truth.error_code and rec.at is not None
        assert await client.recipient("40385f64-0000-0000-0000-000000000000", None) is None
        # An id is one path segment: escaped, it cannot reach another endpoint with the key.
        assert await client.recipient("../balance", None) is None
        with pytest.raises(ValueError):
            await client.recipient("..", None)
    finally:
        await client.close()
    # The seed plans a group MMS: several recipients under one message id, each found.
    ids = [t.message_id for t in planned.truth]
    assert any(ids.count(i) > 1 for i in ids)


async def test_the_lookup_is_a_polled_event_of_the_recipient(
    sandbox: tuple[SandboxAPI, Any],
) -> None:
    api, planned = sandbox
    [client] = build(api_config(api.url)).values()
    failed = next(t for t in planned.truth if t.state == "failed")
    unconfirmed = next(t for t in planned.truth if t.state == "unconfirmed")
    found, later = await looked_up(client, planned, failed.message_id, unconfirmed.message_id)
    assert_polled_failure(found, failed, "telnyx")
    # delivery_unconfirmed: as final as Telnyx will say, no outcome.
    assert later.final and later.event is not None and later.event.state is State.UNCONFIRMED


async def test_a_wrong_key_is_refused_and_never_shown(sandbox: tuple[SandboxAPI, Any]) -> None:
    api, planned = sandbox
    wrong = "KEYnot-the-right-one-0123456789"
    [client] = build(api_config(api.url, wrong)).values()
    try:
        with pytest.raises(AuthError) as refused:
            await client.recipient(planned.truth[0].message_id, None)
    finally:
        await client.close()
    text = f"{refused.value} {refused.value!r} {client!r}"
    assert wrong not in text and "Authentication failed" in text and "10009" in text
    assert api.stats()["telnyx"]["unauthorized"] == 1


async def test_the_sandbox_answers_as_telnyx_does(sandbox: tuple[SandboxAPI, Any]) -> None:
    api, planned = sandbox
    mid = planned.truth[0].message_id
    url = f"{api.url}/v2/messages/{mid}"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            assert resp.status == 401
            assert (await resp.json())["errors"][0]["code"] == "10009"
        auth = {"Authorization": f"Bearer {API_KEY}"}
        async with session.get(url, headers=auth) as resp:
            assert resp.status == 200
            body = await resp.json()
        async with session.get(f"{api.url}/v2/messages/unknown", headers=auth) as resp:
            assert resp.status == 404 and (await resp.json())["errors"][0]["code"] == "10005"
    data = body["data"]
    assert (data["id"], data["record_type"], data["direction"]) == (mid, "message", "outbound")
    assert data["to"][0]["phone_number"] == planned.truth[0].recipient
    assert data["completed_at"].endswith("+00:00") and data["cost"]["currency"] == "USD"


def test_the_settings_poll_with_the_api_key_only() -> None:
    assert ApiConfig.from_settings() is None
    config = api_config("https://api.telnyx.com")
    assert config.gateways == ("telnyx",)
    access = config.access("telnyx")
    assert access is not None and access.user is None and access.rate == 60
    assert API_KEY not in repr(config) and isinstance(config.telnyx_key, ApiKey)
    assert config.telnyx_url == "https://api.telnyx.com"
    # The webhooks' public key opens nothing: without the API key nothing is polled.
    assert ApiConfig.from_settings(telnyx_api_url="https://api.telnyx.com") is None


@pytest.mark.both_stores
@pytest.mark.timeout(240)
async def test_reconciling_finds_the_final_statuses_telnyx_gave_up_on(
    make_engine: Callable[..., Engine], db_path: Any
) -> None:
    planned = plan(drop_rate=0.3, seed=9)
    # The client paces itself at its rate; the sandbox counts every call it makes.
    limits = SandboxLimits(telnyx_per_window=20)
    keys = SandboxKeys(telnyx_api_key=API_KEY)
    await reconcile_dropped_finals(
        make_engine,
        db_path,
        planned,
        "telnyx",
        keys,
        limits,
        SIGNING,
        lambda url: replace(api_config(url), telnyx_rate=20),
    )
