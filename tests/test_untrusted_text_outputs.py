"""Webhook text that is invisible or acts on a terminal, through every command that prints it:
`inspect`, `stats`, `export` (to a terminal and to a pipe) and `serve`'s log lines."""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path

import pytest

from tests.helpers import Server, free_port, on_a_terminal, run
from tests.tui_support import lisoloo_event

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="ptys")]

MID = "0dd0dd0dd0dd0dd0dd0dd0dd"
TWIN = "+24399885\u200b7000"
CARRIER = "tag\U000e0041\U000e007f\u00ad"
ERROR = "unreachable \u2060\ufeff Z" + "\u0336" * 20 + " \x9b2J"
# What must never reach a terminal as it is.
HIDDEN = {"\u200b", "\u2060", "\ufeff", "\u00ad", "\U000e0041", "\U000e007f", "\x9b", "\x1b"}


def hidden_in(text: str) -> set[str]:
    """What should not be there, once the colours Rich itself asks for are taken out."""
    return HIDDEN & set(re.sub("\x1b\\[[0-9;]*m", "", text))


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("untrusted") / "u.db"
    server = Server(path, free_port(), "--no-feed").start()
    try:
        import urllib.request

        bodies = [
            lisoloo_event(1, "sms.sent", MID, 1_795_400_000_000_000, recipient_phone=TWIN),
            lisoloo_event(
                2,
                "sms.failed",
                MID,
                1_795_400_001_000_000,
                recipient_phone=TWIN,
                carrier=CARRIER,
                error_code="1502",
                error_message=ERROR,
            ),
            lisoloo_event(
                3, "sms.sent", MID, 1_795_400_000_000_000, recipient_phone="+243998857000"
            ),
        ]
        for body in bodies:
            req = urllib.request.Request(
                server.url + "/webhooks/lisoloo",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 200
    finally:
        server.stop()
    return path


def test_inspect_and_stats_show_invisible_characters_as_code_points(db: Path) -> None:
    for args in (("inspect", MID, "--db", str(db)), ("stats", "--db", str(db))):
        for out in (run(*args).stdout, on_a_terminal(*args)):
            assert not hidden_in(out), args
    shown = on_a_terminal("inspect", MID, "--db", str(db))
    assert "+24399885\\u200b7000" in shown and "+243998857000" in shown
    assert "\\u2060" in shown and "[+18 marks]" in shown


def test_json_on_a_terminal_is_ascii_and_exact_in_a_pipe(db: Path) -> None:
    args = ("inspect", MID, "--db", str(db), "--json")
    shown = on_a_terminal(*args)
    assert shown.isascii()
    piped = run(*args).stdout
    for text in (shown, piped):
        record = json.loads(text)
        twin = next(r for r in record["recipients"] if r["recipient"] == TWIN)
        assert twin["error_message"] == ERROR and twin["carrier"] == CARRIER


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_to_a_terminal_hides_and_runs_nothing(db: Path, fmt: str) -> None:
    shown = on_a_terminal("export", "--db", str(db), "--format", fmt)
    assert not hidden_in(shown)
    if fmt == "jsonl":  # still the exact values for a reader of the JSON
        errors = {json.loads(line)["error_message"] for line in shown.splitlines()}
        assert ERROR in errors
    piped = run("export", "--db", str(db), "--format", fmt).stdout
    assert TWIN in piped  # a file or a pipe gets the values as stored


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_serve_log_lines_show_untrusted_text_escaped(tmp_path: Path, log_format: str) -> None:
    server = Server(tmp_path / "s.db", free_port(), "--no-feed", "--log-format", log_format)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            # A content type with a zero-width space and a C1 CSI: 415, which serve logs.
            ctype = "text/html\u200b\x9b2J".encode()
            sock.sendall(
                b"POST /webhooks/lisoloo HTTP/1.1\r\nHost: x\r\nContent-Type: "
                + ctype
                + b"\r\nContent-Length: 2\r\n\r\n{}"
            )
            assert sock.recv(100).startswith(b"HTTP/1.1 415")
    finally:
        log = server.stop()
    assert "415" in log
    assert not hidden_in(log)
    if log_format == "json":
        assert log.isascii()
