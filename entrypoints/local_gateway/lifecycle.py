"""How ``timeline-ws serve`` runs: room for thousands of sockets, serving until a signal, a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import sys
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from aiohttp import web

logger = logging.getLogger("timeline_ws.gateway")

FILE_LIMIT_CEILING: Final = 1_048_576


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE toward the hard limit so thousands of sockets fit.

    Returns the (soft, hard) limits in force afterwards; failures leave the limit unchanged.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FILE_LIMIT_CEILING if hard == resource.RLIM_INFINITY else min(hard, FILE_LIMIT_CEILING)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def serve_until_stopped(
    app: web.Application, sock: Any, stop: asyncio.Event | None = None
) -> None:
    """Serve ``app`` on ``sock`` until SIGINT/SIGTERM (or ``stop`` is set), then shut down cleanly.

    A second SIGINT/SIGTERM during the shutdown (e.g. while ``$disconnect`` waits on a hung
    store) exits at once with status 130; records not deleted then expire by their TTL.
    """
    from aiohttp import web

    from entrypoints.local_gateway.emulator.server import GATEWAY_KEY, GatewayRunner

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def stop_now() -> None:
        print(
            "timeline-ws serve: stopped before every $disconnect ran; the records left "
            "expire by their TTL",
            file=sys.stderr,
            flush=True,
        )
        os._exit(130)

    def stop_cleanly() -> None:
        stop.set()
        for signum in installed:  # the next signal does not wait for the shutdown
            loop.add_signal_handler(signum, stop_now)

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop_cleanly)
            installed.append(signum)
    runner = GatewayRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        await stop.wait()
        logger.info(
            "shutting down: closing %d connection(s) with 1001", len(app[GATEWAY_KEY].registry)
        )
        await app[GATEWAY_KEY].shutdown()
    finally:
        await runner.cleanup()
        for signum in installed:
            loop.remove_signal_handler(signum)
