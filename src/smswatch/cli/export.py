"""`smswatch export` and `smswatch import`: a database's events (or its suppression list) out to a
file, and an export file's events into a database."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from smswatch.cli.errors import fail, handles_store_errors
from smswatch.cli.lookup import one_message
from smswatch.cli.options import CONTEXT, config_option, db_option
from smswatch.words import plural


@click.command(context_settings=CONTEXT)
@config_option
@db_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="Events' format (the suppression list is always CSV).",
)
@click.option(
    "--message",
    "message_id",
    default=None,
    help="Only this message's events (its id, or a unique prefix of it).",
)
@click.option(
    "--suppression",
    is_flag=True,
    help="Instead of events: the numbers never to text again (failures about the number: "
    "landline, unknown, invalid, unsubscribed, blocked), one CSV row per number.",
)
@click.option(
    "--campaign",
    default=None,
    metavar="NAME",
    help="With --suppression: only this campaign's numbers (a name or a burst from "
    "`smswatch campaign list`).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    default="-",
    help="Output file (default: stdout).",
)
@handles_store_errors
def export(
    db: Path, fmt: str, message_id: str | None, suppression: bool, campaign: str | None, out: Path
) -> None:
    """Write every stored event, one per line, in storage order (each unique event once).

    With --suppression, write the do-not-send list instead: one CSV row per number whose
    failure the error catalogue says is about the number itself, with its latest such failure.
    """
    try:
        if suppression:
            export_suppression(db, fmt, message_id, campaign, out)
        else:
            export_events(db, fmt, message_id, campaign, out)
    except OSError as exc:  # a missing directory, a full disk: one line, not a traceback
        fail(f"cannot write {out}: {exc.strerror or exc}")


def export_events(
    db: Path, fmt: str, message_id: str | None, campaign: str | None, out: Path
) -> None:
    import asyncio

    if campaign is not None:
        raise click.UsageError("--campaign selects a suppression list: add --suppression")
    from smswatch.exports.records import write_csv, write_jsonl
    from smswatch.store import open_reader

    async def resolve(text: str) -> str:
        async with await open_reader(db, current=True) as reader:
            return await one_message(reader, text, db)

    async def work(stream: Any, terminal: bool = False) -> int:
        async with await open_reader(db) as reader:
            events = reader.iter_events(wanted)
            return await (
                write_jsonl(events, stream, terminal, reader)
                if fmt == "jsonl"
                else write_csv(events, stream, terminal)
            )

    # A unique prefix, as `inspect` takes; resolved before the output file is made.
    wanted = None if message_id is None else asyncio.run(resolve(message_id))
    if str(out) == "-":
        count = asyncio.run(work(sys.stdout, sys.stdout.isatty()))
    else:
        with open(out, "w", encoding="utf-8", newline="") as stream:
            count = asyncio.run(work(stream))
        click.echo(f"exported {plural(count, 'event')} to {out}", err=True)


def export_suppression(
    db: Path, fmt: str, message_id: str | None, campaign: str | None, out: Path
) -> None:
    """`export --suppression`: the list is numbers, not events, so the event options that
    cannot apply are refused rather than quietly ignored."""
    import asyncio

    from click.core import ParameterSource

    from smswatch.exports.suppression import suppression_list, write_csv, write_suppression
    from smswatch.store import describe, open_reader

    if message_id is not None:
        raise click.UsageError("--message selects events; --suppression lists numbers")
    # Only a --format typed (or set in the environment) for this run is refused: a config
    # file's export format is for the event export.
    source = click.get_current_context().get_parameter_source("fmt")
    if fmt != "csv" and source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
        raise click.UsageError("the suppression list is CSV: drop --format or use --format csv")

    async def work() -> int | None:
        async with await open_reader(db, current=True) as reader:
            sel = None
            if campaign is not None:
                found = await reader.campaign(campaign)
                if found is None:
                    return None
                sel = found.selector
            if str(out) != "-":
                return await write_suppression(reader, sel, out)
            entries = await suppression_list(reader, sel)
        return write_csv(entries, sys.stdout, for_terminal=sys.stdout.isatty())

    count = asyncio.run(work())
    if count is None:
        # describe(): a postgresql:// URL's password must not reach the screen.
        fail(f"no campaign {campaign!r} in {describe(db)} (see `smswatch campaign list`)")
    if str(out) != "-":
        click.echo(f"exported {plural(count, 'number')} to {out}", err=True)


@click.command("import", context_settings=CONTEXT)
@config_option
@click.argument("file", type=click.File("r", encoding="utf-8"))
@db_option
@handles_store_errors
def import_(file: Any, db: str | Path) -> None:
    """Store the events of an `export` file (JSON lines) in --db, as they were stored.

    Each event keeps its ids, event and receive times, and polled mark, and each message its
    campaign: the new database shows the same figures as the one exported (a copy, a restore,
    or a move from SQLite to PostgreSQL). Events already in --db are not stored twice. Works
    while smswatch runs on a PostgreSQL database; a SQLite file must not be in use.
    """
    import asyncio

    from smswatch.exports.restore import BadExport, import_events
    from smswatch.store import describe
    from smswatch.store.errors import CannotOpen, DatabaseInUse

    try:
        done = asyncio.run(import_events(db, file))
    except DatabaseInUse:
        fail(f"another smswatch is writing {describe(db)}: stop it, or import into another file")
    except CannotOpen as exc:
        fail(str(exc))
    except BadExport as exc:
        before = ""
        if exc.done is not None and exc.done.events:
            before = f" ({plural(exc.done.events, 'event')} before it imported: run it again "
            before += "once the file is fixed, nothing is stored twice)"
        fail(f"{file.name}: {exc}{before}", 2)
    polled = f", {done.polled:,} of them polled" if done.polled else ""
    old = done.events - done.stored
    already = f"; {plural(old, 'was', 'were')} there already" if old else ""
    click.echo(
        f"imported {plural(done.stored, 'event')} into {describe(db)} "
        f"(of {done.events:,} read{polled}){already}",
        err=True,
    )
