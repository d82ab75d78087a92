"""HTTP API: parse the request, call the domain, shape the reply."""

from __future__ import annotations

import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFound
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

import crmsync
from crmsync.errors import CrmSyncError
from crmsync.models.identity import Principal
from crmsync.models.pages import Page
from crmsync.models.sync import SyncRun
from crmsync.observability import logger, tracer
from crmsync.runtime import current_runtime

app = APIGatewayHttpResolver(enable_validation=True)
PROBLEM = "application/problem+json"


def _problem(status: int, title: str, detail: str) -> Response[str]:
    return Response(
        status_code=status,
        content_type=PROBLEM,
        body=json.dumps(
            {"type": "about:blank", "title": title, "status": status, "detail": detail}
        ),
    )


@app.exception_handler(CrmSyncError)
def _domain_error(exc: CrmSyncError) -> Response[Any]:
    return _problem(exc.status, exc.title, str(exc))


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response[Any]:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
        for err in exc.errors()
    )
    return _problem(422, "Invalid request", problems)


@app.not_found
def _no_route(exc: RouteNotFound) -> Response[Any]:
    return _problem(404, "Not found", "No such route.")


def principal() -> Principal:
    """The caller, from the claims API Gateway's JWT authorizer verified."""
    claims = app.current_event.request_context.authorizer.jwt_claim or {}
    return Principal.from_claims(claims)


@app.get("/health")
def health() -> dict[str, Any]:
    runtime = current_runtime()
    return {
        "status": "ok",
        "service": "crmsync",
        "version": crmsync.__version__,
        "env": runtime.settings.env,
        "runtime": runtime.settings.runtime_info,
        "checks": {"dynamodb": runtime.health_probe().check()},
    }


@app.get("/v1/me")
def me() -> Principal:
    return principal()


@app.get("/v1/mail-accounts/<account_id>/sync-runs")
def list_sync_runs(
    account_id: str,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Page[SyncRun]:
    return current_runtime().sync_status().runs(principal(), account_id, limit, cursor)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
