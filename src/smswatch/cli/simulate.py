"""`smswatch simulate` and `smswatch replay`: webhook traffic sent to a running smswatch."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from smswatch.cli.engine_config import checked_credentials, install_gateway_files
from smswatch.cli.errors import fail
from smswatch.cli.options import (
    CONTEXT,
    FiniteRange,
    config_option,
    gateway_file_option,
    sender_options,
)
from smswatch.config import tokens_from
from smswatch.words import plural


def interrupted(title: str, result: Any, source: str | None) -> None:
    """After Ctrl-C: what was acknowledged (stored for good), and where to go on from."""
    unsure = f", {result.in_flight} in flight (stored or not)" if result.in_flight else ""
    click.echo(
        f"{title}: interrupted: {result.acked} acknowledged of "
        f"{plural(result.planned, 'delivery', 'deliveries')}"
        f"{unsure}, {result.rejected} rejected, {result.dropped} given up",
        err=True,
    )
    if source is None or not result.open_lines:
        return
    first = min(result.open_lines)
    again = (
        f"`tail -n +{first} {shlex.quote(source)} | smswatch replay - …` with the same options"
        if source != "<stdin>"
        else f"replay the input from line {first} on"
    )
    click.echo(
        f"{title}: every line before line {first} was acknowledged; to go on: {again} "
        "(replaying all of it again is safe too: what is stored is answered as a duplicate)",
        err=True,
    )


def run_sender(
    deliveries: list[Any],
    config: Any,
    acked: Any,
    quiet: bool,
    title: str,
    source: str | None = None,
) -> Any:
    """Send and report. `source`: the replayed file's name, for where to resume after Ctrl-C."""
    import asyncio

    from smswatch.devtools.simulate import Result, Unreachable
    from smswatch.progress import send_with_progress

    result = Result()
    try:
        asyncio.run(send_with_progress(deliveries, config, acked, quiet, title, result))
    except Unreachable as exc:
        fail(
            f"{title}: {exc}. Is smswatch running there? Start it (`smswatch` or "
            "`smswatch serve`), or point --url at it."
        )
    except KeyboardInterrupt:
        interrupted(title, result, source)
        sys.exit(130)
    line = (
        f"{title}: {result.acked} acknowledged ({result.acked_duplicate} as duplicates) of "
        f"{plural(result.planned, 'delivery', 'deliveries')}, {result.retried} retried, "
        f"{result.rejected} rejected, "
        f"{result.dropped} given up"
    )
    click.echo(line, err=True)
    if result.first_errors:
        settled = "all retried until answered" if result.ok else "some were not accepted"
        click.echo(f"first problems seen ({settled}):", err=True)
    for detail in result.first_errors:
        click.echo(f"  {detail}", err=True)
    return result


class GatewayChoice(click.Choice):
    """The registry's gateways, and `mixed`: read from the registry when first asked for, since
    the registry imports every gateway's adapter, which `smswatch --help` need not wait for."""

    def __init__(self) -> None:
        super().__init__([])

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        from smswatch.gateways.registry import GATEWAYS

        return (*GATEWAYS, "mixed")

    @choices.setter
    def choices(self, _value: Any) -> None:
        pass  # click.Choice sets its list; this one is the registry's


@click.command(context_settings=CONTEXT)
@config_option
@sender_options
@click.option(
    "--provider",
    type=GatewayChoice(),
    default="lisoloo",
    show_default=True,
    help="Gateway to imitate (mixed: alternate per message between the gateways that post "
    "JSON, Lisoloo and YeboLink).",
)
@click.option(
    "--messages",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="Messages (Lisoloo) or bulk sends (the other gateways) to run.",
)
@click.option(
    "--recipients",
    type=click.IntRange(1, 100_000),
    default=20,
    show_default=True,
    help="Recipients per message or bulk send.",
)
@click.option(
    "--fail-rate",
    type=FiniteRange(0, 1),
    default=0.08,
    show_default=True,
    help="Share of recipients that fail.",
)
@click.option(
    "--duplicate-rate",
    type=FiniteRange(0, 1),
    default=0.05,
    show_default=True,
    help="Share of events sent twice (same event id), as gateway retries do.",
)
@click.option(
    "--seed", type=int, default=None, help="Random seed: the same seed plans the same campaign."
)
@click.option(
    "--speed",
    type=FiniteRange(0.01),
    default=1.0,
    show_default=True,
    help="Divide realistic delays (seconds to minutes) by this.",
)
@click.option(
    "--spread",
    type=FiniteRange(0),
    default=0.0,
    show_default=True,
    help="Spread message starts over this many seconds (before --speed).",
)
@click.option(
    "--truth",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the expected final state of every recipient as JSON lines.",
)
@click.option(
    "--drop-rate",
    type=FiniteRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of recipients whose final webhook the gateway gave up on: never sent, known "
    "only to its status API (--truth marks them dropped).",
)
@click.option(
    "--api-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Also serve the gateways' status APIs (a sandbox answering from this run's truth) on "
    "127.0.0.1:PORT, 0 for any free port; the URL is printed on stdout.",
)
@click.option(
    "--api-linger",
    type=FiniteRange(0),
    default=60.0,
    show_default=True,
    help="Keep the sandbox API up this many seconds after the last recipient settled.",
)
@click.option(
    "--lisoloo-app-key",
    envvar="SMSWATCH_LISOLOO_APP_KEY",
    metavar="KEY",
    default=None,
    help="The app-key the sandbox's Lisoloo status API accepts (default: any non-empty key; "
    "SMSWATCH_LISOLOO_APP_KEY keeps it out of ps).",
)
@click.option(
    "--yebolink-api-key",
    envvar="SMSWATCH_YEBOLINK_API_KEY",
    metavar="KEY",
    default=None,
    help="The X-API-Key the sandbox's YeboLink messages API accepts (default: any non-empty "
    "key; SMSWATCH_YEBOLINK_API_KEY keeps it out of ps).",
)
@click.option(
    "--vonage-api-secret",
    envvar="SMSWATCH_VONAGE_API_SECRET",
    metavar="SECRET",
    default=None,
    help="The API secret the sandbox's Vonage Reports API accepts, with the simulator's API key "
    "as the user (default: any non-empty secret; SMSWATCH_VONAGE_API_SECRET keeps it out of ps).",
)
@click.option(
    "--infobip-api-key",
    envvar="SMSWATCH_INFOBIP_API_KEY",
    metavar="KEY",
    default=None,
    help="The API key the sandbox's Infobip reports and logs accept (`Authorization: App KEY`; "
    "default: any non-empty key; SMSWATCH_INFOBIP_API_KEY keeps it out of ps).",
)
@click.option(
    "--telnyx-api-key",
    envvar="SMSWATCH_TELNYX_API_KEY",
    metavar="KEY",
    default=None,
    help="The Bearer key the sandbox's Telnyx message records accept (default: any non-empty "
    "key; SMSWATCH_TELNYX_API_KEY keeps it out of ps).",
)
@click.option(
    "--sinch-api-token",
    envvar="SMSWATCH_SINCH_API_TOKEN",
    metavar="TOKEN",
    default=None,
    help="The Bearer token the sandbox's Sinch delivery reports accept, for the simulator's "
    "service plan (default: any non-empty token; SMSWATCH_SINCH_API_TOKEN keeps it out of ps).",
)
@click.option(
    "--api-lisoloo-limit",
    type=click.IntRange(1),
    default=120,
    show_default=True,
    help="Sandbox: Lisoloo GET /status calls per key per rolling minute (Lisoloo's own).",
)
@click.option(
    "--api-yebolink-limit",
    type=click.IntRange(1),
    default=60,
    show_default=True,
    help="Sandbox: YeboLink GET /messages calls per key per rolling minute (not published; "
    "a guess).",
)
@click.option(
    "--api-twilio-limit",
    type=click.IntRange(1),
    default=60,
    show_default=True,
    help="Sandbox: Twilio Messages lookups per account per rolling minute (Twilio limits "
    "concurrency, not a rate: a guess).",
)
@click.option(
    "--api-vonage-limit",
    type=click.IntRange(1),
    default=600,
    show_default=True,
    help="Sandbox: Vonage Reports API lookups per key per rolling minute (Vonage's 10 a second).",
)
@click.option(
    "--api-infobip-limit",
    type=click.IntRange(1),
    default=60,
    show_default=True,
    help="Sandbox: Infobip reports and logs calls per key per rolling minute (not published; "
    "a guess).",
)
@click.option(
    "--api-telnyx-limit",
    type=click.IntRange(1),
    default=600,
    show_default=True,
    help="Sandbox: Telnyx GET /v2/messages/ID calls per key per rolling minute (Telnyx "
    "publishes none: a guess).",
)
@click.option(
    "--api-plivo-limit",
    type=click.IntRange(1),
    default=60,
    show_default=True,
    help="Sandbox: Plivo Message API lookups per account per rolling minute (Plivo publishes "
    "none: a guess).",
)
@click.option(
    "--api-sinch-limit",
    type=click.IntRange(1),
    default=60,
    show_default=True,
    help="Sandbox: Sinch delivery report calls per token per rolling minute (not published: "
    "a guess).",
)
@click.option(
    "--api-429-burst",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Sandbox fault: after each API's first 3 calls, its next N get 429 with Retry-After.",
)
def simulate(**opts: Any) -> None:
    """Send a realistic simulated campaign to a running smswatch over HTTP.

    Out-of-order arrival, duplicate retries, failures with realistic codes, and the right Basic
    auth / signatures / URL token (from --basic-auth / --yebolink-secret / --twilio-auth-token /
    --vonage-signature-secret / --africastalking-token / --telnyx-signing-key /
    --plivo-auth-token / --sinch-webhook-secret / --sinch-basic-auth or SMSWATCH_*
    variables). With --api-port, a sandbox of the gateways' status APIs answers from the same
    truth, as of now (GET /_sandbox/stats counts the calls). Exit status 1 if any event was
    rejected or given up.
    """
    from smswatch.devtools.simulate import SimConfig, plan_campaign, write_truth

    checked_credentials(opts)  # a key that is no key: a usage error, not a failed run
    config = SimConfig(
        url=opts["url"],
        provider=opts["provider"],
        messages=opts["messages"],
        recipients=opts["recipients"],
        rate=opts["rate"],
        fail_rate=opts["fail_rate"],
        duplicate_rate=opts["duplicate_rate"],
        seed=opts["seed"],
        speed=opts["speed"],
        spread=opts["spread"],
        concurrency=opts["concurrency"],
        max_attempts=opts["max_attempts"],
        basic_auth=opts["basic_auth"],
        yebolink_secret=opts["yebolink_secret"] or None,
        drop_rate=opts["drop_rate"],
        tokens=tokens_from(opts),
    )
    plan = plan_campaign(config)
    if opts["truth"]:
        write_truth(plan.truth, opts["truth"])
    if plan.dropped_events:
        click.echo(
            f"simulate: {plural(plan.dropped_events, 'webhook')} dropped by the gateway "
            "(--drop-rate), never sent",
            err=True,
        )
    if opts["api_port"] is None:
        result = run_sender(plan.deliveries, config, opts["acked"], opts["quiet"], "simulate")
        sys.exit(0 if result.ok else 1)

    from smswatch.devtools.sandbox import SandboxAPI, SandboxLimits
    from smswatch.gateways.sandboxing import SandboxKeys

    sandbox = SandboxAPI(
        plan.ledger,
        # Twilio's API takes the same auth token its callbacks are signed with.
        keys=SandboxKeys(
            opts["lisoloo_app_key"] or None,
            opts["yebolink_api_key"] or None,
            opts["twilio_auth_token"] or None,
            opts["vonage_api_secret"] or None,
            opts["infobip_api_key"] or None,
            opts["telnyx_api_key"] or None,
            # Plivo's Message API, like Twilio's, takes the token its callbacks are signed with.
            opts["plivo_auth_token"] or None,
            opts["sinch_api_token"] or None,
        ),
        limits=SandboxLimits(
            lisoloo_per_window=opts["api_lisoloo_limit"],
            yebolink_per_window=opts["api_yebolink_limit"],
            twilio_per_window=opts["api_twilio_limit"],
            vonage_per_window=opts["api_vonage_limit"],
            infobip_per_window=opts["api_infobip_limit"],
            telnyx_per_window=opts["api_telnyx_limit"],
            plivo_per_window=opts["api_plivo_limit"],
            sinch_per_window=opts["api_sinch_limit"],
            burst_429=opts["api_429_burst"],
        ),
    )
    try:
        url = sandbox.start_background("127.0.0.1", opts["api_port"])
    except OSError as exc:
        fail(f"cannot serve the sandbox API on port {opts['api_port']}: {exc}", 2)
    # On stdout, alone on its line, for scripts and tests that asked for port 0.
    click.echo(f"sandbox API: {url}")
    try:
        result = run_sender(plan.deliveries, config, opts["acked"], opts["quiet"], "simulate")
        if opts["api_linger"]:
            click.echo(
                f"sandbox API: up for {opts['api_linger']:g} s after the last recipient "
                "settled (Ctrl-C ends it)",
                err=True,
            )
        sandbox.linger(opts["api_linger"])
        click.echo(sandbox.summary(), err=True)
    finally:
        sandbox.stop_background()
    sys.exit(0 if result.ok else 1)


# --- replay -----------------------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@config_option
@click.argument("file", type=click.File("r", encoding="utf-8"))
@sender_options
@gateway_file_option
@click.option(
    "--speed",
    type=FiniteRange(0),
    default=1.0,
    show_default=True,
    help="Replay this many times faster than recorded (0: as fast as --rate allows).",
)
def replay(file: Any, speed: float, **opts: Any) -> None:
    """Post recorded webhook traffic (JSON lines: export output or bare bodies) again.

    Timing follows each line's received_at. Exit status 1 if any event was rejected or given up.
    Polled events in an export are left out: to copy a database, use `smswatch import`.
    """
    from smswatch.devtools.replay import ReplayError, load_webhooks
    from smswatch.devtools.simulate import SimConfig

    # A gateway from a file posts (and signs) its recorded events as its own, like a built-in.
    install_gateway_files(opts.pop("gateway_files", None))
    try:
        deliveries, polled = load_webhooks(file, speed)
    except ReplayError as exc:
        fail(str(exc), 2)
    if polled:
        click.echo(
            f"replay: {plural(polled, 'polled event')} left out: made from a gateway's status "
            "API, not webhooks (`smswatch import` copies a database whole)",
            err=True,
        )
    checked_credentials(opts)
    config = SimConfig(
        url=opts["url"],
        rate=opts["rate"],
        concurrency=opts["concurrency"],
        max_attempts=opts["max_attempts"],
        basic_auth=opts["basic_auth"],
        yebolink_secret=opts["yebolink_secret"] or None,
        tokens=tokens_from(opts),
    )
    name = getattr(file, "name", None)
    result = run_sender(deliveries, config, opts["acked"], opts["quiet"], "replay", str(name))
    sys.exit(0 if result.ok else 1)
