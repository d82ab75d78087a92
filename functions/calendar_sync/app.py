"""SQS FIFO (one group per calendar account) -> one calendar sync run of that account
(a `calendar_sync` job): pull the calendar's changes, push the activities' changes.

No idempotency record: the run is idempotent by its own state (the sync token saved last,
UID claims, mappings and ETags), and a record would cost writes on every idle poll, which
must cost none."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.models.calendar import CalendarSyncJob
from crmsync.observability import logger, metrics, tracer
from crmsync.runtime import current_runtime


def _record_handler(record: SQSRecord) -> None:
    job = CalendarSyncJob.model_validate_json(record.body)
    run = current_runtime().calendar_sync().run(job)
    metrics.add_metric(name="CalendarEventsPushed", unit=MetricUnit.Count, value=run.pushed)
    pulled = run.pulled_created + run.pulled_updated + run.pulled_deleted
    metrics.add_metric(name="CalendarEventsPulled", unit=MetricUnit.Count, value=pulled)
    logger.info(
        "calendar synced",
        extra={
            "account_id": job.account_id,
            "reason": job.reason,
            "outcome": run.outcome,
            "error_code": run.error_code,
            "pushed": run.pushed,
            "push_deleted": run.push_deleted,
            "pulled": pulled,
            "own_writes_ignored": run.own_writes_ignored,
            "conflicts": run.conflicts,
            "skipped": len(run.skipped),
            "requests": run.requests,
        },
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event,
        record_handler=_record_handler,
        processor=SqsFifoPartialProcessor(),
        context=context,
    )
