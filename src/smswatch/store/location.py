"""What `--db` names: a SQLite file (a path, the default) or a PostgreSQL database (a URL)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from smswatch.sanitize import without_password

URL_SCHEMES = ("postgresql://", "postgres://")


def is_url(db: str | Path) -> bool:
    return isinstance(db, str) and db.startswith(URL_SCHEMES)


def as_db(text: str | Path) -> str | Path:
    """A `--db` value as the store takes it: the URL as given, anything else a path."""
    return str(text) if is_url(str(text)) else Path(text)


def describe(db: str | Path) -> str:
    """For screens and logs: a URL without its password; a path as it is."""
    return without_password(str(db)) if is_url(db) else str(db)


def check_url(url: str) -> None:
    """Raises ValueError, saying why, for a database URL that cannot be taken apart (a port
    that is not a number, a bracket left open)."""
    parts = urlsplit(url)
    if parts.port is not None and not parts.port > 0:
        raise ValueError("port 0")


def display(db: str | Path) -> str:
    """For banners: a path made absolute, a URL without its password."""
    return describe(db) if is_url(db) else str(Path(db).resolve())
