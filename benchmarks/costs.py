"""CPU cost of each stage of one webhook's work, measured alone (no HTTP, no other threads).

    python -m benchmarks.costs [EVENTS]

The ingest rows measure the whole server's CPU time per request; this splits smswatch's own
part: the gateway adapter (credentials, JSON validation, normalisation) per request (and
Twilio's, signed forms, beside it), and the
store per event: the commit path (dedupe, fold into the in-memory state, the log insert and the
fsync'd commit, in batches of 32 as the group commit forms them under 32 concurrent senders)
and the checkpoints (the state and the timeline written once per CHECKPOINT_EVERY events, about
a second's worth at full speed). Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from smswatch.gateways.lisoloo.webhook import Lisoloo
from smswatch.gateways.twilio.webhook import Twilio, sign
from smswatch.store.group_commit import QueuedRequest
from smswatch.store.sqlite.writer import Writer

BATCH = 32
CHECKPOINT_EVERY = 10_000
CREDENTIALS = ("bench", "secret")
HEADERS = {"Authorization": "Basic " + base64.b64encode(b"bench:secret").decode()}


def body(n: int) -> bytes:
    return json.dumps(
        {
            "event_id": f"cost-{n}",
            "event_type": "sms.sent",
            "timestamp": "2026-11-23T10:00:00Z",
            "message_id": f"cost{n % 2000:05d}",
            "data": {
                "recipient_phone": f"+2439{n:08d}",
                "carrier": "vodacom_drc",
                "sent_at": "2026-11-23T10:00:00Z",
            },
        }
    ).encode()


TWILIO_TOKEN = "bench-twilio-token"
TWILIO_URL = "http://127.0.0.1:8787/webhooks/twilio"


def twilio_request(n: int) -> tuple[dict[str, str], bytes]:
    """A Twilio status callback as Twilio posts it: a signed form (one message per recipient)."""
    sid = f"SM{n:032x}"
    fields = [
        ("SmsSid", sid),
        ("SmsStatus", "sent"),
        ("MessageStatus", "sent"),
        ("To", f"+1415{n:07d}"),
        ("MessagingServiceSid", "MG" + "0" * 32),
        ("MessageSid", sid),
        ("AccountSid", "AC" + "0" * 32),
        ("From", "+14155550100"),
        ("ApiVersion", "2010-04-01"),
    ]
    headers = {"X-Twilio-Signature": sign(TWILIO_TOKEN, TWILIO_URL, fields)}
    return headers, urlencode(fields).encode()


def twilio_adapter_us(events: int) -> float:
    """CPU per request of Twilio's adapter: form parsing, the HMAC-SHA1 over the URL (both port
    forms), normalisation, against Lisoloo's `adapter_us` (Basic auth and JSON)."""
    adapter = Twilio(TWILIO_TOKEN)
    requests = [twilio_request(n) for n in range(events)]

    def adapt() -> None:
        for headers, raw in requests:
            adapter.check_auth(headers, raw, TWILIO_URL)
            adapter.parse(raw, 1_795_000_000_000_000)

    return cpu_us_each(events, adapt)


def cpu_us_each(count: int, work: object) -> float:
    started = time.process_time()
    work()  # type: ignore[operator]
    return (time.process_time() - started) / count * 1e6


def measure(events: int) -> dict[str, float]:
    adapter = Lisoloo(CREDENTIALS)
    bodies = [body(n) for n in range(events)]
    parsed = []

    def adapt() -> None:
        for raw in bodies:
            adapter.check_auth(HEADERS, raw)
            parsed.extend(adapter.parse(raw, 1_795_000_000_000_000))

    adapter_us = cpu_us_each(events, adapt)
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory() as tmp:
        writer = Writer(Path(tmp) / "cost.db", durability="full")
        writer._connect()  # the writer thread's own set-up, run here on the caller's thread
        checkpoint_cpu = 0.0

        def store() -> None:
            nonlocal checkpoint_cpu
            for i in range(0, len(parsed), BATCH):
                batch = [QueuedRequest([ev], loop.create_future()) for ev in parsed[i : i + BATCH]]
                writer._transaction(batch, [])
                if (i // BATCH + 1) * BATCH % CHECKPOINT_EVERY < BATCH:
                    started = time.process_time()
                    writer._checkpoint_here(writer._last_id)
                    checkpoint_cpu += time.process_time() - started
            started = time.process_time()
            writer._checkpoint_here(writer._last_id)
            checkpoint_cpu += time.process_time() - started

        store_us = cpu_us_each(events, store)
        writer._disconnect()
    loop.close()
    checkpoint_us = checkpoint_cpu / events * 1e6
    return {
        "events": events,
        "adapter_us": adapter_us,
        "twilio_adapter_us": twilio_adapter_us(events),
        "store_us": store_us,
        "commit_path_us": store_us - checkpoint_us,
        "checkpoint_us": checkpoint_us,
        "batch": BATCH,
    }


def main() -> None:
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 30_000)))


if __name__ == "__main__":
    main()
