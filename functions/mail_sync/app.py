"""SQS FIFO (one group per account) -> sync that account (a `sync_account` job), or apply
its pending mailbox actions and then sync it (a `mailbox_actions` job).

No idempotency record here: the sync is idempotent by its own state (folder checkpoints
saved with versioned writes, UID maps, message keys), and a record would cost two DynamoDB
writes on every poll of an unchanged mailbox, which must cost none (SPEC S1)."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.models.jobs import SyncQueueMessage
from crmsync.observability import logger, metrics, tracer
from crmsync.runtime import current_runtime

# Time kept back from the Lambda timeout for the last batch, the checkpoint and the re-queue.
SAFETY_MARGIN_MS = 120_000


def _record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    job = SyncQueueMessage.model_validate_json(record.body).root
    runtime = current_runtime()
    budget_ms = runtime.settings.sync_budget_seconds * 1000
    ends = time.monotonic() + runtime.settings.sync_budget_seconds

    def out_of_time() -> bool:
        """The configured budget, or the Lambda's own clock, whichever runs out first."""
        if time.monotonic() >= ends:
            return True
        return (
            lambda_context is not None
            and lambda_context.get_remaining_time_in_millis() < SAFETY_MARGIN_MS
        )

    run = runtime.mail_sync().run(job, out_of_time=out_of_time)
    metrics.add_metric(name="MessagesFetched", unit=MetricUnit.Count, value=run.messages_fetched)
    logger.info(
        "account synced",
        extra={
            "account_id": job.account_id,
            "outcome": run.outcome,
            "mailbox_actions": run.mailbox_actions,
            "messages_fetched": run.messages_fetched,
            "imap_commands": run.imap_commands,
            "budget_ms": budget_ms,
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
