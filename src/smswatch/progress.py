"""Progress display for `simulate` and `replay` (Rich's progress bar on stderr)."""

from __future__ import annotations

from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from smswatch.devtools.simulate import Delivery, Result, Sender, SimConfig


async def send_with_progress(
    deliveries: list[Delivery],
    config: SimConfig,
    acked: TextIO | None,
    quiet: bool,
    title: str,
    result: Result | None = None,
) -> Result:
    """`result`, if given, is filled in as the run goes (what to report after a Ctrl-C)."""
    stderr = Console(stderr=True, highlight=False, markup=False)
    if quiet or not stderr.is_terminal:
        return await Sender(config, acked, result=result).run(deliveries)
    columns: list[Any] = [
        TextColumn(title),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[detail]}"),
    ]
    with Progress(*columns, console=stderr, transient=False) as progress:
        task = progress.add_task(title, total=len(deliveries), detail="")

        def update(result: Result) -> None:
            done = result.acked + result.rejected + result.dropped
            detail = f"dup {result.acked_duplicate}  retried {result.retried}"
            if result.rejected or result.dropped:
                detail += f"  rejected {result.rejected}  gave up {result.dropped}"
            progress.update(task, completed=done, detail=detail)

        done = await Sender(config, acked, update, result).run(deliveries)
        update(done)
    return done
