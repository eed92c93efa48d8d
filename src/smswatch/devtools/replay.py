"""`smswatch replay FILE`: post recorded webhook traffic again, with its original timing.

Each JSONL line is either an `export` record (`provider`, `received_at`, `payload`) or a bare
webhook body, whose gateway is told from its envelope. A line may give `payload_raw` (a string)
to send bytes exactly as recorded. Replay signs YeboLink, Twilio and Vonage bodies and adds
Lisoloo Basic auth when credentials are given, so traffic recorded elsewhere passes this
listener's checks; a Twilio payload (kept as the JSON object of its form) is posted as a form
again, and a Vonage receipt the way it came (a GET's query, a form or JSON).

Replay is for traffic. To copy a database, `smswatch import` stores an export as it was: replay
leaves out the events smswatch made by polling (no gateway posts those), and the listener stamps
its own receive times.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from smswatch.core.domain import POLLED_PREFIX
from smswatch.devtools.simulate import Delivery
from smswatch.gateways.registry import GATEWAYS
from smswatch.timefmt import to_us


class ReplayError(Exception):
    pass


def _provider_of(record: dict[str, Any], body: Any) -> str:
    provider = record.get("provider")
    if isinstance(provider, str):
        return provider
    if isinstance(body, dict):
        for name, gateway in GATEWAYS.items():
            if gateway.envelope_key in body:
                return name
    raise ReplayError("cannot tell the gateway: no 'provider' and no known envelope")


def _time_of(record: dict[str, Any]) -> int | None:
    value = record.get("received_at")
    if isinstance(value, str):
        try:
            return to_us(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    if isinstance(record.get("t"), int | float):
        return int(record["t"] * 1e6)
    return None


def load(lines: Iterable[str], speed: float = 1.0) -> list[Delivery]:
    """Deliveries for every non-empty line (see load_webhooks)."""
    return load_webhooks(lines, speed)[0]


def load_webhooks(lines: Iterable[str], speed: float = 1.0) -> tuple[list[Delivery], int]:
    """Deliveries for every non-empty line, due at the recorded offsets divided by `speed`
    (0 sends as fast as allowed), and how many exported polled events were left out: smswatch
    made them from a gateway's status API, no gateway ever posts them, and a listener rightly
    refuses them (`smswatch import` stores them as they were)."""
    parsed: list[tuple[int | None, str, bytes, str, int]] = []
    polled = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ReplayError(f"line {number}: not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise ReplayError(f"line {number}: not a JSON object")
        event_type = record.get("event_type")
        if "payload" in record and str(event_type).startswith(POLLED_PREFIX):
            polled += 1
            continue
        raw: bytes | None = None
        if isinstance(record.get("payload_raw"), str):
            raw = record["payload_raw"].encode()
            body: Any = None
        else:
            body = record.get("payload", record)
        try:
            provider = _provider_of(record, body)
        except ReplayError as exc:
            raise ReplayError(f"line {number}: {exc}") from None
        if raw is None:
            # As the gateway posts it: the JSON as recorded, a form gateway's as a form.
            text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
            origin = GATEWAYS.get(provider)
            try:
                raw = origin.post_body(text) if origin is not None else text.encode()
            except ValueError as exc:
                raise ReplayError(f"line {number}: {provider} payload: {exc}") from None
        kind = body.get("event_type") or body.get("event") if isinstance(body, dict) else "raw"
        parsed.append((_time_of(record), provider, raw, f"line {number} {kind}", number))
    times = [t for t, *_ in parsed if t is not None]
    first = min(times) if times else 0
    deliveries = []
    for seq, (t, provider, raw, label, number) in enumerate(parsed):
        offset = (t - first) / 1e6 if t is not None else 0.0
        due = offset / speed if speed > 0 else 0.0
        deliveries.append(Delivery(due, seq, provider, raw, label, line=number))
    deliveries.sort()
    return deliveries, polled
