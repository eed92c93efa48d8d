"""Infobip's delivery reports and logs: the client against the sandbox over real HTTP (`App`
key auth, a report given once and the log after it, Infobip's answers and errors, the key kept
secret), and the reconciler finding the final reports whose webhooks Infobip gave up on,
within the limit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from smswatch.core.domain import State
from smswatch.devtools.sandbox import ManualClock, SandboxAPI, SandboxLimits
from smswatch.devtools.simulate import SimConfig, plan_campaign
from smswatch.gateways.infobip.api import InfobipApi
from smswatch.gateways.sandboxing import SandboxKeys
from smswatch.live.engine import Engine
from smswatch.reconcile.api import AuthError
from smswatch.reconcile.clients import build
from smswatch.reconcile.config import ApiConfig, ApiConfigError, ApiKey
from tests.reconciling import assert_polled_failure, looked_up, reconcile_dropped_finals

API_KEY = "0f3c9a7e5b1d4c2a8e6f0b9d7c5a3e1f-4a2b8c6d"
TOKENS = {"infobip_basic_auth": "hooks:infobip-webhook-password"}


def plan(drop_rate: float = 0.0, seed: int = 7, messages: int = 4) -> Any:
    config = SimConfig(
        provider="infobip",
        messages=messages,
        recipients=12,
        seed=seed,
        drop_rate=drop_rate,
        rate=4000.0,
        speed=40.0,
        fail_rate=0.35,
        duplicate_rate=0.0,
        tokens=TOKENS,
    )
    return plan_campaign(config)


# The client tests ask a few hundred times a minute: neither side should make them wait.
FAST = SandboxLimits(infobip_per_window=1000)


def api_config(url: str, key: str = API_KEY, rate: int = 1000) -> ApiConfig:
    config = ApiConfig.from_settings(infobip_api_key=key, infobip_api_url=url)
    assert config is not None
    return replace(config, infobip_rate=rate)


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxAPI, Any]]:
    planned = plan(seed=8, messages=6)  # a seed whose plan has unconfirmed recipients
    # The clock stands at the end of the run: every recipient has its final status.
    clock = ManualClock(max(r.steps[-1][0] for r in planned.ledger) + 1_000_000)
    keys = SandboxKeys(infobip_api_key=API_KEY)
    api = SandboxAPI(planned.ledger, clock=clock, keys=keys, limits=FAST)
    await api.start()
    try:
        yield api, planned
    finally:
        await api.stop()


async def test_a_final_report_is_given_once_and_the_log_says_it_after(
    sandbox: tuple[SandboxAPI, Any],
) -> None:
    api, planned = sandbox
    [client] = build(api_config(api.url)).values()
    assert isinstance(client, InfobipApi)
    try:
        for truth in planned.truth[:30]:
            first = await client.status(truth.message_id)
            again = await client.status(truth.message_id)
            assert first is not None and again is not None
            assert (first.source, again.source) == ("report", "log")
            for found in (first, again):
                assert (found.report.messageId, found.report.to) == (
                    truth.message_id,
                    truth.recipient,
                )
                assert found.state.value == truth.state
        assert await client.status("no-such-message") is None
    finally:
        await client.close()


async def test_the_lookup_is_a_polled_event_of_the_recipient(
    sandbox: tuple[SandboxAPI, Any],
) -> None:
    api, planned = sandbox
    [client] = build(api_config(api.url)).values()
    failed = next(t for t in planned.truth if t.state == "failed" and t.error_code)
    unconfirmed = next(t for t in planned.truth if t.state == "unconfirmed")
    found, later, unknown = await looked_up(
        client, planned, failed.message_id, unconfirmed.message_id, "no-such-message"
    )
    assert_polled_failure(found, failed, "infobip")
    # EXPIRED_DLR_UNKNOWN: as final as Infobip will say, no outcome.
    assert later.final and later.event is not None and later.event.state is State.UNCONFIRMED
    assert not unknown.found


async def test_a_pending_message_is_found_not_final(sandbox: tuple[SandboxAPI, Any]) -> None:
    api, planned = sandbox
    record = next(r for r in planned.ledger if len(r.steps) > 1)
    api.clock.us = record.steps[0][0]  # type: ignore[attr-defined]
    [client] = build(api_config(api.url)).values()

    async def recipient_of(message_id: str) -> str:
        return record.truth.recipient

    try:
        found = await client.lookup(record.truth.message_id, recipient_of, lambda: 1)
    finally:
        await client.close()
    assert found.found and not found.final
    assert found.event is not None and found.event.state is State.PROCESSING


async def test_a_wrong_key_is_refused_and_never_shown(sandbox: tuple[SandboxAPI, Any]) -> None:
    api, planned = sandbox
    wrong = "not-the-key-" + "9" * 24
    [client] = build(api_config(api.url, wrong)).values()
    try:
        with pytest.raises(AuthError) as refused:
            await client.status(planned.truth[0].message_id)
    finally:
        await client.close()
    text = f"{refused.value} {refused.value!r} {client!r}"
    assert wrong not in text and "Invalid login details" in text
    assert api.stats()["infobip"]["unauthorized"] == 1


async def test_the_sandbox_answers_as_infobip_does(sandbox: tuple[SandboxAPI, Any]) -> None:
    api, planned = sandbox
    auth = {"Authorization": f"App {API_KEY}"}
    bulk = planned.ledger[0].fields["bulkId"]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{api.url}/sms/3/reports") as resp:
            body = await resp.json()
            assert resp.status == 401
            assert body["requestError"]["serviceException"]["messageId"] == "UNAUTHORIZED"
        async with session.get(f"{api.url}/sms/3/reports?limit=5000", headers=auth) as resp:
            assert resp.status == 400
        query = {"bulkId": bulk, "limit": "1000"}
        async with session.get(f"{api.url}/sms/3/reports", params=query, headers=auth) as resp:
            reports = (await resp.json())["results"]
        async with session.get(f"{api.url}/sms/3/reports", params=query, headers=auth) as resp:
            assert (await resp.json())["results"] == []  # each report once
        async with session.get(f"{api.url}/sms/3/logs", params=query, headers=auth) as resp:
            logs = (await resp.json())["results"]
    sent = [r for r in planned.ledger if r.fields["bulkId"] == bulk]
    assert len(reports) == len(logs) == len(sent)
    assert all(r["to"] and r["doneAt"].endswith("+0000") for r in reports)
    assert all("destination" in entry and "to" not in entry for entry in logs)


def test_the_settings_poll_only_with_key_and_url() -> None:
    with pytest.raises(ApiConfigError, match="--infobip-api-url"):
        ApiConfig.from_settings(infobip_api_key=API_KEY)
    config = ApiConfig.from_settings(
        infobip_api_key=API_KEY, infobip_api_url="https://xyz123.api.infobip.com/"
    )
    assert config is not None and config.infobip_rate == 60
    assert config.gateways == ("infobip",)
    assert API_KEY not in repr(config)
    assert isinstance(config.infobip_key, ApiKey)
    assert config.infobip_url == "https://xyz123.api.infobip.com"


@pytest.mark.both_stores
@pytest.mark.timeout(240)
async def test_reconciling_finds_the_final_reports_infobip_gave_up_on(
    make_engine: Callable[..., Engine], db_path: Any
) -> None:
    planned = plan(drop_rate=0.3, seed=9)
    # The client paces itself at its rate; the sandbox counts every call it makes.
    limits = SandboxLimits(infobip_per_window=30)
    keys = SandboxKeys(infobip_api_key=API_KEY)
    await reconcile_dropped_finals(
        make_engine,
        db_path,
        planned,
        "infobip",
        keys,
        limits,
        TOKENS,
        lambda url: api_config(url, rate=30),
    )
