"""`simulate` and `replay` as a user meets them: a URL where nothing listens is said within
seconds (not after a whole retry schedule), and Ctrl-C says what was acknowledged and, for a
replay, the line to go on from."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from tests.helpers import SMSWATCH, free_port, run

ROOT = Path(__file__).resolve().parent.parent


def test_nothing_listening_is_said_without_the_whole_retry_schedule(tmp_path: Path) -> None:
    """50 attempts with backoff would take minutes: the run stops after the first refusals."""
    dead = f"http://127.0.0.1:{free_port()}"
    recorded = ROOT / "sample_data" / "lisoloo_campaign.jsonl"
    for args in (
        ["simulate", "--messages", "1", "--recipients", "2"],
        ["replay", str(recorded), "--speed", "0"],
    ):
        result = run(*args, "--url", dead, "--max-attempts", "50", "-q", check=False, timeout=90)
        assert result.returncode == 1, result.stderr
        assert f"nothing answers at {dead} (Connection refused)" in result.stderr, result.stderr
        assert "Is smswatch running there?" in result.stderr
        assert "Traceback" not in result.stderr


def interrupt_when_stored(sender: list[str], count: int, tmp_path: Path) -> str:
    """Run `serve` (JSON log) and `sender` against it; once the server logged `count` stored
    events, Ctrl-C the sender. Its stderr."""

    def default_sigint() -> None:  # a child of a background shell would ignore SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    port = free_port()
    serve = ["serve", "--db", str(tmp_path / "i.db"), "--port", str(port), "--no-feed"]
    server = subprocess.Popen(
        [*SMSWATCH, *serve, "--log-format", "json", "--summary-interval", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    proc = None
    try:
        assert server.stdout is not None
        assert json.loads(server.stdout.readline())["event"] == "listening"
        proc = subprocess.Popen(
            [*SMSWATCH, *sender, "--url", f"http://127.0.0.1:{port}", "-q"],
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=default_sigint,
        )
        for line in server.stdout:  # summary lines, until the events are in
            if json.loads(line).get("events", 0) >= count:
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        return err
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        server.terminate()
        server.communicate(timeout=30)


def test_ctrl_c_in_replay_says_what_was_acknowledged_and_where_to_go_on(tmp_path: Path) -> None:
    # Three events now, five an hour later (the recorded timing is kept).
    lines = (ROOT / "sample_data" / "lisoloo_campaign.jsonl").read_text().splitlines()[:8]
    records = [json.loads(line) for line in lines]
    for i, record in enumerate(records):
        record["received_at"] = "2026-11-18T11:06:40Z" if i < 3 else "2026-11-18T12:06:40Z"
    recorded = tmp_path / "slow.jsonl"
    recorded.write_text("".join(json.dumps(r) + "\n" for r in records))

    err = interrupt_when_stored(["replay", str(recorded)], 3, tmp_path)
    assert "replay: interrupted: 3 acknowledged of 8 deliveries" in err, err
    assert "every line before line 4 was acknowledged" in err
    assert f"tail -n +4 {recorded} | smswatch replay -" in err
    assert "Aborted!" not in err and "Traceback" not in err


def test_ctrl_c_in_simulate_says_what_was_acknowledged(tmp_path: Path) -> None:
    # Realistic delays (seconds to minutes): far from done when the first events are in.
    err = interrupt_when_stored(["simulate", "--messages", "3", "--recipients", "5"], 1, tmp_path)
    assert "simulate: interrupted: " in err, err
    acknowledged = int(err.split("simulate: interrupted: ", 1)[1].split()[0])
    assert acknowledged >= 1
    assert "Aborted!" not in err and "Traceback" not in err
