"""The alert rules (smswatch.tui.alert_rules) on their own: plain values in, alerts out, no
Textual, no engine. Every expectation is written out by hand."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

from smswatch.core.domain import FUNNEL, RecipientState, State
from smswatch.core.figures import FailureGroup
from smswatch.core.forwarding import Attempt, TargetStatus
from smswatch.core.live import Counters, Delta
from smswatch.core.reconciling import ReconcileStatus
from smswatch.core.records import Rejection
from smswatch.source.api import Stuck
from smswatch.tui.alert_rules import (
    Alert,
    Standing,
    alerts,
    failing,
    failure_alert,
    newly_rejected,
    raises_alert,
    standing,
)

S = 1_000_000
NOW = 1_800_000_000 * S
QUIET = 60 * S  # the default silence_after


def counters(**changes: object) -> Counters:
    base = Counters(
        events=0,
        duplicates=0,
        rejected=0,
        rejected_by_code={},
        funnel=dict.fromkeys(FUNNEL, 0),
        messages=0,
        in_flight=0,
        conflicts=0,
        rate=(),
        last_request_at=None,
        last_event_at=None,
        store_error=None,
        started_at=0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def target(url: str, *, attempts: int, status: int | None, failed: int = 0) -> TargetStatus:
    last = Attempt(1, url, NOW - S, status, "upstream down" if status else None, 12)
    return TargetStatus(
        target=url,
        backlog=7,
        failed=failed,
        delivered=10,
        delivered_recent=0,
        last=last,
        failing_since=NOW - 30 * S if attempts else None,
        failed_attempts=attempts,
    )


def rules(c: Counters, **kw: object) -> list[Alert]:
    args: dict[str, object] = {
        "rejections": [],
        "stuck": None,
        "failures": [],
        "now": NOW,
        "silence_after": QUIET,
        "can_resend": False,
    }
    args.update(kw)
    return alerts(c, **args)  # type: ignore[arg-type]


def test_nothing_wrong_is_all_clear() -> None:
    assert rules(counters(in_flight=3, last_request_at=NOW - 5 * S)) == []


def test_a_failing_store_comes_first() -> None:
    rejected = Rejection(NOW - 5 * S, 401, "bad_auth", "wrong password", path="/webhooks/lisoloo")
    found = rules(counters(store_error="disk I/O error"), rejections=[("bad_auth", 3, rejected)])
    assert found == [
        Alert("store", "store", "error", "STORE FAILING — webhooks get 503", "disk I/O error"),
        Alert(
            "rejected",
            "rejected:bad_auth",
            "error",
            "401 bad_auth",
            "wrong password (/webhooks/lisoloo, 5s ago)",
            3,
            "bad_auth",
        ),
    ]


def test_silence_is_an_alert_only_past_its_time_and_with_messages_in_flight() -> None:
    quiet = counters(in_flight=2, last_request_at=NOW - 90 * S)
    assert rules(quiet) == [
        Alert("silence", "silence", "warning", "no webhook for 1m30s", "2 messages still in flight")
    ]
    assert rules(quiet, silence_after=120 * S) == []
    assert rules(replace(quiet, in_flight=0)) == []
    assert rules(replace(quiet, last_request_at=None)) == []


def test_stuck_recipients_name_the_oldest() -> None:
    oldest = RecipientState("m1", "+15550001", "lisoloo", State.SENT, NOW - 125 * S)
    assert rules(counters(), stuck=Stuck(4, [oldest])) == [
        Alert("stuck", "stuck", "warning", "recipients stuck", "oldest sent for 2m05s", 4)
    ]
    assert rules(counters(), stuck=Stuck(0, [])) == []


def test_an_app_is_failing_after_three_failed_attempts_in_a_row() -> None:
    url = "https://u:secret@app.example/hook"
    assert not failing(target(url, attempts=2, status=503))
    assert failing(target(url, attempts=3, status=503))
    assert not failing(target(url, attempts=3, status=200))  # the last one got through
    found = rules(counters(forwarding=(target(url, attempts=3, status=500),)))
    assert found == [
        Alert(
            "forward",
            f"forward:{url}",
            "error",
            "forward failing: 500",
            "upstream down · https://u:***@app.example/hook",
            7,
            "https://u:***@app.example/hook: 500 for 30.0s, 7 events waiting\nupstream down",
        )
    ]


def test_forwards_given_up_offer_a_resend_where_one_can_be_made() -> None:
    given_up = counters(forwarding=(target("http://app/in", attempts=0, status=None, failed=2),))
    hint = " · ctrl+p: Re-send every failed forward"
    warning = Alert(
        "forward-failed",
        "forward-failed:http://app/in",
        "warning",
        "forwards given up",
        "http://app/in",
        2,
    )
    assert rules(given_up) == [warning]
    assert rules(given_up, can_resend=True) == [replace(warning, detail="http://app/in" + hint)]


def test_missing_webhooks_and_a_failing_status_api() -> None:
    status = ReconcileStatus(
        gateways=("lisoloo",),
        queued={"lisoloo": 1},
        missing=3,
        messages_missing=2,
        last_error="HTTP 500 from the status API",
    )
    detail = "2 messages short by the gateway's counts · 1 poll queued"
    assert rules(counters(reconciling=status)) == [
        Alert(
            "reconcile",
            "reconcile",
            "warning",
            "webhooks missing",
            detail,
            3,
            detail + " · a message's screen shows the gateway's counts beside ours",
        ),
        Alert(
            "reconcile-error",
            "reconcile-error",
            "error",
            "gateway API failing",
            "HTTP 500 from the status API",
        ),
    ]


def test_failures_by_code_read_the_catalogue() -> None:
    assert failure_alert("lisoloo", "1104", 12, None) == Alert(
        "failure",
        "failure:lisoloo:1104",
        "info",
        "1104  INVALID_PHONE_NUMBER",
        "lisoloo · retry: no",
        12,
        "1104",
    )
    assert failure_alert("lisoloo", None, 1, None) == Alert(
        "failure", "failure:lisoloo:None", "info", "no code  failed without a code", "lisoloo", 1
    )
    groups = [FailureGroup("lisoloo", "1104", 12, NOW, "bad number", False)]
    assert [a.title for a in rules(counters(), failures=groups)] == ["1104  INVALID_PHONE_NUMBER"]


def test_the_order_is_most_urgent_first() -> None:
    rejected = Rejection(NOW - S, 413, "too_large", "body over 1 MiB", path="/webhooks")
    c = counters(
        store_error="locked",
        in_flight=1,
        last_request_at=NOW - 600 * S,
        reconciling=ReconcileStatus(gateways=("yebolink",), recovered=1),
        forwarding=(target("http://app", attempts=5, status=None),),
    )
    found = rules(
        c,
        rejections=[("too_large", 1, rejected)],
        stuck=Stuck(1, []),
        failures=[FailureGroup("yebolink", None, 2, NOW, None, None)],
    )
    kinds = [a.kind for a in found]
    assert kinds == ["store", "rejected", "silence", "stuck", "reconcile", "forward", "failure"]


def test_which_deltas_raise_or_end_an_alert_at_once() -> None:
    calm = counters()
    assert standing(calm) == Standing(None, ())
    assert not raises_alert(Delta(NOW, calm), Standing())
    rejected = Rejection(NOW, 401, "bad_auth", "wrong password")
    assert raises_alert(Delta(NOW, calm, rejections=(rejected,)), Standing())
    assert raises_alert(Delta(NOW, counters(store_error="full")), Standing())
    assert raises_alert(Delta(NOW, calm), Standing(store_error="full"))  # it recovered
    app = target("http://app", attempts=3, status=500)
    assert raises_alert(Delta(NOW, counters(forwarding=(app,))), Standing())
    assert not raises_alert(
        Delta(NOW, counters(forwarding=(app,))), Standing(None, ("http://app",))
    )


def test_each_new_rejection_code_is_told_once() -> None:
    a1 = Rejection(NOW, 401, "bad_auth", "first")
    a2 = Rejection(NOW + 1, 401, "bad_auth", "second")
    b = Rejection(NOW + 2, 413, "too_large", "big")
    assert newly_rejected([a1, a2, b], set()) == [a1, b]
    assert newly_rejected([a1, a2, b], {"bad_auth"}) == [b]
    assert newly_rejected([], set()) == []


def test_the_rules_load_no_textual() -> None:
    code = "import smswatch.tui.alert_rules, sys; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
