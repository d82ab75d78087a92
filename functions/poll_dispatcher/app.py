"""EventBridge schedule -> find due accounts -> one SyncAccount job each."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.observability import logger, metrics, tracer
from crmsync.runtime import current_runtime


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    result = current_runtime().poll_dispatcher().dispatch()
    metrics.add_metric(name="AccountsEnqueued", unit="Count", value=result.enqueued)
    logger.info(
        "dispatched",
        extra={"due": result.due, "enqueued": result.enqueued, "lost_claims": result.lost_claims},
    )
    return {"due": result.due, "enqueued": result.enqueued, "lost_claims": result.lost_claims}
