"""The end-to-end reconciliation check each polled gateway's tests run: a plan with dropped final
webhooks sent over real HTTP into a real engine, which polls the sandbox's status API until
every recipient matches the truth (the dropped ones by poll). Returns the sandbox's counters of
that gateway, once it has checked them: every dropped final found by polling, never more calls
than the limit allows, none refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from smswatch.config import Credentials
from smswatch.core.domain import State
from smswatch.devtools.sandbox import SandboxAPI, SandboxLimits
from smswatch.devtools.simulate import Sender, SimConfig
from smswatch.gateways.sandboxing import SandboxKeys
from smswatch.live.engine import Engine
from smswatch.reconcile.config import ApiConfig
from smswatch.store import open_reader
from tests.conftest import running


async def reconcile_dropped_finals(
    make_engine: Callable[..., Engine],
    db_path: Any,
    planned: Any,
    provider: str,
    keys: SandboxKeys,
    limits: SandboxLimits,
    tokens: dict[str, str],
    api: Callable[[str], ApiConfig],
    per_message: bool = False,
) -> dict[str, Any]:
    dropped = [t for t in planned.truth if t.dropped]
    assert dropped, "the plan drops some final webhooks"
    sandbox = SandboxAPI(planned.ledger, keys=keys, limits=limits)
    url = await sandbox.start()
    engine = make_engine(
        credentials=Credentials(tokens=tokens),
        gateway_api=api(url),
        reconcile_quiet={provider: 2},
        reconcile_every=0.5,
    )
    try:
        async with running(engine):
            config = SimConfig(url=engine.listener.base_url, concurrency=16, tokens=tokens)
            result = await Sender(config).run(planned.deliveries)
            assert result.ok

            async def settled() -> bool:
                await asyncio.wrap_future(engine.writer.settle())
                async with await open_reader(db_path, current=True) as reader:
                    for t in planned.truth:
                        r = await reader.recipient(t.message_id, t.recipient)
                        if r is None or r.state != State(t.state) or r.polled != t.dropped:
                            return False
                return True

            deadline = asyncio.get_running_loop().time() + 180
            while not await settled():
                assert asyncio.get_running_loop().time() < deadline, "not reconciled in time"
                await asyncio.sleep(0.25)
    finally:
        stats = sandbox.stats()[provider]
        await sandbox.stop()
    # A gateway whose API answers for a whole message's recipients at once (Sinch's batch
    # report, `per_message`) needs a call per message with a dropped final; the others one per
    # dropped recipient.
    needed = len({t.message_id for t in dropped}) if per_message else len(dropped)
    assert stats["served"] >= needed
    assert stats["max_in_window"] <= getattr(limits, f"{provider}_per_window")
    assert stats["unauthorized"] == 0
    return stats


async def looked_up(client: Any, planned: Any, *message_ids: str) -> list[Any]:
    """Each message looked up through a gateway's API client, its recipient taken from the
    plan (as the store would give it); the client closed after."""

    async def recipient_of(message_id: str) -> str:
        return next(t.recipient for t in planned.truth if t.message_id == message_id)

    try:
        return [await client.lookup(m, recipient_of, lambda: 1) for m in message_ids]
    finally:
        await client.close()


def assert_polled_failure(found: Any, failed: Any, provider: str) -> None:
    """A lookup of a failed recipient: found, final, and a polled event of that recipient with
    the gateway's error code."""
    assert found.found and found.final and found.event is not None
    ev = found.event
    assert (ev.provider, ev.state, ev.error_code) == (provider, State.FAILED, failed.error_code)
    assert ev.polled and ev.message_id == failed.message_id and ev.recipient == failed.recipient
