"""A small TCP proxy (asyncio) that injects network faults between the gateway and a store.

Run as its own process: ``python -m tests.soak.proxy --target-port PORT``. It binds
127.0.0.1 on a free port, prints ``LISTENING <port>`` on stdout, then reads one command per
line on stdin and answers each with one line (``OK <mode>`` or ``ERROR <why>``):

``PASS``
    Forward every byte at once (the healthy network).
``LATENCY <ms>``
    Deliver every chunk ``ms`` milliseconds after it was read, in each direction (so a
    request and its reply take ``2 * ms`` more), keeping each stream's order.
``BLACKHOLE``
    A network partition: nothing crosses. Connections that were established before it hold
    what they read and deliver it, in order, when the partition heals (what TCP's
    retransmissions do after a short partition; so a command whose client timed out can
    still run late, as it can on a real network). Connections accepted during it never
    reach the target (a real client's SYN would be dropped: it never connected) and are
    closed at the heal.
``REFUSE``
    The endpoint is gone, as when its server is killed: the listening socket is closed (new
    connections are refused with RST) and every open connection is reset. ``PASS`` listens
    again on the same port.
``STATS``
    ``OK <mode> open=<connections> accepted=<total>``.

End of stdin (the soak runner exited, however it exited) stops the proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from typing import Final

import attrs

HOST: Final = "127.0.0.1"
CHUNK_BYTES: Final = 65536

PASS: Final = "PASS"
LATENCY: Final = "LATENCY"
BLACKHOLE: Final = "BLACKHOLE"
REFUSE: Final = "REFUSE"


@attrs.define(eq=False)
class _Link:
    """One accepted client and its connection to the target; two one-way pumps."""

    downstream: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    dark: bool = False
    """Accepted during a blackhole: never forwarded, closed at the heal."""

    def abort(self) -> None:
        """Reset both sides (RST, no FIN)."""
        for writer in (self.downstream, self.upstream):
            if writer is not None:
                writer.transport.abort()


_RESET: Final = None
"""The end-of-stream marker for a connection reset (``b""`` marks a clean FIN)."""


class FaultProxy:
    """The proxy's state: mode, the listening server and the live links."""

    def __init__(self, target_port: int, listen_port: int = 0) -> None:
        self.target_port = target_port
        self.port = listen_port
        self.mode = PASS
        self.latency_seconds = 0.0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.healed = asyncio.Event()
        self.links: set[_Link] = set()
        self.handlers: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self._server: asyncio.Server | None = None

    async def listen(self) -> None:
        """Bind (``self.port``, 0 picks one) and accept; ``self.port`` is the real port after."""
        self._server = await asyncio.start_server(
            self._accept, HOST, self.port, reuse_address=True, backlog=1024
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def command(self, line: str) -> str:
        """Apply one control command; returns the answer line."""
        words = line.split()
        if not words:
            return "ERROR empty command"
        verb = words[0].upper()
        if verb == "STATS":
            return f"OK {self.mode} open={len(self.links)} accepted={self.accepted}"
        if verb == LATENCY:
            try:
                milliseconds = float(words[1])
            except (IndexError, ValueError):
                return "ERROR LATENCY needs milliseconds"
            await self._heal()
            self.latency_seconds = max(0.0, milliseconds) / 1000
            self.mode = LATENCY
            return f"OK {LATENCY} {milliseconds:g}"
        if verb == PASS:
            await self._heal()
            self.latency_seconds = 0.0
            self.mode = PASS
            return f"OK {PASS}"
        if verb == BLACKHOLE:
            await self._heal()
            self.flowing.clear()
            self.healed = asyncio.Event()
            self.mode = BLACKHOLE
            return f"OK {BLACKHOLE}"
        if verb == REFUSE:
            await self._heal()
            if self._server is not None:
                self._server.close()
                self._server = None
            for link in list(self.links):
                link.abort()
            self.links.clear()
            self.mode = REFUSE
            return f"OK {REFUSE}"
        return f"ERROR unknown command {verb}"

    async def close(self) -> None:
        """Stop listening, reset every link and wait (bounded) for their handlers to end."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self.flowing.set()
        self.healed.set()
        for link in list(self.links):
            link.abort()
        if self.handlers:
            await asyncio.wait(set(self.handlers), timeout=5)

    async def _heal(self) -> None:
        """Leave the current fault: release held data, close dark links, listen again."""
        if self.mode == BLACKHOLE:
            self.flowing.set()
            self.healed.set()
        if self.mode == REFUSE and self._server is None:
            await self.listen()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(downstream=writer)
        self.links.add(link)
        handler = asyncio.current_task()
        if handler is not None:
            self.handlers.add(handler)
        try:
            if self.mode == BLACKHOLE:
                link.dark = True
                await self._swallow_until_healed(reader)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
            except OSError:
                return  # the target is down: the client sees a reset (below)
            link.upstream = up_writer
            await asyncio.gather(
                self._pump(link, reader, up_writer), self._pump(link, up_reader, writer)
            )
        finally:
            self.links.discard(link)
            if handler is not None:
                self.handlers.discard(handler)
            if link.upstream is None:
                link.abort()
            else:
                for side in (writer, link.upstream):
                    side.close()

    async def _swallow_until_healed(self, reader: asyncio.StreamReader) -> None:
        """Read and drop what a client sends into the partition until it heals or the client leaves."""
        healed = asyncio.create_task(self.healed.wait())
        try:
            while True:
                read = asyncio.create_task(reader.read(CHUNK_BYTES))
                await asyncio.wait({read, healed}, return_when=asyncio.FIRST_COMPLETED)
                if not read.done():
                    read.cancel()
                    return
                try:
                    if not read.result():
                        return
                except OSError:
                    return
        finally:
            healed.cancel()

    async def _pump(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Copy one direction in order, honouring latency and blackholes; FIN and RST travel too."""
        queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()

        async def read_side() -> None:
            while True:
                try:
                    chunk: bytes | None = await reader.read(CHUNK_BYTES)
                except OSError:
                    chunk = _RESET
                queue.put_nowait((time.monotonic() + self.latency_seconds, chunk))
                if not chunk:
                    return

        reading = asyncio.create_task(read_side())
        try:
            while True:
                due, chunk = await queue.get()
                await self.flowing.wait()
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # the injected latency itself
                if chunk is _RESET:
                    link.abort()
                    return
                if not chunk:
                    with contextlib.suppress(OSError):
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                writer.write(chunk)
                await writer.drain()
        except OSError:
            link.abort()  # the receiving side is gone: the sending side learns it by a reset
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading


async def serve(target_port: int, listen_port: int) -> None:
    """Listen, announce the port, then obey stdin until it closes."""
    proxy = FaultProxy(target_port, listen_port)
    await proxy.listen()
    print(f"LISTENING {proxy.port}", flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while True:
        line = await stdin.readline()
        if not line:
            break
        print(await proxy.command(line.decode("utf-8", "replace")), flush=True)
    await proxy.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak.proxy", description=__doc__)
    parser.add_argument("--target-port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--listen-port", type=int, default=0, help="default: a free one")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.target_port, args.listen_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
