"""The scheduled reconciler's Lambda handler (not an API Gateway route)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from application.commands import ReconcileCommand
from application.use_cases import Reconcile
from entrypoints.observability import logger

Response = dict[str, Any]


class ReconcileHandler:
    """The scheduled reconciler: run the ``Reconcile`` use case.

    Invoked every minute by EventBridge (``infra/schedule.tf``) and by the local gateway's
    timer; see ``adapters/connection_store/failover.py``. Answers ``{"statusCode": 200,
    "primaryDeletes": n, "secondaryDeletes": n, "leftInProcess": n}`` (EventBridge ignores
    it), ``{"statusCode": 500}`` after a failure (logged; the next run tries again); never
    raises.
    """

    def __init__(self, reconcile: Callable[[], Reconcile]) -> None:
        self._reconcile = reconcile

    def __call__(self, event: Any, context: Any) -> Response:
        """Replay one batch."""
        try:
            result = self._reconcile().execute(ReconcileCommand())
        except Exception:  # never a failed invocation: the next schedule tries again
            logger.exception("reconcile failed", extra={"route": "reconcile"})
            return {"statusCode": 500}
        return {
            "statusCode": 200,
            "primaryDeletes": result.primary_deletes,
            "secondaryDeletes": result.secondary_deletes,
            "leftInProcess": result.left_in_process,
        }
