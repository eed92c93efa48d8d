"""`smswatch campaign list|show|tag` and `smswatch report`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from smswatch.cli.errors import fail, handles_store_errors
from smswatch.cli.options import CONTEXT, config_option, db_option, json_option
from smswatch.cli.output import print_json
from smswatch.words import plural


@click.group(context_settings=CONTEXT)
def campaign() -> None:
    """Campaigns: messages grouped by tag, sender metadata, --campaign, or send burst."""


@campaign.command("list", context_settings=CONTEXT)
@config_option
@db_option
@json_option()
@handles_store_errors
def list_(db: Path, as_json: bool) -> None:
    """Every campaign, the most recently active first."""
    import asyncio

    from smswatch.campaigns.json_shapes import summary_record
    from smswatch.campaigns.views import campaigns_table
    from smswatch.exports.console import console
    from smswatch.store import open_reader

    async def work() -> Any:
        async with await open_reader(db, current=True) as reader:
            return await reader.campaigns()

    found = asyncio.run(work())
    if as_json:
        print_json([summary_record(s) for s in found])
    else:
        console().print(campaigns_table(found))


@campaign.command(context_settings=CONTEXT)
@config_option
@click.argument("name")
@db_option
@json_option()
@handles_store_errors
def show(name: str, db: Path, as_json: bool) -> None:
    """One campaign: progress, rates, ETA, latency, cost, carriers, countries, failures, and
    its message ids."""
    import asyncio

    from smswatch.campaigns.json_shapes import view_record
    from smswatch.campaigns.views import campaign_panel, message_list
    from smswatch.exports.console import console
    from smswatch.store.location import describe

    view, ids = asyncio.run(load_view(db, name, settings_deadlines()))
    if view is None:
        fail(f"no campaign {name!r} in {describe(db)} (see `smswatch campaign list`)")
    if as_json:
        print_json(view_record(view, ids))
    else:
        out = console()
        out.print(campaign_panel(view))
        out.print()
        out.print(message_list(ids))


def settings_deadlines() -> Any:
    from smswatch import config as settings
    from smswatch.cli.options import loaded_settings

    return settings.stuck_deadlines(loaded_settings())


async def load_view(db: Path | str, name: str, deadlines: Any, now: int | None = None) -> Any:
    """(CampaignView, every message id) of a campaign, or (None, [])."""
    from smswatch.campaigns.tally import campaign_view
    from smswatch.store import open_reader
    from smswatch.timefmt import now_us

    async with await open_reader(db, current=True) as reader:
        summary = await reader.campaign(name)
        if summary is None:
            return None, []
        view = await campaign_view(reader, summary, now or now_us(), deadlines)
        messages = await reader.campaign_messages(summary.selector, limit=10_000_000)
        return view, sorted(m.message_id for m in messages)


@campaign.command(context_settings=CONTEXT)
@config_option
@click.argument("name")
@click.argument("message_ids", nargs=-1)
@db_option
@click.option(
    "--from",
    "source",
    default=None,
    metavar="CAMPAIGN",
    help="Move every message of this campaign (or burst) into NAME: e.g. name a burst.",
)
@handles_store_errors
def tag(name: str, message_ids: tuple[str, ...], db: Path, source: str | None) -> None:
    """Put messages in campaign NAME, replacing the campaign they had.

    MESSAGE_IDS may be unique prefixes. Works while smswatch is running on the database.
    """
    import asyncio

    from smswatch.store import open_reader, tag_messages
    from smswatch.timefmt import now_us

    if not message_ids and not source:
        fail("name the messages to tag, or --from CAMPAIGN", 2)

    async def work() -> tuple[int, list[str]]:
        ids: list[str] = []
        missing: list[str] = []
        async with await open_reader(db, current=True) as reader:
            for text in message_ids:
                found = await reader.resolve_message_id(text)
                (ids.append(found) if found else missing.append(text))
            if source:
                summary = await reader.campaign(source)
                if summary is None:
                    return -1, [source]
                ids += [
                    m.message_id
                    for m in await reader.campaign_messages(summary.selector, limit=10_000_000)
                ]
        if missing:
            return 0, missing
        return await tag_messages(db, name, ids, now_us()), []

    try:
        count, missing = asyncio.run(work())
    except ValueError as exc:
        fail(str(exc), 2)
    if count < 0:
        fail(f"no campaign {missing[0]!r} (see `smswatch campaign list`)")
    if missing:
        fail("no message (or more than one) matches: " + ", ".join(missing))
    from smswatch.sanitize import safe

    shown = safe(name, 120)  # the operator's text, but a terminal's escapes never go through
    click.echo(f"tagged {plural(count, 'message')} as {shown}", err=True)
    sys.exit(0)
