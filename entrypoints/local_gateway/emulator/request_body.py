"""Reading a request body under a route's own size limit.

aiohttp's ``request.read()`` applies the application's ``client_max_size`` (1 MiB by default)
to every route; each emulated API has its own quota instead (``@connections`` 128 KB, Lambda's
Invoke 6 MB), so each route reads its body with :func:`read_body`.
"""

from __future__ import annotations

from aiohttp import web

CHUNK_BYTES = 64 * 1024


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole request body, or ``None`` as soon as it exceeds ``limit`` bytes (what is
    left unread is dropped with the connection by aiohttp)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
