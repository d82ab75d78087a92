"""HTTP API: assembles the routers and maps domain errors to problem documents."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFound
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.errors import CrmSyncError
from crmsync.http import accounts, directory, status
from crmsync.http.common import problem
from crmsync.observability import logger, tracer

app = APIGatewayHttpResolver(enable_validation=True)
app.include_router(status.router)
app.include_router(directory.router)
app.include_router(accounts.router)


@app.exception_handler(CrmSyncError)
def _domain_error(exc: CrmSyncError) -> Response[str]:
    return problem(exc.status, exc.title, str(exc))


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response[str]:
    details = "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
        for err in exc.errors()
    )
    return problem(422, "Invalid request", details)


@app.not_found
def _no_route(exc: RouteNotFound) -> Response[str]:
    return problem(404, "Not found", "No such route.")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
