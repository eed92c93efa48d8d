"""Where the monitor's CPU goes at a campaign's rate, per thread, in 5 s windows.

    python -m benchmarks.thread_cpu [tui|serve] [SECONDS] [RATE]

The server runs as `make bench` runs it (`benchmarks.run.server`, CPU 0) with `loadgen open` at
RATE events/s on CPU 1; each window prints the process's share of a core and each thread's, by
thread id relative to the process (0 is the main thread: the UI in the monitor, the engine in
`serve`; in the monitor 1 is the engine's loop and 2 the writer). Run it on another checkout
with PYTHONPATH=<checkout>/src to compare commits on the same machine.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.run import loadgen, server

TICK = os.sysconf("SC_CLK_TCK")


def thread_seconds(pid: int) -> dict[int, float]:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[int(tid) - pid] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "tui"
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    with tempfile.TemporaryDirectory() as tmp, server(kind, Path(tmp) / "c.db") as srv:
        load = threading.Thread(target=loadgen, args=("open", srv.url, rate, seconds))
        load.start()
        before, started = thread_seconds(srv.pid), time.monotonic()
        for _ in range(seconds // 5):
            time.sleep(5)
            now, at = thread_seconds(srv.pid), time.monotonic()
            share = {
                t: 100 * (v - before.get(t, 0)) / (at - started)
                for t, v in now.items()
                if v > before.get(t, 0)
            }
            busiest = sorted(share.items(), key=lambda kv: -kv[1])
            print(
                f"{sum(share.values()):5.1f}%  "
                + "  ".join(f"thread {t}: {v:.1f}" for t, v in busiest)
            )
            before, started = now, at
        load.join()


if __name__ == "__main__":
    main()
