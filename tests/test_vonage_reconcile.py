"""Vonage's Reports API: the client against the sandbox over real HTTP (Basic auth with the API
key and its secret, product SMS or MESSAGES by the id's shape, Vonage's answers and errors, the
secret kept secret), and the reconciler finding the final statuses whose receipts and callbacks
Vonage gave up on, within the limit."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from smswatch.core.domain import State
from smswatch.devtools.sandbox import ManualClock, SandboxAPI, SandboxLimits
from smswatch.devtools.simulate import SimConfig, plan_campaign
from smswatch.gateways.sandboxing import SandboxKeys
from smswatch.gateways.vonage.api import VonageApi, product_of
from smswatch.gateways.vonage.sim import API_KEY
from smswatch.live.engine import Engine
from smswatch.reconcile.api import AuthError
from smswatch.reconcile.clients import build
from smswatch.reconcile.config import ApiConfig, ApiConfigError, ApiKey
from tests.reconciling import assert_polled_failure, looked_up, reconcile_dropped_finals

API_SECRET = "vonage-api-secret-7d3f2e4a"
SIGNING = {"vonage_signature_secret": "vonage-signature-secret-0123456789abcdef"}


def plan(drop_rate: float = 0.0, seed: int = 7, messages: int = 4) -> Any:
    config = SimConfig(
        provider="vonage",
        messages=messages,
        recipients=12,
        seed=seed,
        drop_rate=drop_rate,
        rate=4000.0,
        speed=40.0,
        fail_rate=0.25,
        duplicate_rate=0.0,
        tokens=SIGNING,
    )
    return plan_campaign(config)


def api_config(url: str, secret: str = API_SECRET, key: str = API_KEY) -> ApiConfig:
    config = ApiConfig.from_settings(
        vonage_api_key=key, vonage_api_secret=secret, vonage_api_url=url
    )
    assert config is not None
    return config


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxAPI, Any]]:
    planned = plan(seed=3, messages=6)
    # The clock stands at the end of the run: every recipient has its final status.
    clock = ManualClock(max(r.steps[-1][0] for r in planned.ledger) + 1_000_000)
    keys = SandboxKeys(vonage_api_secret=API_SECRET)
    api = SandboxAPI(planned.ledger, clock=clock, keys=keys)
    await api.start()
    try:
        yield api, planned
    finally:
        await api.stop()


async def test_the_client_reads_the_records_of_both_apis(sandbox: tuple[SandboxAPI, Any]) -> None:
    api, planned = sandbox
    [client] = build(api_config(api.url)).values()
    assert isinstance(client, VonageApi)
    products = set()
    try:
        for truth in planned.truth[:40]:
            rec = await client.record(truth.message_id)
            assert rec is not None
            products.add(rec.product)
            assert (rec.message_id, rec.to, rec.state.value) == (
                truth.message_id,
                truth.recipient,
                truth.state,
            )
            assert rec.error_code == truth.error_code
            assert rec.date_received is not None and rec.date_finalized is not None
        assert await client.record("0B00000000000000") is None  # listed in ids_not_found
        with pytest.raises(ValueError):
            await client.record("A,B")  # would ask about two messages
    finally:
        await client.close()
    assert products == {"SMS", "MESSAGES"}
    assert product_of("aaaaaaaa-bbbb-cccc-dddd-0123456789ab") == "MESSAGES"
    assert product_of("0B00000127FDBC63") == "SMS"


async def test_the_lookup_is_a_polled_event_of_the_recipient(
    sandbox: tuple[SandboxAPI, Any],
) -> None:
    api, planned = sandbox
    [client] = build(api_config(api.url)).values()
    failed = next(t for t in planned.truth if t.state == "failed")
    unconfirmed = next(t for t in planned.truth if t.state == "unconfirmed")
    found, later = await looked_up(client, planned, failed.message_id, unconfirmed.message_id)
    assert_polled_failure(found, failed, "vonage")
    # Vonage's `unknown`: as final as the gateway will say, no outcome.
    assert later.final and later.event is not None and later.event.state is State.UNCONFIRMED


@pytest.mark.parametrize(("secret", "key"), [("not-the-secret", API_KEY), (API_SECRET, "00000000")])
async def test_a_wrong_secret_or_key_is_refused_and_never_shown(
    sandbox: tuple[SandboxAPI, Any], secret: str, key: str
) -> None:
    api, planned = sandbox
    [client] = build(api_config(api.url, secret, key)).values()
    try:
        with pytest.raises(AuthError) as refused:
            await client.record(planned.truth[0].message_id)
    finally:
        await client.close()
    text = f"{refused.value} {refused.value!r} {client!r}"
    basic = base64.b64encode(f"{key}:{secret}".encode()).decode()
    assert secret not in text and basic not in text
    assert api.stats()["vonage"]["unauthorized"] == 1


async def test_the_sandbox_answers_as_the_reports_api_does(sandbox: tuple[SandboxAPI, Any]) -> None:
    api, planned = sandbox
    mid = next(t.message_id for t in planned.truth if product_of(t.message_id) == "SMS")
    url = f"{api.url}/v2/reports/records"
    good = base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
    auth = {"Authorization": f"Basic {good}"}
    query = {"account_id": API_KEY, "product": "SMS", "direction": "outbound", "id": mid}
    async with aiohttp.ClientSession() as session:
        async with session.get(url, params=query) as resp:
            assert resp.status == 401 and (await resp.json())["title"] == "Unauthorized"
        async with session.get(url, params=query, headers=auth) as resp:
            assert resp.status == 200
            body = await resp.json()
        missing = {k: v for k, v in query.items() if k != "direction"}
        async with session.get(url, params=missing, headers=auth) as resp:
            assert resp.status == 422
            assert (await resp.json())["invalid_parameters"][0]["name"] == "direction"
        other = {**query, "account_id": "ffffffff"}
        async with session.get(url, params=other, headers=auth) as resp:
            assert resp.status == 403
        # Asked as a Messages API message, an SMS id is not one.
        messages = {**query, "product": "MESSAGES"}
        async with session.get(url, params=messages, headers=auth) as resp:
            assert (await resp.json())["ids_not_found"] == mid
    assert body["request_status"] == "SUCCESS" and body["items_count"] == 1
    [record] = body["records"]
    assert record["message_id"] == mid and record["account_id"] == API_KEY
    assert record["date_received"].endswith("+0000") and record["currency"] == "EUR"


def test_the_settings_poll_only_with_key_and_secret() -> None:
    assert ApiConfig.from_settings() is None
    with pytest.raises(ApiConfigError, match="--vonage-api-secret"):
        ApiConfig.from_settings(vonage_api_key=API_KEY)
    with pytest.raises(ApiConfigError, match="--vonage-api-key"):
        ApiConfig.from_settings(vonage_api_secret=API_SECRET)
    with pytest.raises(ApiConfigError, match="8 letters"):
        ApiConfig.from_settings(vonage_api_key="abc", vonage_api_secret=API_SECRET)
    config = api_config("https://api.nexmo.com")
    assert config.gateways == ("vonage",)
    access = config.access("vonage")
    assert access is not None and access.user == API_KEY
    assert API_SECRET not in repr(config)
    assert isinstance(config.vonage_key, ApiKey)
    assert config.vonage_url == "https://api.nexmo.com"


@pytest.mark.both_stores
@pytest.mark.timeout(240)
async def test_reconciling_finds_the_final_statuses_vonage_gave_up_on(
    make_engine: Callable[..., Engine], db_path: Any
) -> None:
    planned = plan(drop_rate=0.25, seed=9)
    # The client paces itself at its rate; the sandbox counts every call it makes.
    limits = SandboxLimits(vonage_per_window=20)
    keys = SandboxKeys(vonage_api_secret=API_SECRET)
    await reconcile_dropped_finals(
        make_engine,
        db_path,
        planned,
        "vonage",
        keys,
        limits,
        SIGNING,
        lambda url: replace(api_config(url), vonage_rate=20),
    )
