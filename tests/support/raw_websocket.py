"""A bare RFC 6455 client on a plain socket, to see exactly what a closing handshake does.

Library clients hide what matters here: whether the server waits for the client's close
frame before closing TCP, and whether the client ever sees a reset. This one does the
handshake, sends masked frames, reads frames as they come and reports a reset as such.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
from urllib.parse import urlsplit

import attrs

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def masked_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One client frame (RFC 6455 §5.2: clients mask their payloads)."""
    mask = os.urandom(4)
    length = len(payload)
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    return header + mask + bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))


class HandshakeRefusedError(Exception):
    """The server answered the upgrade with another status than 101."""


@attrs.frozen
class Frame:
    opcode: int
    payload: bytes
    fin: bool = True

    @property
    def close_code(self) -> int | None:
        """The status code of a close frame (``None`` when it carries none)."""
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None


class RawWebSocket:
    """One connection; every read is bounded by ``timeout_seconds``."""

    def __init__(self, url: str, *, timeout_seconds: float = 10.0) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout_seconds)
        self._buffer = b""
        key = base64.b64encode(os.urandom(16)).decode()
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.sock.sendall(
            (
                f"GET {target} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = self._read_until(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            self.sock.close()
            raise HandshakeRefusedError(status)

    def send(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        """Send one masked frame (FIN set unless ``fin`` is false: a fragment to be continued)."""
        self.sock.sendall(masked_frame(opcode, payload, fin=fin))

    def send_close(self, code: int) -> None:
        self.send(CLOSE, struct.pack("!H", code))

    def receive(self) -> Frame:
        """The next frame (the server's frames are not masked)."""
        first, second = self._read(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8))
        return Frame(opcode=first & 0x0F, payload=self._read(length), fin=bool(first & 0x80))

    def receive_message(self, max_frames: int = 64) -> list[Frame]:
        """The frames of the next message: up to its FIN frame, at most ``max_frames``."""
        frames = [self.receive()]
        while not frames[-1].fin and len(frames) < max_frames:
            frames.append(self.receive())
        return frames

    def receive_until_close(self) -> Frame:
        """Frames until the server's close frame, which is returned."""
        while True:
            frame = self.receive()
            if frame.opcode == CLOSE:
                return frame

    def answered_then_eof(self, code: int) -> bool:
        """Send our close frame; True when the server then closes TCP cleanly (EOF).

        Raises:
            ConnectionResetError: the server reset the connection (no clean closing handshake).
        """
        self.send_close(code)
        while True:
            data = self.sock.recv(65536)
            if not data:
                return True

    def close(self) -> None:
        self.sock.close()

    def _read(self, count: int) -> bytes:
        while len(self._buffer) < count:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionAbortedError("the server closed TCP mid-frame")
            self._buffer += data
        chunk, self._buffer = self._buffer[:count], self._buffer[count:]
        return chunk

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionAbortedError("the server closed TCP during the handshake")
            self._buffer += data
        head, self._buffer = self._buffer.split(marker, 1)
        return head
