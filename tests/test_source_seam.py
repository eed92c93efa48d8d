"""The UI seam keeps the monitor light: the TUI app and the feed client (`smswatch attach`)
load no engine, HTTP server, gateway API client or PostgreSQL driver, and the feed's wire format
takes its types from the seam, not from the engine."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "httptools",
    "aiohttp",
    "asyncpg",
    "smswatch.ingest",
    "smswatch.store.postgres",
    "smswatch.live.engine",
    "smswatch.live.thread",
    "smswatch.live.datasource",
    "smswatch.feed.server",
)


def loaded(modules: str) -> list[str]:
    code = (
        f"import sys, {modules}; "
        f"print(' '.join(sorted(m for m in sys.modules if m.startswith({HEAVY!r}))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_the_attached_monitor_loads_no_engine_server_or_driver() -> None:
    assert loaded("smswatch.tui.app, smswatch.feed.client") == []


def test_the_seam_and_the_wire_format_load_no_engine() -> None:
    assert loaded("smswatch.source.api, smswatch.tui.alert_rules, smswatch.feed.protocol") == []
