"""What the read commands print for machines."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


def print_json(value: Any) -> None:
    """JSON on stdout. On a terminal every non-ASCII character is escaped: the same value to a
    JSON reader, but webhook text can neither hide (zero-width) nor act (C1 controls)."""
    click.echo(json.dumps(value, ensure_ascii=sys.stdout.isatty(), indent=2))
