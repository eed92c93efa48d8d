"""Adapters: envelope is strict, data fields are lenient and bounded, auth works on raw bytes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from smswatch.config import Credentials
from smswatch.core.domain import State
from smswatch.core.rejected import Rejected
from smswatch.gateways import build, detect
from smswatch.gateways.base import MAX_FIELD
from smswatch.gateways.lisoloo.webhook import Lisoloo
from smswatch.gateways.yebolink.webhook import YeboLink, sign
from smswatch.timefmt import to_us
from tests.conftest import basic_header
from tests.fixtures.seeds import LISOLOO, YEBOLINK

NOW = 1_800_000_000_000_000


def lisoloo(**data) -> bytes:
    body = {"event_id": "e1", "event_type": "sms.delivered", "message_id": "m1", "data": data}
    return json.dumps(body).encode()


def test_lisoloo_event_time_prefers_the_specific_time_then_the_envelope() -> None:
    [ev] = Lisoloo().parse(LISOLOO["sms.sent"].encode(), NOW)
    assert ev.occurred_at == to_us(
        __import__("datetime").datetime.fromisoformat("2026-05-27T10:15:03+00:00")
    )
    assert not ev.time_estimated
    [ev] = Lisoloo().parse(LISOLOO["sms.processing"].encode(), NOW)
    assert (ev.occurred_at, ev.time_estimated) == (NOW, True)
    [ev] = Lisoloo().parse(LISOLOO["sms.queued"].encode(), NOW)
    assert ev.recipient is None  # per message
    assert ev.message_info.total_recipients == 3


def test_lisoloo_without_event_id_gets_a_stable_id_from_the_body() -> None:
    body = LISOLOO["sms.delivered"].encode()
    a, b = Lisoloo().parse(body, NOW)[0], Lisoloo().parse(body, NOW + 5)[0]
    assert a.event_id == b.event_id and a.dedupe_key == b.dedupe_key
    assert a.event_id != Lisoloo().parse(LISOLOO["sms.sent"].encode(), NOW)[0].event_id


def test_yebolink_dedupe_key_is_event_message_and_timestamp() -> None:
    [ev] = YeboLink().parse(YEBOLINK["message.sent"].encode(), NOW)
    assert ev.dedupe_key.startswith("yebolink|message.sent|550e8400-e29b-41d4-a716-446655440000|")
    # Same event re-serialized differently (a retry may not be byte-identical) is the same event.
    again = json.dumps(json.loads(YEBOLINK["message.sent"]), separators=(",", ":")).encode()
    assert YeboLink().parse(again, NOW)[0].event_id == ev.event_id


@pytest.mark.parametrize(
    ("data", "field", "expected"),
    [
        ({"recipient_phone": 243810000001}, "recipient", "243810000001"),
        ({"recipient_phone": {"a": 1}}, "recipient", None),
        ({"recipient_phone": "+2" + "9" * 2000}, "recipient", "+2" + "9" * (MAX_FIELD - 2)),
        ({"carrier": True}, "carrier", None),
        ({"error_code": 1502}, "error_code", None),  # not a failed event: not read at all
    ],
)
def test_lisoloo_data_fields_are_lenient(data, field, expected) -> None:
    [ev] = Lisoloo().parse(lisoloo(**data), NOW)
    assert getattr(ev, field) == expected


def test_numbers_that_sqlite_cannot_hold_become_none() -> None:
    body = {
        "event_id": "q",
        "event_type": "sms.queued",
        "message_id": "m",
        "data": {
            "total_recipients": 10**30,
            "total_cost": 1e400,
            "total_messages": "12",
            "scheduled_at": "soon",
        },
    }
    [ev] = Lisoloo().parse(json.dumps(body).replace("Infinity", "1e400").encode(), NOW)
    info = ev.message_info
    assert (info.total_recipients, info.total_cost, info.total_messages, info.scheduled_at) == (
        None,
        None,
        12,
        None,
    )


def test_failed_fields_and_retryable_flag() -> None:
    [ev] = Lisoloo().parse(LISOLOO["sms.failed"].encode(), NOW)
    assert (ev.state, ev.error_code, ev.error_message, ev.retryable) == (
        State.FAILED,
        "1502",
        "Number unreachable",
        False,
    )
    [ev] = YeboLink().parse(YEBOLINK["message.failed"].encode(), NOW)
    assert (ev.state, ev.error_code, ev.recipient) == (State.FAILED, "30006", "+1234567890")


def test_envelope_ids_that_are_too_long_are_rejected() -> None:
    body = json.dumps({"event_id": "x" * 300, "event_type": "sms.sent", "data": {}}).encode()
    with pytest.raises(Rejected) as err:
        Lisoloo().parse(body, NOW)
    assert (err.value.status, err.value.code) == (400, "invalid_envelope")
    assert "event_id" in err.value.detail


def test_basic_auth_checks_both_parts() -> None:
    lis = Lisoloo(("user", "pa:ss"))
    lis.check_auth(CIMultiDict({"Authorization": basic_header("user", "pa:ss")}), b"")
    lis.check_auth(
        CIMultiDict({"authorization": "basic " + basic_header("user", "pa:ss")[6:]}), b""
    )
    for header in (basic_header("user", "pa"), basic_header("usr", "pa:ss"), "Basic dXNlcg=="):
        with pytest.raises(Rejected) as err:
            lis.check_auth(CIMultiDict({"Authorization": header}), b"")
        assert err.value.status == 401


def test_signature_is_over_the_raw_bytes() -> None:
    yl = YeboLink("k")
    body = YEBOLINK["message.delivered"].encode()
    yl.check_auth(CIMultiDict({"X-YeboLink-Signature": sign("k", body)}), body)
    with pytest.raises(Rejected):
        yl.check_auth(CIMultiDict({"X-YeboLink-Signature": sign("k", body + b" ")}), body)
    with pytest.raises(Rejected):
        yl.check_auth(CIMultiDict({"X-YeboLink-Signature": "zz\u00e9"}), body)


def test_detect_by_header_then_by_shape() -> None:
    providers = build(Credentials())
    assert detect(providers, CIMultiDict({"X-YeboLink-Signature": "x"}), b"{}").name == "yebolink"
    assert detect(providers, CIMultiDict(), LISOLOO["sms.sent"].encode()).name == "lisoloo"
    assert detect(providers, CIMultiDict(), YEBOLINK["message.sent"].encode()).name == "yebolink"
    with pytest.raises(Rejected):
        detect(providers, CIMultiDict(), b'{"type": "sms"}')


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.timezones(),
    ),
    st.sampled_from(["seconds", "milliseconds", "microseconds"]),
)
def test_the_fast_time_path_reads_rfc3339_as_pydantic_does(moment: datetime, spec: str) -> None:
    from smswatch.gateways.base import _DATETIME, _time

    text = moment.isoformat(timespec=spec)
    if moment.utcoffset() == timedelta(0):
        text = text.replace("+00:00", "Z")
    try:
        expected = to_us(_DATETIME.validate_python(text))
    except ValueError:
        return  # e.g. offsets with seconds, which neither path reads as RFC 3339
    assert _time(text) == expected
