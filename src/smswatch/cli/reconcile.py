"""`smswatch reconcile`: poll the gateways' status APIs now, store the answers, and list the
webhooks that never came (docs/json.md: `reconcile --json: [{"message_id", "provider", "missing",
...}]`)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from smswatch.cli.engine_config import gateway_api_config
from smswatch.cli.errors import fail, handles_store_errors
from smswatch.cli.lookup import one_message
from smswatch.cli.options import (
    CONTEXT,
    GATEWAY_API_OPTIONS,
    config_option,
    db_option,
    gateway_credential_options,
    json_option,
)
from smswatch.cli.output import print_json

DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


MAX_SINCE_S = 10 * 365 * 86400  # further back than any database reaches


def parse_duration(text: str) -> int:
    """'90s', '15m', '2h', '1d' (or plain seconds) as microseconds."""
    text = text.strip().lower()
    unit = DURATIONS.get(text[-1:]) if text else None
    number = text[:-1] if unit else text
    try:
        value = float(number)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: say e.g. 90s, 15m, 2h or 1d", param_hint="'--since'"
        ) from None
    seconds = value * (unit or 1)
    if not 0 < seconds <= MAX_SINCE_S:  # NaN fails this too
        raise click.BadParameter(
            f"{text!r}: must be positive and at most ten years", param_hint="'--since'"
        )
    return int(seconds * 1_000_000)


def api_options(f: Any) -> Any:
    for option in reversed(GATEWAY_API_OPTIONS):
        f = option(f)
    return gateway_credential_options(f, api_only=True)


def unpolled() -> str:
    """What is said of the gateways with no status API, which no key makes polled."""
    from smswatch.gateways.registry import GATEWAYS
    from smswatch.reconcile.clients import UNPOLLED

    if not UNPOLLED:
        return ""
    names = " and ".join(GATEWAYS[name].title for name in UNPOLLED)
    return f". {names}: no status API: not polled (its webhooks are all there is)"


def record(m: Any, result: Any, recovered: int, answer: Any = None) -> dict[str, Any]:
    """One message's line of `reconcile --json`. `answer`: the poll's event when it could not
    be stored (smswatch runs on the database): its counts are shown all the same."""
    from smswatch.core.domain import State

    gateway = None
    if m.gateway_at is not None:
        gateway = {
            "delivered": m.gateway_delivered,
            "failed": m.gateway_failed,
            "pending": m.gateway_pending,
        }
    missing = m.missing if m.missing is not None else recovered
    counts = answer.message_info.gateway_counts if answer and answer.message_info else None
    if counts is not None:
        delivered, failed, pending = counts
        gateway = {"delivered": delivered, "failed": failed, "pending": pending}
        missing = replace(m, gateway_delivered=delivered, gateway_failed=failed).missing
    return {
        "message_id": m.message_id,
        "provider": m.provider,
        "missing": missing,
        "gateway": gateway,
        "webhooks": {"delivered": m.counts[State.DELIVERED], "failed": m.counts[State.FAILED]},
        "recovered_by_polling": recovered,
        "polled": result is not None and result.error is None,
        "found": bool(result and result.found),
        # "list": found in (or, not final, absent from) YeboLink's list read for many at once
        "via": result.via if result is not None else None,
        "stored": bool(result and result.stored),
        "error": result.error if result is not None else None,
    }


@click.command(context_settings=CONTEXT)
@config_option
@db_option
@api_options
@click.option("--message", "messages", multiple=True, help="Only this message (repeatable).")
@click.option(
    "--since",
    default="24h",
    show_default=True,
    help="Unfinished messages with an event this recently (90s, 15m, 2h, 1d).",
)
@json_option()
@handles_store_errors
def reconcile(db: Path, messages: tuple[str, ...], since: str, as_json: bool, **opts: Any) -> None:
    """Ask the gateways' status APIs about unfinished messages now, store the answers as
    polled events, and list the delivery reports the webhooks never brought.

    Lisoloo answers with counts: the message shows the gateway's beside the webhooks'. YeboLink
    answers per message: a missing final state is filled in, marked polled. While smswatch runs
    on a SQLite database it holds the writer: the answers are shown, not stored (its own
    reconciler polls when given the same keys).
    """
    import asyncio

    api = gateway_api_config(opts)
    if api is None:
        fail(
            "no gateway API key: set --lisoloo-app-key (with --lisoloo-api-url), "
            "--yebolink-api-key, --twilio-account-sid with --twilio-auth-token, "
            "--vonage-api-key with --vonage-api-secret, --infobip-api-key with "
            "--infobip-api-url, --telnyx-api-key, --plivo-auth-id with --plivo-auth-token, "
            "or --sinch-service-plan-id with --sinch-api-token (or SMSWATCH_LISOLOO_APP_KEY, "
            "SMSWATCH_YEBOLINK_API_KEY, SMSWATCH_TWILIO_*, SMSWATCH_VONAGE_API_*, "
            "SMSWATCH_INFOBIP_API_*, SMSWATCH_TELNYX_API_KEY, SMSWATCH_PLIVO_*, "
            f"SMSWATCH_SINCH_*){unpolled()}",
            2,
        )
    window = parse_duration(since)
    found = asyncio.run(run(db, api, list(messages), window, as_json))
    if as_json:
        print_json(found)
    # A run in which polls failed must not look like one that found nothing missing.
    sys.exit(1 if any(r["error"] for r in found) else 0)


async def run(db: Path | str, api: Any, wanted: list[str], window: int, quiet: bool) -> Any:
    """Poll, then store what the gateways said in one short write (the database is not held
    while the gateways answer), then read back what is missing."""
    from types import SimpleNamespace

    from smswatch.reconcile.clients import build
    from smswatch.reconcile.reconciler import Reconciler
    from smswatch.store import open_reader
    from smswatch.timefmt import now_us

    answers: list[Any] = []

    async def keep(events: list[Any]) -> list[Any]:
        answers.extend(events)
        return [SimpleNamespace(duplicate=False) for _ in events]

    # Opened first: a path that is no smswatch database is refused before anything is asked.
    async with await open_reader(db, current=True) as reader:
        targets = await choose(reader, api.gateways, wanted, window, db)
    reconciler = Reconciler(build(api), keep, lambda: open_reader(db, current=True), now_us)
    await reconciler.start_reader()
    try:
        results = await poll_all(reconciler, targets, quiet)
    finally:
        await reconciler.stop()
    stored = await store(db, answers)
    by_message: dict[str, Any] = {}
    for event in answers:
        by_message.setdefault(event.message_id, []).append(event)
    out: list[dict[str, Any]] = []
    async with await open_reader(db, current=True) as reader:
        for _, mid, _ in targets:
            msg = await reader.message(mid)
            if msg is None:
                continue
            recipients = await reader.recipients(mid)
            polled = {r.recipient for r in recipients if r.polled}
            result = results.get(mid)
            answer = None
            if stored is None:  # shown, not stored
                result = replace(result, stored=False) if result is not None else None
                finals = {r.recipient for r in recipients if r.state and r.state.terminal}
                found = by_message.get(mid, [])
                polled |= {e.recipient for e in found if e.recipient and e.state.terminal} - finals
                answer = next((e for e in reversed(found) if e.message_info), None)
            elif result is not None:
                result = replace(result, stored=mid in stored)
            out.append(record(msg, result, len(polled), answer))
    if not quiet:
        print_table(out, stored is not None)
    return out


async def choose(
    reader: Any, gateways: tuple[str, ...], wanted: list[str], window: int, db: Path | str = ""
) -> Any:
    """(gateway, message id, first event time) to poll: the messages asked for (each once,
    however named), or
    every keyed gateway's unfinished messages with an event within `window`."""
    from smswatch.timefmt import now_us

    targets: dict[str, tuple[str, int | None]] = {}  # id -> gateway, first event's time
    for text in wanted:
        msg = await reader.message(await one_message(reader, text, db))
        assert msg is not None
        targets[msg.message_id] = (msg.provider, msg.first_at)
    if not wanted:
        now = now_us()
        for gateway in gateways:
            found = await reader.quiet_unfinished(gateway, now, now - window, 100_000)
            targets.update((mid, (gateway, first)) for mid, _, first in found)
    return [(gateway, mid, first) for mid, (gateway, first) in targets.items()]


async def poll_all(reconciler: Any, chosen: list[tuple[str, str, int | None]], quiet: bool) -> Any:
    from smswatch.words import plural

    results: dict[str, Any] = {}
    for gateway in reconciler.clients:
        reconciler.remember_first(
            gateway, [(m, 0, first) for g, m, first in chosen if g == gateway]
        )
    targets = [(g, m) for g, m, _ in chosen]
    for gateway in reconciler.clients:
        # Many YeboLink messages: its list, 100 a call, before asking about each.
        while batch := reconciler.sweepable(
            gateway, [m for g, m in targets if g == gateway and m not in results]
        ):
            if not quiet:
                many = plural(len(batch), "message")
                click.echo(f"reading {gateway}'s list for {many} …", err=True)
            swept = await reconciler.sweep(gateway, batch)
            results.update(swept)
            if len(swept) < len(batch):
                break  # cut short: the rest one by one
    left = [(g, m) for g, m in targets if m not in results]
    # On a terminal one line counts up; in a log, a line every tenth or so of the way.
    live = sys.stderr.isatty()
    every = max(1, len(left) // 10)
    for n, (gateway, mid) in enumerate(left, 1):
        if not quiet and (live or n == 1 or n == len(left) or n % every == 0):
            line = f"polling {n:,} of {len(left):,} …"
            click.echo(f"\r{line}" if live else line, nl=not live, err=True)
        results[mid] = await reconciler.poll(gateway, mid)
    if left and not quiet and live:
        click.echo("", err=True)
    return results


async def store(db: Path | str, events: list[Any]) -> set[str] | None:
    """Store the answers; the ids of the messages something new was stored for, or None when
    another smswatch is writing this database (its own reconciler polls, given the keys)."""
    from smswatch.store import make_writer
    from smswatch.store.errors import CannotOpen, DatabaseInUse

    writer = make_writer(db)
    try:
        await writer.open()
    except DatabaseInUse:
        return None
    except CannotOpen as exc:
        fail(str(exc))
    try:
        outcomes = await writer.submit(events) if events else []
    finally:
        await writer.close()
    return {o.message_id for o in outcomes if not o.duplicate}


def print_table(rows: list[dict[str, Any]], stored: bool) -> None:
    """The figures side by side: what the gateway's status API says, what smswatch holds
    (webhooks, and final states polling filled in), and what the webhooks never brought."""
    from rich.table import Table
    from rich.text import Text

    from smswatch.exports.console import Fit, console, t
    from smswatch.words import plural

    table = Table(header_style="bold", title="reconciled", title_justify="left")
    table.add_column("message", no_wrap=True, overflow="ellipsis")
    table.add_column("gateway", no_wrap=True)
    figures = (
        "gateway\ndelivered",
        "gateway\nfailed",
        "gateway\npending",
        "smswatch\ndelivered",
        "smswatch\nfailed",
        "webhooks\nmissing",
    )
    for name in figures:
        table.add_column(name, justify="right", no_wrap=True)
    notes = []
    for r in rows:
        g = r["gateway"]
        says = ["-"] * 3 if g is None else [f"{g[k]:,}" for k in ("delivered", "failed", "pending")]
        held = [f"{r['webhooks'][k]:,}" for k in ("delivered", "failed")]
        mid = t(r["message_id"], 40)
        table.add_row(mid, Text(r["provider"]), *says, *held, f"{r['missing']:,}")
        if r["recovered_by_polling"]:
            found = plural(r["recovered_by_polling"], "final state")
            done = "filled in by polling" if stored else "found by polling"
            notes.append(Text.assemble(mid, f": {found} {done}"))
        if r["error"]:
            notes.append(Text.assemble(mid, ": ", t(r["error"], 160)))
    short = {
        "gateway\ndelivered": "gw\ndlvd",
        "gateway\nfailed": "gw\nfail",
        "gateway\npending": "gw\npend",
        "smswatch\ndelivered": "ours\ndlvd",
        "smswatch\nfailed": "ours\nfail",
    }
    out = console()
    out.print(Fit(table, ("message", "gateway", *figures), short, drop=("gateway\npending",)))
    for note in notes:
        out.print(note)
    total = sum(r["missing"] for r in rows)
    missing = plural(total, "delivery report was", "delivery reports were")
    out.print(f"{plural(len(rows), 'message')} polled: {missing} never brought by a webhook")
    failed = [r for r in rows if r["error"]]
    if failed:
        out.print(f"{plural(len(failed), 'poll')} failed (why: the lines above)")
    if said := unpolled():
        out.print(said.removeprefix(". "))
    if not stored:
        out.print(
            "Not stored: another smswatch is writing this database, so what the gateways said is "
            "shown here only (given the same keys, its own reconciler polls and stores it)"
        )
