"""The reconciler of a single connection store (Redis alone): nothing is ever pending."""

from __future__ import annotations

from application.ports import StoreReconciler
from domain.connection import ReconcileReport


class SingleStoreReconciler(StoreReconciler):
    """With one store every delete either happened or failed to its caller: no store holds
    a delete for another, so a reconciliation replays nothing."""

    def reconcile(self) -> ReconcileReport:
        """An empty report."""
        return ReconcileReport()
