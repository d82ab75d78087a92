"""EventBridge schedule (every minute) -> find due accounts -> one SyncAccount job each; and
scheduled messages whose time has come -> the send queue (SPEC I5); and due calendar
accounts -> one calendar sync job each (SPEC C5)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.observability import logger, metrics, tracer
from crmsync.runtime import current_runtime


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    runtime = current_runtime()
    result = runtime.poll_dispatcher().dispatch()
    sends = runtime.send_service().dispatch_due() if runtime.settings.send_queue_url else 0
    calendars = runtime.calendar_poll_dispatcher()
    calendar_jobs = calendars.dispatch().enqueued if calendars is not None else 0
    metrics.add_metric(name="AccountsEnqueued", unit="Count", value=result.enqueued)
    metrics.add_metric(name="ScheduledSendsDue", unit="Count", value=sends)
    metrics.add_metric(name="CalendarAccountsEnqueued", unit="Count", value=calendar_jobs)
    counts = {
        "due": result.due,
        "enqueued": result.enqueued,
        "lost_claims": result.lost_claims,
        "sends": sends,
        "calendar_accounts": calendar_jobs,
    }
    logger.info("dispatched", extra=counts)
    return counts
