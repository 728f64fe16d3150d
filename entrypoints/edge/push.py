"""The ``push`` function: other services reach users through it (Lambda's Invoke API).

Event: ``{"userIds": ["<user id>", ...], "message": <any JSON value, or a string>}``. A
string is the frame's text as is; any other JSON value is serialized compactly
(``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``) and that text is the frame.

Result: ``{"delivered": n, "gone": n, "failed": n, "unavailable": n, "users": {"<user id>":
{"delivered": n, "gone": n, "failed": n, "unavailable": bool}}}``; a refused event:
``{"error": "bad_request" | "invalid_push", "message": "..."}`` and nothing was posted (the
invocation wrapper, ``invocation.py``, shapes failures). README, "Delivering to users".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Final

from application.commands import PushCommand, PushResult
from application.use_cases import Push
from entrypoints.edge.events import MalformedEventError
from entrypoints.edge.invocation import Handled, Report, Request
from entrypoints.observability import PUSH_DELIVERED, PUSH_FAILED, PUSH_GONE, PUSH_UNAVAILABLE

PUSHED: Final = Report(logging.INFO, "pushed")
PUSH_REJECTED: Final = Report(logging.WARNING, "push rejected")


def read_push_event(event: Any) -> PushCommand:
    """The command a push event asks for.

    Raises:
        MalformedEventError: not an object; ``userIds`` missing, not a list, or holding
            anything but non-empty strings; ``message`` missing. Bounds (empty, too many
            users, too large) are the use case's.
    """
    if not isinstance(event, dict):
        raise MalformedEventError(
            'the event must be a JSON object {"userIds": [...], "message": ...}'
        )
    user_ids = event.get("userIds")
    if "userIds" not in event:
        raise MalformedEventError('"userIds" is missing')
    if not isinstance(user_ids, list):
        raise MalformedEventError('"userIds" must be a list of user ids')
    for index, user_id in enumerate(user_ids):
        if not isinstance(user_id, str) or not user_id:
            raise MalformedEventError(f'"userIds"[{index}] must be a non-empty string')
    if "message" not in event:
        raise MalformedEventError('"message" is missing')
    message = event["message"]
    text = (
        message
        if isinstance(message, str)
        else json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    )
    return PushCommand(user_ids=tuple(user_ids), message=text)


def result_body(result: PushResult) -> dict[str, Any]:
    """The function's result (module docstring)."""
    return {
        "delivered": result.delivered,
        "gone": result.gone,
        "failed": result.failed,
        "unavailable": result.unavailable,
        "users": {
            user.user_id: {
                "delivered": user.delivered,
                "gone": user.gone,
                "failed": user.failed,
                "unavailable": user.unavailable,
            }
            for user in result.users
        },
    }


class PushRoute:
    """``push``: read the event, run :class:`~application.use_cases.Push`, return its counts.

    Its INFO line carries the totals and is the EMF document counting ``PushDelivered``,
    ``PushGone``, ``PushFailed`` (the failed-deliveries alarm's metric) and
    ``PushUnavailable``. A refused push is a WARNING with its reason.
    """

    name = "push"
    two_way = False
    direct = True
    rejection = PUSH_REJECTED

    def __init__(self, push: Callable[[], Push]) -> None:
        self._push = push

    def read(self, event: Any) -> Request:
        """The command. Raises ``MalformedEventError``."""
        command = read_push_event(event)
        return Request(
            route=self.name,
            connection_id=None,
            payload=command,
            fields={"users": len(command.user_ids), "message_bytes": len(command.message.encode())},
        )

    def run(self, request: Request) -> Handled:
        """Push; the result's counts."""
        result = self._push().execute(request.payload)
        return Handled(
            outcome="pushed",
            message=PUSHED.message,
            report=PUSHED,
            fields={"delivered": result.delivered, "gone": result.gone, "failed": result.failed},
            counts={
                PUSH_DELIVERED: result.delivered,
                PUSH_GONE: result.gone,
                PUSH_FAILED: result.failed,
                PUSH_UNAVAILABLE: result.unavailable,
            },
            body=result_body(result),
        )
