"""Continuous simulated traffic for `smswatch --demo`, over real HTTP, from its own thread.

New sends start every few seconds (every gateway, a few to 150 recipients, realistic delays),
so the monitor always has something moving. They make named campaigns: YeboLink bulk sends
name theirs in their metadata, Twilio's and Vonage's group by messaging service and client-ref,
Plivo's by Powerpack or sender,
and every new message joins the run's campaign while one is on, which the demo starts and ends
in waves as an operator would from the palette (between waves, the untagged sends, Africa's
Talking's and Lisoloo's, group into bursts). It opens with one send on each gateway, before the
first wave. Now and then a request signed with a stale secret arrives, as
from a sender whose secret was rotated, so the rejection alert can be seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from typing import Any

import aiohttp

from smswatch.campaigns.rule import CampaignRule
from smswatch.config import Credentials
from smswatch.devtools.simulate import (
    Sender,
    SimConfig,
    plan_campaign,
    request_headers,
    webhook_url,
)
from smswatch.gateways.registry import BUILT_IN, GATEWAYS

MAX_CAMPAIGNS = 10
STALE_SECRET_EVERY_S = 40.0
# The run's campaign: on for a wave, then off for a pause (bursts), then the next one.
WAVES = ("loan-reminder", "airtime-promo", "school-fees")
DROP_RATE = 0.04  # final webhooks the gateways give up on, with the sandbox API running
WAVE_S = 60.0
PAUSE_S = 30.0


class DemoTraffic:
    def __init__(
        self,
        url: str,
        credentials: Credentials,
        seed: int | None = None,
        campaigns: CampaignRule | None = None,
        sandbox: Any = None,
    ) -> None:
        self.url = url
        self.credentials = credentials
        self.campaigns = campaigns
        # The gateways' status APIs (smswatch.devtools.sandbox): each send is made known to
        # it, and a few final webhooks are dropped, as a gateway gives up on them, for the monitor's
        # reconciler to find.
        self.sandbox = sandbox
        self.rng = random.Random(seed)
        self.loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._main, name="smswatch-demo", daemon=True)

    def start(self) -> DemoTraffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._cancel)
            self._thread.join(10)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._task = self.loop.create_task(self.run())
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self._task)
        self.loop.close()

    def campaign(self, provider: str | None = None) -> SimConfig:
        """A send on `provider`, or on a gateway drawn by how often teams send through each."""
        rng = self.rng
        draw = rng.random()
        lisoloo = draw < 0.55 if provider is None else provider == "lisoloo"
        # A bulk send of one message per recipient: YeboLink's, or now and then Twilio's,
        # Vonage's (one message per SMS part and recipient), Africa's Talking's, Infobip's (its
        # reports batched), Telnyx's (now and then a group MMS, several recipients to one
        # message), Plivo's (through a Powerpack or from one number) or Sinch's (a batch: one
        # id, many recipients).
        bulk = (
            "sinch"
            if draw >= 0.965
            else "plivo"
            if draw >= 0.93
            else "telnyx"
            if draw >= 0.90
            else "vonage"
            if draw >= 0.85
            else "twilio"
            if draw >= 0.78
            else "africastalking"
            if draw >= 0.71
            else "infobip"
            if draw >= 0.64
            else "yebolink"
        )
        if provider is None:
            provider = "lisoloo" if lisoloo else bulk
        # A final webhook is dropped only where a status API can bring it back: a gateway with
        # none (Africa's Talking) would leave its recipient stuck for good.
        polled = self.sandbox is not None and GATEWAYS[provider].sandbox() is not None
        return SimConfig(
            url=self.url,
            provider=provider,
            # A Lisoloo campaign is several sends (1,000 recipients at most each).
            messages=rng.randint(2, 4) if lisoloo else 1,
            spread=rng.uniform(2.0, 8.0) if lisoloo else 0.0,
            recipients=rng.choice((8, 15, 25, 40, 60, 90, 150)) if lisoloo else rng.randint(4, 16),
            rate=300,
            fail_rate=rng.choice((0.03, 0.06, 0.1, 0.25)),
            duplicate_rate=0.05,
            seed=rng.getrandbits(32),
            speed=1.0,
            concurrency=8,
            basic_auth=self.credentials.basic_auth,
            yebolink_secret=self.credentials.yebolink_secret,
            tokens=self.credentials.tokens,
            drop_rate=DROP_RATE if polled else 0.0,
        )

    async def run(self) -> None:
        running: set[asyncio.Task[object]] = set()
        loop = asyncio.get_running_loop()
        next_stale = loop.time() + 12.0
        waves = None if self.campaigns is None else asyncio.create_task(self.waves())
        try:
            # One send on each gateway first, in the pause before the first wave: each one's
            # campaign (its metadata, its messaging service or client-ref, or a burst) is on
            # screen from the start, not only once the draw comes to it.
            for name in GATEWAYS:
                if name in BUILT_IN:  # a gateway from a file has no simulated traffic
                    self._launch(running, name)
            while True:
                await asyncio.sleep(self.rng.uniform(2.0, 6.0))
                if len(running) < MAX_CAMPAIGNS:
                    self._launch(running)
                if loop.time() >= next_stale:
                    next_stale = loop.time() + STALE_SECRET_EVERY_S
                    await self.stale_secret_request()
        finally:
            for task in running:
                task.cancel()
            if waves is not None:
                waves.cancel()
                running.add(waves)
            await asyncio.gather(*running, return_exceptions=True)

    async def waves(self) -> None:
        assert self.campaigns is not None
        n = 0
        await asyncio.sleep(PAUSE_S)
        while True:
            # Written from this thread, read by the writer's at each batch: an attribute.
            self.campaigns.active = WAVES[n % len(WAVES)] + ("" if n < len(WAVES) else f"-{n}")
            await asyncio.sleep(WAVE_S)
            self.campaigns.active = None
            await asyncio.sleep(PAUSE_S)
            n += 1

    def _launch(self, running: set[asyncio.Task[object]], provider: str | None = None) -> None:
        config = self.campaign(provider)
        plan = plan_campaign(config)
        if self.sandbox is not None:
            self.sandbox.add_plan(plan)
        task = asyncio.create_task(Sender(config).run(plan.deliveries))
        running.add(task)
        task.add_done_callback(running.discard)

    async def stale_secret_request(self) -> None:
        body = (
            b'{"event":"message.delivered","timestamp":"2026-01-01T00:00:00Z","data":'
            b'{"message_id":"stale-sender","channel":"sms","recipient":"+26876000000","status":"delivered"}}'
        )
        url = webhook_url(self.url, "yebolink")
        stale = Credentials(yebolink_secret="an-old-rotated-secret")
        headers = request_headers("yebolink", body, stale, url)
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
                session.post(url, data=body, headers=headers) as resp,
            ):
                await resp.read()
