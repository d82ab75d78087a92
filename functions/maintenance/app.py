"""EventBridge schedule (daily) -> the retention sweep (SPEC E7)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.observability import logger, metrics, tracer
from crmsync.runtime import current_runtime

# Stop taking new accounts with this much time left; the rest is due again tomorrow.
RESERVE_MILLIS = 30_000


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    def time_left() -> bool:
        return context.get_remaining_time_in_millis() > RESERVE_MILLIS

    result = current_runtime().retention_sweeper().sweep(keep_going=time_left)
    metrics.add_metric(name="AccountsPurged", unit="Count", value=result.purged)
    summary = {
        "purged": result.purged,
        "items_deleted": result.items_deleted,
        "complete": result.complete,
    }
    logger.info("retention sweep", extra=summary)
    return summary
