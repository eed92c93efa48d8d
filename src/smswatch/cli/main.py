"""`smswatch`: the root group (the live monitor when no subcommand is given), and every
subcommand, each from its own module, loaded when it is asked for: `smswatch attach` loads no
other command's module. Each command module imports its heavy modules (aiohttp, textual, the
store) inside the command, so even `smswatch --help`, which loads them all, starts quickly."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import click

from smswatch import __version__
from smswatch.cli.engine_config import engine_config
from smswatch.cli.errors import fail, named_settings_errors
from smswatch.cli.options import (
    CONTEXT,
    config_option,
    feed_options,
    listener_options,
    loaded_settings,
    theme_option,
)


def _serve() -> click.Command:
    from smswatch.cli.serve import serve

    return serve


def _attach() -> click.Command:
    from smswatch.cli.attach import attach

    return attach


def _simulate() -> click.Command:
    from smswatch.cli.simulate import simulate

    return simulate


def _replay() -> click.Command:
    from smswatch.cli.simulate import replay

    return replay


def _inspect() -> click.Command:
    from smswatch.cli.inspect import inspect

    return inspect


def _stats() -> click.Command:
    from smswatch.cli.inspect import stats

    return stats


def _export() -> click.Command:
    from smswatch.cli.export import export

    return export


def _import() -> click.Command:
    from smswatch.cli.export import import_

    return import_


def _forward() -> click.Command:
    from smswatch.cli.forward import forward

    return forward


def _campaign() -> click.Command:
    from smswatch.cli.campaign import campaign

    return campaign


def _report() -> click.Command:
    from smswatch.cli.report import report

    return report


def _gateways() -> click.Command:
    from smswatch.cli.gateways import gateways

    return gateways


def _reconcile() -> click.Command:
    from smswatch.cli.reconcile import reconcile

    return reconcile


COMMANDS: dict[str, Callable[[], click.Command]] = {
    "serve": _serve,
    "attach": _attach,
    "simulate": _simulate,
    "replay": _replay,
    "inspect": _inspect,
    "stats": _stats,
    "export": _export,
    "import": _import,
    "forward": _forward,
    "campaign": _campaign,
    "report": _report,
    "reconcile": _reconcile,
    "gateways": _gateways,
}
# Click would look these commands' defaults up under their names in the monitor's defaults,
# where `campaign` is the monitor's --campaign from the config file (a string): each command
# inside loads the file itself (--config).
OWN_DEFAULTS = {"forward", "campaign", "report", "reconcile"}


class Commands(click.Group):
    """`smswatch`'s subcommands: loaded when asked for, settings errors named as such, and
    options typed before the subcommand handed on to it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        load = COMMANDS.get(name)
        if load is None:
            return super().get_command(ctx, name)
        command = load()
        if name in OWN_DEFAULTS and "default_map" not in command.context_settings:
            command.context_settings = {**command.context_settings, "default_map": {}}
        return command

    # A bad value from the environment or the config file is named as such, here and in every
    # subcommand (they are parsed inside invoke).
    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with named_settings_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with named_settings_errors():
            return super().invoke(ctx)

    # Options typed before the subcommand (`smswatch --port 9811 serve`) go to it when it has
    # the same option, and are refused when it does not: never quietly dropped.
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["smswatch.args"] = list(args)
        return super().parse_args(ctx, args)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        given = ctx.meta.pop("smswatch.args", [])
        before = given[: len(given) - len(args)]
        if command is None or not before:
            return name, command, rest
        # A group (`campaign list`): the options go to the command inside it.
        path, target, at = [name], command, 0
        if isinstance(command, click.Group) and rest:
            inner = command.get_command(ctx, rest[0])
            if inner is not None:
                path, target, at = [name, rest[0]], inner, 1
        for tokens in self.option_tokens(before):
            option = tokens[0].partition("=")[0]
            if not any(option in (*p.opts, *p.secondary_opts) for p in target.params):
                where = " ".join(str(part) for part in path)
                raise click.UsageError(
                    f"{option} is not an option of `smswatch {where}` "
                    f"(see `smswatch {where} --help`)",
                    ctx,
                )
        return name, command, [*rest[:at], *before, *rest[at:]]

    def option_tokens(self, tokens: list[str]) -> Iterator[list[str]]:
        """The group's own options as typed, one list of tokens per option."""
        takes_value = {
            opt: not (isinstance(p, click.Option) and (p.is_flag or p.count))
            for p in self.params
            for opt in (*p.opts, *p.secondary_opts)
        }
        i = 0
        while i < len(tokens):
            token = tokens[i]
            n = 2 if "=" not in token and takes_value.get(token, False) else 1
            yield tokens[i : i + n]
            i += n


@click.group(cls=Commands, invoke_without_command=True, context_settings=CONTEXT)
@config_option
@listener_options
@feed_options(default_port=None)
@click.option(
    "--demo",
    is_flag=True,
    help="Also run simulated campaigns against the monitor, with a temporary database.",
)
@theme_option("Theme name (dark, light, high-contrast, or one of yours).")
@click.option(
    "--no-listen",
    is_flag=True,
    help="Watch the database without taking webhooks here (e.g. a PostgreSQL database that "
    "serve instances share; a SQLite file that another smswatch writes is watched with "
    "`smswatch attach` to its feed).",
)
@click.version_option(__version__, prog_name="smswatch")
@click.pass_context
def main(ctx: click.Context, demo: bool, theme: str | None, no_listen: bool, **opts: Any) -> None:
    """smswatch: watch SMS delivery webhooks live in the terminal.

    Without a subcommand it runs the webhook listener and the live monitor in one process.
    Point your gateway's webhook URL at the address it shows.
    """
    if ctx.invoked_subcommand is not None:
        return
    from smswatch.live.engine import BindRefused
    from smswatch.live.monitor import run_monitor

    if no_listen and demo:
        fail("--demo sends its traffic to the monitor's own listener: drop --no-listen", 2)
    config = engine_config(opts)
    if no_listen:
        config = replace(config, listen=False)
    # Only the default port may give way to a free one in the demo: a port asked for is kept.
    port_given = ctx.get_parameter_source("port") is not click.core.ParameterSource.DEFAULT
    try:
        code = run_monitor(
            config, demo=demo, theme=theme, settings=loaded_settings(), port_given=port_given
        )
    except BindRefused as exc:
        fail(str(exc), 2)
    sys.exit(code)
