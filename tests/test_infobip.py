"""Infobip end to end: delivery-report batches (`{"results": [...]}`) posted with real Basic
auth over real HTTP into a real engine (both stores): every status and its folded state against
the truth, a re-sent batch stored once, reports out of order, a malformed report quarantined
while its neighbours are stored, refused credentials storing nothing, the cost, the campaign
grouping and the suppression list, the forwarder's post, and `smswatch simulate --provider
infobip` (batched traffic) end to end, with a SIGKILL of the server mid-campaign.

The Authorization headers here are built in this file, never with the production `BasicAuth`
or `resign`, so a wrong encoding cannot agree with itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
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
from smswatch.devtools.simulate import Sender, SimConfig, plan_campaign
from smswatch.gateways.catalogue import explain, suppressible
from smswatch.gateways.infobip.webhook import Infobip, state_of
from smswatch.gateways.registry import GATEWAYS
from smswatch.live.engine import Engine
from tests.conftest import running
from tests.helpers import Server, export_records, free_port, run, start_simulate

USER, PASSWORD = "infobip-hooks", "s3cr:et-Kq8vW2"  # a colon in the password: split on the first
TOKENS = {"infobip_basic_auth": f"{USER}:{PASSWORD}"}
BULK = "bulk-7f3a"
A, B, C, D, E, F, G, H = (f"msg-{c}" for c in "abcdefgh")
PHONE = {m: f"3859{i:08d}" for i, m in enumerate((A, B, C, D, E, F, G, H))}

# (groupId, groupName, id, name) of the statuses used below.
ENROUTE = (1, "PENDING", 7, "PENDING_ENROUTE")
ACCEPTED = (1, "PENDING", 26, "PENDING_ACCEPTED")
WAITING = (1, "PENDING", 3, "PENDING_WAITING_DELIVERY")
TO_OPERATOR = (3, "DELIVERED", 2, "DELIVERED_TO_OPERATOR")
TO_HANDSET = (3, "DELIVERED", 5, "DELIVERED_TO_HANDSET")
NOT_DELIVERED = (2, "UNDELIVERABLE", 9, "UNDELIVERABLE_NOT_DELIVERED")
EXPIRED = (4, "EXPIRED", 15, "EXPIRED_EXPIRED")
DLR_UNKNOWN = (4, "EXPIRED", 29, "EXPIRED_DLR_UNKNOWN")
REJECTED = (5, "REJECTED", 14, "REJECTED_DESTINATION")
UNKNOWN_SUBSCRIBER = (1, "HANDSET_ERRORS", 1, "EC_UNKNOWN_SUBSCRIBER", True)
ABSENT = (1, "HANDSET_ERRORS", 27, "EC_ABSENT_SUBSCRIBER", False)


def auth(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def report(
    mid: str,
    status: tuple[int, str, int, str],
    done: str,
    error: tuple[int, str, int, str, bool] | None = None,
    price: float = 0.042,
    parts: int = 1,
) -> dict[str, Any]:
    """One delivery report, its fields in the order Infobip's documentation shows them."""
    err = error or (0, "OK", 0, "NO_ERROR", False)
    return {
        "bulkId": BULK,
        "messageId": mid,
        "to": PHONE[mid],
        "sentAt": "2026-12-01T10:00:00.000+0000",
        "doneAt": done,
        "smsCount": parts,
        "mccMnc": "21910",
        "callbackData": "campaign=winter",
        "price": {"pricePerMessage": price, "currency": "EUR"},
        "status": {
            "groupId": status[0],
            "groupName": status[1],
            "id": status[2],
            "name": status[3],
            "description": "as Infobip describes it",
        },
        "error": {
            "groupId": err[0],
            "groupName": err[1],
            "id": err[2],
            "name": err[3],
            "description": f"{err[3]} description",
            "permanent": err[4],
        },
    }


def at(second: int) -> str:
    return f"2026-12-01T10:00:{second:02d}.000+0000"


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any] | bytes,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **(auth() if headers is None else headers)}
    async with session.post(url, data=raw, headers=hdrs) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


@contextlib.asynccontextmanager
async def infobip_engine(
    make_engine: Callable[..., Engine], **overrides: Any
) -> AsyncIterator[Engine]:
    engine = make_engine(credentials=Credentials(tokens=TOKENS), **overrides)
    async with running(engine):
        yield engine


def hook(engine: Engine) -> str:
    return f"{engine.listener.base_url}/webhooks/infobip"


# --- the credential, the statuses, the check on their own ---------------------------------------


def test_its_credential_is_declared_once_and_read_by_its_gateway() -> None:
    [declared] = [c for c in GATEWAY_CREDENTIALS if c.gateway == "infobip"]
    assert (declared.key, declared.flag, declared.envvar, declared.metavar) == (
        "infobip_basic_auth",
        "--infobip-basic-auth",
        "SMSWATCH_INFOBIP_BASIC_AUTH",
        "USER:PASS",
    )
    assert declared.basic_auth and declared.secret and declared.query is None
    gateway = GATEWAYS["infobip"]
    assert gateway.credential == declared.key
    assert list(GATEWAYS).index("infobip") == list(GATEWAYS).index("africastalking") + 1
    mode = gateway.provider(Credentials(tokens=TOKENS)).auth_mode()
    assert mode.verified and USER in mode.label and PASSWORD not in mode.label
    assert not gateway.provider(Credentials()).auth_mode().verified
    assert gateway.status_api() is not None and gateway.sandbox() is not None


def test_a_credential_without_its_colon_is_refused_at_start(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from smswatch.cli import main

    db = str(tmp_path / "x.db")
    for args, env in (
        (["serve", "--db", db, "--infobip-basic-auth", "no-colon"], {}),
        (["serve", "--db", db], {"SMSWATCH_INFOBIP_BASIC_AUTH": ":no-user"}),
    ):
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 2, result.output
        assert "USER:PASS" in result.output
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    ("name", "group", "state"),
    [
        ("PENDING_ACCEPTED", "PENDING", State.QUEUED),
        ("PENDING_APPROVAL", "PENDING", State.QUEUED),
        ("PENDING_ENROUTE", "PENDING", State.PROCESSING),
        ("PENDING_WAITING_DELIVERY", "PENDING", State.SENT),
        ("DELIVERED_TO_OPERATOR", "DELIVERED", State.SENT),  # not final: the handset may follow
        ("DELIVERED_TO_HANDSET", "DELIVERED", State.DELIVERED),
        ("UNDELIVERABLE_NOT_DELIVERED", "UNDELIVERABLE", State.FAILED),
        ("UNDELIVERABLE_REJECTED_OPERATOR", "UNDELIVERABLE", State.FAILED),
        ("EXPIRED_EXPIRED", "EXPIRED", State.FAILED),
        ("EXPIRED_DLR_UNKNOWN", "EXPIRED", State.UNCONFIRMED),  # no receipt will ever come
        ("REJECTED_DESTINATION", "REJECTED", State.FAILED),
        ("REJECTED_NOT_ENOUGH_CREDITS", "REJECTED", State.FAILED),
        ("PENDING_OF_TOMORROW", "PENDING", State.QUEUED),  # a new name in a known group
        ("DELIVERED_SOMEHOW", "DELIVERED", State.DELIVERED),
        (None, "REJECTED", State.FAILED),
        (" delivered_to_handset ", None, State.DELIVERED),
        ("SOMETHING", "NEW_GROUP", State.UNKNOWN),
        (None, None, State.UNKNOWN),
    ],
)
def test_every_status_has_its_state(name: str | None, group: str | None, state: State) -> None:
    assert state_of(name, group) is state


def test_basic_auth_is_checked_whole_on_the_raw_header() -> None:
    infobip = Infobip((USER, PASSWORD))
    infobip.check_auth(auth(), b"{}")
    for headers in (
        {},
        auth(password="wrong"),
        auth(user="other"),
        auth(password=PASSWORD + "x"),
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + base64.b64encode(USER.encode()).decode()},  # no colon
    ):
        with pytest.raises(Exception) as refused:
            infobip.check_auth(headers, b"{}")
        assert getattr(refused.value, "status", None) == 401, headers
    Infobip(None).check_auth({}, b"{}")  # no credential: the loopback rule decides


# --- batches over HTTP ---------------------------------------------------------------------------

# Two posts and a re-sent one: every status, out of order (C's handset report before its
# operator's, E's final before its pending), a batch Infobip sent again.
FIRST = [
    report(A, ENROUTE, at(1)),
    report(B, TO_OPERATOR, at(2)),
    report(C, TO_HANDSET, at(9)),
    report(D, NOT_DELIVERED, at(5), UNKNOWN_SUBSCRIBER),
    report(E, EXPIRED, at(8), ABSENT),
    report(F, DLR_UNKNOWN, at(7)),
]
SECOND = [
    report(A, TO_HANDSET, at(6), price=0.042, parts=2),
    report(C, TO_OPERATOR, at(3)),
    report(E, ACCEPTED, at(1)),
    report(G, REJECTED, at(2), price=0.0),
    report(H, WAITING, at(4)),
    report(B, NOT_DELIVERED, at(7), ABSENT),
]
EXPECTED = {
    A: (State.DELIVERED, None, None),
    B: (State.FAILED, "EC_ABSENT_SUBSCRIBER", True),
    C: (State.DELIVERED, None, None),
    D: (State.FAILED, "EC_UNKNOWN_SUBSCRIBER", False),
    E: (State.FAILED, "EC_ABSENT_SUBSCRIBER", True),
    F: (State.UNCONFIRMED, None, None),
    G: (State.FAILED, "REJECTED_DESTINATION", None),
    H: (State.SENT, None, None),
}


@pytest.mark.both_stores
async def test_batches_fold_every_status_right_and_a_resent_batch_stores_nothing_twice(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    async with infobip_engine(make_engine) as engine:
        code, first, _ = await post(session, hook(engine), {"results": FIRST})
        assert code == 200, first
        assert (first["status"], first["reports"], first["stored"]) == ("stored", 6, 6)
        code, second, _ = await post(session, hook(engine), {"results": SECOND})
        assert (code, second["stored"], second["duplicates"]) == (200, 6, 0), second
        code, again, _ = await post(session, hook(engine), {"results": FIRST})
        assert (code, again["status"], again["stored"], again["duplicates"]) == (
            200,
            "duplicate",
            0,
            6,
        )
        # A batch re-sent with one new report: the new one stored, the others not again.
        mixed = [*SECOND[:2], report(H, TO_HANDSET, at(30))]
        code, partly, _ = await post(session, hook(engine), {"results": mixed})
        assert (code, partly["status"], partly["stored"], partly["duplicates"]) == (
            200,
            "stored",
            1,
            2,
        )
        await asyncio.wrap_future(engine.writer.settle())
    EXPECTED_NOW = {**EXPECTED, H: (State.DELIVERED, None, None)}
    r = await reader()
    for mid, (state, code_, retryable) in EXPECTED_NOW.items():
        [rec] = await r.recipients(mid)
        assert (rec.recipient, rec.provider, rec.carrier) == (PHONE[mid], "infobip", "21910")
        assert (rec.state, rec.error_code, rec.retryable) == (state, code_, retryable), mid
        assert not rec.conflict, mid
    events = [e async for e in r.iter_events()]
    assert len(events) == len(FIRST) + len(SECOND) + 1
    by_type = {(e.message_id, e.event_type): e for e in events}
    handset = by_type[(A, "DELIVERED_TO_HANDSET")]
    six = int(datetime(2026, 12, 1, 10, 0, 6, tzinfo=UTC).timestamp()) * 1_000_000
    assert (handset.occurred_at, handset.time_estimated) == (six, False)
    # Each event's payload is its own report, as it came.
    assert json.loads(handset.payload) == SECOND[0]
    assert by_type[(D, "UNDELIVERABLE_NOT_DELIVERED")].error_message == (
        "EC_UNKNOWN_SUBSCRIBER description"
    )
    # bulkId groups the campaign; price × parts is the message's cost.
    assert await r.campaign_of(A) == await r.campaign_of(G) == BULK
    message = await r.message(A)
    assert message is not None
    assert (message.total_cost, message.currency) == (pytest.approx(0.084), "EUR")
    # A permanent failure of a number-level code is on the do-not-send list; an absent
    # subscriber (not permanent) is not, whatever the code.
    assert suppressible("infobip", "EC_UNKNOWN_SUBSCRIBER", None, False)
    assert not suppressible("infobip", "EC_UNKNOWN_SUBSCRIBER", None, True)
    assert not suppressible("infobip", "EC_ABSENT_SUBSCRIBER", None, False)
    info = explain("infobip", "EC_ABSENT_SUBSCRIBER", True)
    assert info is not None and info.known and info.retry == "yes"


@pytest.mark.both_stores
async def test_a_malformed_report_is_quarantined_and_its_neighbours_stored(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    bad_status = {**report(C, TO_HANDSET, at(3)), "status": "DELIVERED"}
    nameless = {**report(D, TO_HANDSET, at(3)), "status": {"id": 5}}
    no_ids = {k: v for k, v in report(E, TO_HANDSET, at(3)).items() if k not in ("to", "messageId")}
    batch = [
        report(A, TO_HANDSET, at(3)),
        bad_status,
        "not a report",
        report(B, NOT_DELIVERED, at(4), ABSENT),
        nameless,
        no_ids,
        # Odd types inside a report are not malformed: the report is kept, the field dropped.
        {**report(F, TO_HANDSET, at(5)), "price": "0.01", "smsCount": "many", "doneAt": "soon"},
    ]
    async with infobip_engine(make_engine) as engine:
        code, answer, _ = await post(session, hook(engine), {"results": batch})
        assert code == 200, answer
        assert (answer["reports"], answer["stored"], answer["quarantined"]) == (7, 3, 4)
        # Nothing valid at all: the post itself is refused, and so is a body with no batch.
        for body, error in (
            ({"results": [bad_status, "x"]}, "invalid_envelope"),
            ({"results": []}, "invalid_envelope"),
            ({"messageId": A}, "unknown_envelope"),
            (b'{"results": [', "malformed_json"),
        ):
            code, answer, _ = await post(session, hook(engine), body)
            assert (code, answer["error"]) == (400, error), body
        await asyncio.sleep(0.2)  # the quarantine rides with the next batch
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    events = [e async for e in r.iter_events()]
    assert sorted(e.message_id for e in events) == [A, B, F]
    odd = next(e for e in events if e.message_id == F)
    sent = int(datetime(2026, 12, 1, 10, tzinfo=UTC).timestamp()) * 1_000_000
    assert (odd.occurred_at, odd.time_estimated) == (sent, False)  # sentAt stood in for doneAt
    kept = await r.quarantine()
    parts = [q for q in kept if q.code == "malformed_report"]
    assert len(parts) == 4 and all(q.provider == "infobip" and q.status == 400 for q in parts)
    bodies = [json.loads(q.body) for q in parts if q.body is not None]
    assert bad_status in bodies and "not a report" in bodies
    assert any("results[1]" in q.reason for q in parts)
    assert sorted(q.code for q in kept if q.code != "malformed_report") == [
        "invalid_envelope",
        "invalid_envelope",
        "malformed_json",
        "unknown_envelope",
    ]


@pytest.mark.both_stores
async def test_wrong_or_missing_credentials_are_401_and_nothing_is_stored(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    body = {"results": FIRST}
    async with infobip_engine(make_engine) as engine:
        for headers in ({}, auth(password="wrong"), auth(user="someone"), {"Authorization": "x"}):
            code, answer, hdrs = await post(session, hook(engine), body, headers=headers)
            assert (code, answer["error"]) == (401, "unauthorized"), headers
            assert hdrs.get("WWW-Authenticate", "").startswith("Basic")
        # Detected from the body on POST /webhooks too, and checked the same.
        code, _, _ = await post(session, f"{engine.listener.base_url}/webhooks", body, {})
        assert code == 401
        code, answer, _ = await post(session, f"{engine.listener.base_url}/webhooks", body)
        assert (code, answer["stored"]) == (200, 6)
        await asyncio.sleep(0.2)
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert len([e async for e in r.iter_events()]) == 6  # only the authenticated post
    kept = await r.quarantine()
    assert [q.code for q in kept] == ["unauthorized"] * 5
    assert all(PASSWORD not in (q.reason or "") for q in kept)


async def test_without_credentials_it_takes_posts_on_loopback_only(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession
) -> None:
    async with running(make_engine()) as engine:
        code, answer, _ = await post(session, hook(engine), {"results": FIRST}, headers={})
        assert (code, answer["stored"]) == (200, 6)
    public = make_engine(host="0.0.0.0", credentials=Credentials(yebolink_secret="s"))
    async with running(public) as engine:
        code, answer, _ = await post(session, hook(engine), {"results": FIRST}, headers={})
        assert (code, answer["error"]) == (401, "auth_required")


def test_a_forward_is_one_report_as_infobip_posts_it_with_the_forwarders_basic_auth() -> None:
    gateway = GATEWAYS["infobip"]
    one = json.dumps(FIRST[0])
    assert json.loads(gateway.post_body(one)) == {"results": [FIRST[0]]}
    whole = json.dumps({"results": FIRST})
    assert json.loads(gateway.post_body(whole)) == {"results": FIRST}
    signed = gateway.resign(b"{}", Credentials(tokens={"infobip_basic_auth": "app:pw:x"}), "u")
    assert signed.basic_auth == ("app", "pw:x")
    assert gateway.resign(b"{}", Credentials(), "u").basic_auth is None


# --- simulated traffic ---------------------------------------------------------------------------


def infobip_plan(url: str = "http://127.0.0.1:1", **overrides: Any) -> tuple[SimConfig, Any]:
    config = SimConfig(
        url=url,
        provider="infobip",
        messages=3,
        recipients=120,
        seed=5,
        rate=4000.0,
        speed=50.0,
        fail_rate=0.4,
        duplicate_rate=0.3,
        tokens=TOKENS,
        **overrides,
    )
    return config, plan_campaign(config)


def test_the_simulator_batches_reports_as_infobip_does() -> None:
    _, plan = infobip_plan()
    posts = [json.loads(d.body) for d in plan.deliveries]
    sizes = [len(p["results"]) for p in posts]
    assert max(sizes) == 100 and min(sizes) >= 1 and sum(s > 1 for s in sizes) > len(sizes) / 2
    reports = [r for p in posts for r in p["results"]]
    keys = {(r["messageId"], r["status"]["name"]) for r in reports}
    assert len(keys) == plan.events  # duplicates are whole posts sent again
    assert len(reports) > plan.events
    names = {r["status"]["name"] for r in reports}
    assert {"PENDING_ENROUTE", "DELIVERED_TO_OPERATOR", "DELIVERED_TO_HANDSET"} <= names
    assert names & {"UNDELIVERABLE_NOT_DELIVERED", "EXPIRED_EXPIRED", "REJECTED_DESTINATION"}
    assert {t.state for t in plan.truth} == {"delivered", "failed", "unconfirmed"}
    headers = Sender(SimConfig(tokens=TOKENS)).credentials
    assert GATEWAYS["infobip"].resign(b"", headers, "").basic_auth == (USER, PASSWORD)


@pytest.mark.both_stores
async def test_simulate_provider_infobip_end_to_end(
    make_engine: Callable[..., Engine], reader: Any
) -> None:
    async with infobip_engine(make_engine) as engine:
        config, plan = infobip_plan(engine.listener.base_url)
        result = await Sender(config).run(plan.deliveries)
        assert result.ok and result.rejected == 0
        assert result.acked == len(plan.deliveries) and result.acked_duplicate > 0
        await asyncio.wrap_future(engine.writer.settle())
    assert len(plan.truth) == 360
    r = await reader()
    for t in plan.truth:
        rec = await r.recipient(t.message_id, t.recipient)
        assert rec is not None and rec.provider == "infobip"
        assert (rec.state.value, rec.error_code, rec.carrier) == (t.state, t.error_code, t.carrier)
        if t.error_code:
            retryable = rec.retryable
            # The simulator's idea of a bad number and the catalogue's (with `permanent`) agree.
            assert suppressible("infobip", t.error_code, None, retryable) is t.permanent, t
    assert len([e async for e in r.iter_events()]) == plan.events


def test_kill_9_mid_commit_keeps_every_report_of_an_acknowledged_post_and_halves_none(
    tmp_path: Path,
) -> None:
    """A server killed while batches are being committed: every report of every post it
    acknowledged is stored, and no post it did not acknowledge is stored in part (a post's
    reports are one transaction), whatever the simulator retries afterwards."""
    db, acked = tmp_path / "k.db", tmp_path / "acked.jsonl"
    port = free_port()
    env_auth = ("--infobip-basic-auth", TOKENS["infobip_basic_auth"])
    server = Server(db, port, *env_auth).start()
    args = ("--messages", "12", "--recipients", "100", "--speed", "10", "--seed", "21")
    sim = start_simulate(
        "--url",
        server.url,
        "--provider",
        "infobip",
        *args,
        *env_auth,
        "--rate",
        "400",
        "--acked",
        str(acked),
        "--max-attempts",
        "40",
        "-q",
    )
    try:
        deadline = time.monotonic() + 60
        while not acked.exists() or acked.read_text().count("\n") < 5:
            assert time.monotonic() < deadline, "the campaign had not started"
            time.sleep(0.02)
        assert sim.poll() is None, "the campaign finished before the kill"
        server.kill9()
        acked_before = {
            json.loads(line)["label"] for line in acked.read_text().splitlines() if line.strip()
        }
        at_kill = {(r["message_id"], r["event_type"]) for r in export_records(db)}
        server = Server(db, port, *env_auth).start()
        _, err = sim.communicate(timeout=240)
        assert sim.returncode == 0, err
    finally:
        server.stop()
        if sim.poll() is None:
            sim.kill()
    # The same plan, in-process: the same seed gives the same posts under the same labels
    # (the command's defaults for everything not given).
    plan = plan_campaign(
        SimConfig(provider="infobip", messages=12, recipients=100, speed=10.0, seed=21)
    )
    posts: dict[str, set[tuple[str, str]]] = {}
    for d in plan.deliveries:
        posts[d.label] = {
            (x["messageId"], x["status"]["name"]) for x in json.loads(d.body)["results"]
        }
    assert acked_before and acked_before <= set(posts)
    assert set(posts) - acked_before, "every post was acknowledged before the kill"
    for label, reports in posts.items():
        stored = reports & at_kill
        if label in acked_before:
            assert stored == reports, label  # acknowledged: every report on disk
        else:
            assert stored in (set(), reports), label  # never half a post
    records = export_records(db)
    final = {(r["message_id"], r["event_type"]) for r in records}
    assert set().union(*posts.values()) == final
    # Shown by `inspect` as any gateway's message is, its state the truth's.
    truth = plan.truth[0]
    shown = json.loads(run("inspect", truth.message_id, "--db", str(db), "--json").stdout)
    assert shown["provider"] == "infobip"
    [recipient] = shown["recipients"]
    assert (recipient["recipient"], recipient["state"]) == (truth.recipient, truth.state)


async def test_the_demo_sends_infobip_traffic_its_listener_verifies(
    make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    import shutil

    from smswatch.devtools.demo import DemoTraffic
    from smswatch.gateways.sandboxing import SandboxKeys
    from smswatch.live.engine import EngineConfig
    from smswatch.live.monitor import demo_config

    keys = SandboxKeys("sk_test_0123456789abcdefghij", "ybk_0123456789abcdef", "tw")
    config, workdir = demo_config(EngineConfig(port=0), "http://127.0.0.1:9", keys)
    shutil.rmtree(workdir, ignore_errors=True)
    credential = config.credentials.token("infobip_basic_auth")
    assert credential is not None and credential.startswith("demo:")
    assert config.gateway_api is not None and "infobip" in config.gateway_api.gateways
    traffic = DemoTraffic("http://127.0.0.1:9", config.credentials, seed=5, sandbox=object())
    try:
        sends = [traffic.campaign() for _ in range(200)]
    finally:
        traffic.loop.close()
    [send, *_] = [s for s in sends if s.provider == "infobip"]
    assert send.drop_rate > 0  # its reports API brings the dropped ones back
    async with running(make_engine(credentials=config.credentials)) as engine:
        send = replace(send, url=engine.listener.base_url, speed=50.0, rate=4000.0)
        plan = plan_campaign(send)
        result = await Sender(send).run(plan.deliveries)
        assert result.ok and result.acked == len(plan.deliveries)


async def test_a_forward_passes_the_apps_own_infobip_check(
    make_engine: Callable[..., Engine], tmp_path: Path, reader: Any
) -> None:
    """The forwarder posts a stored report to the app as Infobip would, with the Infobip Basic
    auth: here the app is another smswatch that checks it, and stores the report."""
    from smswatch.core.forwarding import Job, Target
    from smswatch.forward.config import ForwardConfig
    from smswatch.forward.worker import Forwarder
    from smswatch.store.sqlite.files import connect_log

    db = tmp_path / "fwd.db"
    with contextlib.closing(connect_log(db)):
        pass
    body = json.dumps({"results": FIRST[:2]}).encode()
    [first, _] = Infobip().parse(body, 1)
    async with infobip_engine(make_engine) as app, aiohttp.ClientSession() as session:
        target = hook(app)
        job = Job(1, target, 0, "infobip", first.event_id, A, first.payload, first.event_type)
        refused = ForwardConfig(targets=(Target(target),), tokens={})
        assert not (await Forwarder(db, refused).send(session, job)).delivered  # no credential
        config = ForwardConfig(targets=(Target(target),), tokens=TOKENS)
        assert (await Forwarder(db, config).send(session, job)).delivered
        await asyncio.wrap_future(app.writer.settle())
    r = await reader()
    [stored] = [e async for e in r.iter_events()]
    assert (stored.message_id, stored.event_type) == (A, "PENDING_ENROUTE")
    assert json.loads(stored.payload) == FIRST[0]
