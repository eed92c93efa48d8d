"""`smswatch attach`: the monitor's screens on a running `smswatch serve`, through its feed."""

from __future__ import annotations

import sys

import click

from smswatch.cli.errors import fail
from smswatch.cli.options import CONTEXT, config_option, loaded_settings, theme_option


@click.command(context_settings=CONTEXT)
@config_option
@click.argument("feed_url", metavar="[URL]", default="ws://127.0.0.1:8788")
@click.option(
    # Named as the setting, so a config file's feed_token reaches attach too; and the URL
    # argument is not the senders' `url` setting.
    "--token",
    "feed_token",
    envvar="SMSWATCH_FEED_TOKEN",
    default=None,
    help="The feed token `serve` printed (or SMSWATCH_FEED_TOKEN).",
)
@theme_option("Theme name.")
@click.pass_context
def attach(ctx: click.Context, feed_url: str, feed_token: str | None, theme: str | None) -> None:
    """Watch a running `smswatch serve` from anywhere: the same screens, read-only.

    URL is the feed's address (ws://HOST:PORT). Reconnects by itself, and says so plainly
    while it is not connected.
    """
    from smswatch.feed.client import RemoteSource
    from smswatch.tui.app import SmsWatchApp
    from smswatch.tui.terminal import quiet_dead_terminal

    if not feed_url.startswith(("ws://", "wss://")):
        fail(f"{feed_url!r} is not a feed address (ws://HOST:PORT)", 2)
    if not feed_token:
        fail(
            "a feed token is needed: --token (serve prints it), SMSWATCH_FEED_TOKEN or "
            "feed_token in the config file",
            2,
        )
    app = SmsWatchApp(RemoteSource(feed_url, feed_token), theme=theme, settings=loaded_settings())
    code = app.run() or 0
    if app.gone_reason is not None:
        quiet_dead_terminal()
    sys.exit(code)
