"""The command line: serve's banner and logs, bind refusal, read commands and their errors."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.seeds import LISOLOO
from tests.helpers import Server, free_port, on_a_terminal, run

pytestmark = pytest.mark.slow


def post(url: str, body: str, headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_serve_prints_the_urls_and_summarises(tmp_path: Path) -> None:
    server = Server(tmp_path / "s.db", free_port(), "--basic-auth", "ops:pw").start()
    try:
        for body in LISOLOO.values():
            assert (
                post(server.url + "/webhooks/lisoloo", body, {"Authorization": "Basic b3BzOnB3"})
                == 200
            )
        assert post(server.url + "/webhooks/lisoloo", LISOLOO["sms.sent"]) == 401
        # Until a summary has counted all five and the refusal is logged.
        server.wait_for_log(lambda log: "events 5 " in log and "warning: 401 unauthorized" in log)
    finally:
        log = server.stop()
    assert f"{server.url}/webhooks/lisoloo" in log
    assert f"{server.url}/webhooks/yebolink" in log
    assert "Basic auth (user ops)" in log
    assert "open: no secret configured (loopback only)" in log
    assert "warning: 401 unauthorized" in log
    assert "events 5 " in log
    assert "stopped; 5 events" in log


def test_serve_json_logs(tmp_path: Path) -> None:
    server = Server(tmp_path / "j.db", free_port(), "--log-format", "json").start()
    try:
        assert post(server.url + "/webhooks/lisoloo", "{oops") == 400
        assert post(server.url + "/webhooks/lisoloo", LISOLOO["sms.queued"]) == 200
        # Until a summary has counted the event and the rejection.
        server.wait_for_log(
            lambda log: any(
                r.get("event") == "summary" and r.get("events") == 1 and r.get("rejected") == 1
                for r in map(json.loads, filter(str.strip, log.splitlines()))
            )
        )
    finally:
        log = server.stop()
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    kinds = [r["event"] for r in records]
    assert kinds[0] == "listening"
    assert records[0]["urls"]["lisoloo"].endswith("/webhooks/lisoloo")
    assert "rejected" in kinds and "summary" in kinds
    summary = [r for r in records if r["event"] == "summary"][-1]
    assert summary["events"] == 1 and summary["rejected"] == 1


def test_public_bind_without_credentials_is_refused_with_advice(tmp_path: Path) -> None:
    result = run("serve", "--host", "0.0.0.0", "--db", str(tmp_path / "x.db"), check=False)
    assert result.returncode == 2
    assert "--basic-auth" in result.stderr and "--insecure" in result.stderr


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    server = Server(tmp_path / "a.db", free_port()).start()
    try:
        result = run(
            "serve",
            "--db",
            str(tmp_path / "b.db"),
            "--port",
            str(server.port),
            check=False,
            timeout=30,
        )
    finally:
        server.stop()
    assert result.returncode == 2
    assert "cannot listen" in result.stdout and "Traceback" not in result.stdout + result.stderr


def seeded(db: Path) -> Path:
    """A database holding the Lisoloo seeds' events, stored by a real `serve`."""
    server = Server(db, free_port()).start()
    try:
        for body in LISOLOO.values():
            assert post(server.url + "/webhooks/lisoloo", body) == 200
    finally:
        server.stop()
    return db


def test_read_commands(tmp_path: Path) -> None:
    db = seeded(tmp_path / "r.db")
    human = run("inspect", "507f1f77", "--db", str(db)).stdout
    assert "+243998857000" in human and "delivered" in human and "!conflict" in human
    assert "SMS_REJECTED_BY_CARRIER" in human
    rows = list(
        csv.DictReader(io.StringIO(run("export", "--db", str(db), "--format", "csv").stdout))
    )
    assert len(rows) == 5 and json.loads(rows[0]["payload"])["event_type"] == "sms.queued"
    out = tmp_path / "e.jsonl"
    result = run(
        "export", "--db", str(db), "--message", "507f1f77bcf86cd799439011", "--out", str(out)
    )
    assert "exported 5 events" in result.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert set(lines[0]) == {
        "event_id",
        "provider",
        "event_type",
        "state",
        "message_id",
        "recipient",
        "occurred_at",
        "received_at",
        "carrier",
        "error_code",
        "error_message",
        # What `smswatch import` restores besides (tests/test_import.py):
        "time_estimated",
        "dedupe_key",
        "retryable",
        "message_info",
        "campaign",
        "payload",
    }
    assert lines[0]["payload"] == json.loads(LISOLOO["sms.queued"])
    stats = json.loads(run("stats", "--db", str(db), "--json").stdout)
    assert (
        stats["events"] == 5 and stats["recipients"]["delivered"] == 1 and stats["conflicts"] == 1
    )
    assert "delivery rate" in run("stats", "--db", str(db)).stdout


def test_read_commands_explain_a_missing_database_or_message(tmp_path: Path) -> None:
    for args in (["stats"], ["export"], ["inspect", "abc"]):
        result = run(*args, "--db", str(tmp_path / "none.db"), check=False)
        assert result.returncode == 1
        assert "no smswatch database" in result.stderr and "Traceback" not in result.stderr
    db = tmp_path / "r.db"
    Server(db, free_port()).start().stop()
    result = run("inspect", "abc", "--db", str(db), check=False)
    assert result.returncode == 1 and "no message 'abc'" in result.stderr


def test_a_message_is_named_by_a_unique_prefix_everywhere(tmp_path: Path) -> None:
    """export --message, inspect and reconcile --message take what inspect takes: the id or a
    unique prefix; none or several matching is an error that says which, never empty output."""
    db = tmp_path / "p.db"
    server = Server(db, free_port(), "--no-feed").start()
    try:
        for body in LISOLOO.values():
            assert post(server.url + "/webhooks/lisoloo", body) == 200
        twin = json.loads(LISOLOO["sms.queued"])
        twin["event_id"], twin["message_id"] = "twin-1", "507f1f77aaaaaaaaaaaaaaaa"
        assert post(server.url + "/webhooks/lisoloo", json.dumps(twin)) == 200
    finally:
        server.stop()
    whole = run("export", "--db", str(db), "--message", "507f1f77bcf86cd799439011").stdout
    assert run("export", "--db", str(db), "--message", "507f1f77b").stdout == whole
    assert len(whole.splitlines()) == 5
    keys = ["--lisoloo-app-key", "sk_test_" + "a" * 32, "--lisoloo-api-url", "http://127.0.0.1:9"]
    for command in (["export", "--message"], ["inspect"], ["reconcile", *keys, "--message"]):
        missing = run(*command, "doesnotexist", "--db", str(db), check=False)
        assert missing.returncode == 1, command
        assert "no message 'doesnotexist'" in missing.stderr and not missing.stdout, command
        several = run(*command, "507f1f77", "--db", str(db), check=False)
        assert several.returncode == 1, command
        assert "'507f1f77' starts more than one message id" in several.stderr, command
        assert "507f1f77aaaaaaaaaaaaaaaa" in several.stderr and not several.stdout, command


def test_config_file_feeds_every_command(tmp_path: Path) -> None:
    db = tmp_path / "cfg.db"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'db = "{db}"\n')
    Server(db, free_port()).start().stop()
    result = run("stats", "--config", str(cfg), "--json")
    assert json.loads(result.stdout)["events"] == 0
    cfg.write_text('colour = "red"\n')
    result = run("stats", "--config", str(cfg), check=False)
    assert result.returncode == 2 and "unknown setting 'colour'" in result.stderr


def test_bad_input_to_the_read_commands_is_one_clear_line(tmp_path: Path) -> None:
    """Found by probing the commands with hostile input: each of these was a traceback, a
    silently accepted NaN, or a database created where none should be."""
    from click.testing import CliRunner

    from smswatch.cli import main

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(main, list(args))

    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite")
    for args in (["stats"], ["campaign", "list"], ["report", "--out", str(tmp_path / "r.html")]):
        result = invoke(*args, "--db", str(junk))
        assert result.exit_code == 1 and "is not an smswatch database" in result.output, args
    for url in ("postgresql://u:secret@localhost:abc/db", "postgresql://u:secret@[::1/db"):
        result = invoke("stats", "--db", url)
        assert result.exit_code == 2 and "is not a database URL" in result.output
        assert "secret" not in result.output
    for option, value in (("--drop-rate", "nan"), ("--rate", "inf")):
        result = invoke("simulate", "--url", "http://127.0.0.1:9", option, value)
        assert result.exit_code == 2 and "not a finite number" in result.output, option
    keys = ["--lisoloo-app-key", "sk_test_" + "a" * 32, "--lisoloo-api-url", "http://127.0.0.1:9"]
    result = invoke("reconcile", "--db", str(tmp_path / "typo.db"), *keys)
    assert result.exit_code == 1 and "no smswatch database" in result.output
    assert not list(tmp_path.glob("typo.db*"))  # nothing created
    for since in ("nan", "1e400s", "-5m"):
        result = invoke("reconcile", "--db", str(junk), *keys, "--since", since)
        assert result.exit_code == 2 and "--since" in result.output, since


def test_campaign_names_and_outputs_are_checked(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from smswatch.cli import main

    db = seeded(tmp_path / "c.db")

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(main, [*args, "--db", str(db)])

    # A burst's own name would hide the burst behind a tag of the same name.
    burst = json.loads(invoke("campaign", "list", "--json").output)[0]["name"]
    result = invoke("campaign", "tag", burst, "507f1f77")
    assert result.exit_code == 2 and "send bursts" in result.output
    # Names are looked up as they are stored: trimmed.
    assert invoke("campaign", "tag", "spring sale", "507f1f77").exit_code == 0
    assert invoke("campaign", "show", "  spring sale ", "--json").exit_code == 0
    # The operator's own text still never reaches the terminal as escapes.
    result = invoke("campaign", "tag", "\x1b]0;pwned\x07x", "507f1f77")
    assert result.exit_code == 0 and "\x1b" not in result.output
    for args in (["export"], ["export", "--suppression"]):
        result = invoke(*args, "--out", str(tmp_path / "nodir" / "x.csv"))
        assert result.exit_code == 1 and "cannot write" in result.output, args


def rich_rows(out: str) -> list[list[str]]:
    """The header (┃) and body (│) rows of the Rich tables in `out`, as lists of cells."""
    rows = []
    for line in out.splitlines():
        bar = "┃" if line.startswith("┃") else "│" if line.startswith("│") else None
        if bar:
            rows.append([c.strip() for c in line.strip().strip(bar).split(bar)])
    return rows


def traffic(tmp_path: Path) -> Path:
    """Both sample campaigns, replayed through a real `serve`."""
    db = tmp_path / "t.db"
    server = Server(db, free_port(), "--no-feed").start()
    try:
        for name in ("lisoloo_campaign.jsonl", "yebolink_bulk.jsonl"):
            sample = Path(__file__).parent.parent / "sample_data" / name
            run("replay", str(sample), "--url", server.url, "--speed", "0", "-q")
    finally:
        server.stop()
    return db


def on_a_tty(args: list[str], columns: int) -> str:
    """`smswatch ARGS` with stdout on a pseudo-terminal `columns` wide (and no COLUMNS)."""
    text = on_a_terminal(*args, columns=columns)
    return re.sub("\x1b\\[[0-9;?]*[a-zA-Z]", "", text)


def test_tables_are_never_cut_when_piped_and_fit_a_terminal_without_cutting_a_figure(
    tmp_path: Path,
) -> None:
    db = traffic(tmp_path)
    listed = json.loads(run("campaign", "list", "--db", str(db), "--json").stdout)
    assert len(listed) >= 2
    mid = json.loads(run("export", "--db", str(db)).stdout.splitlines()[0])["message_id"]
    commands = [
        ["campaign", "list"],
        ["campaign", "show", listed[0]["name"]],
        ["stats"],
        ["inspect", mid],
    ]
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    piped = {}
    for args in commands:
        piped["".join(args[:2])] = out = run(*args, "--db", str(db), env=env).stdout
        # No column is narrowed, whatever its width (texts have their own bounds on screen).
        cut = [c for row in rich_rows(out) for c in row if re.search(r"[\d.,%]…$", c)]
        assert not cut, (args, out)
    assert "…" not in piped["campaignlist"]
    headers = rich_rows(piped["campaignlist"])[0]
    assert headers[3:] == [
        "messages",
        "recipients",
        "progress",
        "queued",
        "processing",
        "sent",
        "delivered",
        "failed",
        "delivery",
        "last seen",
    ]

    def figures_whole(out: str, width: int) -> None:
        assert all(len(line) <= width for line in out.splitlines()), out
        # A figure may lose its column, never a digit: no cell ends cut after a digit.
        cells = [c for row in rich_rows(out) for c in row]
        assert not [c for c in cells if re.search(r"[\d.,%]…$", c)], out
        # Every campaign's figures that are shown are its own, whole.
        by_name = {c["name"]: c for c in listed}
        names = {"msgs": "messages", "rcpts": "recipients", "dlvd": "delivered"}
        names |= {"fail": "failed", "sent": "sent"}
        rows = rich_rows(out)
        header = [names.get(h, h) for h in rows[0]]
        for row in rows[1:]:
            entry = by_name[row[0]]  # the name whole: bursts of one day differ at the end
            for title, cell in zip(header, row, strict=True):
                if title in ("messages", "recipients"):
                    assert cell == f"{entry[title]:,}", (title, out)
                elif title in ("delivered", "failed", "sent"):
                    assert cell == f"{entry['counts'][title]:,}", (title, out)

    for width in (160, 100, 80, 60, 44):
        out = run("campaign", "list", "--db", str(db), env={**env, "COLUMNS": str(width)}).stdout
        figures_whole(out, width)
        if width < 100:
            assert "left out to fit" in out or "msgs" in out
    for width in (160, 80, 50):
        figures_whole(on_a_tty(["campaign", "list", "--db", str(db)], width), width)
        for args in commands[1:]:
            out = on_a_tty([*args, "--db", str(db)], width)
            cells = [c for row in rich_rows(out) for c in row]
            assert not [c for c in cells if re.search(r"[\d.,%]…$", c)], (args, out)
