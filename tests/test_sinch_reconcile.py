"""Sinch's delivery reports API: the client against the sandbox over real HTTP (a Bearer API
token, the service plan in the path, a batch's report with every recipient and one recipient's
report, XMS's errors, the token kept secret), and the reconciler finding the final statuses
whose callbacks Sinch gave up on, within the limit, a batch's recipients from one call."""

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
from smswatch.gateways.sinch.api import SinchApi
from smswatch.gateways.sinch.sim import SERVICE_PLAN_ID
from smswatch.live.engine import Engine
from smswatch.reconcile.api import AuthError
from smswatch.reconcile.clients import build
from smswatch.reconcile.config import ApiConfig, ApiConfigError, ApiKey
from tests.reconciling import reconcile_dropped_finals

TOKEN = "0123456789abcdef0123456789abcdef"
SECRET = {"sinch_webhook_secret": "sinch-reconcile-secret"}


def plan(drop_rate: float = 0.0, seed: int = 7, messages: int = 4) -> Any:
    config = SimConfig(
        provider="sinch",
        messages=messages,
        recipients=10,
        seed=seed,
        drop_rate=drop_rate,
        rate=4000.0,
        speed=40.0,
        fail_rate=0.3,
        duplicate_rate=0.0,
        tokens=SECRET,
    )
    return plan_campaign(config)


def api_config(url: str, token: str = TOKEN, plan_id: str = SERVICE_PLAN_ID) -> ApiConfig:
    config = ApiConfig.from_settings(
        sinch_service_plan_id=plan_id, sinch_api_token=token, sinch_api_url=url
    )
    assert config is not None
    return config


def fast(url: str, **kwargs: Any) -> ApiConfig:
    return replace(api_config(url, **kwargs), sinch_rate=6000)


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxAPI, Any]]:
    planned = plan(seed=5, messages=8)
    # The clock stands at the end of the run: every recipient has its final status.
    clock = ManualClock(max(r.steps[-1][0] for r in planned.ledger) + 1_000_000)
    # Limits far above the hundred calls these tests make: the pacing is the reconcile test's.
    api = SandboxAPI(
        planned.ledger,
        clock=clock,
        keys=SandboxKeys(sinch_api_token=TOKEN),
        limits=SandboxLimits(sinch_per_window=6000),
    )
    await api.start()
    try:
        yield api, planned
    finally:
        await api.stop()


async def test_the_client_reads_each_batch_and_each_recipient(
    sandbox: tuple[SandboxAPI, Any],
) -> None:
    api, planned = sandbox
    [client] = build(fast(api.url)).values()
    assert isinstance(client, SinchApi)
    truth = {(t.message_id, t.recipient): t for t in planned.truth}
    try:
        for batch in {t.message_id for t in planned.truth}:
            found = await client.batch(batch)
            assert found is not None
            recipients, final = found
            assert final  # the clock is past every recipient's final status
            assert {(r.batch_id, r.recipient) for r in recipients} == {
                k for k in truth if k[0] == batch
            }
            for r in recipients:
                t = truth[(batch, r.recipient)]
                assert (r.state.value, r.error_code) == (t.state, t.error_code), t
        for t in planned.truth:
            one = await client.recipient(t.message_id, t.recipient)
            assert one is not None and one.at is not None
            assert (one.recipient, one.state.value, one.error_code) == (
                t.recipient,
                t.state,
                t.error_code,
            )
        assert await client.batch("01UNKNOWNBATCH0000000000000") is None
        assert await client.recipient(planned.truth[0].message_id, "99999999") is None
        # An id is one path segment: escaped, it cannot reach another endpoint with the token.
        assert await client.batch("../../batches") is None
        with pytest.raises(ValueError):
            await client.batch("..")
    finally:
        await client.close()


async def test_one_lookup_brings_every_recipient_of_the_batch(
    sandbox: tuple[SandboxAPI, Any],
) -> None:
    api, planned = sandbox
    [client] = build(fast(api.url)).values()
    failed = next(t for t in planned.truth if t.state == "failed")
    batch = [t for t in planned.truth if t.message_id == failed.message_id]

    async def recipient_of(message_id: str) -> str:
        return next(t.recipient for t in planned.truth if t.message_id == message_id)

    try:
        found = await client.lookup(failed.message_id, recipient_of, lambda: 1)
    finally:
        await client.close()
    assert found.found and found.final and found.event is not None
    events = [found.event, *found.more]
    assert len(events) == len(batch) == 10
    by_recipient = {e.recipient: e for e in events}
    for t in batch:
        ev = by_recipient[t.recipient]
        assert (ev.provider, ev.state.value, ev.error_code) == ("sinch", t.state, t.error_code)
        assert ev.polled and ev.message_id == failed.message_id
    # Each recipient's answer is its own event: none of them a duplicate of another.
    assert len({e.dedupe_key for e in events}) == len(events)
    assert any(e.state is State.UNCONFIRMED for e in events) or all(
        t.state != "unconfirmed" for t in batch
    )


async def test_a_wrong_token_or_plan_is_refused_and_never_shown(
    sandbox: tuple[SandboxAPI, Any],
) -> None:
    api, planned = sandbox
    wrong = "ffffffffffffffffffffffffffffffff"
    batch = planned.truth[0].message_id
    [client] = build(fast(api.url, token=wrong)).values()
    try:
        with pytest.raises(AuthError) as refused:
            await client.batch(batch)
    finally:
        await client.close()
    text = f"{refused.value} {refused.value!r} {client!r}"
    assert wrong not in text and "unauthorized" in text
    assert api.stats()["sinch"]["unauthorized"] == 1
    [other] = build(fast(api.url, plan_id="0" * 32)).values()
    try:
        with pytest.raises(AuthError) as refused:
            await other.batch(batch)
    finally:
        await other.close()
    assert refused.value.status == 403 and TOKEN not in str(refused.value)


async def test_the_sandbox_answers_as_sinch_does(sandbox: tuple[SandboxAPI, Any]) -> None:
    api, planned = sandbox
    t = planned.truth[0]
    base = f"{api.url}/xms/v1/{SERVICE_PLAN_ID}/batches/{t.message_id}/delivery_report"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(base) as resp:
            assert resp.status == 401 and (await resp.json())["code"] == "unauthorized"
        async with session.get(base, headers=auth) as resp:
            summary = await resp.json()
        async with session.get(base, params={"type": "full"}, headers=auth) as resp:
            full = await resp.json()
        async with session.get(f"{base}/{t.recipient}", headers=auth) as resp:
            one = await resp.json()
        async with session.get(base.replace(t.message_id, "nope"), headers=auth) as resp:
            assert resp.status == 404 and (await resp.json())["code"] == "not_found"
    assert summary["type"] == "delivery_report_sms" and summary["batch_id"] == t.message_id
    assert all("recipients" not in s for s in summary["statuses"])
    assert sum(s["count"] for s in full["statuses"]) == full["total_message_count"] == 10
    assert any(t.recipient in s["recipients"] for s in full["statuses"])
    assert (one["type"], one["recipient"], one["batch_id"]) == (
        "recipient_delivery_report_sms",
        t.recipient,
        t.message_id,
    )
    assert one["at"].endswith("Z") and isinstance(one["code"], int)


def test_the_settings_poll_with_the_plan_and_its_token_together() -> None:
    assert ApiConfig.from_settings() is None
    config = api_config("https://eu.sms.api.sinch.com")
    assert config.gateways == ("sinch",)
    access = config.access("sinch")
    assert access is not None and access.user == SERVICE_PLAN_ID and access.rate == 60
    assert TOKEN not in repr(config) and isinstance(config.sinch_key, ApiKey)
    assert config.sinch_url == "https://eu.sms.api.sinch.com"
    assert ApiConfig.from_settings(sinch_api_token=TOKEN, sinch_service_plan_id="x" * 32)
    default = ApiConfig.from_settings(sinch_api_token=TOKEN, sinch_service_plan_id="a" * 32)
    assert default is not None and default.sinch_url == "https://us.sms.api.sinch.com"
    for half in ({"sinch_api_token": TOKEN}, {"sinch_service_plan_id": SERVICE_PLAN_ID}):
        with pytest.raises(ApiConfigError):
            ApiConfig.from_settings(**half)
    with pytest.raises(ApiConfigError):
        ApiConfig.from_settings(sinch_api_token=TOKEN, sinch_service_plan_id="../plan")
    # The webhook secret opens nothing: without the token nothing is polled.
    assert ApiConfig.from_settings(sinch_api_url="https://us.sms.api.sinch.com") is None


@pytest.mark.both_stores
@pytest.mark.timeout(240)
async def test_reconciling_finds_the_final_statuses_sinch_gave_up_on(
    make_engine: Callable[..., Engine], db_path: Any
) -> None:
    planned = plan(drop_rate=0.3, seed=9)
    limits = SandboxLimits(sinch_per_window=20)
    keys = SandboxKeys(sinch_api_token=TOKEN)
    stats = await reconcile_dropped_finals(
        make_engine,
        db_path,
        planned,
        "sinch",
        keys,
        limits,
        SECRET,
        lambda url: replace(api_config(url), sinch_rate=20),
        per_message=True,
    )
    # A batch's report answers for all its recipients: far fewer calls than dropped finals.
    dropped = sum(t.dropped for t in planned.truth)
    batches = len({t.message_id for t in planned.truth if t.dropped})
    assert dropped > batches and stats["calls"] < dropped
