"""Writing a file that someone else reads (a report, a do-not-send list): whole or not at all."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def write_whole(path: Path, data: bytes) -> int:
    """Write a new or regular file through a temporary file renamed over it: a reader (a
    browser reloading it, a sender loading the list) never sees half of it. Anything else that
    exists (a device such as /dev/null or /dev/stdout, a pipe, a symbolic link) is written
    through, never replaced. Returns the bytes written; raises OSError (IsADirectoryError for a
    directory)."""
    if path.is_symlink() or (path.exists() and not stat.S_ISREG(path.stat().st_mode)):
        if path.is_dir():
            raise IsADirectoryError(21, "it is a directory", str(path))
        with path.open("wb") as stream:
            stream.write(data)
        return len(data)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        umask = os.umask(0)  # mkstemp's file is private; these are made to be shared
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(data)
