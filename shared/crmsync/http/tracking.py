"""Tracking of sent mail over the authenticated API (SPEC T1, T2, T4): who opened a message
and followed its links. Readable by whoever may read the message (services/mail_reads.py);
anyone else gets 404, as for a message that does not exist."""

from __future__ import annotations

from crmsync.http.common import caller, new_router
from crmsync.runtime import current_runtime
from crmsync.tracking.models import TrackingReport

router = new_router()


@router.get("/v1/messages/<message_id>/tracking")
def message_tracking(message_id: str) -> TrackingReport:
    """Opens per recipient and clicks per link and recipient, human and machine apart."""
    principal = caller(router)
    runtime = current_runtime()
    message = runtime.mail_reader().readable_message(principal, message_id)
    return runtime.tracking_service().report(principal.company_id, message.id)
