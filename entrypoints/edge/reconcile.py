"""The scheduled reconciler's Lambda handler (not an API Gateway route)."""

from __future__ import annotations

from typing import Any

from entrypoints.observability import logger

Response = dict[str, Any]


class ReconcileHandler:
    """The scheduled reconciler: replay the deletes a connection store could not take.

    Invoked every minute by EventBridge (``infra/schedule.tf``) and by the local gateway's
    timer; see ``adapters/connection_store/failover.py``. With Redis as the only store there
    is nothing to reconcile. Answers ``{"statusCode": 200, "primaryDeletes": n,
    "secondaryDeletes": n, "leftInProcess": n}`` (EventBridge ignores it); never raises.
    """

    def __init__(self, store: object) -> None:
        self._reconcile = getattr(store, "reconcile", None)

    def __call__(self, event: Any, context: Any) -> Response:
        """Replay one batch."""
        if self._reconcile is None:
            return {
                "statusCode": 200,
                "primaryDeletes": 0,
                "secondaryDeletes": 0,
                "leftInProcess": 0,
            }
        try:
            report = self._reconcile()
        except Exception:  # never a failed invocation: the next schedule tries again
            logger.exception("reconcile failed", extra={"route": "reconcile"})
            return {"statusCode": 500}
        return {
            "statusCode": 200,
            "primaryDeletes": report.primary_deletes,
            "secondaryDeletes": report.secondary_deletes,
            "leftInProcess": report.left_in_process,
        }
