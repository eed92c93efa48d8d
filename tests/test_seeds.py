"""The gateways' own example payloads, posted verbatim over HTTP, are stored and folded."""

from __future__ import annotations

import itertools

import pytest

from smswatch.core.domain import State
from smswatch.store.sqlite.reader import Reader
from tests.conftest import Client
from tests.fixtures.seeds import LISOLOO, YEBOLINK

LISOLOO_MESSAGE = "507f1f77bcf86cd799439011"
PHONE = "+243998857000"


async def test_lisoloo_examples_fold_into_one_recipient(client: Client, reader) -> None:
    for body in LISOLOO.values():
        status, answer = await client.lisoloo(body)
        assert status == 200, answer
        assert answer["status"] == "stored"
        assert answer["message_id"] == LISOLOO_MESSAGE

    r = await reader()
    msg = await r.message(LISOLOO_MESSAGE)
    assert msg is not None
    assert (msg.total_recipients, msg.total_messages, msg.total_cost, msg.currency) == (
        3,
        3,
        0.06,
        "USD",
    )
    # The two recipients sms.queued announced but no event has named yet still count as queued.
    assert msg.count(State.QUEUED) == 2
    recipients = await r.recipients(LISOLOO_MESSAGE)
    assert [x.recipient for x in recipients] == [PHONE]
    rec = recipients[0]
    # delivered_at 10:15:08 is later than failed_at 10:15:05: the later terminal event wins and
    # the contradiction is flagged.
    assert rec.state == State.DELIVERED
    assert rec.conflict is True
    assert rec.carrier == "vodacom_drc"
    assert (rec.error_code, rec.error_message, rec.retryable) == (
        "1502",
        "Number unreachable",
        False,
    )
    timeline = await r.timeline(LISOLOO_MESSAGE, PHONE)
    assert [e.event_type for e in timeline if not e.time_estimated] == [
        "sms.sent",
        "sms.failed",
        "sms.delivered",
    ]
    assert [e.time_estimated for e in timeline if e.event_type == "sms.processing"] == [True]


async def test_lisoloo_examples_fold_the_same_in_any_arrival_order(
    make_engine, session, tmp_path
) -> None:
    """Whatever order the five examples arrive in, the recipient ends delivered with a conflict.
    (Without a message id, per-recipient examples join the sms.queued message only if it came
    first; before that they are kept under `unattributed`.)"""
    orders = list(itertools.permutations(LISOLOO.values()))[::17]
    for i, order in enumerate(orders):
        path = tmp_path / f"order{i}.db"
        eng = make_engine(db_path=path)
        await eng.start()
        try:
            c = Client(session, eng.listener.base_url)
            for body in order:
                assert (await c.lisoloo(body))[0] == 200
        finally:
            await eng.stop()
        async with await Reader.open(path) as r:
            found = [
                rec
                for msg in await r.recent_messages()
                for rec in await r.recipients(msg.message_id)
                if rec.recipient == PHONE
            ]
        assert [(x.state, x.conflict) for x in found] == [(State.DELIVERED, True)], order


async def test_yebolink_examples_fold_into_one_message(client: Client, reader) -> None:
    for body in YEBOLINK.values():
        status, answer = await client.yebolink(body)
        assert status == 200, answer
        assert answer["status"] == "stored"

    r = await reader()
    msg = await r.message("550e8400-e29b-41d4-a716-446655440000")
    assert msg is not None
    assert msg.channel == "sms"
    assert msg.metadata == '{"user_id":"12345"}'
    assert (msg.total_cost, msg.currency, msg.total_recipients) == (1.0, "credits", 1)
    [rec] = await r.recipients(msg.message_id)
    assert rec.recipient == "+1234567890"
    # failed at 12:02:00 is later than delivered at 12:01:30.
    assert rec.state == State.FAILED
    assert rec.conflict is True
    assert rec.error_code == "30006"
    timeline = await r.timeline(msg.message_id, rec.recipient)
    assert [e.event_type for e in timeline] == list(YEBOLINK)


@pytest.mark.parametrize("kind", list(YEBOLINK))
async def test_each_yebolink_example_is_acknowledged_once(client: Client, kind: str) -> None:
    first = await client.yebolink(YEBOLINK[kind])
    again = await client.yebolink(YEBOLINK[kind])
    assert first[0] == again[0] == 200
    assert first[1]["status"] == "stored"
    assert again[1]["status"] == "duplicate"
    assert again[1]["event_id"] == first[1]["event_id"]
