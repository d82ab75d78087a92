"""What every router needs: the caller, the error shape, list parameters."""

from __future__ import annotations

import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from crmsync.models.identity import Principal

PROBLEM_JSON = "application/problem+json"

Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
Cursor = Annotated[
    str | None, Query(max_length=2048, description="next_cursor of the previous page.")
]


def caller(router: BaseRouter) -> Principal:
    """The principal from the claims API Gateway's JWT authorizer verified."""
    event = router.current_event
    if not isinstance(event, APIGatewayProxyEventV2):
        raise TypeError("the API expects API Gateway HTTP API (payload 2.0) events")
    claims: dict[str, Any] = event.request_context.authorizer.jwt_claim or {}
    return Principal.from_claims(claims)


def new_router() -> APIGatewayHttpRouter:
    return APIGatewayHttpRouter()  # type: ignore[no-untyped-call]


def problem(
    status: int, title: str, detail: str, extensions: dict[str, str] | None = None
) -> Response[str]:
    """An RFC 7807 problem document; `extensions` adds members (e.g. a stable `code`)."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return Response(
        status_code=status,
        content_type=PROBLEM_JSON,
        body=json.dumps({**(extensions or {}), **body}),
    )


def created(body: Any) -> Response[Any]:
    return Response(status_code=201, content_type="application/json", body=body)


def accepted(body: Any) -> Response[Any]:
    return Response(status_code=202, content_type="application/json", body=body)


def no_content() -> Response[str]:
    return Response(status_code=204, content_type="application/json", body="")
