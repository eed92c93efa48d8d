"""Servers under test, each run as its own process and pinned to one core by the runner.

    python -m benchmarks.servers bare PORT            aiohttp answering 200, doing nothing
    python -m benchmarks.servers lean PORT            an asyncio Protocol with httptools' parser on
                                                      uvloop, answering 200, doing nothing
    python -m benchmarks.servers tui PORT DB [DRAWN]  the live monitor, headless, dashboard up

Each prints `READY` once it listens. `tui` writes one line per drawn delta to DRAWN:
`<wall time of the first frame after it> <event id> …`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import TextIO

from aiohttp import web


async def bare(port: int) -> None:
    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "stored"})

    app = web.Application()
    app.router.add_post("/webhooks/{gateway}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("READY", flush=True)
    await asyncio.Event().wait()


async def lean(port: int) -> None:
    """The HTTP stack smswatch's listener is built on, with nothing behind it: what reading a
    request and answering costs before any of smswatch's own work."""
    import httptools

    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n"
        b'{"status": "stored"}'
    )

    class Bare(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_complete(self) -> None:
            self.transport.write(answer)  # type: ignore[attr-defined]

    server = await asyncio.get_running_loop().create_server(Bare, "127.0.0.1", port)
    print("READY", flush=True)
    await server.serve_forever()


def tui(port: int, db: Path, drawn_path: Path | None) -> None:
    from smswatch.live.datasource import LocalSource
    from smswatch.live.engine import EngineConfig
    from smswatch.live.thread import EngineThread
    from smswatch.runtime import tune_gc
    from smswatch.tui.app import SmsWatchApp

    tune_gc()  # as `smswatch` does (live/monitor.py)
    engine = EngineThread(EngineConfig(db_path=db, port=port)).start()
    out: TextIO | None = drawn_path.open("w") if drawn_path else None

    def drawn(ids: list[str], at: float) -> None:
        assert out is not None
        out.write(f"{at:.6f} {' '.join(ids)}\n")

    app = SmsWatchApp(
        LocalSource(engine), theme="dark", remember_theme=False, drawn=drawn if out else None
    )

    async def announce(pilot: object) -> None:
        # Headless Textual does not turn SIGINT into an exit: do it, so the runner can stop us.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, app.exit)
        print("READY", flush=True)

    try:
        app.run(headless=True, size=(160, 45), auto_pilot=announce)
    finally:
        engine.stop()
        if out:
            out.close()


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "bare":
        asyncio.run(bare(port))
    elif kind == "lean":
        from smswatch.loops import new_event_loop

        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(lean(port))
    elif kind == "tui":
        tui(port, Path(sys.argv[3]), Path(sys.argv[4]) if len(sys.argv) > 4 else None)
    else:
        raise SystemExit(f"unknown server {kind}")


if __name__ == "__main__":
    main()
