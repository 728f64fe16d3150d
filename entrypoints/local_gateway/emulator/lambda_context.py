"""The ``context`` object the local gateway hands each handler invocation.

It has the attributes and method of the Python runtime's context object
(https://docs.aws.amazon.com/lambda/latest/dg/python-context.html), so code that logs
``context.aws_request_id`` or asks ``get_remaining_time_in_millis()`` (Powertools does) works
unchanged.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import attrs

LOCAL_ACCOUNT_ID = "000000000000"
LOCAL_REGION = "local"


@attrs.define(slots=True, kw_only=True)
class LocalLambdaContext:
    """One invocation's context.

    Attributes mirror the Lambda runtime: ``function_name``, ``function_version``
    (``$LATEST``), ``invoked_function_arn``, ``memory_limit_in_mb`` (an ``int``),
    ``aws_request_id`` (a UUID string), ``log_group_name`` (``/aws/lambda/{name}``),
    ``log_stream_name``. ``deadline_monotonic`` is when the invocation times out
    (``time.monotonic()`` seconds).
    """

    function_name: str
    aws_request_id: str
    invoked_function_arn: str
    log_group_name: str
    log_stream_name: str
    deadline_monotonic: float
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 128

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation's timeout (never negative)."""
        return max(0, int((self.deadline_monotonic - time.monotonic()) * 1000))


def lambda_context(function_name: str, timeout_seconds: float) -> LocalLambdaContext:
    """A fresh context for one invocation of ``function_name`` that may run ``timeout_seconds``."""
    today = datetime.now(UTC)
    return LocalLambdaContext(
        function_name=function_name,
        aws_request_id=str(uuid.uuid4()),
        invoked_function_arn=f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{function_name}",
        log_group_name=f"/aws/lambda/{function_name}",
        log_stream_name=f"{today:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
        deadline_monotonic=time.monotonic() + timeout_seconds,
    )
