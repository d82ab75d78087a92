"""SQS FIFO (one group per message) -> parse, thread, link and store the message.

A record that fails is reported alone (partial batch response) and only holds back the
later changes of the same message (`skip_group_on_error`); the rest of the batch goes on."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.models.mail import ProcessMessage, RelinkThreads
from crmsync.observability import logger, metrics, tracer
from crmsync.runtime import current_runtime
from crmsync.services.message_processor import MessageProcessor

_batch: dict[str, MessageProcessor] = {}


def _record_handler(record: SQSRecord) -> None:
    body = json.loads(record.body)
    processor = _batch["processor"]
    if body.get("kind") == "relink_threads":
        relink = RelinkThreads.model_validate(body)
        count = processor.relink(relink)
        logger.info("threads relinked", extra={"job_id": relink.job_id, "threads": count})
        return
    job = ProcessMessage.model_validate(body)
    result = processor.process(job)
    metrics.add_metric(name=f"Message_{result.outcome}", unit=MetricUnit.Count, value=1)
    if result.outcome == "unparseable":
        logger.warning(
            "message kept unparsed",
            extra={"account_id": job.account_id, "message_key": job.message_key},
        )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    _batch["processor"] = current_runtime().message_processor()
    return process_partial_response(
        event=event,
        record_handler=_record_handler,
        processor=SqsFifoPartialProcessor(skip_group_on_error=True),
        context=context,
    )
