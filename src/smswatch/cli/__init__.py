"""Command line: `smswatch` (live monitor) and its subcommands, as the README documents them.

One module per command group (cli/main.py adds them all to the root group); every option is
declared once, in cli/options.py. `smswatch.cli:main` is the console script's entry point."""

from smswatch.cli.main import main

__all__ = ["main"]
