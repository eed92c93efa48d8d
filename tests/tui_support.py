"""A real engine (own thread, real SQLite, real HTTP on 127.0.0.1:0) for TUI tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from smswatch.config import Credentials
from smswatch.forward.config import ForwardConfig
from smswatch.gateways.yebolink.webhook import sign
from smswatch.live.datasource import LocalSource
from smswatch.live.engine import EngineConfig
from smswatch.live.thread import EngineThread
from smswatch.tui.app import SmsWatchApp

SECRET = "tui-test-secret"
BASIC = ("hook", "pw")
T0 = 1_795_400_000_000_000  # 2026-11-23T02:13:20Z: the frozen "now" of snapshot tests


class Env:
    def __init__(
        self,
        tmp: Path,
        clock: Callable[[], int] | None = None,
        db: str | None = None,
        forward: ForwardConfig | None = None,
    ) -> None:
        config = EngineConfig(
            db_path=db or tmp / "tui.db",
            port=0,
            credentials=Credentials(BASIC, SECRET),
            hub_tick=0.05,
            forward=forward,
        )
        if clock is not None:
            config = replace(config, clock=clock)
        self.thread = EngineThread(config).start()
        self.base = self.thread.engine.listener.base_url

    def post(
        self, path: str, body: bytes | str | dict[str, Any], headers: dict[str, str] | None = None
    ) -> int:
        data = (
            body
            if isinstance(body, bytes)
            else (body if isinstance(body, str) else json.dumps(body)).encode()
        )
        req = urllib.request.Request(
            self.base + path,
            data=data,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code

    def lisoloo(self, body: dict[str, Any]) -> int:
        token = base64.b64encode(f"{BASIC[0]}:{BASIC[1]}".encode()).decode()
        return self.post("/webhooks/lisoloo", body, {"Authorization": f"Basic {token}"})

    def yebolink(self, body: dict[str, Any], secret: str = SECRET) -> int:
        data = json.dumps(body).encode()
        return self.post("/webhooks/yebolink", data, {"X-YeboLink-Signature": sign(secret, data)})

    async def alisoloo(self, body: dict[str, Any]) -> int:
        return await asyncio.to_thread(self.lisoloo, body)

    async def ayebolink(self, body: dict[str, Any], secret: str = SECRET) -> int:
        return await asyncio.to_thread(self.yebolink, body, secret)

    def app(self, **kw: Any) -> SmsWatchApp:
        kw.setdefault("theme", "dark")
        kw.setdefault("remember_theme", False)
        return SmsWatchApp(LocalSource(self.thread), **kw)

    def wait_quarantined(self, count: int, within: float = 10.0) -> None:
        """Until `count` rejected requests are stored: a screen opened before that would get
        the rejection in its first live update instead of its snapshot (and pop up a toast)."""
        import sqlite3
        import time

        deadline = time.monotonic() + within
        db = self.thread.engine.config.db_path
        while time.monotonic() < deadline:
            with contextlib.closing(sqlite3.connect(db)) as conn:
                if conn.execute("SELECT count(*) FROM quarantine").fetchone()[0] >= count:
                    return
            time.sleep(0.02)
        raise AssertionError(f"{count} rejection(s) not stored in time")

    def stop(self) -> None:
        self.thread.stop()


def iso(us: int) -> str:
    from smswatch.timefmt import iso as fmt

    return fmt(us) or ""


def lisoloo_event(n: int, kind: str, message_id: str, at: int, **data: Any) -> dict[str, Any]:
    return {
        "event_id": f"00000000-0000-4000-8000-{n:012d}",
        "event_type": kind,
        "timestamp": iso(at),
        "message_id": message_id,
        "data": data,
    }


def campaign(
    env: Env, message_id: str = "65a1b2c3d4e5f60718293a4b", start: int = T0 - 80_000_000
) -> None:
    """A Lisoloo message of 8 recipients in every state, a conflict, a failure with hostile text,
    and a YeboLink message with metadata; all times fixed."""
    s = 1_000_000
    n = 0

    def send(kind: str, at: int, **data: Any) -> None:
        nonlocal n
        n += 1
        assert env.lisoloo(lisoloo_event(n, kind, message_id, at, **data)) == 200

    send(
        "sms.queued",
        start,
        total_recipients=8,
        total_messages=8,
        total_cost=0.16,
        currency="USD",
        scheduled_at=None,
    )
    phones = [f"+2438100000{i:02d}" for i in range(1, 9)]
    carriers = ["vodacom_drc", "airtel_drc", "orange_drc", "africell_drc"]
    for i, phone in enumerate(phones):
        carrier = carriers[i % 4]
        t = start + (i + 1) * s
        if i == 7:
            continue  # still only queued: announced but not named
        send("sms.processing", t, recipient_phone=phone, carrier=carrier)
        if i == 6:
            continue  # stuck in processing
        send("sms.sent", t + 2 * s, recipient_phone=phone, carrier=carrier, sent_at=iso(t + 2 * s))
        delivered = {"recipient_phone": phone, "carrier": carrier, "segments": 1}
        if i in (0, 1, 2):
            send("sms.delivered", t + 5 * s, **delivered, delivered_at=iso(t + 5 * s))
        elif i == 3:
            send(
                "sms.failed",
                t + 6 * s,
                recipient_phone=phone,
                carrier="[bold red]x[/]\u200b\ufe0f",
                failed_at=iso(t + 6 * s),
                error_code="1502",
                # Markup, an escape, zero-width and soft-hyphen characters, and Zalgo marks.
                error_message="Number unreachable \x1b[31m[bold]boom[/] "
                + "zero\u200bwidth soft\u00adhyphen Z"
                + "\u0336" * 12
                + "algo",
                retryable=False,
            )
        elif i == 4:  # delivered, then a later failure: a conflict
            send("sms.delivered", t + 5 * s, **delivered, delivered_at=iso(t + 5 * s))
            send(
                "sms.failed",
                t + 9 * s,
                recipient_phone=phone,
                carrier=carrier,
                failed_at=iso(t + 9 * s),
                error_code="1503",
                error_message="timeout",
                retryable=True,
            )
    ymid = "550e8400-e29b-41d4-a716-446655440000"
    base = {
        "message_id": ymid,
        "channel": "sms",
        "recipient": "+26876000001",
        "metadata": {"campaign": "black-friday"},
    }
    assert (
        env.yebolink(
            {
                "event": "message.queued",
                "timestamp": iso(start),
                "data": {**base, "status": "queued", "credits_used": 1},
            }
        )
        == 200
    )
    assert (
        env.yebolink(
            {
                "event": "message.sent",
                "timestamp": iso(start + 3 * s),
                "data": {**base, "status": "sent", "provider_message_id": "SM1"},
            }
        )
        == 200
    )
    assert (
        env.yebolink(
            {
                "event": "message.failed",
                "timestamp": iso(start + 9 * s),
                "data": {
                    **base,
                    "status": "failed",
                    "error_code": "30006",
                    "error_message": "Landline or unreachable carrier",
                },
            }
        )
        == 200
    )
