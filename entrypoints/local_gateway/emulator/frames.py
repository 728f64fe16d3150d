"""WebSocket frames at API Gateway's 32 KB frame quota, both ways.

"WebSocket frame size: 32 KB … Due to the WebSocket frame-size quota of 32 KB, a message
larger than 32 KB must be split into multiple frames, each 32 KB or smaller. This applies
to @connections commands. If a larger message (or larger frame size) is received, the
connection is closed with code 1009."
(https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html)

aiohttp reassembles fragmented messages before the application sees them and writes every
message as one frame, with no hook for either. So :class:`FrameSizeGuard` reads the frame
headers of the raw bytes before aiohttp's parser does (it never unmasks or copies a payload),
and :func:`send_fragmented` writes the frames itself.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any, Final

MAX_FRAME_BYTES: Final = 32 * 1024
"""API Gateway's frame quota: 32 KB (32,768 bytes of payload; a frame of exactly that passes)."""

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
_FIN: Final = 0x80


class FrameSizeGuard:
    """Stands in front of aiohttp's WebSocket parser and drops any frame over ``limit`` bytes.

    Every byte of the frames within the limit goes on to ``parser`` unchanged; an oversized
    frame (header and payload) never reaches it, and ``on_oversized`` is called once, when
    its header arrives. ``parser`` is aiohttp's ``WebSocketReader`` (``feed_data`` /
    ``feed_eof``), and this object takes its place on the connection's protocol
    (:func:`guard_frames`).
    """

    def __init__(self, parser: Any, limit: int, on_oversized: Callable[[], None]) -> None:
        self._parser = parser
        self._limit = limit
        self._on_oversized = on_oversized
        self._header = bytearray()
        self._payload_left = 0
        self._dropping = False
        self.tripped = False

    def feed_eof(self) -> None:
        self._parser.feed_eof()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        """Scan ``data`` for frame boundaries and pass on what is not oversized; aiohttp's contract."""
        data = bytes(data)
        keep = bytearray()  # what goes on: a header only once its frame is known to fit
        position = 0
        while position < len(data):
            if self._payload_left:
                take = min(self._payload_left, len(data) - position)
                if not self._dropping:
                    keep += data[position : position + take]
                self._payload_left -= take
                position += take
                continue
            self._header.append(data[position])
            position += 1
            needed = _header_length(self._header)
            if needed is None or len(self._header) < needed:
                continue
            length = _payload_length(self._header)
            # Once one frame was too big, no data frame is passed on (the connection is
            # closing), so a dropped fragment never confuses the parser; control frames (the
            # client's close) still are.
            self._dropping = (self._header[0] & 0x0F) < 0x8 and (
                self.tripped or length > self._limit
            )
            if self._dropping and not self.tripped:
                self.tripped = True
                self._on_oversized()
            if not self._dropping:
                keep += self._header
            self._header.clear()
            self._payload_left = length
        if not keep:
            return False, b""
        result: tuple[bool, bytes] = self._parser.feed_data(bytes(keep))
        return result


def _header_length(header: bytearray) -> int | None:
    """The full header's length once its first two bytes are known, else ``None``."""
    if len(header) < 2:
        return None
    length_flag = header[1] & 0x7F
    extra = 2 if length_flag == 126 else 8 if length_flag == 127 else 0
    mask = 4 if header[1] & 0x80 else 0
    return 2 + extra + mask


def _payload_length(header: bytearray) -> int:
    length_flag = header[1] & 0x7F
    if length_flag == 126:
        return int(struct.unpack_from("!H", header, 2)[0])
    if length_flag == 127:
        return int(struct.unpack_from("!Q", header, 2)[0])
    return length_flag


def guard_frames(protocol: Any, limit: int, on_oversized: Callable[[], None]) -> FrameSizeGuard:
    """Put a :class:`FrameSizeGuard` in front of the parser aiohttp set on ``protocol``.

    Call it right after ``WebSocketResponse.prepare()`` (before any frame was read).
    aiohttp keeps the parser in ``RequestHandler._payload_parser`` and has no public hook.
    """
    guard = FrameSizeGuard(protocol._payload_parser, limit, on_oversized)
    protocol._payload_parser = guard
    return guard


def frame(opcode: int, payload: bytes, *, fin: bool) -> bytes:
    """One unmasked (server-to-client) frame."""
    first = (_FIN if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length < 65536:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload


def fragments(opcode: int, payload: bytes, max_frame_bytes: int) -> bytes:
    """``payload`` as one message of frames of at most ``max_frame_bytes`` each (RFC 6455 §5.4)."""
    if len(payload) <= max_frame_bytes:
        return frame(opcode, payload, fin=True)
    parts = [payload[i : i + max_frame_bytes] for i in range(0, len(payload), max_frame_bytes)]
    return b"".join(
        frame(opcode if index == 0 else OP_CONTINUATION, part, fin=index == len(parts) - 1)
        for index, part in enumerate(parts)
    )


def send_fragmented(
    transport: asyncio.BaseTransport, data: str | bytes, max_frame_bytes: int
) -> None:
    """Write ``data`` (text for ``str``, binary for ``bytes``) as frames of at most ``max_frame_bytes``.

    All frames are written in one synchronous call, so no other frame of the connection can
    come between them.

    Raises:
        ConnectionResetError: the transport is closing.
    """
    if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
        raise ConnectionResetError("cannot write to a closing transport")
    if isinstance(data, str):
        message = fragments(OP_TEXT, data.encode("utf-8", errors="surrogatepass"), max_frame_bytes)
    else:
        message = fragments(OP_BINARY, data, max_frame_bytes)
    transport.write(message)
