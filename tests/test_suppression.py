"""The suppression list (`export --suppression`): exactly the simulator's permanent failures.

The simulator decides on its own why each recipient failed (its truth file's `permanent`); the
list is built from the catalogue's `suppress` flags. The two are independent, so a run over real
HTTP that ends with the same set on both sides checks the catalogue against the simulator.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from smswatch.exports.suppression import FIELDS, Suppressed, permanent_failures, write_csv
from smswatch.gateways.catalogue import catalogue, explain, suppressible
from smswatch.gateways.lisoloo.sim import FAILURES as LISOLOO_FAILURES
from smswatch.gateways.yebolink.sim import FAILURES as YEBOLINK_FAILURES
from tests.conftest import Client, running
from tests.helpers import Server, free_port, run

Row = tuple[str, str, str]  # (recipient, provider, error_code)

# --- the catalogue's flags ---------------------------------------------------------------------


def suppressing(provider: str) -> set[str]:
    return {code for code in catalogue(provider).codes if explain(provider, code).suppress}


def test_only_failures_about_the_number_suppress() -> None:
    assert suppressing("lisoloo") == {"1104", "1502"}
    # Twilio's meanings: invalid To, unsubscribed, not SMS-capable, blocked, unknown, landline.
    assert suppressing("yebolink") == {"21211", "21610", "21614", "30004", "30005", "30006"}


@pytest.mark.parametrize(
    ("provider", "code"),
    [
        ("lisoloo", "1004"),  # the app is suspended: every number fails alike
        ("lisoloo", "1202"),  # the wallet is empty
        ("yebolink", "30002"),  # the account is suspended
        ("yebolink", "30007"),  # the text was filtered, not the number
        ("yebolink", "30034"),  # the sender is not registered, whatever YeboLink's label says
    ],
)
def test_not_worth_retrying_is_not_the_same_as_a_bad_number(provider: str, code: str) -> None:
    info = explain(provider, code)
    assert info.retry == "no" and not info.suppress
    assert not suppressible(provider, code, "whatever", False)


@pytest.mark.parametrize(
    ("provider", "code"),
    [
        ("yebolink", "30003"),  # a handset that is off comes back
        ("yebolink", "30008"),  # Twilio's "unknown error", not YeboLink's "unknown destination"
        ("lisoloo", "1503"),  # a receipt timeout
        ("lisoloo", "1504"),  # unnamed: its group's meaning, and groups never suppress
        ("lisoloo", "1599"),
        ("yebolink", "21999"),
        ("yebolink", "63016"),  # outside every range
        ("lisoloo", "ABC"),
    ],
)
def test_transient_unknown_and_unnamed_codes_do_not_suppress(provider: str, code: str) -> None:
    assert not suppressible(provider, code, "Number unreachable", None)


@pytest.mark.parametrize(
    ("message", "suppressed"),
    [
        ("Number unreachable", True),  # Lisoloo's own example of 1502
        (None, True),
        ("", True),
        ("Rejected by carrier: sender ID not registered", False),
        ("SENDER-ID barred on this route", False),
        ("senderid unknown", False),
        ("Content rejected by operator", False),
        ("Message looks like SPAM", False),
    ],
)
def test_lisoloo_1502_is_about_the_number_unless_the_message_says_otherwise(
    message: str | None, suppressed: bool
) -> None:
    assert suppressible("lisoloo", "1502", message, False) is suppressed


def test_the_gateways_retryable_true_means_the_number_is_not_dead() -> None:
    assert suppressible("lisoloo", "1502", "Number unreachable", False)
    assert not suppressible("lisoloo", "1502", "Number unreachable", True)
    info = explain("lisoloo", "1502", retryable=True)
    assert (info.retry, info.suppress) == ("yes", False)
    assert explain("lisoloo", "1502", retryable=False).suppress


def test_user_catalogue_files_can_change_what_suppresses(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "catalogue").mkdir()
    (tmp_path / "catalogue" / "yebolink.toml").write_text(
        '[codes.30003]\nname = "UNREACHABLE_HANDSET"\nmeaning = "off for good here"\n'
        'retry = "no"\naction = "drop"\nsuppress = true\n'
        # A string where a boolean belongs must not put numbers on the list.
        '[codes.30005]\nname = "UNKNOWN_HANDSET"\nmeaning = "m"\nretry = "no"\naction = "a"\n'
        'suppress = "no"\n'
    )
    (tmp_path / "catalogue" / "lisoloo.toml").write_text(
        # A lone string is one fragment, not its letters.
        '[codes.1502]\nname = "SMS_REJECTED_BY_CARRIER"\nmeaning = "m"\nretry = "no"\n'
        'action = "a"\nsuppress = true\nkeep_if_message = "template"\n'
    )
    monkeypatch.setenv("SMSWATCH_CONFIG_DIR", str(tmp_path))
    catalogue.cache_clear()
    try:
        assert suppressible("yebolink", "30003", "Unreachable destination handset", None)
        assert not suppressible("yebolink", "30005", "Unknown destination handset", None)
        assert suppressible("yebolink", "30006", "Landline", None)  # untouched entries stay
        assert not suppressible("lisoloo", "1502", "Template not approved", False)
        assert suppressible("lisoloo", "1502", "sender ID not registered", False)  # replaced
    finally:
        catalogue.cache_clear()


def test_the_simulators_failure_kinds_agree_with_the_catalogue() -> None:
    """The fast form of the end-to-end check below: each simulated kind of failure, judged by
    the simulator (its table) and by the catalogue, independently."""
    for code, text, retryable, permanent, _ in LISOLOO_FAILURES:
        assert suppressible("lisoloo", code, text, retryable) is permanent, (code, text)
    for code, text, permanent, _ in YEBOLINK_FAILURES:
        assert suppressible("yebolink", code, text, None) is permanent, (code, text)


# --- one row per number ------------------------------------------------------------------------


def test_a_number_appears_once_with_its_latest_permanent_failure() -> None:
    rows = [
        # (recipient, provider, error_code, error_message, retryable, message_id, carrier, at)
        ("+2438100", "lisoloo", "1502", "Number unreachable", 0, "m1", "vodacom_drc", 10),
        ("+2438100", "yebolink", "30005", "Unknown destination handset", None, "m3", None, 30),
        ("+2438100", "lisoloo", "1502", "Number unreachable", 0, "m2", "airtel_drc", 20),
        # Failures that are not about the number neither list it nor count.
        ("+2438100", "lisoloo", "1503", "Delivery receipt timeout", 1, "m4", None, 40),
        ("+2438101", "lisoloo", "1502", "sender ID not registered", 0, "m1", None, 10),
        ("+2438102", "lisoloo", "1502", "Number unreachable", 1, "m1", None, 10),
        ("  ", "lisoloo", "1502", "Number unreachable", 0, "m1", None, 10),
        ("+2438103", "yebolink", "21610", "unsubscribed", None, "y1", None, None),
    ]
    got = permanent_failures(rows)
    assert [(s.recipient, s.provider, s.error_code, s.message_id, s.failures) for s in got] == [
        ("+2438100", "yebolink", "30005", "m3", 3),
        ("+2438103", "yebolink", "21610", "y1", 1),
    ]
    assert got[0].error_name == "UNKNOWN_HANDSET"
    # The pick does not depend on the order the store returned the rows in.
    assert permanent_failures(reversed(rows)) == got


def lisoloo_failed(
    n: int, message_id: str, phone: str, at: str, text: str, **extra: Any
) -> dict[str, Any]:
    return {
        "event_id": f"5e5e5e5e-0000-4000-8000-{n:012d}",
        "event_type": "sms.failed",
        "timestamp": at,
        "message_id": message_id,
        "data": {
            "recipient_phone": phone,
            "carrier": "vodacom_drc",
            "failed_at": at,
            "error_code": "1502",
            "error_message": text,
            "retryable": False,
            **extra,
        },
    }


@pytest.mark.both_stores
async def test_the_palettes_writer_lists_each_number_once(
    make_engine, session, reader, tmp_path: Path, store_kind: str
) -> None:
    """`write_suppression`, the function the TUI's palette calls, over events posted to a real
    engine: a number that failed for good in two messages is one row, the later failure."""
    from smswatch.exports.suppression import write_suppression

    async with running(make_engine()) as engine:
        client = Client(session, engine.listener.base_url)
        bodies = [
            lisoloo_failed(1, "a" * 24, "+243810000001", "2026-05-27T10:00:00Z", "Number gone"),
            lisoloo_failed(2, "b" * 24, "+243810000001", "2026-05-27T11:00:00Z", "Number gone!"),
            lisoloo_failed(3, "b" * 24, "+243810000002", "2026-05-27T11:00:00Z", "sender ID x"),
            lisoloo_failed(4, "b" * 24, "+243810000003", "2026-05-27T11:00:00Z", "Number gone"),
        ]
        for body in bodies:
            status, _ = await client.lisoloo(json.dumps(body))
            assert status == 200
    out = tmp_path / "dns.csv"
    assert await write_suppression(await reader(), None, out) == 2
    rows = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert [(r["recipient"], r["message_id"], r["error_message"], r["failures"]) for r in rows] == [
        ("+243810000001", "b" * 24, "Number gone!", "2"),
        ("+243810000003", "b" * 24, "Number gone", "1"),
    ]
    assert rows[0]["failed_at"] == "2026-05-27T11:00:00Z"
    # Written beside it, then renamed: nothing partial is left behind.
    assert [name for name in os.listdir(tmp_path) if "dns" in name] == ["dns.csv"]


# --- over real HTTP, through the command line ---------------------------------------------------

SIM = ("--fail-rate", "0.3", "--duplicate-rate", "0.1", "--speed", "50", "--rate", "5000")
SIM += ("--concurrency", "32", "-q")


def simulate(url: str, truth: Path, *args: str) -> list[dict[str, Any]]:
    out = run("simulate", "--url", url, "--truth", str(truth), *SIM, *args)
    assert "0 rejected, 0 given up" in out.stderr
    return [json.loads(line) for line in truth.read_text().splitlines()]


def permanent(truth: list[dict[str, Any]]) -> set[Row]:
    return {
        (t["recipient"], t["provider"], t["error_code"])
        for t in truth
        if t["state"] == "failed" and t["permanent"]
    }


def suppression_rows(db: Path | str, *args: str) -> list[dict[str, str]]:
    out = run("export", "--suppression", "--db", str(db), *args).stdout
    reader = csv.DictReader(io.StringIO(out))
    assert reader.fieldnames is not None and tuple(reader.fieldnames) == FIELDS
    return list(reader)


def as_set(rows: list[dict[str, str]]) -> set[Row]:
    found = [(r["recipient"], r["provider"], r["error_code"]) for r in rows]
    assert len({r[0] for r in found}) == len(found)  # one row per number
    return set(found)


@pytest.mark.slow
@pytest.mark.both_stores
def test_the_list_is_exactly_the_simulators_permanent_failures(
    tmp_path: Path, db_path: Path | str
) -> None:
    db = db_path
    # Round 1: both gateways, while serve tags every new message "spring" (YeboLink's own
    # metadata campaign wins); round 2: Lisoloo only, untagged, so it makes a burst.
    server = Server(db, free_port(), "--no-feed", "--campaign", "spring", log=tmp_path / "1.log")
    server.start()
    try:
        url = server.url
        mixed = ("--provider", "mixed", "--messages", "8", "--recipients", "60", "--seed", "7")
        first = simulate(url, tmp_path / "t1.jsonl", *mixed)
    finally:
        server.stop()
    server = Server(db, free_port(), "--no-feed", log=tmp_path / "2.log").start()
    try:
        lisoloo = ("--provider", "lisoloo", "--messages", "3", "--recipients", "50", "--seed", "8")
        second = simulate(server.url, tmp_path / "t2.jsonl", *lisoloo)
    finally:
        server.stop()

    # The seeds are chosen so that every kind of simulated failure happens (both kinds of 1502
    # among them) and no number is reused: then the exact set is the proof.
    failed = {
        (t["provider"], t["error_code"], t["permanent"]) for t in first if t["state"] == "failed"
    }
    assert len(failed) == len(LISOLOO_FAILURES) + len(YEBOLINK_FAILURES)
    numbers = [t["recipient"] for t in first + second]
    assert len(numbers) == len(set(numbers))

    everything = suppression_rows(db)
    assert as_set(everything) == permanent(first + second)
    assert {r["campaign"] for r in everything if r["provider"] == "lisoloo"} == {"spring", ""}

    spring = [t for t in first if t["provider"] == "lisoloo"]
    assert as_set(suppression_rows(db, "--campaign", "spring")) == permanent(spring)
    yebo = max(
        {t["campaign"] for t in first if t["provider"] == "yebolink"},
        key=lambda name: len(permanent([t for t in first if t["campaign"] == name])),
    )
    in_yebo = suppression_rows(db, "--campaign", yebo)
    assert as_set(in_yebo) == permanent([t for t in first if t["campaign"] == yebo])
    assert {r["campaign"] for r in in_yebo} == {yebo}

    listed = json.loads(run("campaign", "list", "--db", str(db), "--json").stdout)
    [burst] = [c["name"] for c in listed if c["name"].startswith("lisoloo-")]
    assert as_set(suppression_rows(db, "--campaign", burst)) == permanent(second)

    # --out writes the same list as stdout.
    out = tmp_path / "dns.csv"
    wrote = run("export", "--suppression", "--db", str(db), "--out", str(out))
    assert f"exported {len(everything)} numbers" in wrote.stderr
    assert list(csv.DictReader(out.read_text(encoding="utf-8").splitlines())) == everything

    missing = run("export", "--suppression", "--db", str(db), "--campaign", "nope", check=False)
    assert missing.returncode == 1 and "no campaign 'nope'" in missing.stderr
    password = urlsplit(str(db)).password
    if password:
        assert password not in missing.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--suppression", "--format", "jsonl"),
        ("--suppression", "--message", "abc"),
        ("--campaign", "spring"),
    ],
)
def test_options_that_cannot_apply_to_the_list_are_refused(tmp_path: Path, args: tuple) -> None:
    db = tmp_path / "e.db"
    Server(db, free_port(), "--no-feed").start().stop()
    out = run("export", "--db", str(db), *args, check=False)
    assert out.returncode == 2 and "Usage:" in out.stderr
    assert out.stdout == ""
    assert run("export", "--suppression", "--format", "csv", "--db", str(db)).stdout.startswith(
        "recipient,provider,error_code,"
    )


# --- untrusted text ----------------------------------------------------------------------------

TWIN = "+24399885\u200b7000"  # another number than +243998857000, that must look different
HOSTILE = "Number unreachable \x1b]0;pwned\x07\x1b[2J \x9b2J \u202eevil"


def test_hostile_text_in_the_list_cannot_act_on_a_terminal() -> None:
    entry = Suppressed(TWIN, "lisoloo", "1502", None, HOSTILE, "m", "\x1b[31mred", 0)
    shown, exact = io.StringIO(), io.StringIO()
    write_csv([entry], shown, for_terminal=True)
    write_csv([entry], exact)
    text = shown.getvalue()
    assert not {"\x1b", "\x07", "\x9b", "\u200b", "\u202e"} & set(text)
    assert "+24399885\\u200b7000" in text and "␛]0;pwned" in text
    # A file or a pipe gets the values as stored: a sender matches numbers exactly.
    [row] = list(csv.DictReader(io.StringIO(exact.getvalue())))
    assert (row["recipient"], row["error_message"]) == (TWIN, HOSTILE)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="ptys")
def test_export_suppression_on_a_terminal_shows_code_points(tmp_path: Path) -> None:
    import urllib.request

    from tests.test_untrusted_text_outputs import hidden_in, on_a_terminal

    db = tmp_path / "h.db"
    server = Server(db, free_port(), "--no-feed").start()
    try:
        for n, phone in enumerate((TWIN, "+243998857000"), 1):
            body = lisoloo_failed(n, "c" * 24, phone, "2026-05-27T10:00:00Z", HOSTILE)
            req = urllib.request.Request(
                server.url + "/webhooks/lisoloo",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 200
    finally:
        server.stop()
    shown = on_a_terminal("export", "--suppression", "--db", str(db))
    assert not hidden_in(shown) and "\x07" not in shown and "\u202e" not in shown
    assert "+24399885\\u200b7000" in shown and "+243998857000" in shown
    piped = run("export", "--suppression", "--db", str(db)).stdout
    assert TWIN in piped and HOSTILE in piped


def test_no_cell_of_the_list_can_start_a_spreadsheet_formula() -> None:
    from smswatch.exports.suppression import inert

    for number in ("+243810000001", "+1 (555) 010-0000", "27824940551", "-", "-1"):
        assert inert(number) == number  # numbers stay as sent: senders match them exactly
    for hostile in ("=cmd|' /C calc'!A0", "@SUM(A1)", "+A1", "-2+3+cmd", "\t=1", "\r=1"):
        assert inert(hostile) == "'" + hostile
