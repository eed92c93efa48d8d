"""The adapters' fast path (plain pydantic types, no Python callbacks) gives exactly what the
lenient models give, on bodies built to sit on the boundaries between the two."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smswatch.core.rejected import Rejected
from smswatch.gateways.lisoloo import webhook as lisoloo
from smswatch.gateways.lisoloo.webhook import Lisoloo
from smswatch.gateways.telnyx import webhook as telnyx
from smswatch.gateways.telnyx.webhook import Telnyx
from smswatch.gateways.yebolink import webhook as yebolink
from smswatch.gateways.yebolink.webhook import YeboLink
from tests.test_reliability import json_values, lisoloo_bodies, yebolink_bodies

# Values on both sides of every limit the two paths must agree on.
texts = st.sampled_from(["", " ", "+243810000001", "vodacom_drc", "x" * 512, "x" * 513, "é\u200b"])
ints = st.sampled_from([0, 1, -1, 2**63 - 1, 2**63 - 600, 2**63, -(2**63), -(2**63) + 1, 10**30])
floats = st.sampled_from([0.0, 0.02, 1.5e300, 9.3e18, -9.3e18, 2.0**63, 1e-300])
times = st.sampled_from(
    [
        "2026-11-23T10:00:00Z",
        "2026-11-23T10:00:00.123456Z",
        "2026-11-23T10:00:00.1234567Z",
        "2026-11-23T10:00:00+02:00",
        "2026-11-23 10:00:00",
        "2026-11-23T10:00:00",
        "2026-11-23",
        "23/11/2026",
        "",
        1_795_400_000,
        1_795_400_000.5,
    ]
)
plausible = texts | ints | floats | times | st.booleans() | st.none() | json_values

LISOLOO_DATA = {
    "recipient_phone": texts,
    "carrier": texts,
    "sent_at": times,
    "delivered_at": times,
    "failed_at": times,
    "segments": ints,
    "error_code": texts | ints,
    "error_message": texts,
    "retryable": st.booleans() | st.sampled_from(["true", "false", "yes"]),
    "total_recipients": ints | floats,
    "total_messages": ints,
    "total_cost": floats | ints | texts,
    "currency": texts,
    "scheduled_at": times | st.none(),
}


def lisoloo_well_formed() -> st.SearchStrategy[dict[str, Any]]:
    data = st.fixed_dictionaries({}, optional={k: v | plausible for k, v in LISOLOO_DATA.items()})
    return st.fixed_dictionaries(
        {
            "event_type": st.sampled_from(
                ["sms.queued", "sms.processing", "sms.sent", "sms.delivered", "sms.failed"]
            ),
            "data": data,
        },
        optional={"event_id": texts, "timestamp": times, "message_id": texts},
    )


def yebolink_well_formed() -> st.SearchStrategy[dict[str, Any]]:
    data = st.fixed_dictionaries(
        {},
        optional={
            "message_id": texts,
            "recipient": texts,
            "channel": texts,
            "status": texts,
            "credits_used": floats | ints | texts,
            "delivered_at": times,
            "error_code": texts | ints,
            "error_message": texts,
            "metadata": json_values,
        },
    )
    return st.fixed_dictionaries(
        {
            "event": st.sampled_from(
                ["message.queued", "message.sent", "message.delivered", "message.failed"]
            ),
            "data": data,
        },
        optional={"timestamp": times},
    )


def telnyx_well_formed() -> st.SearchStrategy[dict[str, Any]]:
    """Telnyx's delivery events, most fields as Telnyx writes them and now and then one of
    another type or past a limit: recipients with repeated, blank or missing numbers, errors
    pointing at them or not, a cost as a string (Telnyx's) or a number, tags of any kind."""
    odd = texts | ints | floats | st.none() | st.booleans() | json_values

    def mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(good, good, good, good, odd)

    to = st.fixed_dictionaries(
        {},
        optional={
            "phone_number": mostly(st.sampled_from(["+14155550100", "+14155550101", "", " "])),
            "status": mostly(
                st.sampled_from(
                    [
                        "queued",
                        "sending",
                        "sent",
                        "delivered",
                        "delivery_failed",
                        "expired",
                        "delivery_unconfirmed",
                        "sending_failed",
                        "DELIVERED",
                        " sent ",
                        "later",
                    ]
                )
            ),
            "carrier": mostly(texts),
        },
    )
    problem = st.fixed_dictionaries(
        {},
        optional={
            "code": mostly(st.sampled_from(["40001", "40300", " ", ""])),
            "title": mostly(texts),
            "detail": mostly(texts),
            "source": mostly(
                st.fixed_dictionaries(
                    {}, optional={"pointer": st.sampled_from(["/to/0", "/to/1", "/to/0/x", ""])}
                )
            ),
        },
    )
    cost = st.fixed_dictionaries(
        {},
        optional={
            "amount": mostly(st.sampled_from(["0.0040", "1e400", "nan", " 2 ", "x", ""]) | floats),
            "currency": mostly(texts),
        },
    )
    payload = st.fixed_dictionaries(
        {"to": mostly(st.lists(mostly(to), min_size=1, max_size=3))},
        optional={
            "id": mostly(st.sampled_from(["40385f64-5717-4562-b3fc-000000000001", "", " "])),
            "type": mostly(st.sampled_from(["SMS", "MMS", ""])),
            "messaging_profile_id": mostly(texts),
            "tags": mostly(st.lists(mostly(texts), max_size=3)),
            "cost": mostly(cost),
            "errors": mostly(st.lists(mostly(problem), max_size=2)),
            "sent_at": mostly(times),
            "completed_at": mostly(times),
        },
    )
    data = st.fixed_dictionaries(
        {
            "event_type": st.sampled_from(
                ["message.sent", "message.finalized", "message.finalized", "message.received"]
            ),
            "payload": mostly(payload),
        },
        optional={"id": mostly(texts), "occurred_at": mostly(times), "record_type": texts},
    )
    return st.fixed_dictionaries({"data": data}, optional={"meta": json_values})


class _Refuse:
    """Stands in for a fast adapter that accepts nothing: everything takes the lenient path."""

    def validate_json(self, body: bytes) -> Any:
        from pydantic import TypeAdapter

        return TypeAdapter(int).validate_json(b'"no"')


def both_ways(adapter: Any, module: Any, body: bytes) -> None:
    def outcome() -> Any:
        try:
            return adapter.parse(body, 1_800_000_000_000_000)
        except Rejected as exc:
            return (exc.status, exc.code, exc.detail)

    fast = outcome()
    saved = module.FAST
    module.FAST = _Refuse()
    try:
        lenient = outcome()
    finally:
        module.FAST = saved
    assert fast == lenient


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lisoloo_well_formed() | lisoloo_bodies())
def test_lisoloo_fast_and_lenient_agree(body: object) -> None:
    both_ways(Lisoloo(), lisoloo, json.dumps(body).encode())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(yebolink_well_formed() | yebolink_bodies())
def test_yebolink_fast_and_lenient_agree(body: object) -> None:
    both_ways(YeboLink(), yebolink, json.dumps(body).encode())


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(telnyx_well_formed())
def test_telnyx_fast_and_lenient_agree(body: object) -> None:
    both_ways(Telnyx(), telnyx, json.dumps(body).encode())


def test_a_typical_telnyx_event_takes_the_fast_path() -> None:
    from benchmarks.run import telnyx_requests

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.tsv"
        telnyx_requests(path, 2)
        bodies = [line.split("\t", 1)[1].encode() for line in path.read_text().splitlines()]
    for body in bodies:
        assert telnyx.FAST.validate_json(body).data.payload.to
        both_ways(Telnyx(), telnyx, body)


def test_a_typical_body_takes_the_fast_path() -> None:
    body = {
        "event_id": "e1",
        "event_type": "sms.sent",
        "timestamp": "2026-11-23T10:00:00Z",
        "message_id": "m1",
        "data": {"recipient_phone": "+243810000001", "sent_at": "2026-11-23T10:00:01Z"},
    }
    assert lisoloo.FAST.validate_json(json.dumps(body).encode()).event_type == "sms.sent"
