"""SQS FIFO (one group per account) -> sync that account."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.models.jobs import SyncAccount
from crmsync.observability import logger, metrics, tracer
from crmsync.runtime import current_runtime

JOB_RESULT_TTL_SECONDS = 24 * 3600


@lru_cache(maxsize=1)
def _idempotency_config() -> IdempotencyConfig:
    return IdempotencyConfig(
        event_key_jmespath="job_id", expires_after_seconds=JOB_RESULT_TTL_SECONDS
    )


@lru_cache(maxsize=1)
def _sync_once() -> Callable[..., dict[str, Any]]:
    """The sync, made idempotent on the job id (built on first use, not at import)."""
    runtime = current_runtime()
    persistence = DynamoDBPersistenceLayer(
        table_name=runtime.settings.idempotency_table_name or "",
        boto3_client=runtime.client("dynamodb"),
    )

    @idempotent_function(
        data_keyword_argument="job",
        persistence_store=persistence,
        config=_idempotency_config(),
    )
    def sync(job: SyncAccount) -> dict[str, Any]:
        return current_runtime().mail_sync().run(job).model_dump(mode="json")

    return sync


def _record_handler(record: SQSRecord) -> None:
    job = SyncAccount.model_validate_json(record.body)
    run = _sync_once()(job=job)
    logger.info("account synced", extra={"account_id": job.account_id, "outcome": run["outcome"]})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    _idempotency_config().register_lambda_context(context)
    return process_partial_response(
        event=event,
        record_handler=_record_handler,
        processor=SqsFifoPartialProcessor(),
        context=context,
    )
