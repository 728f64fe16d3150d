"""A token verifier driven by a table, for use-case tests."""

from __future__ import annotations

from application.ports import TokenVerifier
from domain.connection import VerifiedIdentity
from domain.errors import DomainError, InvalidTokenError


class InMemoryTokenVerifier(TokenVerifier):
    """Maps known token strings to an identity or to the error their verification raises.

    Unknown tokens raise ``InvalidTokenError("bad_signature")``. ``calls`` counts verifications.
    """

    def __init__(self, tokens: dict[str, VerifiedIdentity | DomainError] | None = None) -> None:
        self.tokens: dict[str, VerifiedIdentity | DomainError] = dict(tokens or {})
        self.calls = 0

    def verify(self, token: str) -> VerifiedIdentity:
        """Look the token up; raise the stored error, or ``bad_signature`` for unknown tokens."""
        self.calls += 1
        outcome = self.tokens.get(token)
        if outcome is None:
            raise InvalidTokenError("bad_signature")
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome
