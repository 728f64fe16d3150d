"""Domain errors. One base class; every error has a default message and a stable ``code``.

The edge (Lambda handlers) maps these classes to HTTP status codes in one table
(``entrypoints/edge/responses.py``); nothing else catches them by message.
"""

from __future__ import annotations

from typing import ClassVar, Final


class DomainError(Exception):
    """Base of every timeline-ws error.

    ``code`` names the class of error; ``reason`` is the finer, secret-free reason code that
    logs and metrics carry (``expired``, ``limit_user``, ``store_unavailable``…), the
    ``code`` unless a subclass says more.
    """

    code: ClassVar[str] = "error"
    default_message: ClassVar[str] = "timeline-ws error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        self.reason = self.code
        super().__init__(self.message)


INVALID_TOKEN_REASONS: Final = frozenset(
    {
        "missing",
        "malformed",
        "too_large",
        "unsupported_alg",
        "unknown_kid",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "issued_in_future",
        "wrong_issuer",
        "wrong_client",
        "wrong_token_use",
        "missing_claim",
        "ambiguous",
    }
)


class InvalidTokenError(DomainError):
    """The token is missing or fails verification. Always an HTTP 401 at the edge.

    ``reason`` is one of :data:`INVALID_TOKEN_REASONS` (``expired``, ``bad_signature``,
    ``wrong_issuer``, ``wrong_client``, ``wrong_token_use``, ``unknown_kid``, ``malformed``,
    ``missing``, …). The message never contains the token or any part of it.
    """

    code = "invalid_token"
    default_message = "the token is missing or invalid"

    def __init__(self, reason: str, message: str | None = None) -> None:
        if reason not in INVALID_TOKEN_REASONS:
            raise ValueError(f"unknown invalid-token reason {reason!r}")
        super().__init__(message or f"invalid token: {reason}")
        self.reason = reason


class VerifierUnavailableError(DomainError):
    """The verifier cannot get the signing keys (JWKS unreachable, nothing cached): HTTP 503."""

    code = "verifier_unavailable"
    default_message = "the token verifier cannot reach its signing keys"


class ConnectionNotFoundError(DomainError):
    """Every store answered and none holds the connection record (expired or never stored)."""

    code = "connection_not_found"
    default_message = "no record of this connection"


class ConnectionGoneError(DomainError):
    """The gateway no longer has the connection (API Gateway ``GoneException``, HTTP 410)."""

    code = "connection_gone"
    default_message = "the connection is gone"


class PayloadTooLargeError(DomainError):
    """A message exceeds API Gateway's 128 KB message limit (measured in UTF-8 bytes)."""

    code = "payload_too_large"
    default_message = "the message is larger than 128 KB"


class StoreUnavailableError(DomainError):
    """No connection store could answer (error or timeout). Connect answers HTTP 503."""

    code = "store_unavailable"
    default_message = "the connection store is unavailable"


class ConnectionLimitExceededError(DomainError):
    """Accepting the connection would pass the global or per-user limit: HTTP 429.

    ``scope`` is ``"global"`` or ``"user"``; ``reason`` is ``limit_global`` or ``limit_user``.
    """

    code = "connection_limit"
    default_message = "too many connections"

    def __init__(self, scope: str, message: str | None = None) -> None:
        self.scope = scope
        super().__init__(message or f"connection limit reached ({scope})")
        self.reason = f"limit_{scope}"


class MessageSendError(DomainError):
    """The gateway refused or failed a post for a reason other than a gone connection."""

    code = "send_failed"
    default_message = "the message could not be delivered"


class ThrottledError(MessageSendError):
    """The gateway throttled a post (API Gateway ``LimitExceededException``, HTTP 429): the
    account's request rate, shared by every API of the region, is exhausted for now, or the
    client's buffer is full. Worth retrying later; nothing was delivered."""

    code = "throttled"
    default_message = "the gateway throttled the message"


class InvalidPushError(DomainError):
    """A push the use case refuses before any post: ``reason`` is ``no_users``,
    ``too_many_users`` or ``payload_too_large``; the message says the bound."""

    code = "invalid_push"
    default_message = "the push is invalid"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
