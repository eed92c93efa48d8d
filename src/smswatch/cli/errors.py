"""How a command fails: one line on stderr and an exit status, not a traceback; and a bad setting
named where the user wrote it."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class SettingsError(click.ClickException):
    """A bad setting from the config file or the environment: named as the user wrote it
    (the file and key, or the variable), not as a flag they never typed."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"smswatch: {self.format_message()}", err=True)


def settings_error(exc: click.BadParameter) -> SettingsError | None:
    """The error to show for a bad value that came from the environment or the config file;
    None for one typed on the command line."""
    from click.core import ParameterSource

    ctx, param = exc.ctx, exc.param
    if ctx is None or param is None or param.name is None:
        return None
    source = ctx.get_parameter_source(param.name)
    if source is ParameterSource.ENVIRONMENT:
        names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())
        where = next((name for name in names if name in os.environ), "the environment")
    elif source is ParameterSource.DEFAULT_MAP:
        where = f"{ctx.meta.get('config_file', 'the config file')}: {param.name}"
    else:
        return None
    return SettingsError(f"{where}: {exc.message}")


@contextlib.contextmanager
def named_settings_errors() -> Iterator[None]:
    try:
        yield
    except click.BadParameter as exc:
        named = settings_error(exc)
        if named is None:
            raise
        raise named from None


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"smswatch: {message}", err=True)
    sys.exit(code)


def handles_store_errors(f: F) -> F:
    """Read commands: a missing or foreign database is a one-line error, not a traceback."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except Exception as exc:
            # Imported only now: the store is too heavy to load for every command's --help.
            from smswatch.store import NoDatabase
            from smswatch.store.errors import CannotOpen

            if isinstance(exc, (NoDatabase, CannotOpen)):
                fail(str(exc))
            raise

    return wrapper  # type: ignore[return-value]
