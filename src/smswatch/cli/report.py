"""`smswatch report [CAMPAIGN]`: one file an ops lead can send to the business."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from smswatch import files
from smswatch.cli.errors import fail, handles_store_errors
from smswatch.cli.options import CONTEXT, config_option, db_option


@click.command(context_settings=CONTEXT)
@config_option
@click.argument("campaign", required=False)
@db_option
@click.option(
    "--out",
    default=None,
    metavar="FILE",
    help="Where to write it; '-' for stdout.  [default: report.html, or report.md]",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "md"]),
    default="html",
    show_default=True,
    help="html: one self-contained page with charts, opens offline; md: a Markdown summary.",
)
@handles_store_errors
def report(campaign: str | None, db: Path, out: str | None, fmt: str) -> None:
    """A report of CAMPAIGN (a name from `smswatch campaign list`), or of the whole database.

    Headline figures (those of `smswatch stats --json`), delivery over time, a latency
    histogram, carriers and countries, failure codes with what to do, cost, and anomalies:
    silences, rejected webhooks, conflicts, stuck recipients.
    """
    import asyncio

    from smswatch.campaigns.report import default_out, gather_report, render
    from smswatch.cli.campaign import settings_deadlines
    from smswatch.exports.stats import NoCampaign
    from smswatch.timefmt import now_us

    try:
        data = asyncio.run(gather_report(db, campaign, now_us(), settings_deadlines()))
    except NoCampaign as exc:
        fail(str(exc))
    document = render(data, fmt)
    target = out or default_out(fmt)
    if target == "-":
        sys.stdout.write(document)
        sys.stdout.flush()
        return
    size = write_whole(Path(target), document)
    click.echo(f"wrote {target} ({max(round(size / 1024), 1)} KB)", err=True)


def write_whole(path: Path, document: str) -> int:
    """The report written whole (smswatch.files.write_whole); an error is one line."""
    try:
        return files.write_whole(path, document.encode("utf-8"))
    except OSError as exc:  # a directory too: write_whole says "it is a directory"
        fail(f"cannot write {path}: {exc.strerror or exc}")
