"""Compose and send over HTTP (SPEC I2, I3, I5): accept a message, read its status, cancel
a scheduled one. The work is in services/sending.py and the mail_sender worker."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response

from crmsync.http.common import accepted, caller, new_router
from crmsync.models.outbox import Accepted, OutboxView, SendRequest
from crmsync.runtime import current_runtime

router = new_router()


@router.post("/v1/messages/send", status_code=202)
def send_message(request: SendRequest) -> Response[Accepted]:
    """Checked, stored and handed to the sender; `Idempotency-Key` makes a retry send once."""
    key = router.current_event.headers.get("idempotency-key")
    answer = current_runtime().send_service().submit(caller(router), request, key)
    return accepted(answer)


@router.get("/v1/outbox/<outbox_id>")
def outbox_status(outbox_id: str) -> OutboxView:
    return current_runtime().send_service().status(caller(router), outbox_id)


@router.post("/v1/outbox/<outbox_id>/cancel")
def cancel_scheduled(outbox_id: str) -> OutboxView:
    """A scheduled message, until its time comes (409 once it is on its way)."""
    return current_runtime().send_service().cancel(caller(router), outbox_id)
