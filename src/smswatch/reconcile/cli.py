"""`smswatch reconcile`: poll the gateways' status APIs now, store the answers, and list the
webhooks that never came (DESIGN.md: `reconcile --json: [{"message_id", "provider", "missing",
...}]`)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from smswatch.cli import (
    CONTEXT,
    GATEWAY_API_OPTIONS,
    config_option,
    db_option,
    fail,
    gateway_api_config,
    handles_store_errors,
    print_json,
)

DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """'90s', '15m', '2h', '1d' (or plain seconds) as microseconds."""
    text = text.strip().lower()
    unit = DURATIONS.get(text[-1:]) if text else None
    number = text[:-1] if unit else text
    try:
        value = float(number)
    except ValueError:
        raise click.BadParameter(f"{text!r}: say e.g. 90s, 15m, 2h or 1d") from None
    if value <= 0:
        raise click.BadParameter("must be positive")
    return int(value * (unit or 1) * 1_000_000)


def api_options(f: Any) -> Any:
    for option in reversed(GATEWAY_API_OPTIONS):
        f = option(f)
    return f


def record(m: Any, result: Any, recovered: int) -> dict[str, Any]:
    from smswatch.domain import State

    gateway = None
    if m.gateway_at is not None:
        gateway = {
            "delivered": m.gateway_delivered,
            "failed": m.gateway_failed,
            "pending": m.gateway_pending,
        }
    missing = m.missing if m.missing is not None else recovered
    return {
        "message_id": m.message_id,
        "provider": m.provider,
        "missing": missing,
        "gateway": gateway,
        "webhooks": {"delivered": m.counts[State.DELIVERED], "failed": m.counts[State.FAILED]},
        "recovered_by_polling": recovered,
        "polled": result is not None and result.error is None,
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
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (DESIGN.md).")
@handles_store_errors
def reconcile(db: Path, messages: tuple[str, ...], since: str, as_json: bool, **opts: Any) -> None:
    """Ask the gateways' status APIs about unfinished messages now, store the answers as
    polled events, and list the delivery reports the webhooks never brought.

    Lisoloo answers with counts: the message shows the gateway's beside the webhooks'. YeboLink
    answers per message: a missing final state is filled in, marked polled. While smswatch runs
    on a SQLite database it holds the writer: the answers are shown, not stored (its own
    reconciler polls when given the same keys).
    """
    api = gateway_api_config(opts)
    if api is None:
        fail(
            "no gateway API key: set --lisoloo-app-key (with --lisoloo-api-url) or "
            "--yebolink-api-key (or SMSWATCH_LISOLOO_APP_KEY, SMSWATCH_YEBOLINK_API_KEY)",
            2,
        )
    window = parse_duration(since)
    found = asyncio.run(run(db, api, list(messages), window, as_json))
    if as_json:
        print_json(found)
    sys.exit(0)


async def run(db: Path | str, api: Any, wanted: list[str], window: int, quiet: bool) -> Any:
    from smswatch.reconcile.clients import build
    from smswatch.reconcile.reconciler import Reconciler
    from smswatch.store import StoreUnavailable, make_writer, open_reader
    from smswatch.store.errors import CannotOpen
    from smswatch.store.writer import DatabaseInUse
    from smswatch.timefmt import now_us

    clients = build(api)
    writer = make_writer(db)
    stored = True
    try:
        await writer.open()
    except DatabaseInUse:
        stored = False  # smswatch runs on it: poll and show, store nothing
    except CannotOpen as exc:
        fail(str(exc))

    async def submit(events: list[Any]) -> Any:
        if not stored:
            raise StoreUnavailable("smswatch is running on this database: not stored")
        return await writer.submit(events)

    reconciler = Reconciler(clients, submit, lambda: open_reader(db, current=True), now_us)
    await reconciler.start_reader()
    out: list[dict[str, Any]] = []
    try:
        async with await open_reader(db, current=True) as reader:
            targets: list[tuple[str, str]] = []
            if wanted:
                for text in wanted:
                    mid = await reader.resolve_message_id(text)
                    msg = await reader.message(mid) if mid else None
                    if msg is None:
                        fail(f"no message {text!r} (or more than one)")
                    targets.append((msg.provider, msg.message_id))  # type: ignore[union-attr]
            else:
                now = now_us()
                for gateway in clients:
                    found = await reader.quiet_unfinished(gateway, now, now - window, 100_000)
                    reconciler.remember_first(gateway, found)
                    targets += [(gateway, mid) for mid, _, _ in found]
        results = {}
        for gateway in clients:
            # Many YeboLink messages: its list, 100 a call, before asking about each.
            while batch := reconciler.sweepable(
                gateway, [m for g, m in targets if g == gateway and m not in results]
            ):
                if not quiet:
                    click.echo(f"reading {gateway}'s list for {len(batch):,} messages …", err=True)
                swept = await reconciler.sweep(gateway, batch)
                results.update(swept)
                if len(swept) < len(batch):
                    break  # cut short: the rest one by one
        left = [(g, m) for g, m in targets if m not in results]
        for n, (gateway, mid) in enumerate(left, 1):
            if not quiet:
                click.echo(f"\rpolling {n:,} of {len(left):,} …", nl=False, err=True)
            results[mid] = await reconciler.poll(gateway, mid)
        if left and not quiet:
            click.echo("", err=True)
        await writer.drain()
        async with await open_reader(db, current=True) as reader:
            for _, mid in targets:
                msg = await reader.message(mid)
                if msg is None:
                    continue
                recovered = sum(1 for r in await reader.recipients(mid) if r.polled)
                out.append(record(msg, results.get(mid), recovered))
    finally:
        await reconciler.stop()
        if stored:
            await writer.close()
    if not quiet:
        print_table(out, stored)
    return out


def print_table(rows: list[dict[str, Any]], stored: bool) -> None:
    from rich.table import Table

    from smswatch.report import console, t

    table = Table(header_style="bold", title="reconciled", title_justify="left")
    for name in ("message", "gateway", "gateway says", "webhooks", "missing", "note"):
        table.add_column(name, no_wrap=True)
    for r in rows:
        g = r["gateway"]
        says = "-" if g is None else f"{g['delivered']} delivered, {g['failed']} failed"
        if g and g["pending"]:
            says += f", {g['pending']} pending"
        hooks = f"{r['webhooks']['delivered']} delivered, {r['webhooks']['failed']} failed"
        note = t(r["error"], 60) if r["error"] else ""
        if r["recovered_by_polling"]:
            note = f"{r['recovered_by_polling']} final state(s) filled in by polling"
        table.add_row(t(r["message_id"], 40), r["provider"], says, hooks, str(r["missing"]), note)
    out = console()
    out.print(table)
    total = sum(r["missing"] for r in rows)
    out.print(f"{total:,} delivery report(s) missing in {len(rows):,} message(s) polled")
    if not stored:
        out.print("not stored: smswatch is running on this database (its reconciler polls)")
