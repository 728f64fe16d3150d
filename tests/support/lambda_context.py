"""A tiny Lambda context for handler tests (the attributes of the Python runtime's context).

https://docs.aws.amazon.com/lambda/latest/dg/python-context.html
"""

from __future__ import annotations

import attrs


@attrs.frozen
class FakeLambdaContext:
    """What the handlers (and Powertools) may read from ``context``."""

    function_name: str = "timeline-ws-test"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:timeline-ws-test"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name: str = "/aws/lambda/timeline-ws-test"
    log_stream_name: str = "2026/01/03/[$LATEST]abcdef"

    def get_remaining_time_in_millis(self) -> int:
        """Always 29 s: the tests never run near a timeout."""
        return 29_000


CONTEXT = FakeLambdaContext()
