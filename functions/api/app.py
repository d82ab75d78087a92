"""HTTP API: assembles the routers and maps domain errors to problem documents."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFound
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

import crmsync
from crmsync.errors import CrmSyncError
from crmsync.http import (
    accounts,
    calendar_accounts,
    calendar_diagnostics,
    directory,
    inbox,
    send,
    status,
    templates,
    threads,
    tracking,
)
from crmsync.http.common import problem
from crmsync.observability import logger, tracer

app = APIGatewayHttpResolver(enable_validation=True)
app.include_router(status.router)
app.include_router(directory.router)
app.include_router(accounts.router)
app.include_router(calendar_accounts.router)
app.include_router(calendar_diagnostics.router)
app.include_router(inbox.router)
app.include_router(threads.router)
app.include_router(templates.router)
app.include_router(send.router)
app.include_router(tracking.router)


app.configure_openapi(
    title="crmsync",
    version=crmsync.__version__,
    summary="Email and calendar sync engine for a CRM",
    security_schemes={"bearer": HTTPBearer(bearerFormat="JWT")},
    security=[{"bearer": []}],
)


@app.get("/v1/openapi.json", include_in_schema=False)
def openapi() -> Response[str]:
    """The OpenAPI document, generated from the routes and their pydantic models."""
    return Response(
        status_code=200, content_type="application/json", body=app.get_openapi_json_schema()
    )


@app.exception_handler(CrmSyncError)
def _domain_error(exc: CrmSyncError) -> Response[str]:
    return problem(exc.status, exc.title, str(exc), exc.extensions())


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response[str]:
    details = "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
        for err in exc.errors()
    )
    return problem(422, "Invalid request", details)


@app.exception_handler(ValueError)
def _unreadable_body(exc: ValueError) -> Response[str]:
    """Powertools raises ValueError for a body it cannot parse (e.g. a form without its
    boundary); that is the client's mistake, not a server error."""
    return problem(400, "Invalid request", "Send the request body as application/json.")


@app.not_found
def _no_route(exc: RouteNotFound) -> Response[str]:
    return problem(404, "Not found", "No such route.")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
