"""Africa's Talking end to end: delivery reports posted as forms over real HTTP into a real
engine (both stores), every status and its folded state, duplicates and reordering, the
refusals (missing, wrong, repeated tokens; forms that are no delivery report; JSON), the token
kept out of every stored, answered and shown thing, the loopback-only rule without a token, the
"not polled" wherever polling is shown, the forwarder's post, the error catalogue, and
`smswatch simulate --provider africastalking` end to end.

The callback URLs here are built in this file (`?token=` by hand), never with the production
`Credentials.in_url`, so a wrong way of carrying the token cannot agree with itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner

from smswatch.cli import main
from smswatch.config import Credentials
from smswatch.core.credentials import GATEWAY_CREDENTIALS
from smswatch.core.domain import State
from smswatch.core.forwarding import Job, Target
from smswatch.core.reconciling import ReconcileStatus
from smswatch.core.rejected import Rejected
from smswatch.forward.config import ForwardConfig
from smswatch.forward.worker import Forwarder
from smswatch.gateways.africastalking.webhook import TOKEN_PARAMETER, AfricasTalking, state_of
from smswatch.gateways.base import credentials_of
from smswatch.gateways.catalogue import catalogue, explain, suppressible
from smswatch.gateways.registry import GATEWAYS
from smswatch.live.engine import Engine
from smswatch.live.serve import banner
from smswatch.reconcile.config import ApiConfig, ApiKey
from smswatch.sanitize import without_password
from smswatch.store.sqlite.files import connect_log
from smswatch.tui.themes import Palette
from smswatch.tui.widgets.status import gateway_lines, reconcile_line
from tests.conftest import running
from tests.helpers import SMSWATCH

TOKEN = "at-cb-7Hq2xW9pLm4vR8sK1nB6"
TOKENS = {"africastalking_token": TOKEN}
FORM = "application/x-www-form-urlencoded"
PALETTE = Palette(dict.fromkeys(State, "#ffffff"), True)
# A child's environment as a script's: no width forced on it (see tests/helpers.run).
CHILD_ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}


def report(mid: str, status: str, phone: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    """A delivery report's fields, in the order Africa's Talking posts them."""
    return [
        ("id", mid),
        ("status", status),
        ("phoneNumber", phone),
        ("networkCode", "63902"),
        *extra,
    ]


def with_token(url: str, token: str | None = TOKEN) -> str:
    return url if token is None else f"{url}?{TOKEN_PARAMETER}={quote(token, safe='')}"


async def post(
    session: aiohttp.ClientSession,
    url: str,
    fields: list[tuple[str, str]] | bytes,
    *,
    content_type: str = FORM,
) -> tuple[int, Any]:
    body = fields if isinstance(fields, bytes) else urlencode(fields).encode()
    async with session.post(url, data=body, headers={"Content-Type": content_type}) as resp:
        return resp.status, await resp.json(content_type=None)


@contextlib.asynccontextmanager
async def at_engine(make_engine: Callable[..., Engine], **overrides: Any) -> AsyncIterator[Engine]:
    engine = make_engine(credentials=Credentials(tokens=TOKENS), **overrides)
    async with running(engine):
        yield engine


def hook(engine: Engine) -> str:
    return f"{engine.listener.base_url}/webhooks/africastalking"


# --- the credential and the adapter on their own -------------------------------------------------


def test_its_credential_is_declared_once_and_read_by_its_gateway() -> None:
    [declared] = [c for c in GATEWAY_CREDENTIALS if c.gateway == "africastalking"]
    assert (declared.key, declared.flag, declared.envvar, declared.query) == (
        "africastalking_token",
        "--africastalking-token",
        "SMSWATCH_AFRICASTALKING_TOKEN",
        TOKEN_PARAMETER,
    )
    assert not declared.opens_api
    for credential in GATEWAY_CREDENTIALS:
        if credential.secret:  # a setting (Vonage's method) is no gateway's credential
            # A gateway that takes either of two (Sinch: a signature or Basic auth) names its
            # main one and the others.
            assert credential.key in credentials_of(GATEWAYS[credential.gateway]), credential.key
    gateway = GATEWAYS["africastalking"]
    assert gateway.provider(Credentials(tokens={declared.key: "t"})).auth_mode().verified
    assert not gateway.provider(Credentials()).auth_mode().verified
    assert gateway.status_api() is None and gateway.sandbox() is None


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("Sent", State.SENT),
        ("Submitted", State.SENT),
        ("Buffered", State.SENT),
        ("Success", State.DELIVERED),
        ("Failed", State.FAILED),
        ("Rejected", State.FAILED),
        ("Expired", State.FAILED),
        ("AbsentSubscriber", State.FAILED),
        ("SUCCESS", State.DELIVERED),
        (" buffered ", State.SENT),
        ("Queued", State.UNKNOWN),
        ("", State.UNKNOWN),
    ],
)
def test_every_status_has_its_state_in_any_case(status: str, state: State) -> None:
    assert state_of(status) is state


def test_the_token_is_compared_whole_and_in_the_query_only() -> None:
    at = AfricasTalking(TOKEN)
    at.check_auth({}, b"", with_token("https://h/webhooks/africastalking"))
    at.check_auth({}, b"", "https://h/webhooks/africastalking?a=1&token=" + TOKEN + "&b=2")
    refusals = {
        "https://h/webhooks/africastalking": "missing_token",
        with_token("https://h/x", TOKEN[:-1]): "bad_token",  # one character short
        with_token("https://h/x", TOKEN + "0"): "bad_token",  # one too many
        with_token("https://h/x", TOKEN.upper()): "bad_token",
        with_token("https://h/x", ""): "bad_token",
        with_token("https://h/x") + "&token=" + TOKEN: "bad_token",  # two of them
        "https://h/x?Token=" + TOKEN: "missing_token",  # the name is as written
        "https://h/x#token=" + TOKEN: "missing_token",  # a fragment is not the query
    }
    for url, code in refusals.items():
        # A token in a header or in the body is not where Africa's Talking puts it.
        with pytest.raises(Rejected) as refused:
            at.check_auth({"X-Token": TOKEN}, b"token=" + TOKEN.encode(), url)
        assert (refused.value.status, refused.value.code) == (401, code), url
        assert TOKEN not in refused.value.detail


def test_a_token_that_needs_escaping_goes_there_and_back() -> None:
    token = "a+b/c=d&e f"
    credentials = Credentials(tokens={"africastalking_token": token})
    url = credentials.in_url("africastalking", "https://h/webhooks/africastalking")
    assert url == with_token("https://h/webhooks/africastalking", token)
    AfricasTalking(token).check_auth({}, b"", url)
    # Shown: elided; a URL that already carries one is left alone; other gateways untouched.
    shown = credentials.in_url("africastalking", "https://h/w", shown=True)
    assert shown == "https://h/w?token=…"
    assert credentials.in_url("africastalking", "https://h/w?token=x") == "https://h/w?token=x"
    assert credentials.in_url("twilio", "https://h/w") == "https://h/w"
    assert Credentials().in_url("africastalking", "https://h/w") == "https://h/w"


def test_urls_shown_anywhere_hide_the_token() -> None:
    assert without_password("https://app/hook?token=s3cret&x=1") == "https://app/hook?token=***&x=1"
    assert (
        without_password("https://u:pw@app/hook?a=1&token=s")
        == "https://u:***@app/hook?a=1&token=***"
    )
    assert without_password("https://app/hook?tokens=1") == "https://app/hook?tokens=1"


# --- every status, duplicates and reordering, over HTTP ------------------------------------------

A, B, C, D, E, F, G, H, J = (f"ATXid_{i:032x}" for i in range(1, 10))
PHONE = {mid: f"+2547{i:08d}" for i, mid in enumerate((A, B, C, D, E, F, G, H, J))}
# (id, status, extra fields), in the order posted: finals before the steps that led there, and
# reports posted again (the same report, the same retryCount), as Africa's Talking retries.
TRAFFIC: list[tuple[str, str, tuple[tuple[str, str], ...]]] = [
    (A, "Success", (("retryCount", "0"),)),
    (A, "Sent", ()),
    (A, "Submitted", ()),
    (A, "Success", (("retryCount", "0"),)),  # posted again
    (A, "Buffered", ()),
    (B, "Failed", (("failureReason", "UserDoesNotExist"),)),
    (B, "Sent", ()),
    (C, "Sent", ()),
    (C, "Rejected", (("failureReason", "UserInBlackList"), ("retryCount", "2"))),
    (C, "Rejected", (("failureReason", "UserInBlackList"), ("retryCount", "2"))),  # again
    (D, "Sent", ()),
    (D, "Buffered", ()),
    (E, "Sent", ()),
    (E, "Expired", ()),
    (F, "absentsubscriber", ()),  # another case: the same status
    (F, "Sent", ()),
    (G, "Sent", ()),
    (G, "Failed", ()),  # a telco that gives no reason
    (H, "Sent", ()),
    (H, "Escalated", ()),  # a status of tomorrow: stored as unknown, acknowledged
    (J, "Sent", (("failureReason", ""),)),  # a blank reason is no reason
    (J, "Sent", ()),  # again
    (J, "Failed", (("failureReason", "DoNotDisturbRejection"),)),
]
# What each recipient must end as, worked out by hand from Africa's Talking's meanings.
EXPECTED = {
    A: (State.DELIVERED, None),
    B: (State.FAILED, "UserDoesNotExist"),
    C: (State.FAILED, "UserInBlackList"),
    D: (State.SENT, None),
    E: (State.FAILED, "Expired"),
    F: (State.FAILED, "AbsentSubscriber"),
    G: (State.FAILED, None),
    H: (State.SENT, None),
    J: (State.FAILED, "DoNotDisturbRejection"),
}
DUPLICATES = 3


@pytest.mark.both_stores
async def test_every_status_folds_right_whatever_the_order_with_duplicates_stored_once(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    async with at_engine(make_engine) as engine:
        answers = []
        for mid, status, extra in TRAFFIC:
            code, answer = await post(
                session, with_token(hook(engine)), report(mid, status, PHONE[mid], *extra)
            )
            assert code == 200, answer
            assert answer["message_id"] == mid
            answers.append(answer["status"])
        await asyncio.wrap_future(engine.writer.settle())
    assert answers.count("duplicate") == DUPLICATES
    assert answers.count("stored") == len(TRAFFIC) - DUPLICATES
    r = await reader()
    for mid, (state, error_code) in EXPECTED.items():
        [rec] = await r.recipients(mid)
        assert (rec.recipient, rec.provider, rec.carrier) == (
            PHONE[mid],
            "africastalking",
            "Safaricom",
        )
        assert (rec.state, rec.error_code) == (state, error_code), mid
        assert not rec.conflict
    events = [e async for e in r.iter_events()]
    assert len(events) == len(TRAFFIC) - DUPLICATES
    by_type = {(e.message_id, e.event_type): e for e in events}
    assert by_type[(H, "Escalated")].state is State.UNKNOWN
    for e in events:
        # No time in the reports: the arrival, marked estimated.
        assert e.time_estimated and e.occurred_at == e.received_at
        assert TOKEN not in e.payload and "token" not in json.loads(e.payload)
    payload = json.loads(by_type[(C, "Rejected")].payload)
    assert list(payload) == [
        "id",
        "status",
        "phoneNumber",
        "networkCode",
        "failureReason",
        "retryCount",
    ]
    assert payload["retryCount"] == "2"


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.both_stores
async def test_a_missing_wrong_or_repeated_token_is_401_and_nothing_is_stored(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    fields = report(A, "Success", PHONE[A])
    async with at_engine(make_engine) as engine:
        url = hook(engine)
        tries = [
            (url, "missing_token"),
            (with_token(url, "not-the-token"), "bad_token"),
            (with_token(url, TOKEN[:8]), "bad_token"),  # of the wrong length
            (with_token(url, TOKEN + TOKEN), "bad_token"),
            (with_token(url) + "&token=" + TOKEN, "bad_token"),
            (f"{url}?Token={TOKEN}", "missing_token"),
        ]
        for target, code in tries:
            status, answer = await post(session, target, fields)
            assert (status, answer["error"]) == (401, code), target
            assert TOKEN_PARAMETER in answer["detail"]
            assert TOKEN not in answer["detail"] and TOKEN[:8] not in answer["detail"]
        await asyncio.sleep(0.2)  # the quarantine rides with the next batch
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert [e async for e in r.iter_events()] == []
    kept = await r.quarantine()
    assert sorted(q.code for q in kept) == ["bad_token"] * 4 + ["missing_token"] * 2
    for q in kept:
        assert (q.provider, q.status, q.path) == ("africastalking", 401, "/webhooks/africastalking")
        # Nothing of the query: neither the right token nor the wrong ones tried.
        record = repr(q)
        assert TOKEN[:8] not in record and "not-the-token" not in record


@pytest.mark.both_stores
async def test_json_and_forms_that_are_no_delivery_report_are_refused_and_quarantined(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, reader: Any
) -> None:
    async with at_engine(make_engine) as engine:
        url = with_token(hook(engine))
        not_reports = {
            # An incoming-message notification: a form of Africa's Talking's, not a report.
            "incoming": [("from", "+254711000000"), ("to", "12345"), ("text", "hi"), ("date", "x")],
            "no status": [("id", A), ("phoneNumber", PHONE[A])],
            "blank id": report("  ", "Success", PHONE[A]),
            "blank status": report(A, "", PHONE[A]),
        }
        for why, fields in not_reports.items():
            status, answer = await post(session, url, fields)
            assert (status, answer["error"]) == (400, "unknown_envelope"), why
        status, answer = await post(session, url, b"id=ATXid_1&status")  # a field without =
        assert (status, answer["error"]) == (400, "malformed_form")
        status, answer = await post(
            session, url, b'{"id":"ATXid_1","status":"Success"}', content_type="application/json"
        )
        assert (status, answer["error"]) == (415, "unsupported_media_type")
        # The detecting route knows nothing of Africa's Talking: a form is no JSON envelope.
        detect = with_token(f"{engine.listener.base_url}/webhooks")
        status, answer = await post(session, detect, report(A, "Success", PHONE[A]))
        assert (status, answer["error"]) == (415, "unsupported_media_type")
        await asyncio.sleep(0.2)
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert [e async for e in r.iter_events()] == []
    kept = await r.quarantine()
    codes = sorted(q.code for q in kept if q.provider == "africastalking")
    assert codes == ["malformed_form", *["unknown_envelope"] * 4, "unsupported_media_type"]
    assert [q.code for q in kept if q.provider is None] == ["unsupported_media_type"]
    blank = [q for q in kept if q.body == urlencode(not_reports["blank id"]).encode()]
    assert len(blank) == 1 and blank[0].status == 400
    assert all(TOKEN not in repr(q) for q in kept)


async def test_without_a_token_it_takes_posts_on_loopback_only(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession
) -> None:
    fields = report(A, "Sent", PHONE[A])
    async with running(make_engine()) as engine:
        assert (await post(session, hook(engine), fields))[0] == 200
        [at] = [g for g in engine.gateways() if g.name == "africastalking"]
        assert (at.accepting, at.verified, at.url) == (True, False, hook(engine))
    public = make_engine(host="0.0.0.0", credentials=Credentials(yebolink_secret="s"))
    async with running(public):
        url = f"http://127.0.0.1:{public.listener.port}/webhooks/africastalking"
        status, answer = await post(session, with_token(url, "anything"), fields)
        assert (status, answer["error"]) == (401, "auth_required")
        assert {g.name: g.accepting for g in public.gateways()}["africastalking"] is False
    # With only its token, a public bind is allowed, and takes its reports.
    async with at_engine(make_engine, host="0.0.0.0") as engine:
        url = f"http://127.0.0.1:{engine.listener.port}/webhooks/africastalking"
        assert (await post(session, with_token(url), fields))[0] == 200


# --- what the screens and serve show -------------------------------------------------------------


async def test_the_url_to_paste_is_shown_with_the_token_elided(
    make_engine: Callable[..., Engine],
) -> None:
    public = "https://hooks.example.com/sms"
    async with at_engine(make_engine, public_url=public) as engine:
        [at] = [g for g in engine.gateways() if g.name == "africastalking"]
        assert at.url == f"{public}/webhooks/africastalking?token=…"
        assert at.verified and at.title == "Africa's Talking"
        lines = gateway_lines(engine.info(), PALETTE).plain.splitlines()
        [line] = [x for x in lines if "africastalking" in x]
        assert line.startswith("Africa's Talking https://") and "?token=…" in line
        said = "\n".join(banner(engine))
        assert f"{public}/webhooks/africastalking?token=…" in said
        assert TOKEN not in said and TOKEN not in repr(engine.info())
    async with at_engine(make_engine) as engine:  # plain http: the token is readable
        said = "\n".join(banner(engine))
        assert "Africa's Talking: the token is in the URL" in said


async def test_it_is_shown_as_not_polled_where_polling_is(
    make_engine: Callable[..., Engine],
) -> None:
    api = ApiConfig(
        yebolink_key=ApiKey("ybk_test_0123456789abcdef"), yebolink_url="http://127.0.0.1:9"
    )
    async with at_engine(make_engine, gateway_api=api, reconcile_every=60.0) as engine:
        assert engine.reconciler is not None
        status = engine.reconciler.status
        assert status.gateways == ("yebolink",) and status.unpolled == ("africastalking",)
        line = reconcile_line(status, 0, PALETTE).plain
        assert "YeboLink idle" in line
        assert line.endswith("Africa's Talking no status API: not polled")
        said = "\n".join(banner(engine))
        assert "Polling the status APIs" in said
        assert "Africa's Talking no status API: not polled" in said
    # Nothing polled at all: no polling line, nothing said of it.
    async with at_engine(make_engine) as engine:
        assert engine.reconciler is None
        assert "not polled" not in "\n".join(banner(engine))
    assert "not polled" not in reconcile_line(ReconcileStatus(("twilio",)), 0, PALETTE).plain


async def test_reconcile_says_it_is_not_polled(
    make_engine: Callable[..., Engine], session: aiohttp.ClientSession, db_path: Path
) -> None:
    async with at_engine(make_engine) as engine:
        assert (await post(session, with_token(hook(engine)), report(A, "Sent", PHONE[A])))[
            0
        ] == 200
        await asyncio.wrap_future(engine.writer.settle())

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(main, ["reconcile", "--db", str(db_path), *args])

    keys = (
        "--yebolink-api-key",
        "ybk_test_0123456789abcdef",
        "--yebolink-api-url",
        "http://127.0.0.1:9",
    )
    asked = await asyncio.to_thread(invoke, *keys, "--message", A, "--json")
    [line] = json.loads(asked.stdout)
    assert (line["provider"], line["polled"], line["error"]) == (
        "africastalking",
        False,
        "no status API: not polled",
    )
    table = await asyncio.to_thread(invoke, *keys)
    assert table.exit_code == 0, table.output
    assert "Africa's Talking: no status API: not polled" in " ".join(table.output.split())
    unkeyed = await asyncio.to_thread(invoke)
    assert unkeyed.exit_code == 2
    assert "Africa's Talking: no status API: not polled" in " ".join(unkeyed.stderr.split())


def test_help_shows_the_flag_where_it_means_something() -> None:
    for command in ("serve", "simulate", "replay"):
        result = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
        assert "--africastalking-token" in result.output, command
    assert "--africastalking-token" in CliRunner().invoke(main, ["--help"]).output
    # Its status API is none: reconcile takes only the credentials a status API takes.
    result = CliRunner().invoke(main, ["reconcile", "--help"], terminal_width=200)
    assert "--africastalking-token" not in result.output
    assert "--twilio-auth-token" in result.output


# --- forwarding ----------------------------------------------------------------------------------


async def test_forwards_go_to_the_apps_url_as_it_is(tmp_path: Path) -> None:
    """The forwarder posts the stored report as a form, to the app's URL unchanged: a token the
    app checks is the one in that URL; none is added where there is none."""
    got: list[tuple[str, dict[str, str], bytes]] = []

    async def app_hook(request: web.Request) -> web.Response:
        got.append((str(request.url), dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/at/dlr", app_hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}/at/dlr"
    db = tmp_path / "fwd.db"
    with contextlib.closing(connect_log(db)):
        pass
    fields = report(C, "Rejected", PHONE[C], ("failureReason", "UserInBlackList"))
    payload = AfricasTalking().parse(urlencode(fields).encode(), 1)[0].payload
    try:
        async with aiohttp.ClientSession() as session:
            for target in (f"{base}?token=the-apps-own", base):
                config = ForwardConfig(targets=(Target(target),), tokens=TOKENS)
                job = Job(1, target, 0, "africastalking", "e1", C, payload, "Rejected")
                assert (await Forwarder(db, config).send(session, job)).delivered
    finally:
        await runner.cleanup()
    [(with_apps, headers, body), (plain, _, _)] = got
    assert (with_apps, plain) == (f"{base}?token=the-apps-own", base)
    assert headers["Content-Type"] == FORM
    assert parse_qsl(body.decode(), strict_parsing=True) == fields


# --- the error catalogue ------------------------------------------------------------------------

DOCUMENTED = (
    "InsufficientCredit",
    "InvalidLinkId",
    "UserIsInactive",
    "UserInBlackList",
    "UserAccountSuspended",
    "NotNetworkSubscriber",
    "NotNetworkSubcriber",  # as Africa's Talking's documentation spells it
    "UserNotSubscribedToProduct",
    "UserDoesNotExist",
    "DeliveryFailure",
    "DoNotDisturbRejection",
    "AbsentSubscriber",
    "Expired",
)
NUMBER_LEVEL = {"UserInBlackList", "UserNotSubscribedToProduct", "UserDoesNotExist"}


def test_every_documented_failure_reason_is_explained() -> None:
    cat = catalogue("africastalking")
    assert set(cat.codes) == set(DOCUMENTED) and cat.groups == ()
    for code in DOCUMENTED:
        info = explain("africastalking", code)
        assert info is not None and info.known, code
        assert info.retry in ("yes", "no", "maybe") and info.action and info.meaning
        assert info.group is None
        assert suppressible("africastalking", code, None, None) is (code in NUMBER_LEVEL), code
    # A word code in another case is the same code; an unknown one passes through.
    blacklisted = explain("africastalking", "UserInBlacklist")
    assert blacklisted is not None and blacklisted.name == "USER_IN_BLACKLIST"
    unknown = explain("africastalking", "SomethingNew")
    assert unknown is not None and not unknown.known and unknown.retry == "unknown"


# --- the simulator end to end --------------------------------------------------------------------


@pytest.mark.both_stores
async def test_simulate_provider_africastalking_end_to_end(
    make_engine: Callable[..., Engine], reader: Any
) -> None:
    from smswatch.devtools.simulate import Sender, SimConfig, plan_campaign

    async with at_engine(make_engine) as engine:
        config = SimConfig(
            url=engine.listener.base_url,
            provider="africastalking",
            messages=2,
            recipients=30,
            seed=11,
            rate=4000.0,
            speed=50.0,
            fail_rate=0.35,
            duplicate_rate=0.2,
            tokens=TOKENS,
        )
        plan = plan_campaign(config)
        bodies = [parse_qsl(d.body.decode()) for d in plan.deliveries]
        assert all(TOKEN not in d.body.decode() for d in plan.deliveries)
        statuses = {dict(b)["status"] for b in bodies}
        assert {"Sent", "Success"} <= statuses and statuses & {"Failed", "Rejected"}
        result = await Sender(config).run(plan.deliveries)
        assert result.ok and result.rejected == 0
        assert result.acked == len(plan.deliveries) and result.acked_duplicate > 0
        await asyncio.wrap_future(engine.writer.settle())
    assert len(plan.truth) == 60
    assert {t.state for t in plan.truth} == {"delivered", "failed"}
    assert any(t.error_code for t in plan.truth) and any(t.permanent for t in plan.truth)
    r = await reader()
    for t in plan.truth:
        rec = await r.recipient(t.message_id, t.recipient)
        assert rec is not None and rec.provider == "africastalking"
        assert (rec.state.value, rec.error_code, rec.carrier) == (t.state, t.error_code, t.carrier)
        # The simulator's idea of a bad number and the catalogue's agree.
        assert suppressible("africastalking", t.error_code, None, None) is t.permanent
    assert len([e async for e in r.iter_events()]) == plan.events


async def test_the_simulate_command_posts_with_the_token(
    make_engine: Callable[..., Engine], reader: Any
) -> None:
    async with at_engine(make_engine) as engine:
        proc = await asyncio.create_subprocess_exec(
            *SMSWATCH,
            "simulate",
            "--url",
            engine.listener.base_url,
            "--provider",
            "africastalking",
            "--messages",
            "1",
            "--recipients",
            "6",
            "--speed",
            "50",
            "--seed",
            "4",
            "--quiet",
            env={**CHILD_ENV, "SMSWATCH_AFRICASTALKING_TOKEN": TOKEN},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        assert "0 rejected" in err.decode()
        await asyncio.wrap_future(engine.writer.settle())
    r = await reader()
    assert {e.provider async for e in r.iter_events()} == {"africastalking"}


# --- the demo -----------------------------------------------------------------------------------


def test_the_demo_sends_its_traffic_verified_and_drops_none_of_it(tmp_path: Path) -> None:
    from smswatch.devtools.demo import DemoTraffic
    from smswatch.devtools.sandbox import SandboxAPI
    from smswatch.devtools.simulate import SimConfig, plan_campaign
    from smswatch.gateways.sandboxing import SandboxKeys
    from smswatch.live.engine import EngineConfig
    from smswatch.live.monitor import demo_config

    keys = SandboxKeys("sk_test_0123456789abcdefghij", "ybk_0123456789abcdef", "tw")
    config, workdir = demo_config(EngineConfig(port=0), "http://127.0.0.1:9", keys)
    assert config.credentials.token("africastalking_token")
    traffic = DemoTraffic("http://127.0.0.1:9", config.credentials, seed=5, sandbox=object())
    try:
        sends = [traffic.campaign() for _ in range(200)]
    finally:
        traffic.loop.close()
    at = [s for s in sends if s.provider == "africastalking"]
    assert at and all(s.drop_rate == 0.0 and s.tokens == config.credentials.tokens for s in at)
    assert any(s.drop_rate > 0 for s in sends if s.provider == "lisoloo")
    # The sandbox serves the gateways that have a status API, and leaves its recipients be.
    plan = plan_campaign(SimConfig(provider="africastalking", messages=1, recipients=3, seed=1))
    sandbox = SandboxAPI(plan.ledger)
    assert "africastalking" not in sandbox.gateways and sandbox.settled_us == 0
    shutil.rmtree(workdir, ignore_errors=True)


def test_the_demo_opens_with_a_campaign_on_every_gateway(tmp_path: Path) -> None:
    """Before its first wave, the demo sends once on each gateway over real HTTP: Twilio's,
    Vonage's and Infobip's sends are grouped by their messaging service, client-ref and bulkId,
    YeboLink's by its metadata, the others' by burst, and the run's campaign has tagged
    nothing yet."""
    import sqlite3
    import time

    from smswatch.devtools.demo import DemoTraffic
    from smswatch.gateways.registry import GATEWAYS
    from smswatch.gateways.sandboxing import SandboxKeys
    from smswatch.live.engine import EngineConfig
    from smswatch.live.monitor import demo_config
    from smswatch.live.thread import EngineThread

    keys = SandboxKeys("sk_test_0123456789abcdefghij", "ybk_0123456789abcdef", "tw")
    config, workdir = demo_config(EngineConfig(port=0), "http://127.0.0.1:9", keys)
    thread = EngineThread(config).start()
    engine = thread.engine
    traffic = DemoTraffic(
        # Seed 1: its opening Twilio send goes through a Messaging Service (most sends do).
        engine.listener.base_url,
        config.credentials,
        seed=1,
        campaigns=engine.campaigns,
    ).start()
    query = (
        "SELECT DISTINCT e.provider, c.source FROM events e "
        "LEFT JOIN campaigns c ON c.message_id = e.message_id"
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.closing(sqlite3.connect(config.db_path)) as db:
                found = set(db.execute(query).fetchall())
            if {provider for provider, _ in found} >= set(GATEWAYS):
                break
            time.sleep(0.2)
    finally:
        traffic.stop()
        thread.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    assert {provider for provider, _ in found} >= set(GATEWAYS), found
    assert {("twilio", "gateway"), ("vonage", "gateway"), ("yebolink", "metadata")} <= found
    assert ("infobip", "gateway") in found  # its bulkId
    assert ("lisoloo", None) in found and ("africastalking", None) in found  # bursts
    assert not any(source == "run" for _, source in found)
