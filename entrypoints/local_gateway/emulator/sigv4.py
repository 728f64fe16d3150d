"""Signature Version 4 verification for emulated AWS APIs, parametrised by service and region.

The emulator's ``@connections`` (service ``execute-api``) uses it; any other emulated AWS API
(Lambda's ``Invoke``, service ``lambda``) can use it with the same credential rules. The
expected signature is recomputed from the received request with botocore's own signer
(:class:`botocore.auth.SigV4Auth`: canonical request, string to sign, signing key), so the
rules are the ones AWS's SDKs sign by, not a second implementation of them.

Refusals are AWS's, as documented in "Troubleshoot signed requests for AWS APIs"
(https://docs.aws.amazon.com/IAM/latest/UserGuide/signature-v4-troubleshooting.html) and for
API Gateway's IAM authorization in
https://repost.aws/knowledge-center/api-gateway-iam-sigv4-mismatch:

- no ``Authorization`` header: 403 ``ForbiddenException`` ``Missing Authentication Token``;
- a malformed one (no ``Credential``, ``SignedHeaders`` or ``Signature``, no ``X-Amz-Date``,
  ``host`` not signed): 403 ``IncompleteSignatureException``;
- an access key the API does not know, or a session token for credentials that have none:
  403 ``UnrecognizedClientException`` ``The security token included in the request is invalid.``;
- a credential scope with another date, region or service, a request date more than 5 minutes
  in the past (``Signature expired: …``) or future (``Signature not yet current: …``), or a
  signature that does not match: 403 ``InvalidSignatureException``.

Query-string (presigned) authentication is not accepted: such a request counts as unsigned
(where AWS's support for it on ``@connections`` is not documented, the strict answer).
"""

from __future__ import annotations

import datetime
import hmac
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import attrs
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

ALGORITHM: Final = "AWS4-HMAC-SHA256"
MAX_CLOCK_SKEW_SECONDS: Final = 300.0
"""A request date more than 5 minutes from the server's clock is refused (AWS's window)."""

SIGNATURE_MISMATCH: Final = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
INVALID_TOKEN: Final = "The security token included in the request is invalid."  # noqa: S105
MISSING_TOKEN: Final = "Missing Authentication Token"  # noqa: S105

_AUTHORIZATION_FIELD: Final = re.compile(r"\s*([A-Za-z]+)=([^,\s]*)\s*")


@attrs.frozen(slots=True)
class AwsCredentials:
    """An access key id and its secret (never shown: ``repr`` hides it)."""

    access_key_id: str
    secret_access_key: str = attrs.field(repr=False)

    @classmethod
    def parse(cls, text: str) -> AwsCredentials:
        """``KEY:SECRET`` -> credentials.

        Raises:
            ValueError: no ``:``, or an empty key or secret (the message never quotes the secret).
        """
        key, separator, secret = text.partition(":")
        if not separator or not key or not secret:
            raise ValueError("expected KEY:SECRET, both non-empty")
        if not key.isascii() or not key.isprintable() or "/" in key:
            raise ValueError("the access key id must be printable ASCII without '/'")
        return cls(key, secret)


DEFAULT_CREDENTIALS: Final = AwsCredentials("test", "test")
"""What local AWS stand-ins (moto, LocalStack) accept by convention."""


@attrs.frozen(slots=True)
class AwsRefusal:
    """An AWS error answer: HTTP ``status``, ``x-amzn-ErrorType``, the body's ``message`` and,
    for the log only, ``reason`` (never the signature, a secret or a token)."""

    status: int
    error_type: str
    message: str
    reason: str
    message_key: str = "message"


class SigV4Error(Exception):
    """A request the verifier refuses; ``refusal`` is AWS's answer to it."""

    def __init__(self, refusal: AwsRefusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


@attrs.frozen(slots=True)
class _Authorization:
    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


class _ReceivedRequestSigner(SigV4Auth):
    """botocore's signer over exactly the headers the client listed in ``SignedHeaders``."""

    def __init__(self, credentials: Credentials, service: str, region: str, signed: Sequence[str]):
        super().__init__(credentials, service, region)
        self._signed = frozenset(signed)

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name, value in request.headers.items():
            if name.lower() in self._signed:
                headers[name.lower()] = value
        return headers


def _incomplete(reason: str) -> SigV4Error:
    return SigV4Error(AwsRefusal(403, "IncompleteSignatureException", reason, reason))


def _invalid(message: str, reason: str | None = None) -> SigV4Error:
    return SigV4Error(AwsRefusal(403, "InvalidSignatureException", message, reason or message))


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def parse_authorization(value: str) -> _Authorization:
    """The fields of an ``AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`` header.

    Raises:
        SigV4Error: 403 ``IncompleteSignatureException`` naming what is missing.
    """
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"Unsupported authorization algorithm (expected {ALGORITHM})")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        match = _AUTHORIZATION_FIELD.fullmatch(part)
        if match:
            fields[match.group(1)] = match.group(2)
    for required in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(required):
            raise _incomplete(f"Authorization header requires '{required}' parameter.")
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise _incomplete(
            "Credential must have exactly 5 slash-delimited elements, "
            "e.g. keyid/date/region/service/term"
        )
    key, date, region, service, terminator = scope
    return _Authorization(
        access_key_id=key,
        date=date,
        region=region,
        service=service,
        terminator=terminator,
        signed_headers=tuple(fields["SignedHeaders"].lower().split(";")),
        signature=fields["Signature"],
    )


class SigV4Verifier:
    """Verifies SigV4-signed requests for one AWS service in one region.

    Args:
        service: the signing name, e.g. ``execute-api`` (``@connections``) or ``lambda``.
        region: the region requests must be scoped to, e.g. ``us-east-1``.
        credentials: the access keys the emulated account knows.
        clock: seconds since the epoch (UTC); the request date must be within
            :data:`MAX_CLOCK_SKEW_SECONDS` of it.
    """

    def __init__(
        self,
        *,
        service: str,
        region: str,
        credentials: Iterable[AwsCredentials],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.region = region
        self._secrets = {c.access_key_id: c.secret_access_key for c in credentials}
        self._clock = clock

    def verify(
        self, *, method: str, url: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> str:
        """Check the request's signature; returns the access key id that signed it.

        Args:
            method: the HTTP method as received.
            url: ``scheme://host`` plus the raw (still percent-encoded) path and query, exactly
                as received: the canonical URI is computed from it as the client computed it.
            headers: the received headers, names in any case, repeated names kept.
            body: the whole request body.

        Raises:
            SigV4Error: the request is refused (see the module docstring for each case).
        """
        authorization = _header(headers, "authorization")
        if authorization is None:
            raise SigV4Error(
                AwsRefusal(403, "ForbiddenException", MISSING_TOKEN, "the request is not signed")
            )
        auth = parse_authorization(authorization)
        if "host" not in auth.signed_headers:
            raise _incomplete("'Host' must be a 'SignedHeader' in the AWS Authorization.")
        amz_date = _header(headers, "x-amz-date")
        if amz_date is None:
            raise _incomplete("Authorization header requires existence of a 'X-Amz-Date' header.")
        try:
            signed_at = datetime.datetime.strptime(amz_date, SIGV4_TIMESTAMP).replace(
                tzinfo=datetime.UTC
            )
        except ValueError:
            raise _incomplete("X-Amz-Date must be in the ISO8601 Long Format") from None
        secret = self._secrets.get(auth.access_key_id)
        if secret is None:
            raise SigV4Error(
                AwsRefusal(
                    403,
                    "UnrecognizedClientException",
                    INVALID_TOKEN,
                    f"unknown access key id {auth.access_key_id!r}",
                )
            )
        if _header(headers, "x-amz-security-token") is not None:
            raise SigV4Error(
                AwsRefusal(
                    403,
                    "UnrecognizedClientException",
                    INVALID_TOKEN,
                    f"a session token with the long-term access key {auth.access_key_id!r}",
                )
            )
        self._check_scope(auth, amz_date)
        self._check_time(signed_at, amz_date)
        signer = _ReceivedRequestSigner(
            Credentials(auth.access_key_id, secret), self.service, self.region, auth.signed_headers
        )
        request = AWSRequest(method=method, url=url, data=body)
        for name, value in headers:  # repeated names kept: they are signed comma-joined
            request.headers[name] = value
        request.context["timestamp"] = amz_date
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        if not _constant_time_equal(expected, auth.signature):
            raise _invalid(
                SIGNATURE_MISMATCH,
                f"signature mismatch for access key id {auth.access_key_id!r} "
                "(wrong secret, or the request was changed after signing)",
            )
        return auth.access_key_id

    def _check_scope(self, auth: _Authorization, amz_date: str) -> None:
        if auth.date != amz_date[:8]:
            raise _invalid(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                f"date from HTTP: '{auth.date}' != '{amz_date[:8]}', from '{amz_date}'."
            )
        if auth.region != self.region:
            raise _invalid(
                f"Credential should be scoped to a valid region, not '{auth.region}'. ",
                f"credential scoped to region {auth.region!r}, this API is in {self.region!r}",
            )
        if auth.service != self.service:
            raise _invalid(
                f"Credential should be scoped to correct service: '{self.service}'. ",
                f"credential scoped to service {auth.service!r}, expected {self.service!r}",
            )
        if auth.terminator != "aws4_request":
            raise _invalid(
                "Credential should be scoped with a valid terminator: 'aws4_request', "
                f"not '{auth.terminator}'. "
            )

    def _check_time(self, signed_at: datetime.datetime, amz_date: str) -> None:
        now = datetime.datetime.fromtimestamp(self._clock(), datetime.UTC)
        skew = datetime.timedelta(seconds=MAX_CLOCK_SKEW_SECONDS)
        minutes = int(MAX_CLOCK_SKEW_SECONDS // 60)
        if signed_at < now - skew:
            raise _invalid(
                f"Signature expired: {amz_date} is now earlier than "
                f"{_stamp(now - skew)} ({_stamp(now)} - {minutes} min.)"
            )
        if signed_at > now + skew:
            raise _invalid(
                f"Signature not yet current: {amz_date} is still later than "
                f"{_stamp(now + skew)} ({_stamp(now)} + {minutes} min.)"
            )


def _stamp(moment: datetime.datetime) -> str:
    return moment.strftime(SIGV4_TIMESTAMP)


def _constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
