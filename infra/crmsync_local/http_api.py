"""Serves the template's HttpApi routes on loopback as API Gateway v2 (payload 2.0) events."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from crmsync_local.auth import LocalJwtKeys, TokenRejected
from crmsync_local.lambdas import LocalFunction
from crmsync_local.template import ACCOUNT, Template

log = logging.getLogger("local_stack.http")
TEXT_TYPES = ("application/json", "application/problem+json", "text/", "application/xml")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: LocalFunction
    authorized: bool
    pattern: re.Pattern[str]

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def specificity(self) -> tuple[int, int, bool, bool]:
        """On a tie, a path variable beats a greedy one and an explicit method beats ANY."""
        segments = self.path.strip("/").split("/")
        literal = sum(1 for s in segments if not s.startswith("{"))
        return (literal, len(segments), not self.path.endswith("+}"), self.method != "ANY")


def _compile(path: str) -> re.Pattern[str]:
    regex = ""
    for segment in path.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("+}"):
            regex += f"/(?P<{segment[1:-2]}>.+)"
        elif segment.startswith("{"):
            regex += f"/(?P<{segment[1:-1]}>[^/]+)"
        else:
            regex += "/" + re.escape(segment)
    return re.compile(f"^{regex or '/'}$")


def collect_routes(template: Template, functions: dict[str, LocalFunction]) -> list[Route]:
    routes = []
    for fn in functions.values():
        for event in fn.events.values():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties", {})
            auth = props.get("Auth", {}).get("Authorizer")
            routes.append(
                Route(
                    method=str(props.get("Method", "ANY")).upper(),
                    path=str(props["Path"]),
                    function=fn,
                    authorized=auth != "NONE",
                    pattern=_compile(str(props["Path"])),
                )
            )
    return sorted(routes, key=lambda r: r.specificity, reverse=True)


def _string_claims(claims: dict[str, Any]) -> dict[str, str]:
    """API Gateway hands JWT claims to the function as strings."""
    return {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in claims.items()
    }


class LocalHttpApi:
    def __init__(self, routes: list[Route], keys: LocalJwtKeys, host: str, port: int) -> None:
        self.routes = routes
        self.keys = keys
        self.server = ThreadingHTTPServer((host, port), self._handler_class())
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.server.serve_forever, daemon=True, name="local-http-api"
        )
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method not in (method, "ANY"):
                continue
            found = route.pattern.match(path)
            if found:
                return route, found.groupdict()
        return None

    def handle(
        self, method: str, raw_url: str, headers: dict[str, str], body: bytes, source_ip: str
    ) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(raw_url)
        matched = self.match(method, url.path)
        if matched is None:
            return _json(404, {"message": "Not Found"})
        route, params = matched
        claims: dict[str, Any] | None = None
        if route.authorized:
            try:
                claims = self.keys.verify(headers.get("authorization"))
            except TokenRejected:
                return _json(401, {"message": "Unauthorized"})
        event = self._event(
            route, method, params, url.path, url.query, headers, body, source_ip, claims
        )
        try:
            result = route.function.invoke(event, source=f"http:{route.route_key}")
        except Exception:
            log.exception("handler raised")
            return _json(500, {"message": "Internal Server Error"})
        return _to_http(result)

    def _event(
        self,
        route: Route,
        method: str,
        params: dict[str, str],
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        source_ip: str,
        claims: dict[str, Any] | None,
    ) -> dict[str, Any]:
        qs: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            qs[key] = f"{qs[key]},{value}" if key in qs else value
        content_type = headers.get("content-type", "")
        is_text = not body or any(content_type.startswith(t) for t in TEXT_TYPES)
        if is_text:
            try:
                body.decode()
            except UnicodeDecodeError:
                is_text = False  # not valid text after all: hand it over base64-encoded
        now = datetime.now(UTC)
        context: dict[str, Any] = {
            "accountId": ACCOUNT,
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        }
        if claims is not None:
            context["authorizer"] = {"jwt": {"claims": _string_claims(claims), "scopes": None}}
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": path,
            "rawQueryString": query,
            "headers": headers,
            "requestContext": context,
            "isBase64Encoded": not is_text,
        }
        if "cookie" in headers:
            event["cookies"] = [c.strip() for c in headers["cookie"].split(";")]
        if qs:
            event["queryStringParameters"] = qs
        if params:
            event["pathParameters"] = params
        if body:
            event["body"] = body.decode() if is_text else base64.b64encode(body).decode()
        return event

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def _serve(self) -> None:
                started = time.perf_counter()
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, out_headers, payload = api.handle(
                    self.command, self.path, headers, body, self.client_address[0]
                )
                self.send_response(status)
                for key, value in out_headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                log.debug(
                    "%s %s -> %s in %.1f ms",
                    self.command,
                    self.path,
                    status,
                    (time.perf_counter() - started) * 1000,
                )

            def __getattr__(self, name: str) -> Any:
                # Every method reaches the router: API Gateway answers an unknown method
                # on a path with 404, never 501.
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, json.dumps(body).encode()


def _to_http(result: Any) -> tuple[int, dict[str, str], bytes]:
    """Payload format 2.0: a dict with statusCode is a response, anything else is JSON 200."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return _json(200, result)
    headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers[key.lower()] = ", ".join(str(v) for v in values)
    raw = result.get("body") or ""
    payload = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
    return int(result["statusCode"]), headers, payload
