"""Sinch end to end: recipient and batch delivery reports posted over real HTTP into a real engine
(both stores), signed with real HMAC-SHA256 (body.nonce.timestamp) or sent with real Basic auth:
every status and its folded state against the truth, duplicates stored once, reports out of
order, a `full` batch report's recipients and a `summary` report's counts, a malformed entry
quarantined while its neighbours are stored, forged, stale and missing credentials refused with
nothing stored, forwards signed afresh by the team's secret, and `smswatch simulate --provider
sinch` end to end.

Signatures and Authorization headers are built in this file with hashlib/hmac/base64, never with
the production `sign` or `BasicAuth`, so a wrong encoding cannot agree with itself; the known
answer is sinch-sdk-java's own (`SinchEventsServiceTest.checkApplicationAuthentication`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from smswatch.config import Credentials
from smswatch.core.credentials import GATEWAY_CREDENTIALS
from smswatch.core.domain import State
from smswatch.core.rejected import Rejected
from smswatch.devtools.simulate import Sender, SimConfig, plan_campaign
from smswatch.gateways.base import credentials_of
from smswatch.gateways.catalogue import explain, suppressible
from smswatch.gateways.registry import GATEWAYS
from smswatch.gateways.sinch.webhook import FRESH_S, Sinch, state_of
from smswatch.live.engine import Engine
from tests.conftest import running
from tests.helpers import Server, free_port, run

SECRET = "sinch-hook-secret-Kq8vW2"
USER, PASSWORD = "sinch-hooks", "pa:ss-7f3a"  # a colon in the password: split on the first
TOKENS = {"sinch_webhook_secret": SECRET}
BASIC = {"sinch_basic_auth": f"{USER}:{PASSWORD}"}
BATCH = "01FC66621XXXXX119Z8PMV1QPQ"
OTHER = "01FC66621XXXXX119Z8PMV1ZZZ"
REFERENCE = "winter-sale"
A, B, C, D, E, F, G, H = (f"4670000000{i}" for i in range(8))

# sinch-sdk-java SinchEventsServiceTest.checkApplicationAuthentication: its body, headers and
# secret, which Sinch's own validator accepts.
SDK_SECRET = "SMSWebhooksSecret"
SDK_BODY = (
    b'{"at":"2025-01-13T09:22:40.914Z","batch_id":"01JHFFHQ0P99JPPNQPJDV7JTBP",'
    b'"client_reference":"a client reference","code":0,"operator_status_at":'
    b'"2025-01-13T09:22:00Z","recipient":"33662162466","status":"Delivered",'
    b'"type":"recipient_delivery_report_sms"}'
)
SDK_HEADERS = {
    "x-sinch-webhook-signature": "ZoHei66PPN/kZjw7hFVfGhJOnml3iGNCMWoyQVcE5o0=",
    "x-sinch-webhook-signature-algorithm": "HmacSHA256",
    "x-sinch-webhook-signature-nonce": "01JHFFHWYY7HSS4FWTMDTQEK8V",
    "x-sinch-webhook-signature-timestamp": "1736760161",
}


def signed(body: bytes, secret: str = SECRET, now: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if now is None else now))
    nonce = "01JHFFHWYY7HSS4FWTMDTQEK8V"
    mac = hmac.new(secret.encode(), body + b"." + nonce.encode() + b"." + stamp.encode(), "sha256")
    return {
        "x-sinch-webhook-signature": base64.b64encode(mac.digest()).decode(),
        "x-sinch-webhook-signature-nonce": nonce,
        "x-sinch-webhook-signature-timestamp": stamp,
        "x-sinch-webhook-signature-algorithm": "HmacSHA256",
    }


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def at(second: int) -> str:
    return f"2026-12-01T10:00:{second:02d}.250Z"


def us(second: int) -> int:
    return int(datetime(2026, 12, 1, 10, 0, second, 250_000, tzinfo=UTC).timestamp() * 1e6)


def recipient_report(
    recipient: str, status: str, code: int, second: int, batch: str = BATCH
) -> dict[str, Any]:
    """One recipient's report, its fields as Sinch's documentation shows them."""
    return {
        "at": at(second),
        "batch_id": batch,
        "client_reference": REFERENCE,
        "code": code,
        "operator": "24001",
        "operator_status_at": at(max(second - 1, 0)),
        "recipient": recipient,
        "status": status,
        "type": "recipient_delivery_report_sms",
    }


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any] | bytes,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **(signed(raw) if headers is None else headers)}
    async with session.post(url, data=raw, headers=hdrs) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


@contextlib.asynccontextmanager
async def sinch_engine(
    make_engine: Callable[..., Engine], tokens: dict[str, str] = TOKENS, **overrides: Any
) -> AsyncIterator[Engine]:
    engine = make_engine(credentials=Credentials(tokens=tokens), **overrides)
    async with running(engine):
        yield engine


def hook(engine: Engine) -> str:
    return f"{engine.listener.base_url}/webhooks/sinch"


# --- the credentials, the statuses, the checks on their own --------------------------------------


def test_its_credentials_are_declared_once_and_read_by_its_gateway() -> None:
    declared = {c.key: c for c in GATEWAY_CREDENTIALS if c.gateway == "sinch"}
    secret, pair = declared["sinch_webhook_secret"], declared["sinch_basic_auth"]
    assert (secret.flag, secret.envvar, secret.secret) == (
        "--sinch-webhook-secret",
        "SMSWATCH_SINCH_WEBHOOK_SECRET",
        True,
    )
    assert (pair.flag, pair.envvar, pair.metavar, pair.basic_auth, pair.secret) == (
        "--sinch-basic-auth",
        "SMSWATCH_SINCH_BASIC_AUTH",
        "USER:PASS",
        True,
        True,
    )
    gateway = GATEWAYS["sinch"]
    assert gateway.credential == secret.key
    assert credentials_of(gateway) == (secret.key, pair.key)
    assert list(GATEWAYS).index("sinch") > list(GATEWAYS).index("telnyx")
    for tokens in (TOKENS, BASIC):
        mode = gateway.provider(Credentials(tokens=tokens)).auth_mode()
        assert mode.verified and SECRET not in mode.label and PASSWORD not in mode.label
    assert not gateway.provider(Credentials()).auth_mode().verified
    assert gateway.status_api() is not None and gateway.sandbox() is not None
    # Either credential alone makes a public bind safe.
    assert Credentials(tokens=TOKENS).any and Credentials(tokens=BASIC).any


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("Queued", State.QUEUED),
        ("Dispatched", State.SENT),  # the SMSC took it; not final
        ("Delivered", State.DELIVERED),
        ("Aborted", State.FAILED),
        ("Cancelled", State.FAILED),
        ("Rejected", State.FAILED),
        ("Deleted", State.FAILED),
        ("Failed", State.FAILED),
        ("Expired", State.FAILED),
        ("Unknown", State.UNCONFIRMED),  # final as far as Sinch will say
        ("DELIVERED", State.DELIVERED),  # the SDKs' enums are upper case
        (" unknown ", State.UNCONFIRMED),
        ("Teleported", State.UNKNOWN),
        (None, State.UNKNOWN),
    ],
)
def test_every_status_has_its_state(status: str | None, state: State) -> None:
    assert state_of(status) is state


# Known answers of the same scheme from Sinch's SDKs' own tests, on other products' bodies:
# sinch-sdk-python tests/unit/domains/conversation/v1/sinch_events/
# test_conversation_sinch_event.py (no algorithm header: Python's validator sends none), and
# sinch-sdk-java HmacAuthenticationValidationTest.
CONVERSATION_BODY = (
    b'{"app_id":"01EB37HMH1M6SV18BSNS3G135H","accepted_time":"2020-11-17T15:09:11.659Z",'
    b'"project_id":"c36f3d3d-1513-2edd-ae42-11995557ff61",'
    b'"message_delivery_report":{"message_id":"01EQBC1A3BEK731GY4YXEN0C2R",'
    b'"conversation_id":"01EPYATA64TMNZ1FV02JKF12JF","status":"QUEUED_ON_CHANNEL",'
    b'"contact_id":"01EXA07N79THJ20WSN6AS30TMW"}}'
)
CONTACT_BODY = (
    b'{"app_id":"","accepted_time":"2021-10-18T17:49:13.813615Z","project_id":'
    b'"e2df3a34-a71b-4448-9db5-a8d2baad28e4","contact_create_notification":{"contact":'
    b'{"id":"01FJA8B466Y0R2GNXD78MD9SM1","channel_identities":[{"channel":"SMS","identity":'
    b'"48123456789","app_id":""}],"display_name":"New Test Contact","email":'
    b'"new.contact@email.com","external_id":"","metadata":"","language":"EN_US"}},'
    b'"message_metadata":""}'
)
VECTORS = [
    (SDK_SECRET, SDK_BODY, SDK_HEADERS),
    (
        "foo_secret1234",
        CONVERSATION_BODY,
        {
            "x-sinch-webhook-signature": "Yc+3R1pIS78xLASybulhs8BsSo9BPB3Pr92QCUoczfk=",
            "x-sinch-webhook-signature-nonce": "01FJA8B4A7BM43YGWSG9GBV067",
            "x-sinch-webhook-signature-timestamp": "1634579353",
        },
    ),
    (
        "foo_secret1234",
        CONTACT_BODY,
        {
            "x-sinch-webhook-signature": "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE=",
            "x-sinch-webhook-signature-algorithm": "HmacSHA256",
            "x-sinch-webhook-signature-nonce": "01FJA8B4A7BM43YGWSG9GBV067",
            "x-sinch-webhook-signature-timestamp": "1634579353",
        },
    ),
]


@pytest.mark.parametrize(("secret", "body", "headers"), VECTORS)
def test_every_known_answer_of_sinchs_sdks_is_taken_and_made(
    secret: str, body: bytes, headers: dict[str, str]
) -> None:
    stamp = int(headers["x-sinch-webhook-signature-timestamp"])
    Sinch(secret=secret, clock=lambda: stamp).check_auth(headers, body)
    # This file's own signer (hmac, base64) makes the same signature from the same parts.
    nonce = headers["x-sinch-webhook-signature-nonce"]
    mac = hmac.new(
        secret.encode(), body + b"." + nonce.encode() + b"." + str(stamp).encode(), "sha256"
    )
    assert base64.b64encode(mac.digest()).decode() == headers["x-sinch-webhook-signature"]


def test_the_sdks_known_answer_passes_and_every_part_of_it_counts() -> None:
    sinch = Sinch(secret=SDK_SECRET, clock=lambda: 1736760161)
    sinch.check_auth(SDK_HEADERS, SDK_BODY)
    # Python's validator does not send or read the algorithm header: taken without it.
    without = {k: v for k, v in SDK_HEADERS.items() if not k.endswith("algorithm")}
    sinch.check_auth(without, SDK_BODY)
    forged = [
        (SDK_HEADERS, SDK_BODY + b" ", "bad_signature"),
        (
            {**SDK_HEADERS, "x-sinch-webhook-signature-nonce": "01JHFFHWYY7HSS4FWTMDTQEK8W"},
            None,
            "bad_signature",
        ),
        (
            {**SDK_HEADERS, "x-sinch-webhook-signature-timestamp": "1736760162"},
            None,
            "bad_signature",
        ),
        (
            {
                **SDK_HEADERS,
                "x-sinch-webhook-signature": "ZoHei66PPN/kZjw7hFVfGhJOnml3iGNCMWoyQVcE5o1=",
            },
            None,
            "bad_signature",
        ),
        ({**SDK_HEADERS, "x-sinch-webhook-signature-algorithm": "HmacSHA1"}, None, "bad_signature"),
        ({**SDK_HEADERS, "x-sinch-webhook-signature-timestamp": "soon"}, None, "bad_signature"),
        (
            {k: v for k, v in SDK_HEADERS.items() if not k.endswith("nonce")},
            None,
            "missing_signature",
        ),
        (
            {k: v for k, v in SDK_HEADERS.items() if not k.endswith("timestamp")},
            None,
            "missing_signature",
        ),
        ({}, None, "missing_signature"),
    ]
    for headers, body, code in forged:
        with pytest.raises(Rejected) as refused:
            sinch.check_auth(headers, SDK_BODY if body is None else body)
        assert (getattr(refused.value, "status", None), refused.value.code) == (401, code), headers
    with pytest.raises(Rejected) as refused:
        Sinch(secret="not the secret", clock=lambda: 1736760161).check_auth(SDK_HEADERS, SDK_BODY)
    assert refused.value.code == "bad_signature"
    # Stale or from the future by more than the window: refused, however well signed.
    for off in (FRESH_S + 1, -(FRESH_S + 1)):
        late = Sinch(secret=SDK_SECRET, clock=lambda off=off: 1736760161 + off)
        with pytest.raises(Rejected) as refused:
            late.check_auth(SDK_HEADERS, SDK_BODY)
        assert refused.value.code == "stale_signature"
    Sinch(secret=SDK_SECRET, clock=lambda: 1736760161 + FRESH_S).check_auth(SDK_HEADERS, SDK_BODY)


def test_basic_auth_and_the_signature_each_checked_when_given() -> None:
    both = Sinch((USER, PASSWORD), SECRET)
    body = b"{}"
    both.check_auth(basic(), body)  # Basic auth alone is enough
    both.check_auth(signed(body), body)  # and so is the signature alone
    both.check_auth({**basic(), **signed(body)}, body)
    for headers in (
        {},
        basic(password="wrong"),
        {**basic(), **signed(body, "wrong secret")},  # a credential given is a credential checked
        {**basic(password="x"), **signed(body)},
        {"Authorization": "Bearer abc"},
    ):
        with pytest.raises(Rejected) as refused:
            both.check_auth(headers, body)
        assert getattr(refused.value, "status", None) == 401, headers
    only_basic = Sinch((USER, PASSWORD))
    only_basic.check_auth(basic(), body)
    with pytest.raises(Rejected) as refused:
        only_basic.check_auth(signed(body), body)  # a signature it cannot check proves nothing
    assert refused.value.code == "unauthorized"
    Sinch().check_auth({}, body)  # no credential: the loopback rule decides


# --- recipient reports over HTTP -----------------------------------------------------------------

# Every status, out of order (C's Delivered before its Dispatched, E's Queued after its
# failure), Unknown replaced by a later Delivered (F), then a report of another batch.
REPORTS = [
    recipient_report(A, "Queued", 400, 1),
    recipient_report(A, "Dispatched", 401, 2),
    recipient_report(C, "Delivered", 0, 9),
    recipient_report(C, "Dispatched", 401, 3),
    recipient_report(B, "Dispatched", 401, 2),
    recipient_report(B, "Failed", 404, 8),
    recipient_report(D, "Deleted", 0, 6),
    recipient_report(E, "Expired", 0, 7),
    recipient_report(E, "Queued", 400, 1),
    recipient_report(F, "Unknown", 0, 5),
    recipient_report(F, "Delivered", 0, 4),
    recipient_report(G, "Aborted", 412, 2),
    recipient_report(H, "Rejected", 402, 3),
    recipient_report(A, "Cancelled", 407, 1, batch=OTHER),
]
EXPECTED = {
    (BATCH, A): (State.SENT, None),
    (BATCH, B): (State.FAILED, "404"),
    (BATCH, C): (State.DELIVERED, None),
    (BATCH, D): (State.FAILED, "Deleted"),  # the code says nothing: the status is the code
    (BATCH, E): (State.FAILED, "Expired"),
    (BATCH, F): (State.DELIVERED, None),  # unconfirmed gives way to an outcome, in any order
    (BATCH, G): (State.FAILED, "412"),
    (BATCH, H): (State.FAILED, "402"),
    (OTHER, A): (State.FAILED, "407"),
}


@pytest.mark.both_stores
async def test_recipient_reports_fold_every_status_right_and_retries_store_once(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    async with sinch_engine(make_engine) as engine:
        for body in REPORTS:
            code, answer, _ = await post(session, hook(engine), body)
            assert (code, answer["status"]) == (200, "stored"), (body, answer)
        for body in REPORTS[:4]:  # Sinch retries: the same report, signed again
            code, answer, _ = await post(session, hook(engine), body)
            assert (code, answer["status"]) == (200, "duplicate"), body
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    for (batch, phone), (state, error) in EXPECTED.items():
        rec = await r.recipient(batch, phone)
        assert rec is not None and rec.provider == "sinch"
        assert (rec.state, rec.error_code, rec.carrier) == (state, error, "24001"), phone
        assert not rec.conflict
    events = [e async for e in r.iter_events()]
    assert len(events) == len(REPORTS)
    delivered = next(e for e in events if e.recipient == C and e.event_type == "Delivered")
    assert (delivered.occurred_at, delivered.time_estimated) == (us(9), False)
    assert json.loads(delivered.payload) == REPORTS[2]
    # One batch is one message of many recipients; client_reference groups the campaign.
    message = await r.message(BATCH)
    assert message is not None and message.counts[State.FAILED] == 5
    assert await r.campaign_of(BATCH) == await r.campaign_of(OTHER) == REFERENCE
    # Deleted (an invalid or opted-out number) goes on the do-not-send list; an account fault
    # (unprovisioned region) or a temporary failure does not.
    assert suppressible("sinch", "Deleted", None, None)
    assert not suppressible("sinch", "412", None, None)
    assert not suppressible("sinch", "404", None, None)
    info = explain("sinch", "404")
    assert info is not None and info.known and info.retry == "yes"
    unnamed = explain("sinch", "34")  # an operator's SMPP code, passed through
    assert unnamed is not None and unnamed.group is not None


# --- batch reports over HTTP ---------------------------------------------------------------------

FULL = {
    "batch_id": BATCH,
    "client_reference": REFERENCE,
    "statuses": [
        {"code": 0, "count": 2, "recipients": [A, C], "status": "Delivered"},
        {"code": 402, "count": 1, "recipients": [B], "status": "Rejected"},
        {"code": 0, "count": 1, "recipients": [D], "status": "Unknown"},
    ],
    "total_message_count": 4,
    "type": "delivery_report_sms",
}
SUMMARY = {
    "batch_id": OTHER,
    "statuses": [
        {"code": 0, "count": 7, "status": "Delivered"},
        {"code": 404, "count": 2, "status": "Failed"},
        {"code": 401, "count": 1, "status": "Dispatched"},
    ],
    "total_message_count": 10,
    "type": "delivery_report_sms",
}


@pytest.mark.both_stores
async def test_batch_reports_give_each_listed_recipient_and_the_gateways_counts(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    async with sinch_engine(make_engine) as engine:
        # A's own report came first; the batch report then says the same and more.
        code, _, _ = await post(session, hook(engine), recipient_report(A, "Dispatched", 401, 1))
        assert code == 200
        code, answer, _ = await post(session, hook(engine), FULL)
        assert code == 200, answer
        assert (answer["reports"], answer["stored"], answer["quarantined"]) == (5, 5, 0)
        code, again, _ = await post(session, hook(engine), FULL)
        assert (code, again["status"], again["duplicates"]) == (200, "duplicate", 5)
        code, summary, _ = await post(session, hook(engine), SUMMARY)
        assert (code, summary["stored"]) == (200, 1), summary
        # A summary with another count is the gateway's newer word: stored too.
        later = {**SUMMARY, "statuses": [{"code": 0, "count": 10, "status": "Delivered"}]}
        code, newer, _ = await post(session, hook(engine), later)
        assert (code, newer["stored"]) == (200, 1)
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    for phone, state, error in (
        (A, State.DELIVERED, None),
        (B, State.FAILED, "402"),
        (C, State.DELIVERED, None),
        (D, State.UNCONFIRMED, None),
    ):
        rec = await r.recipient(BATCH, phone)
        assert rec is not None and (rec.state, rec.error_code) == (state, error), phone
    full = await r.message(BATCH)
    assert full is not None
    assert (full.gateway_delivered, full.gateway_failed, full.gateway_pending) == (2, 1, 0)
    assert full.total_recipients == 4 and full.missing == 0
    # A summary names no recipient: the counts are all it brings, kept for the batch, and the
    # webhooks' own counts show what they never brought.
    only_counts = await r.message(OTHER)
    assert only_counts is not None and only_counts.total_recipients == 10
    assert only_counts.gateway_delivered == 10 and only_counts.missing == 10
    assert await r.recipients(OTHER) == []
    events = [e async for e in r.iter_events()]
    narrowed = next(e for e in events if e.recipient == B)
    # A listed recipient's payload is its own report (without `at`, which the batch's lacks).
    assert json.loads(narrowed.payload) == {
        "batch_id": BATCH,
        "client_reference": REFERENCE,
        "code": 402,
        "recipient": B,
        "status": "Rejected",
        "type": "recipient_delivery_report_sms",
    }
    counts = [e for e in events if e.recipient is None and e.message_id == BATCH]
    assert len(counts) == 1 and json.loads(counts[0].payload) == FULL


@pytest.mark.both_stores
async def test_a_batch_reports_stored_events_posted_again_store_nothing_twice(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    """What a forward to another smswatch, or a replay of an export, posts of a batch report:
    each stored event's payload. Every one is a duplicate of what the report stored, and none
    brings counts that would pass for the batch's."""
    async with sinch_engine(make_engine) as engine:
        code, answer, _ = await post(session, hook(engine), FULL)
        assert (code, answer["stored"]) == (200, 5)
        await asyncio.wrap_future(engine.writer.settle())
        r = await reader()
        payloads = [e.payload async for e in r.iter_events()]
        for payload in payloads:
            body = GATEWAYS["sinch"].post_body(payload)
            code, again, _ = await post(session, hook(engine), body)
            assert (code, again["status"]) == (200, "duplicate"), payload
        await asyncio.wrap_future(engine.writer.settle())
    message = await (await reader()).message(BATCH)
    assert message is not None
    assert (message.gateway_delivered, message.gateway_failed) == (2, 1)
    assert len([e async for e in (await reader()).iter_events()]) == 5


@pytest.mark.both_stores
async def test_malformed_bodies_are_400_and_quarantined_a_bad_entry_alone(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    partly = {**FULL, "statuses": [FULL["statuses"][0], "not an entry", {"count": 1}]}
    async with sinch_engine(make_engine) as engine:
        code, answer, _ = await post(session, hook(engine), partly)
        assert code == 200, answer
        assert (answer["stored"], answer["quarantined"]) == (3, 2)
        for body, error in (
            (b'{"type": "recipient_delivery_report_sms", ', "malformed_json"),
            (b"[1, 2]", "unknown_envelope"),
            ({"batch_id": BATCH}, "unknown_envelope"),
            ({**recipient_report(A, "Delivered", 0, 1), "recipient": ""}, "invalid_envelope"),
            ({k: v for k, v in REPORTS[0].items() if k != "batch_id"}, "invalid_envelope"),
            ({k: v for k, v in REPORTS[0].items() if k != "status"}, "invalid_envelope"),
            ({**FULL, "statuses": []}, "invalid_envelope"),
            ({**FULL, "statuses": "Delivered"}, "invalid_envelope"),
            ({**FULL, "statuses": [{"status": "Delivered"}]}, "invalid_envelope"),
        ):
            code, answer, _ = await post(session, hook(engine), body)
            assert (code, answer["error"]) == (400, error), body
        # Another callback type on the same URL (an inbound SMS): kept, acknowledged.
        inbound = {"type": "mo_text", "id": "01W4FFL35P4NC4K35SMSBATCH8", "body": "hi"}
        code, answer, _ = await post(session, hook(engine), inbound)
        assert (code, answer["status"]) == (200, "stored")
        await asyncio.sleep(0.2)
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    events = [e async for e in r.iter_events()]
    assert sorted(e.recipient or "-" for e in events) == ["-", "-", A, C]
    assert any(e.state is State.UNKNOWN and e.event_type == "mo_text" for e in events)
    kept = await r.quarantine()
    parts = [q for q in kept if q.code == "malformed_report"]
    assert len(parts) == 2 and all(q.provider == "sinch" and q.status == 400 for q in parts)
    assert any("statuses[1]" in q.reason for q in parts)
    assert len([q for q in kept if q.code != "malformed_report"]) == 9


@pytest.mark.both_stores
async def test_forged_stale_or_missing_credentials_are_401_and_nothing_is_stored(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    body = json.dumps(REPORTS[2]).encode()
    async with sinch_engine(make_engine, tokens={**TOKENS, **BASIC}) as engine:
        refusals = (
            {},  # nothing at all
            signed(body, "not the secret"),  # forged
            signed(body + b" "),  # over another body
            signed(body, now=time.time() - FRESH_S - 60),  # stale
            signed(body, now=time.time() + FRESH_S + 60),  # from the future
            {**signed(body), "x-sinch-webhook-signature-nonce": "another"},
            basic(password="wrong"),
        )
        for headers in refusals:
            code, answer, hdrs = await post(session, hook(engine), body, headers=headers)
            assert code == 401, (headers, answer)
        code, answer, hdrs = await post(session, hook(engine), body, headers=basic("x", "y"))
        assert hdrs.get("WWW-Authenticate", "").startswith("Basic")
        # Detected from its headers or body on POST /webhooks too, and checked the same.
        root = f"{engine.listener.base_url}/webhooks"
        code, _, _ = await post(session, root, body, headers=signed(body, "forged"))
        assert code == 401
        code, answer, _ = await post(session, root, body)
        assert (code, answer["status"]) == (200, "stored")
        code, answer, _ = await post(session, hook(engine), body, headers=basic())
        assert (code, answer["status"]) == (200, "duplicate")
        await asyncio.sleep(0.2)
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert len([e async for e in r.iter_events()]) == 1  # only the authenticated posts
    kept = await r.quarantine()
    assert len(kept) == len(refusals) + 2
    assert {q.code for q in kept} >= {"bad_signature", "stale_signature", "missing_signature"}
    assert all(SECRET not in (q.reason or "") and PASSWORD not in (q.reason or "") for q in kept)


async def test_without_credentials_it_takes_posts_on_loopback_only(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession
) -> None:
    async with running(make_engine()) as engine:
        code, answer, _ = await post(session, hook(engine), REPORTS[0], headers={})
        assert (code, answer["status"]) == (200, "stored")
    public = make_engine(host="0.0.0.0", credentials=Credentials(yebolink_secret="s"))
    async with running(public) as engine:
        code, answer, _ = await post(session, hook(engine), REPORTS[0], headers={})
        assert (code, answer["error"]) == (401, "auth_required")


def test_a_forward_is_signed_afresh_by_the_teams_secret_and_carries_its_basic_auth() -> None:
    gateway = GATEWAYS["sinch"]
    body = gateway.post_body(json.dumps(REPORTS[0]))
    assert json.loads(body) == REPORTS[0]
    team = Credentials(tokens={"sinch_webhook_secret": "team", "sinch_basic_auth": "app:pw:x"})
    out = gateway.resign(body, team, "https://app.example/hooks")
    assert out.basic_auth == ("app", "pw:x")
    headers = {k.lower(): v for k, v in out.headers.items()}
    stamp = headers["x-sinch-webhook-signature-timestamp"]
    assert abs(int(stamp) - time.time()) < 5
    nonce = headers["x-sinch-webhook-signature-nonce"]
    mac = hmac.new(b"team", body + b"." + nonce.encode() + b"." + stamp.encode(), hashlib.sha256)
    assert headers["x-sinch-webhook-signature"] == base64.b64encode(mac.digest()).decode()
    # The app's own Sinch check (another smswatch with the team's secret) takes it.
    Sinch(secret="team").check_auth(headers, body)
    with pytest.raises(Rejected):
        Sinch(secret=SECRET).check_auth(headers, body)
    # A fresh nonce each time: a forward is never the same request twice.
    again = {k.lower(): v for k, v in gateway.resign(body, team, "u").headers.items()}
    assert again["x-sinch-webhook-signature-nonce"] != nonce
    bare = gateway.resign(body, Credentials(), "u")
    assert bare.basic_auth is None and "x-sinch-webhook-signature" not in bare.headers


# --- simulated traffic ---------------------------------------------------------------------------


def sinch_plan(url: str = "http://127.0.0.1:1", **overrides: Any) -> tuple[SimConfig, Any]:
    config = SimConfig(
        url=url,
        provider="sinch",
        messages=6,
        recipients=25,
        seed=11,
        rate=4000.0,
        speed=50.0,
        fail_rate=0.4,
        duplicate_rate=0.2,
        tokens=TOKENS,
        **overrides,
    )
    return config, plan_campaign(config)


def test_the_simulator_posts_both_kinds_of_report() -> None:
    _, plan = sinch_plan()
    bodies = [json.loads(d.body) for d in plan.deliveries]
    kinds = {b["type"] for b in bodies}
    assert kinds == {"recipient_delivery_report_sms", "delivery_report_sms"}
    statuses = {b["status"] for b in bodies if "status" in b}
    assert {"Queued", "Dispatched", "Delivered"} <= statuses
    assert statuses & {"Failed", "Rejected", "Expired", "Deleted", "Aborted"}
    assert {t.state for t in plan.truth} == {"delivered", "failed", "unconfirmed"}
    batches = {t.message_id for t in plan.truth}
    assert len(batches) == 6 and len(plan.truth) == 150


@pytest.mark.both_stores
async def test_simulate_provider_sinch_end_to_end(
    make_engine: Callable[..., Engine], reader: Any
) -> None:
    async with sinch_engine(make_engine) as engine:
        config, plan = sinch_plan(engine.listener.base_url)
        result = await Sender(config).run(plan.deliveries)
        assert result.ok and result.rejected == 0
        assert result.acked == len(plan.deliveries) and result.acked_duplicate > 0
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    for t in plan.truth:
        rec = await r.recipient(t.message_id, t.recipient)
        assert rec is not None and rec.provider == "sinch"
        assert (rec.state.value, rec.error_code) == (t.state, t.error_code), t
        if t.error_code:
            assert suppressible("sinch", t.error_code, None, rec.retryable) is t.permanent, t


# --- the command line, the demo, the forwarder ----------------------------------------------------


def test_a_basic_auth_pair_without_its_colon_is_refused_at_start(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from smswatch.cli import main

    db = str(tmp_path / "x.db")
    for args, env in (
        (["serve", "--db", db, "--sinch-basic-auth", "no-colon"], {}),
        (["serve", "--db", db], {"SMSWATCH_SINCH_BASIC_AUTH": ":no-user"}),
    ):
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 2, result.output
        assert "USER:PASS" in result.output
    assert not (tmp_path / "x.db").exists()


async def test_the_demo_sends_sinch_traffic_its_listener_takes(
    make_engine: Callable[..., Engine],
) -> None:
    from smswatch.devtools.demo import DemoTraffic
    from smswatch.gateways.sandboxing import SandboxKeys
    from smswatch.live.engine import EngineConfig
    from smswatch.live.monitor import demo_config

    keys = SandboxKeys("sk_test_0123456789abcdefghij", "ybk_0123456789abcdef", "tw")
    config, workdir = demo_config(EngineConfig(port=0), "http://127.0.0.1:9", keys)
    shutil.rmtree(workdir, ignore_errors=True)
    assert config.credentials.token("sinch_webhook_secret")
    assert (config.credentials.token("sinch_basic_auth") or "").startswith("demo:")
    assert config.gateway_api is not None and "sinch" in config.gateway_api.gateways
    traffic = DemoTraffic("http://127.0.0.1:9", config.credentials, seed=5, sandbox=object())
    try:
        sends = [traffic.campaign() for _ in range(200)]
    finally:
        traffic.loop.close()
    [send, *_] = [s for s in sends if s.provider == "sinch"]
    assert send.drop_rate > 0  # its delivery reports API brings the dropped ones back
    async with running(make_engine(credentials=config.credentials)) as engine:
        send = replace(send, url=engine.listener.base_url, speed=50.0, rate=4000.0)
        plan = plan_campaign(send)
        result = await Sender(send).run(plan.deliveries)
        assert result.ok and result.acked == len(plan.deliveries)


async def test_a_forward_passes_the_apps_own_sinch_check(
    make_engine: Callable[..., Engine], tmp_path: Path, reader: Any
) -> None:
    """The forwarder posts a stored report to the app as Sinch would, signed afresh with the
    team's secret: here the app is another smswatch that checks it, and stores the report."""
    from smswatch.core.forwarding import Job, Target
    from smswatch.forward.config import ForwardConfig
    from smswatch.forward.worker import Forwarder
    from smswatch.store.sqlite.files import connect_log

    db = tmp_path / "fwd.db"
    with contextlib.closing(connect_log(db)):
        pass
    [first] = Sinch().parse(json.dumps(REPORTS[2]).encode(), 1)
    async with sinch_engine(make_engine) as app, aiohttp.ClientSession() as session:
        target = hook(app)
        job = Job(1, target, 0, "sinch", first.event_id, BATCH, first.payload, first.event_type)
        unsigned = ForwardConfig(targets=(Target(target),), tokens={})
        assert not (await Forwarder(db, unsigned).send(session, job)).delivered
        wrong = ForwardConfig(targets=(Target(target),), tokens={"sinch_webhook_secret": "x"})
        assert not (await Forwarder(db, wrong).send(session, job)).delivered
        config = ForwardConfig(targets=(Target(target),), tokens=TOKENS)
        assert (await Forwarder(db, config).send(session, job)).delivered
        await asyncio.wrap_future(app.writer.settle())
    r = await reader()
    [stored] = [e async for e in r.iter_events()]
    assert (stored.message_id, stored.recipient, stored.event_type) == (BATCH, C, "Delivered")
    assert json.loads(stored.payload) == REPORTS[2]


def test_the_command_line_simulates_signed_sinch_traffic_into_serve(tmp_path: Path) -> None:
    """`smswatch serve --sinch-webhook-secret S` and `smswatch simulate --provider sinch` with
    the same secret, as the docs say to try it: every recipient ends as the truth says, and
    `inspect` shows a batch as one message of its recipients."""
    db, truth_file = tmp_path / "cli.db", tmp_path / "truth.jsonl"
    server = Server(db, free_port(), "--sinch-webhook-secret", SECRET).start()
    try:
        result = run(
            "simulate",
            *("--url", server.url, "--provider", "sinch", "--sinch-webhook-secret", SECRET),
            *("--messages", "3", "--recipients", "8", "--speed", "40", "--seed", "4"),
            *("--truth", str(truth_file), "-q"),
            check=False,
        )
        assert result.returncode == 0, result.stderr
        # A wrong secret is refused: the simulator says so and exits 1.
        wrong = run(
            "simulate",
            *("--url", server.url, "--provider", "sinch", "--sinch-webhook-secret", "wrong"),
            *("--messages", "1", "--recipients", "2", "--speed", "40", "-q"),
            check=False,
        )
        assert wrong.returncode == 1
    finally:
        server.stop()
    truth = [json.loads(line) for line in truth_file.read_text().splitlines() if line.strip()]
    assert len(truth) == 24
    for batch in {t["message_id"] for t in truth}:
        shown = json.loads(run("inspect", batch, "--db", str(db), "--json").stdout)
        assert shown["provider"] == "sinch"
        expected = {t["recipient"]: t["state"] for t in truth if t["message_id"] == batch}
        assert {r["recipient"]: r["state"] for r in shown["recipients"]} == expected
