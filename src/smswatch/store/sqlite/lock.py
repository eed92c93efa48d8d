"""One process writes a SQLite database at a time: an exclusive lock on a file beside it.

The state the writer keeps in memory is only right if nobody else appends to the log. The lock
file also says which process holds it, and where that process serves its viewers' feed.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from smswatch.store.errors import DatabaseInUse


class WriterLock:
    """An exclusive lock on `<db>-writer`, held while this process writes the database."""

    def __init__(self, db: Path) -> None:
        self.path = db.with_name(db.name + "-writer")
        self._fd: int | None = None
        self._made = False  # this lock made the file: a failed open removes it again

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: one writer is the user's business
            return
        self._made = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lines = os.read(fd, 512).decode(errors="replace").splitlines()
            os.close(fd)
            holder = lines[0].strip() if lines and lines[0].strip() else "?"
            feed = next((ln[5:].strip() for ln in lines[1:] if ln.startswith("feed ")), None)
            raise DatabaseInUse(
                f"another smswatch (pid {holder}) is writing to {self.path.name[:-7]}; "
                "stop it, or give this one another --db",
                feed,
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def note_feed(self, url: str) -> None:
        """Say in the lock file where this process serves its feed: a second smswatch refused
        the database can then tell its user what to attach to."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\nfeed {url}\n".encode(), 0)

    def release(self, remove: bool = False) -> None:
        """`remove`: the open failed; leave no file behind that the lock made."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            if remove and self._made:
                with contextlib.suppress(OSError):
                    self.path.unlink()
