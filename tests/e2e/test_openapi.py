"""The generated OpenAPI document, and a schemathesis run against the local API: no 5xx."""

from __future__ import annotations

import uuid

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from crmsync_local.stack import LocalStack

pytestmark = pytest.mark.e2e

# Routes that reach out to servers named in the request (a login, DNS, HTTP) are left out
# of random generation: they have their own tests against real local servers.
NETWORK_POSTS = (
    "/v1/mail-accounts",
    "/v1/mail-accounts/{account_id}/reauthenticate",
    "/v1/calendar-accounts",
    "/v1/calendar-accounts/{account_id}/reauthenticate",
)
NETWORK_GETS = r"/(discover|folders)$"


@pytest.fixture(scope="module")
def api_schema(local_stack: LocalStack) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{local_stack.url}/v1/openapi.json")
    schema.config.update(base_url=local_stack.url)
    return schema


schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=NETWORK_GETS)
for _path in NETWORK_POSTS:
    schema = schema.exclude(method="POST", path=_path)


def test_openapi_document_lists_every_route(local_stack: LocalStack) -> None:
    document = requests.get(f"{local_stack.url}/v1/openapi.json", timeout=10).json()
    assert document["openapi"].startswith("3.")
    expected = {
        "/v1/mail-accounts",
        "/v1/mail-accounts/{account_id}",
        "/v1/mail-accounts/discover",
        "/v1/persons",
        "/v1/deals",
    }
    assert expected <= set(document["paths"])
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


@pytest.mark.timeout(900)  # one test, a subtest per route: ~90 routes on 2 CPUs
@schema.parametrize()
@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_no_route_answers_5xx(case: schemathesis.Case, local_stack: LocalStack) -> None:
    token = local_stack.token(f"fuzz-{uuid.uuid4().hex[:6]}", "fuzz-company", "admin")
    response = case.call(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    case.validate_response(response, checks=(not_a_server_error,))
