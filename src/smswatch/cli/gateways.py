"""`smswatch gateways`: every gateway this smswatch takes webhooks from (the built-ins, then
those of --gateway-file), each with its route, whether and how its requests are verified with
the credentials given, whether smswatch can poll its status API, and the URL to paste into its
console (from --public-url when set, else the listen address)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from smswatch.cli.options import (
    CONTEXT,
    GATEWAY_API_OPTIONS,
    config_option,
    credential_options,
    gateway_file_option,
    json_option,
)
from smswatch.cli.output import print_json


def api_options(f: Any) -> Any:
    # The status APIs' keys as `serve` takes them (flag, environment, config file): whether a
    # gateway is polled depends on them, and the credentials above already hold the webhook
    # tokens that open an API too (Twilio's, Plivo's).
    for option in reversed(GATEWAY_API_OPTIONS):
        f = option(f)
    return f


@click.command(context_settings=CONTEXT)
@config_option
@click.option(
    "--host",
    envvar="SMSWATCH_HOST",
    default="127.0.0.1",
    show_default=True,
    help="The listener's address (the URLs are made from it without --public-url).",
)
@click.option(
    "--port",
    envvar="SMSWATCH_PORT",
    type=click.IntRange(0, 65535),
    default=8787,
    show_default=True,
    help="The listener's port.",
)
@click.option(
    "--public-url",
    envvar="SMSWATCH_PUBLIC_URL",
    metavar="URL",
    help="The base URL the gateways call (behind a tunnel or proxy): the URLs are made from it.",
)
@click.option(
    "--tls-cert",
    envvar="SMSWATCH_TLS_CERT",
    default=None,
    metavar="FILE",
    help="The listener serves HTTPS (the URLs are https://).",
)
@credential_options
@api_options
@gateway_file_option
@json_option("Machine-readable output (shape in docs/json.md).")
def gateways(
    host: str,
    port: int,
    public_url: str | None,
    tls_cert: str | None,
    as_json: bool,
    **opts: Any,
) -> None:
    """List every gateway: route, verification, polling, and the URL for its console."""
    from smswatch.cli.engine_config import (
        checked_credentials,
        gateway_api_config,
        install_gateway_files,
    )
    from smswatch.cli.engine_config import public_url as checked_public_url

    install_gateway_files(opts.get("gateway_files"))
    credentials = checked_credentials(opts)
    api = gateway_api_config(opts)
    base = checked_public_url(public_url) or listen_base(host, port, tls_cert is not None)
    records = gateway_records(credentials, base, set(api.gateways) if api else set())
    if as_json:
        print_json({"base_url": base, "gateways": records})
        return
    from smswatch.exports.console import console

    console().print(gateways_view(records, base))


def listen_base(host: str, port: int, tls: bool) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def gateway_records(
    credentials: Any, base: str, polled: set[str] | frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """One record per registered gateway, in the registry's order; `polled`: the gateways
    whose status API has its keys."""
    from smswatch.gateways.declarative import shown_url
    from smswatch.gateways.registry import GATEWAYS, file_gateways

    from_files = set(file_gateways())
    out = []
    for name, gateway in GATEWAYS.items():
        provider = gateway.provider(credentials)
        mode = provider.auth_mode()
        route = f"/webhooks/{name}"
        url = shown_url(name, credentials.in_url(name, base + route, shown=True))
        spec = getattr(gateway, "spec", None)
        console_hint = spec.console if spec is not None else None
        out.append(
            {
                "name": name,
                "title": gateway.title,
                "source": str(spec.source) if name in from_files and spec else "built-in",
                "route": route,
                "body": provider.body_format,
                "verified": mode.verified,
                "verification": mode.label,
                "polls": gateway.status_api() is not None,
                "polled": name in polled,
                "url": url,
                "console": console_hint,
            }
        )
    return out


def gateways_view(records: list[dict[str, Any]], base: str) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Gateways ({base})", title_justify="left", expand=False)
    for column in ("Gateway", "From", "Verified", "Polls", "URL for its console"):
        table.add_column(column, overflow="fold")
    for r in records:
        verified = Text(
            "yes: " if r["verified"] else "no: ", style="green" if r["verified"] else "red"
        )
        verified.append(r["verification"])
        url = Text(r["url"])
        if r["console"]:
            url.append(f"\n{r['console']}", style="dim")
        table.add_row(
            Text(f"{r['title']} ({r['name']})"),
            Text(r["source"] if r["source"] == "built-in" else Path(r["source"]).name),
            verified,
            polling(r),
            url,
        )
    return table


def polling(record: dict[str, Any]) -> Any:
    from rich.text import Text

    if record["polled"]:
        return Text("yes", style="green")
    if record["polls"]:
        return Text("no key given", style="dim")  # docs/gateways.md names each gateway's
    return Text("no status API", style="dim")
