"""What opening a store can fail with, whichever the back end, and how to say why."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class CannotOpen(Exception):
    """The database cannot be opened at start (the message says why, for the operator)."""


class NotOurs(CannotOpen):
    """The file is not a SQLite database, or one that belongs to something else."""


class StoreUnavailable(Exception):
    """The database cannot commit right now (answer 503 and let the gateway retry)."""


class Unstorable(Exception):
    """This request's data cannot be stored (answer 400)."""


class DatabaseInUse(CannotOpen):
    """Another process is writing to this database. `feed`: the address of its viewers' feed,
    if it serves one (as its lock file says), for a second terminal to attach to instead."""

    def __init__(self, message: str, feed: str | None = None) -> None:
        super().__init__(message)
        self.feed = feed


class NoDatabase(Exception):
    """A reader found no smswatch database to read (the message says why)."""


# What a writer keeps beside a SQLite database (store/sqlite/schema.py, store/sqlite/writer.py).
SIDE_FILES = ("-state", "-writer", "-wal", "-shm", "-state-wal", "-state-shm")

_REASONS = {
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "not a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.EISDIR: "it is a directory",
    errno.ENOSPC: "no space left on device",
}


def reason(exc: OSError) -> str:
    """An OS error in a few words, without its errno and path."""
    return _REASONS.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()


def _read_only(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def location_problem(db: Path, writing: bool = True) -> str | None:
    """Why smswatch cannot keep a SQLite database at `db` (its directory missing, not a
    directory, read-only or forbidden; the file itself unreadable), or None. A writer makes
    files beside the database (`-state`, `-writer`, `-wal`...), so its directory must be
    writable too; a reader (`writing` False) needs only to read the file."""
    directory = db.parent
    if not directory.exists():
        # The first thing on the way that is missing, or is a file where a directory should be.
        for part in [*reversed(directory.parents), directory]:
            if part.is_file():
                return f"{part} is a file, not a directory"
            if not part.exists():
                return f"the directory {part} does not exist"
    if not directory.is_dir():
        return f"{directory} is a file, not a directory"
    if not os.access(directory, os.X_OK):
        return f"permission denied on the directory {directory}"
    if db.exists() and not os.access(db, os.R_OK | (os.W_OK if writing else 0)):
        return "read-only file system" if _read_only(directory) else "permission denied"
    if writing and not os.access(directory, os.W_OK):
        why = "is on a read-only file system" if _read_only(directory) else "is not writable"
        return f"the directory {directory} {why} (smswatch keeps its files beside the database)"
    if db.is_dir():
        return "it is a directory"
    for suffix in SIDE_FILES if writing else ():
        side = db.with_name(db.name + suffix)
        if side.is_dir():
            return f"{side} (which smswatch keeps beside the database) is a directory"
        if side.exists() and not os.access(side, os.R_OK | os.W_OK):
            return f"{side} (which smswatch keeps beside the database) is not writable"
    return None


def cannot_open(db: Path, exc: BaseException | None = None) -> CannotOpen:
    """A database file (or a file beside it) failed to open or be made: say what is wrong with
    the path, from the file system first, else from the error."""
    problem = location_problem(db)
    if problem is None and isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        problem = f"cannot create{where}: {reason(exc)}"
    if problem is None:
        problem = str(exc) if exc is not None else "unknown error"
    return CannotOpen(f"cannot open the database {db}: {problem}")
