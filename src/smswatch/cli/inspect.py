"""`smswatch inspect` and `smswatch stats`: one message, and the totals of a database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from smswatch.cli.errors import fail, handles_store_errors
from smswatch.cli.lookup import one_message
from smswatch.cli.options import CONTEXT, config_option, db_option, json_option
from smswatch.cli.output import print_json


@click.command(context_settings=CONTEXT)
@config_option
@click.argument("message_id")
@db_option
@json_option("Machine-readable output (shape in docs/json.md).")
@handles_store_errors
def inspect(message_id: str, db: Path, as_json: bool) -> None:
    """Show one message: totals, cost, latency and every recipient with its timeline.

    MESSAGE_ID may be a unique prefix of the id.
    """
    import asyncio

    from smswatch.exports.console import console, message_view
    from smswatch.exports.records import message_record
    from smswatch.store import open_reader

    async def work() -> Any:
        async with await open_reader(db, current=True) as reader:
            found = await one_message(reader, message_id, db)
            msg = await reader.message(found)
            assert msg is not None
            recipients = await reader.recipients(found)
            if as_json:
                return message_record(msg, recipients, await reader.message_events(found))
            return message_view(msg, recipients, await reader.latency(found))

    result = asyncio.run(work())
    if as_json:
        print_json(result)
    else:
        console().print(result)


@click.command(context_settings=CONTEXT)
@config_option
@db_option
@json_option("Machine-readable output.")
@click.option("--campaign", default=None, metavar="NAME", help="Only this campaign's messages.")
@handles_store_errors
def stats(db: Path, as_json: bool, campaign: str | None) -> None:
    """Totals: events, messages, recipients per state, delivery rate, latency, failures by code."""
    import asyncio

    from smswatch.exports.console import console, stats_view
    from smswatch.exports.stats import NoCampaign, gather, stats_record

    try:
        data = asyncio.run(gather(db, campaign))
    except NoCampaign as exc:
        fail(str(exc))
    if as_json:
        print_json(stats_record(*data))
    else:
        console().print(stats_view(*data))
