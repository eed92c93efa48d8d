"""`smswatch forward status|retry`: what the forwarding outbox holds, and sending forwards again.

Both use the outbox (the store's Outbox: the file beside a SQLite log, or the tables of a PostgreSQL
store) directly, never a running smswatch: `retry` marks forwards pending, and whichever
forwarder runs for their target (the one running now, within about a second, or the next one
started) sends them. Every string an app answered with is untrusted: the human output draws it
through `sanitize.safe` as `rich.text.Text`, and target URLs are shown without their password.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from smswatch.cli.errors import fail
from smswatch.cli.options import CONTEXT, config_option, db_option, json_option
from smswatch.cli.output import print_json
from smswatch.timefmt import iso, now_us, span
from smswatch.words import plural

if TYPE_CHECKING:
    from rich.console import Group

    from smswatch.core.forwarding import Target, TargetStatus

# rich and the store are imported inside the functions that use them: this module is loaded for
# every command's --help (cli/main.py adds it to the root group).

T = TypeVar("T")

_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> int:
    """Seconds in `30s`, `15m`, `2h`, `1d` or a sum of them largest first (`1h30m`)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is not a duration (like 30s, 15m, 2h, 1d, 1h30m)")
    seconds = sum(int(n) * s for n, s in zip(match.groups(), _UNITS.values(), strict=True) if n)
    if seconds <= 0:
        raise ValueError(f"{text!r}: the duration must be more than 0")
    return seconds


class Duration(click.ParamType):
    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class Refused(Exception):
    """A one-line error for the user, and the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def store_errors(db: str | Path) -> tuple[type[BaseException], ...]:
    """What a broken, unreachable or foreign database raises."""
    from smswatch.store import backend_for

    return backend_for(db).errors()


def no_outbox(db: str | Path, *, create: bool = False) -> bool:
    """Whether forwarding was never turned on for a SQLite database: it has no outbox file,
    which opening one would make (only `retry --forward-to` does, as serve would)."""
    from smswatch.store import backend_for
    from smswatch.store.errors import NotOurs, location_problem
    from smswatch.store.sqlite.outbox import outbox_path
    from smswatch.store.sqlite.schema import refuse_foreign

    if backend_for(db).shared:
        return False
    if not Path(db).is_file():
        problem = location_problem(Path(db), writing=False)
        fail(f"no smswatch database at {db}" + (f": {problem}" if problem else ""))
    try:
        refuse_foreign(db)
    except NotOurs as exc:
        fail(str(exc))
    return not create and not outbox_path(db).is_file()


@contextlib.asynccontextmanager
async def opened(db: str | Path) -> AsyncIterator[Any]:
    """The outbox of `--db`, open: either back end's, with one interface (store/api.py Outbox).
    Store errors become `Refused`."""
    from smswatch.store import backend_for
    from smswatch.store.location import describe

    outbox = backend_for(db).open_outbox("smswatch-forward-cli")
    try:
        await outbox.open()
    except store_errors(db) as exc:
        with contextlib.suppress(*store_errors(db)):
            await outbox.close()
        raise Refused(f"cannot open the forwarding outbox of {describe(db)}: {exc}") from None
    try:
        yield outbox
    except store_errors(db) as exc:
        raise Refused(f"the forwarding outbox of {describe(db)}: {exc}") from None
    finally:
        await outbox.close()


def run(work: Coroutine[Any, Any, T]) -> T:
    import asyncio

    try:
        return asyncio.run(work)
    except Refused as exc:
        fail(str(exc), exc.code)
        raise  # not reached: fail exits


def never_on(db: str | Path) -> str:
    from smswatch.store.location import describe

    return f"forwarding (--forward-to) was never turned on for {describe(db)}"


# --- the command group ------------------------------------------------------------------------


@click.group(context_settings=CONTEXT)
def forward() -> None:
    """Forwarding to your app (--forward-to): what is waiting or failed, and sending again."""


@forward.command(context_settings=CONTEXT)
@config_option
@db_option
@json_option("Machine-readable output (shape in README).")
def status(db: str | Path, as_json: bool) -> None:
    """Each target: backlog, delivered, failed by HTTP status, and the app's last answer.

    Exit status 0, with a message, when forwarding was never turned on for the database
    (with --json: an empty list, and the message on stderr).
    """
    from smswatch.store.location import describe

    async def work() -> list[TargetStatus]:
        async with opened(db) as outbox:
            return list(await outbox.status(now_us()))

    never = no_outbox(db)
    targets = [] if never else run(work())
    if as_json:
        print_json([status_record(t) for t in targets])
    if not targets:
        said = never_on(db) if never else f"no forward targets in {describe(db)} yet"
        click.echo(f"{said}: nothing forwarded", err=as_json)
    elif not as_json:
        from smswatch.exports.console import console

        console().print(status_view(targets))


@forward.command(context_settings=CONTEXT)
@config_option
@db_option
@click.option(
    "--failed",
    is_flag=True,
    help="Only forwards that failed (the default when neither --since nor --event is given).",
)
@click.option(
    "--since",
    type=Duration(),
    metavar="DURATION",
    default=None,
    help="Every event received in the last DURATION (30s, 15m, 2h, 1d), delivered ones too.",
)
@click.option(
    "--event",
    "event_ids",
    multiple=True,
    metavar="EVENT_ID",
    help="This event (its event_id, as `export` shows it), delivered or not (repeatable).",
)
@click.option(
    "--forward-to",
    "forward_to",
    multiple=True,
    envvar="SMSWATCH_FORWARD_TO",
    metavar="[GATEWAY=]URL",
    help="With --since or --event: also give these targets the events they never had (stored "
    "before they were configured). Repeatable, as serve takes it.",
)
def retry(
    db: str | Path,
    failed: bool,
    since: int | None,
    event_ids: tuple[str, ...],
    forward_to: tuple[str, ...],
) -> None:
    """Mark forwards to be sent again, from the stored events.

    A running smswatch that forwards to their target sends them within about a second; if none
    is running, they go when one starts with --forward-to.
    """
    from smswatch.forward.config import ForwardConfigError, parse_targets

    try:
        targets = parse_targets(list(forward_to)) if forward_to else ()
    except ForwardConfigError as exc:
        raise click.UsageError(str(exc)) from None
    failed_only = failed or (since is None and not event_ids)
    if failed_only:
        targets = ()  # they matter only to add events a target never had

    if no_outbox(db, create=bool(targets)):
        click.echo(f"nothing to send again: {never_on(db)}")
        return

    async def work() -> int:
        async with opened(db) as outbox:
            events = await resolve(outbox, db, event_ids) if event_ids else None
            now = now_us()
            # A target named here is shown by `forward status` from now on, and (SQLite) is
            # forwarded what is stored from now on, not the whole log before.
            await outbox.register(targets)
            return int(
                await outbox.retry(
                    now,
                    failed_only=failed_only,
                    since=None if since is None else now - since * 1_000_000,
                    events=events,
                    targets=targets,
                )
            )

    queued = run(work())
    click.echo(retry_summary(queued, failed_only, since, event_ids, targets))


async def resolve(outbox: Any, db: str | Path, event_ids: Sequence[str]) -> list[int]:
    """The log ids of `--event` ids; every one must be stored, or nothing is queued."""
    from smswatch.store.location import describe

    found: dict[str, list[int]] = await outbox.log_ids(event_ids)
    missing = [e for e in dict.fromkeys(event_ids) if e not in found]
    if missing:
        shown = ", ".join(repr(e) for e in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise Refused(
            f"no event {shown} in {describe(db)} (event ids as `smswatch export` shows them); "
            "none queued"
        )
    return [i for ids in found.values() for i in ids]


def retry_summary(
    queued: int,
    failed_only: bool,
    since: int | None,
    event_ids: Sequence[str],
    targets: Sequence[Target],
) -> str:
    what = "failed forward" if failed_only else "forward"
    scope = []
    if since is not None:
        scope.append(f"of events received in the last {span(since * 1_000_000)}")
    if event_ids:
        scope.append(f"of {plural(len(set(event_ids)), 'event')} named")
    where = f" {' and '.join(scope)}" if scope else ""
    if not queued:
        return f"nothing to send again: no {what}s{where}"
    lines = [
        f"queued {plural(queued, what)}{where} to be sent again",
        "A running smswatch that forwards to their target sends them within about a second; "
        "if none is running, they go when one starts with --forward-to.",
    ]
    if not failed_only and not targets:
        lines.append(
            "Each target gets again what it had; to give a target the events stored before it "
            "was configured, name it with --forward-to."
        )
    return "\n".join(lines)


# --- output -----------------------------------------------------------------------------------


def status_record(t: TargetStatus) -> dict[str, Any]:
    """One target of `forward status --json` (the shape is in README.md)."""
    from smswatch.core.forwarding import RECENT_S
    from smswatch.sanitize import without_password

    last = t.last
    return {
        "target": without_password(t.target),
        "backlog": t.backlog,
        "delivered": t.delivered,
        "failed": t.failed,
        "delivered_recent": t.delivered_recent,
        "recent_seconds": RECENT_S,
        "last_attempt": None
        if last is None
        else {"at": iso(last.at), "status": last.status, "ms": last.ms, "error": last.error},
        "failing_since": iso(t.failing_since),
        "failures_by_status": [{"status": s, "count": n} for s, n in t.failures_by_status],
    }


def _status_code(status: int | None) -> str:
    return "no answer" if status is None else str(status)


def status_view(targets: Sequence[TargetStatus]) -> Group:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from smswatch.core.forwarding import RECENT_S
    from smswatch.exports.console import t as text
    from smswatch.sanitize import without_password

    parts: list[Any] = []
    for target in targets:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("target", text(without_password(target.target), 120))
        grid.add_row("backlog", Text(str(target.backlog)))
        grid.add_row(
            "delivered",
            Text(f"{target.delivered}   ({target.delivered_recent} in the last {RECENT_S} s)"),
        )
        failed = Text(str(target.failed), style="red" if target.failed else "")
        if target.failures_by_status:
            by = ", ".join(f"{_status_code(s)} ×{n}" for s, n in target.failures_by_status)
            failed.append(f"   ({by}; `smswatch forward retry` sends them again)")
        grid.add_row("failed", failed)
        last = target.last
        if last is None:
            grid.add_row("last attempt", Text("none yet"))
        else:
            ok = last.status is not None and 200 <= last.status < 300
            line = Text(f"{iso(last.at)}  ")
            line.append(_status_code(last.status), style="green" if ok else "red")
            if last.ms is not None:
                line.append(f" in {last.ms} ms")
            if last.error:
                line.append("  ")
                line.append(text(last.error, 160))
            grid.add_row("last attempt", line)
        if target.failing_since is not None:
            grid.add_row("failing since", Text(iso(target.failing_since) or "-", style="red"))
        if parts:
            parts.append(Text(""))
        parts.append(grid)
    return Group(*parts)
