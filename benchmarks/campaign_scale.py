"""A YeboLink campaign of 100,000 recipients (100,000 message ids, as YeboLink sends one
message per recipient), written through the writer, for the campaign rows of `make bench`.

    python -m benchmarks.campaign_scale generate PATH [RECIPIENTS]
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from smswatch.domain import Event, MessageInfo, State
from smswatch.store import Writer

CAMPAIGN = "bulk-100k"
PREFIXES = ("+26876", "+26878", "+2782", "+2783", "+2772")
FAILURES = (("30003", "Unreachable destination handset"), ("30006", "Landline"))


def _body(kind: str, at: int, data: dict[str, object]) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at / 1e6)) + "Z"
    return json.dumps({"event": kind, "timestamp": stamp, "data": data}, separators=(",", ":"))


def events(recipients: int, t0: int, open_share: float = 0.0) -> Iterator[Event]:
    """Queued, sent, then delivered (92%) or failed, a message per recipient, 1,000 new
    messages a second of event time. `open_share` of them stop at sent (still in flight)."""
    rng = random.Random(11)
    meta = json.dumps({"campaign": CAMPAIGN, "batch_id": "b1"}, separators=(",", ":"))
    for i in range(recipients):
        mid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        phone = f"{rng.choice(PREFIXES)}{rng.randrange(10**6):06d}"
        at = t0 + i * 1000
        base = {"message_id": mid, "channel": "sms", "recipient": phone, "metadata": meta}
        steps = [("message.queued", State.QUEUED, at), ("message.sent", State.SENT, at + 900_000)]
        if rng.random() >= open_share:
            final = State.FAILED if rng.random() < 0.08 else State.DELIVERED
            steps.append((f"message.{final.value}", final, at + 4_000_000))
        for kind, state, t in steps:
            info = MessageInfo(
                total_recipients=1,
                total_cost=1.0 if state == State.QUEUED else None,
                currency="credits" if state == State.QUEUED else None,
                channel="sms",
                metadata=meta,
            )
            code, text = rng.choice(FAILURES) if state == State.FAILED else (None, None)
            yield Event(
                "yebolink",
                f"{kind}|{mid}",
                f"yebolink|{kind}|{mid}|{t}",
                kind,
                state,
                mid,
                phone,
                t,
                t,
                _body(kind, t, {**base, "status": state.value}),
                error_code=code,
                error_message=text,
                message_info=info,
            )


async def generate(path: Path, recipients: int, t0: int, open_share: float = 0.0) -> None:
    from smswatch.campaigns.rule import CampaignRule

    writer = Writer(path, durability="normal", campaigns=CampaignRule())
    await writer.open()
    batch: list[Event] = []
    for ev in events(recipients, t0, open_share):
        batch.append(ev)
        if len(batch) == 5000:
            await writer.submit(batch)
            batch = []
    if batch:
        await writer.submit(batch)
    await writer.close()


def main() -> None:
    recipients = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    started = time.perf_counter()
    t0 = int(time.time() * 1e6) - recipients * 1000 - 10_000_000
    asyncio.run(generate(Path(sys.argv[2]), recipients, t0))
    print(f"generated {recipients:,} recipients in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
