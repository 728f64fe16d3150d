"""Frames to WebSocket clients, and closes, through the API Gateway Management API (boto3).

Replies to a client's own message (a pong, an error frame) do not come here: they are the
``$default`` route response. This adapter serves what only the Management API can do:
pushing a frame the client did not ask for, and closing a connection.

boto3 is imported and the client built on the first ``send`` or ``close``, not when a sender
is made: a healthy ping never pays for it.

Follows https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html:
``POST``/``DELETE`` ``https://{domainName}/{stage}/@connections/{connectionId}``; a
connection that no longer exists answers HTTP 410 ``GoneException``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from adapters.lazy import Lazy
from application.ports import MessageSender
from domain.errors import (
    ConnectionGoneError,
    MessageSendError,
    PayloadTooLargeError,
    ThrottledError,
)
from domain.protocol import MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    import boto3.session

_GONE_CODE = "GoneException"
_TOO_LARGE_CODE = "PayloadTooLargeException"
_HTTP_GONE = 410
_HTTP_TOO_LARGE = 413
_THROTTLED_CODE = "LimitExceededException"
_HTTP_THROTTLED = 429


def management_endpoint(domain_name: str, stage: str) -> str:
    """The Management API endpoint of a WebSocket API stage: ``https://{domainName}/{stage}``.

    ``domain_name`` and ``stage`` are ``requestContext.domainName`` and
    ``requestContext.stage`` of the API Gateway event. With a custom domain the event's
    domain name is the custom one; configure an override when its mapping adds a base path.
    See https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html.

    Raises:
        ValueError: on an empty domain name or stage.
    """
    if not domain_name or not stage:
        raise ValueError("the Management API endpoint needs a domain name and a stage")
    return f"https://{domain_name}/{stage}"


class ManagementApiClients:
    """One boto3 ``apigatewaymanagementapi`` client per endpoint URL for the whole process.

    Senders are cheap and cached per URL; each builds its client on its first call (importing
    boto3 then); building is serialised by a lock (boto3 sessions are not thread-safe, the
    clients they make are). Each client has a botocore
    ``Config`` with short timeouts and ``standard`` retries bounded by ``max_attempts``
    (attempts in total, first one included).

    Args:
        region_name: signing region; ``None`` uses boto3's own resolution (``AWS_REGION``,
            which Lambda sets to the API's region).
        connect_timeout_seconds: TCP/TLS connect timeout, seconds.
        read_timeout_seconds: wait for the response, seconds.
        max_attempts: total attempts per call (botocore standard retry mode: throttling,
            ``LimitExceededException`` included, and 5xx are retried, 410 and 413 are not).
            The push's clients use 1: its use case retries a 429 itself, with its own
            backoff and bound, and botocore retrying too would multiply the attempts.
        max_pool_connections: HTTP connections each client keeps (botocore's default 10;
            the local gateway passes its handler threads).
        credentials: an access key id and secret to sign with instead of boto3's own
            credential chain (the local gateway's stand-ins); ``None`` in Lambda.
    """

    def __init__(
        self,
        *,
        region_name: str | None = None,
        connect_timeout_seconds: float = 1.0,
        read_timeout_seconds: float = 2.0,
        max_attempts: int = 2,
        max_pool_connections: int = 10,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self._region_name = region_name
        self._credentials = credentials
        self._max_pool_connections = max_pool_connections
        self._connect_timeout_seconds = connect_timeout_seconds
        self._read_timeout_seconds = read_timeout_seconds
        self._max_attempts = max_attempts
        self._lock = threading.Lock()
        self._session: boto3.session.Session | None = None
        self._senders: dict[str, ApiGatewayMessageSender] = {}

    def sender_for(self, endpoint_url: str) -> ApiGatewayMessageSender:
        """The sender for ``endpoint_url`` (e.g. ``https://abc123.execute-api.eu-west-1.amazonaws.com/prod``).

        The same URL always returns the same sender and client.

        Raises:
            ValueError: on an empty endpoint URL.
        """
        if not endpoint_url:
            raise ValueError("endpoint_url must not be empty")
        endpoint_url = endpoint_url.rstrip("/")
        sender = self._senders.get(endpoint_url)
        if sender is not None:
            return sender
        with self._lock:
            sender = self._senders.get(endpoint_url)
            if sender is None:
                sender = ApiGatewayMessageSender(lambda: self._build_client(endpoint_url))
                self._senders[endpoint_url] = sender
            return sender

    def _build_client(self, endpoint_url: str) -> Any:
        # boto3 is imported here, not at module import: importing it costs ~150-250 ms, and
        # no healthy invocation posts to a connection. Only closing an expired connection
        # pays, once per process.
        import boto3.session
        from botocore.config import Config

        with self._lock:
            if self._session is None:
                self._session = boto3.session.Session(*(self._credentials or ()))
            session = self._session
        config = Config(
            connect_timeout=self._connect_timeout_seconds,
            read_timeout=self._read_timeout_seconds,
            retries={"mode": "standard", "total_max_attempts": self._max_attempts},
            max_pool_connections=self._max_pool_connections,
        )
        return session.client(
            "apigatewaymanagementapi",
            endpoint_url=endpoint_url,
            region_name=self._region_name,
            config=config,
        )


class ApiGatewayMessageSender(MessageSender):
    """Posts frames to, and deletes, connections of one API stage through a boto3 client.

    ``client_factory`` builds the boto3 ``apigatewaymanagementapi`` client; it is called on the
    first ``send`` or ``close`` (thread-safely, again after a failure), never before.
    ``send`` calls ``PostToConnection`` with the raw connectionId (botocore URL-encodes it,
    ``=`` becoming ``%3D``; encoding it here would double-encode it). API Gateway chooses
    the frame type itself, so ``str`` and ``bytes`` both go out as the same bytes (``str``
    as UTF-8).

    Error mapping: ``GoneException`` or HTTP 410 -> :class:`ConnectionGoneError`;
    ``PayloadTooLargeException`` or HTTP 413 -> :class:`PayloadTooLargeError`;
    ``LimitExceededException`` or HTTP 429 (once botocore's own retries, if any, are spent)
    -> :class:`ThrottledError`; any other ``ClientError`` (``ForbiddenException``, ...) or
    ``BotoCoreError`` (timeouts, connection errors) -> :class:`MessageSendError`.
    """

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self._client = Lazy(client_factory)

    @property
    def client(self) -> Any:
        """The boto3 ``apigatewaymanagementapi`` client this sender posts through (built now if not yet)."""
        return self._client.get()

    def send(self, connection_id: str, data: str | bytes) -> None:
        """Post ``data`` to the connection; its size is checked before any request.

        Raises:
            PayloadTooLargeError: more than 128 KB (131072 bytes) in UTF-8; nothing was sent.
            ConnectionGoneError: API Gateway answered 410 ``GoneException``.
            ThrottledError: API Gateway answered 429 ``LimitExceededException``.
            MessageSendError: any other refusal or failure (after bounded retries).
        """
        payload = data.encode("utf-8") if isinstance(data, str) else data
        if len(payload) > MAX_MESSAGE_BYTES:
            raise PayloadTooLargeError()
        from botocore.exceptions import BotoCoreError, ClientError  # loaded with the client

        try:
            self._client.get().post_to_connection(ConnectionId=connection_id, Data=payload)
        except ClientError as exc:
            code, status = _error_code_and_status(exc)
            if code == _GONE_CODE or status == _HTTP_GONE:
                raise ConnectionGoneError() from exc
            if code == _TOO_LARGE_CODE or status == _HTTP_TOO_LARGE:
                raise PayloadTooLargeError() from exc
            if code == _THROTTLED_CODE or status == _HTTP_THROTTLED:
                raise ThrottledError(f"PostToConnection throttled: {code or status}") from exc
            raise MessageSendError(f"PostToConnection failed: {code or status}") from exc
        except BotoCoreError as exc:
            raise MessageSendError(f"PostToConnection failed: {type(exc).__name__}") from exc

    def close(self, connection_id: str) -> None:
        """Close the connection with ``DeleteConnection``; a gone connection is fine.

        Raises:
            MessageSendError: any refusal other than gone, or a transport failure.
        """
        from botocore.exceptions import BotoCoreError, ClientError  # loaded with the client

        try:
            self._client.get().delete_connection(ConnectionId=connection_id)
        except ClientError as exc:
            code, status = _error_code_and_status(exc)
            if code == _GONE_CODE or status == _HTTP_GONE:
                return
            raise MessageSendError(f"DeleteConnection failed: {code or status}") from exc
        except BotoCoreError as exc:
            raise MessageSendError(f"DeleteConnection failed: {type(exc).__name__}") from exc


def _error_code_and_status(exc: Any) -> tuple[str, int | None]:
    # API Gateway has been seen answering 410 with an empty body and no error type header;
    # botocore then reports the code as "410", hence the status code check next to the code.
    response = exc.response
    code = str(response.get("Error", {}).get("Code") or "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code, status if isinstance(status, int) else None
