"""The local HTTP API: route matching, payload 2.0 events and responses, like API Gateway."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from crmsync_local import http_api
from crmsync_local.auth import LocalJwtKeys
from crmsync_local.http_api import LocalHttpApi, Route, _to_http, collect_routes
from crmsync_local.lambdas import LocalFunction
from crmsync_local.template import Template

Handler = Callable[[Any, Any], Any]


class NoServer:
    """Replaces ThreadingHTTPServer: the API is driven through handle(), no socket is bound."""

    daemon_threads = False

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        self.server_address = address


@pytest.fixture(autouse=True)
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_api, "ThreadingHTTPServer", NoServer)


class Recorder:
    """A Lambda handler that keeps the events it gets and answers a fixed response."""

    def __init__(self, response: Any = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.response = response if response is not None else {"statusCode": 200, "body": "ok"}

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        return self.response

    @property
    def event(self) -> APIGatewayProxyEventV2:
        (event,) = self.events
        return APIGatewayProxyEventV2(event)


def function(logical_id: str, handler: Handler, *routes: tuple[str, str, bool]) -> LocalFunction:
    module = ModuleType(f"fake_{logical_id}")
    module.handler = handler  # type: ignore[attr-defined]
    events = {
        f"Route{i}": {
            "Type": "HttpApi",
            "Properties": {
                "Path": path,
                "Method": method,
                **({} if authorized else {"Auth": {"Authorizer": "NONE"}}),
            },
        }
        for i, (method, path, authorized) in enumerate(routes)
    }
    return LocalFunction(
        logical_id=logical_id,
        name=logical_id,
        code_dir=Path("."),
        handler_ref="app.handler",
        timeout=3,
        memory=128,
        environment={},
        events=events,
        _module=module,
    )


def api_of(keys: LocalJwtKeys, *functions: LocalFunction) -> LocalHttpApi:
    template = Template(path=Path("template.yaml"), body={})
    routes = collect_routes(template, {fn.logical_id: fn for fn in functions})
    return LocalHttpApi(routes, keys, "127.0.0.1", 0)


def routed(api: LocalHttpApi, method: str, path: str) -> tuple[str, dict[str, str]] | None:
    found = api.match(method, path)
    return (found[0].route_key, found[1]) if found else None


def both_orders(*routes: tuple[str, str]) -> Iterator[list[tuple[str, str]]]:
    yield list(routes)
    yield list(reversed(routes))


def api_with_routes(keys: LocalJwtKeys, routes: list[tuple[str, str]]) -> LocalHttpApi:
    functions = [
        function(f"Fn{i}", Recorder(), (method, path, True))
        for i, (method, path) in enumerate(routes)
    ]
    return api_of(keys, *functions)


def test_literal_route_beats_a_parameter_route(jwt_keys: LocalJwtKeys) -> None:
    for routes in both_orders(("GET", "/v1/{id}"), ("GET", "/v1/me")):
        api = api_with_routes(jwt_keys, routes)

        assert routed(api, "GET", "/v1/me") == ("GET /v1/me", {})
        assert routed(api, "GET", "/v1/a1") == ("GET /v1/{id}", {"id": "a1"})


def test_parameter_matches_one_segment_only(jwt_keys: LocalJwtKeys) -> None:
    api = api_with_routes(jwt_keys, [("GET", "/v1/accounts/{id}/runs")])

    assert routed(api, "GET", "/v1/accounts/a1/runs") == (
        "GET /v1/accounts/{id}/runs",
        {"id": "a1"},
    )
    assert routed(api, "GET", "/v1/accounts/a/b/runs") is None
    assert routed(api, "GET", "/v1/accounts//runs") is None


def test_greedy_parameter_takes_the_rest_of_the_path(jwt_keys: LocalJwtKeys) -> None:
    api = api_with_routes(jwt_keys, [("GET", "/files/{proxy+}")])

    assert routed(api, "GET", "/files/a/b/c.txt") == ("GET /files/{proxy+}", {"proxy": "a/b/c.txt"})
    assert routed(api, "GET", "/files") is None


def test_greedy_route_yields_to_a_plain_parameter_route(jwt_keys: LocalJwtKeys) -> None:
    for routes in both_orders(("GET", "/v1/{proxy+}"), ("GET", "/v1/{id}")):
        api = api_with_routes(jwt_keys, routes)

        assert routed(api, "GET", "/v1/a1") == ("GET /v1/{id}", {"id": "a1"})
        assert routed(api, "GET", "/v1/a1/b") == ("GET /v1/{proxy+}", {"proxy": "a1/b"})


def test_route_for_another_method_does_not_match(jwt_keys: LocalJwtKeys) -> None:
    api = api_with_routes(jwt_keys, [("GET", "/v1/me")])

    assert routed(api, "POST", "/v1/me") is None
    assert api.handle("POST", "/v1/me", {}, b"", "127.0.0.1")[0] == 404


def test_any_route_matches_every_method_but_yields_to_an_exact_one(
    jwt_keys: LocalJwtKeys,
) -> None:
    for routes in both_orders(("ANY", "/v1/me"), ("GET", "/v1/me")):
        api = api_with_routes(jwt_keys, routes)

        assert routed(api, "GET", "/v1/me") == ("GET /v1/me", {})
        assert routed(api, "DELETE", "/v1/me") == ("ANY /v1/me", {})


def test_unknown_path_answers_404_not_found(jwt_keys: LocalJwtKeys) -> None:
    api = api_with_routes(jwt_keys, [("GET", "/v1/me")])

    status, headers, body = api.handle("GET", "/v2/me", {}, b"", "127.0.0.1")

    assert (status, json.loads(body)) == (404, {"message": "Not Found"})
    assert headers["content-type"] == "application/json"


def test_authorized_route_without_a_valid_token_answers_401(jwt_keys: LocalJwtKeys) -> None:
    handler = Recorder()
    api = api_of(jwt_keys, function("Api", handler, ("GET", "/v1/me", True)))

    for headers in ({}, {"authorization": "Bearer not-a-jwt"}):
        status, _, body = api.handle("GET", "/v1/me", headers, b"", "127.0.0.1")
        assert (status, json.loads(body)) == (401, {"message": "Unauthorized"})
    assert handler.events == []


def test_route_with_auth_none_is_served_without_a_token(jwt_keys: LocalJwtKeys) -> None:
    handler = Recorder()
    api = api_of(jwt_keys, function("Api", handler, ("GET", "/health", False)))

    assert api.handle("GET", "/health", {}, b"", "127.0.0.1") == (200, {}, b"ok")
    assert "authorizer" not in handler.events[0]["requestContext"]


def test_handler_that_raises_answers_500(jwt_keys: LocalJwtKeys) -> None:
    def broken(event: Any, context: Any) -> Any:
        raise RuntimeError("boom")

    api = api_of(jwt_keys, function("Api", broken, ("GET", "/health", False)))

    status, _, body = api.handle("GET", "/health", {}, b"", "127.0.0.1")

    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})


def call(
    keys: LocalJwtKeys,
    method: str,
    route: str,
    url: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> Recorder:
    """Send one authorized request through the API and return what the handler saw."""
    handler = Recorder()
    api = api_of(keys, function("Api", handler, (method if route else "GET", route, True)))
    token = keys.mint("u1", "c1", role="admin", email="u1@example.com")
    request_method = "POST" if method == "ANY" else method
    all_headers = {"authorization": f"Bearer {token}", "host": "localhost", **(headers or {})}
    api.handle(request_method, url, all_headers, body, "10.1.2.3")
    return handler


def test_event_has_the_payload_2_shape_powertools_reads(jwt_keys: LocalJwtKeys) -> None:
    route = "/v1/mail-accounts/{account_id}/sync-runs"
    url = "/v1/mail-accounts/a1/sync-runs?limit=5&tag=a&tag=b&q=x%20y"

    event = call(jwt_keys, "GET", route, url).event

    assert event.version == "2.0"
    assert event.route_key == f"GET {route}"
    assert event.raw_path == event.path == "/v1/mail-accounts/a1/sync-runs"
    assert event.http_method == "GET"
    assert event.path_parameters == {"account_id": "a1"}
    assert event.raw_query_string == "limit=5&tag=a&tag=b&q=x%20y"
    assert event.query_string_parameters == {"limit": "5", "tag": "a,b", "q": "x y"}
    assert event.request_context.stage == "$default"
    assert event.request_context.http.source_ip == "10.1.2.3"
    assert event.body is None
    assert not event.is_base64_encoded


def test_event_carries_the_jwt_claims_as_strings(jwt_keys: LocalJwtKeys) -> None:
    event = call(jwt_keys, "GET", "/v1/me", "/v1/me").event

    claims = event.request_context.authorizer.jwt_claim
    assert claims is not None
    assert all(isinstance(value, str) for value in claims.values())
    assert (claims["sub"], claims["company_id"], claims["role"]) == ("u1", "c1", "admin")
    assert claims["exp"].isdigit()


def test_event_without_parameters_or_query_leaves_them_out(jwt_keys: LocalJwtKeys) -> None:
    raw = call(jwt_keys, "GET", "/v1/me", "/v1/me").events[0]

    assert "pathParameters" not in raw
    assert "queryStringParameters" not in raw
    assert "body" not in raw


def test_event_for_an_any_route_has_the_request_method(jwt_keys: LocalJwtKeys) -> None:
    event = call(jwt_keys, "ANY", "/v1/me", "/v1/me").event

    assert event.route_key == "ANY /v1/me"
    assert event.http_method == "POST"


def test_json_body_is_passed_as_text(jwt_keys: LocalJwtKeys) -> None:
    headers = {"content-type": "application/json"}
    event = call(jwt_keys, "POST", "/v1/me", "/v1/me", headers, b'{"name": "Z\xc3\xa9"}').event

    assert not event.is_base64_encoded
    assert event.json_body == {"name": "Zé"}


def test_binary_body_is_base64_encoded(jwt_keys: LocalJwtKeys) -> None:
    raw = b"\x00\xff\xfebinary"
    headers = {"content-type": "application/octet-stream"}

    event = call(jwt_keys, "POST", "/v1/me", "/v1/me", headers, raw).event

    assert event.is_base64_encoded
    assert event.body is not None
    assert base64.b64decode(event.body) == raw


def test_cookie_header_becomes_the_cookies_list(jwt_keys: LocalJwtKeys) -> None:
    event = call(jwt_keys, "GET", "/v1/me", "/v1/me", {"cookie": "a=1; b=2"}).event

    assert event.cookies == ["a=1", "b=2"]


def test_response_dict_becomes_status_headers_and_body() -> None:
    result = {"statusCode": 201, "headers": {"Content-Type": "application/json"}, "body": "{}"}

    assert _to_http(result) == (201, {"content-type": "application/json"}, b"{}")


def test_base64_response_body_is_decoded() -> None:
    result = {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode()}

    assert _to_http({**result, "isBase64Encoded": True}) == (200, {}, b"\x00\x01")


def test_response_without_body_is_empty() -> None:
    assert _to_http({"statusCode": 204}) == (204, {}, b"")


def test_multi_value_headers_are_joined() -> None:
    result = {"statusCode": 200, "multiValueHeaders": {"Vary": ["Origin", "Accept"]}}

    assert _to_http(result)[1] == {"vary": "Origin, Accept"}


@pytest.mark.parametrize("result", [{"items": []}, ["a"], "text", None])
def test_result_without_status_code_is_json_200(result: Any) -> None:
    status, headers, body = _to_http(result)

    assert (status, headers["content-type"], json.loads(body)) == (
        200,
        "application/json",
        result,
    )


def test_routes_are_collected_only_from_http_api_events(jwt_keys: LocalJwtKeys) -> None:
    fn = function("Api", Recorder(), ("GET", "/v1/me", True))
    fn.events["Jobs"] = {"Type": "SQS", "Properties": {"Queue": "arn"}}

    routes: list[Route] = collect_routes(Template(path=Path("t.yaml"), body={}), {"Api": fn})

    assert [route.route_key for route in routes] == ["GET /v1/me"]
