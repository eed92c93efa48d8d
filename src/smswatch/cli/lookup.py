"""The message a command's MESSAGE_ID names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smswatch.cli.errors import fail


async def one_message(reader: Any, text: str, db: str | Path) -> str:
    """The message id `text` names, whole or as a unique prefix; else exits saying that no
    message matches, or that several do (read commands: inspect, export, reconcile)."""
    from smswatch.sanitize import safe
    from smswatch.store import describe

    found = await reader.message_ids_starting(text, 3)
    if len(found) == 1:
        return str(found[0])
    if not found:
        fail(f"no message {text!r} in {describe(db)} (try `smswatch stats` or `smswatch export`)")
    shown = ", ".join(safe(m, 40) for m in found[:2]) + (", …" if len(found) > 2 else "")
    fail(f"{text!r} starts more than one message id ({shown}): give more of it")
