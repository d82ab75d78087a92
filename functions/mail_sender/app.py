"""SQS FIFO (one group per account) -> send one outbox entry through the user's own SMTP
account (services/mail_sender.py). A temporary failure fails the record, and the queue
delivers it again after its visibility timeout; the entry remembers who already got it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.models.outbox import SendMessageJob
from crmsync.observability import logger, metrics, tracer
from crmsync.runtime import current_runtime


def _record_handler(record: SQSRecord) -> None:
    job = SendMessageJob.model_validate_json(record.body)
    entry = current_runtime().mail_sender().send(job)
    logger.info(
        "outbox entry handled",
        extra={
            "outbox_id": job.outbox_id,
            "account_id": job.account_id,
            "status": entry.status if entry else None,
            "error_code": entry.error.code if entry and entry.error else None,
        },
    )
    if entry is not None and entry.status == "sent":
        metrics.add_metric(name="MessagesSent", unit="Count", value=1)


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
