"""Notice when the monitor's terminal goes away, and exit instead of running on unseen.

Closing a terminal hangs up its tty. The kernel sends SIGHUP only to the session leader, and when
smswatch runs under `make` or a shell that is not smswatch but its parent. So the monitor is
told nothing: reads from the dead tty fail with EIO (Textual's input thread then spins on them)
and writes fail too. Left alone it runs on, holding the port and the database, with nobody
watching. This driver treats any of the signs (SIGHUP or SIGTERM, a tty that no longer answers,
a write that fails) as "the terminal is gone": it asks the app to exit, so the caller stops the
engine cleanly, committing what is in flight and closing the database.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

GONE_EXIT_CODE = 129  # 128 + SIGHUP, as a shell reports a hung-up command
PROBE_INTERVAL_S = 0.25

if sys.platform == "win32":  # pragma: no cover - no ttys to hang up there
    TerminalWatchDriver = None
else:
    import termios

    from textual.drivers.linux_driver import LinuxDriver

    class _GuardedOutput:
        """The terminal's output file, where a failed write means the terminal is gone: report
        it once and swallow the rest, so Textual's writer thread never dies (its queue is
        bounded, so a dead writer would block every later frame forever)."""

        def __init__(self, file: IO[str], on_gone: Callable[[str], None]) -> None:
            self._file = file
            self._on_gone = on_gone
            self._gone = False

        def write(self, text: str) -> int:
            if not self._gone:
                try:
                    return self._file.write(text)
                except (OSError, ValueError) as exc:
                    self._failed(exc)
            return len(text)

        def flush(self) -> None:
            if not self._gone:
                try:
                    self._file.flush()
                except (OSError, ValueError) as exc:
                    self._failed(exc)

        def _failed(self, exc: BaseException) -> None:
            self._gone = True
            self._on_gone(f"write to the terminal failed: {exc}")

        def fileno(self) -> int:
            return self._file.fileno()

        def isatty(self) -> bool:
            return True

    def tty_alive(fd: int) -> bool:
        """A hung-up tty answers every ioctl with EIO (Linux; BSDs say ENXIO/ENOTTY)."""
        try:
            termios.tcgetattr(fd)
        except termios.error as exc:
            code = exc.args[0] if exc.args else None
            return code not in (errno.EIO, errno.ENXIO, errno.ENOTTY, errno.EBADF)
        return True

    class TerminalWatchDriver(LinuxDriver):  # type: ignore[no-redef]
        """Textual's Linux driver, plus exit when the terminal goes away."""

        def __init__(self, app: Any, **kwargs: Any) -> None:
            super().__init__(app, **kwargs)
            self._file = _GuardedOutput(self._file, self.terminal_gone)
            self._gone = threading.Event()
            self.gone_reason: str | None = None
            self._watch: threading.Thread | None = None
            for sig in (signal.SIGHUP, signal.SIGTERM):
                signal.signal(sig, self._on_signal)

        def _on_signal(self, signum: int, _frame: object) -> None:
            self.terminal_gone(signal.Signals(signum).name)

        def terminal_gone(self, reason: str) -> None:
            """Ask the app to exit; safe from any thread and from a signal handler."""
            if self._gone.is_set():
                return
            self.gone_reason = reason
            self._gone.set()
            self._app.gone_reason = reason
            self._loop.call_soon_threadsafe(self._app.exit, GONE_EXIT_CODE)

        def start_application_mode(self) -> None:
            super().start_application_mode()
            if self.input_tty:
                self._watch = threading.Thread(
                    target=self._probe, name="smswatch-tty-watch", daemon=True
                )
                self._watch.start()

        def _probe(self) -> None:
            # Polling, because nothing is delivered to us when the tty hangs up under a parent
            # process; a tcgetattr four times a second costs nothing measurable.
            while not self.exit_event.wait(PROBE_INTERVAL_S):
                if not tty_alive(self.fileno):
                    self.terminal_gone("the terminal hung up")
                    return

        def close(self) -> None:
            super().close()
            # Shutting down from here on: a late hang-up must not kill the process before the
            # engine has committed and closed the database; a second SIGTERM still stops it.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def quiet_dead_terminal() -> None:
    """Point stdout and stderr at /dev/null once the terminal is gone, so that nothing printed
    during shutdown (or Python's flush at exit) fails and hides a clean exit behind a
    traceback nobody can read."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    os.close(devnull)
