"""Where the load test's tokens come from: minted from the development key, or read from a file.

Tokens are secrets: nothing here prints or logs one, and errors name the file, never a line.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from entrypoints.local_gateway.dev_cognito import MAX_EXPIRES_IN_SECONDS, DevCognito

MIN_TOKEN_LIFETIME_SECONDS: Final = 3600
TOKEN_LIFETIME_MARGIN_SECONDS: Final = 600

_USER_NAMESPACE: Final = uuid.UUID("6f1c0d52-7b0e-4a53-9d2a-3c1e5f0b7a10")


class TokenSourceError(Exception):
    """No usable tokens: an unreadable or empty token file, or no development key."""


def loadtest_sub(user_index: int) -> str:
    """The ``sub`` of simulated user ``user_index``: a stable UUID (uuid5), distinct per index."""
    return str(uuid.uuid5(_USER_NAMESPACE, f"loadtest-user-{user_index}"))


def token_lifetime_seconds(duration_seconds: float, ramp_seconds: float) -> int:
    """How long minted tokens live: the run plus a margin, at least 1 h, at most Cognito's 1 day."""
    wanted = int(duration_seconds + ramp_seconds) + TOKEN_LIFETIME_MARGIN_SECONDS
    return min(MAX_EXPIRES_IN_SECONDS, max(MIN_TOKEN_LIFETIME_SECONDS, wanted))


def minted_tokens(
    cognito: DevCognito,
    *,
    users: int,
    expires_in_seconds: int,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """One access token per simulated user (``users`` of them), signed by the development key.

    Connection ``i`` uses token ``i % users``: with ``users`` equal to the connection count
    every connection is a distinct user. ``progress`` is called with the count minted so far.

    Raises:
        ValueError: ``users`` below 1 or a lifetime Cognito would not issue.
    """
    if users < 1:
        raise ValueError("users must be at least 1")
    tokens: list[str] = []
    for index in range(users):
        tokens.append(
            cognito.access_token(sub=loadtest_sub(index), expires_in_seconds=expires_in_seconds)
        )
        if progress is not None and (index + 1) % 100 == 0:
            progress(index + 1)
    return tokens


def tokens_from_file(path: Path) -> list[str]:
    """The tokens in ``path``, one per line; blank lines and ``#`` comments are skipped.

    Raises:
        TokenSourceError: the file cannot be read or holds no token.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TokenSourceError(
            f"cannot read the token file {path}: {type(error).__name__}"
        ) from None
    tokens = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    if not tokens:
        raise TokenSourceError(f"the token file {path} holds no token")
    return tokens


def token_for(tokens: Sequence[str], connection_index: int) -> str:
    """The token connection ``connection_index`` presents (round robin over ``tokens``)."""
    return tokens[connection_index % len(tokens)]
