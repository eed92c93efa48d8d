"""`smswatch serve`: the listener and store without a UI."""

from __future__ import annotations

import sys
from typing import Any

import click

from smswatch.cli.engine_config import engine_config
from smswatch.cli.errors import fail
from smswatch.cli.options import CONTEXT, FiniteRange, config_option, feed_options, listener_options


@click.command(context_settings=CONTEXT)
@config_option
@listener_options
@feed_options(default_port=8788)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line, for log shippers.",
)
@click.option(
    "--summary-interval",
    type=FiniteRange(0.5),
    default=5.0,
    show_default=True,
    help="Seconds between summary lines while events arrive.",
)
@click.option(
    "--metrics-host",
    envvar="SMSWATCH_METRICS_HOST",
    default="127.0.0.1",
    show_default=True,
    help="Address of the Prometheus metrics; they have no auth, so keep it private.",
)
@click.option(
    "--metrics-port",
    envvar="SMSWATCH_METRICS_PORT",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics at /metrics on this port (off unless given; 0 picks a free "
    "one). Never the webhook port.",
)
def serve(
    log_format: str,
    summary_interval: float,
    metrics_host: str,
    metrics_port: int | None,
    **opts: Any,
) -> None:
    """Run the webhook listener and store without a UI.

    Prints the URL to paste into each gateway, then a summary line every few seconds.
    Every 200 it answers means the event is committed to the database. Viewers watch it live
    with `smswatch attach` through the feed (port 8788, loopback, token required).
    """
    import asyncio

    from smswatch import loops
    from smswatch.live import serve as headless
    from smswatch.live.engine import BindRefused, Engine

    if metrics_port:  # 0 is a free port of its own
        if metrics_port == opts["port"]:
            raise click.UsageError(
                "--metrics-port must differ from --port: metrics never share the webhook port"
            )
        if not opts.get("no_feed") and metrics_port == opts.get("feed_port"):
            raise click.UsageError("--metrics-port must differ from --feed-port")
    metrics_at = (metrics_host, metrics_port) if metrics_port is not None else None
    try:
        engine = Engine(engine_config(opts))
    except BindRefused as exc:
        fail(str(exc), 2)
    with asyncio.Runner(loop_factory=loops.new_event_loop) as runner:  # uvloop where installed
        code = runner.run(headless.run(engine, log_format, summary_interval, metrics_at=metrics_at))
    sys.exit(code)
