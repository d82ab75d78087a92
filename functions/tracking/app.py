"""Public tracking routes (SPEC T1, T2): the open pixel and the click redirect.

No JWT and a small cold start: the API Gateway (payload 2.0) event is read directly, and
only the tracking package is imported here; boto3 comes with the first request.

- `GET|HEAD /t/o/{token}.gif`: always the 1x1 transparent GIF, never cached. A token that
  does not verify (or names an unregistered message) records nothing.
- `GET|HEAD /t/c/{token}`: 302 to the URL inside the signed token, and only there. A forged,
  truncated or tampered token gets 404 and no Location: never an open redirect.
"""

from __future__ import annotations

import base64
from typing import Any

from aws_lambda_powertools.logging import Logger

from crmsync.tracking.keys import TrackingKeysError
from crmsync.tracking.runtime import tracking_runtime
from crmsync.tracking.service import TrackingStoreError

logger = Logger(service="crmsync")

# GIF89a, 1x1, one transparent colour: 43 bytes.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
PIXEL_HEADERS = {
    "Content-Type": "image/gif",
    "Cache-Control": "no-store, no-cache, must-revalidate, private",
    "Pragma": "no-cache",
    "Expires": "0",
}
PIXEL_PREFIX = "/t/o/"
CLICK_PREFIX = "/t/c/"
UNAVAILABLE = (TrackingStoreError, TrackingKeysError)


def _text(status: int, body: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}
        | (headers or {}),
        "body": body,
        "isBase64Encoded": False,
    }


def pixel(token: str, user_agent: str | None, ip: str | None, method: str) -> dict[str, Any]:
    try:
        hit = tracking_runtime().service.record_open(token, user_agent, ip, method)
    except UNAVAILABLE:
        logger.exception("open not recorded: tracking store or keys unavailable")
        hit = None
    logger.info(
        "pixel",
        extra={
            "recorded": hit is not None,
            "ua_class": hit.ua_class if hit else None,
            "machine": hit.machine if hit else None,
        },
    )
    return {
        "statusCode": 200,
        "headers": PIXEL_HEADERS,
        "body": base64.b64encode(PIXEL).decode("ascii"),
        "isBase64Encoded": True,
    }


def click(token: str, user_agent: str | None, ip: str | None, method: str) -> dict[str, Any]:
    try:
        url = tracking_runtime().service.record_click(token, user_agent, ip, method)
    except UNAVAILABLE:
        logger.exception("click not served: tracking store or keys unavailable")
        return _text(503, "Try again in a moment.\n", {"Retry-After": "1"})
    logger.info("click", extra={"redirected": url is not None})
    if url is None:
        return _text(404, "Not found.\n")
    return {
        "statusCode": 302,
        "headers": {
            "Location": url,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "Content-Type": "text/plain; charset=utf-8",
        },
        "body": "",
        "isBase64Encoded": False,
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    http = (event.get("requestContext") or {}).get("http") or {}
    method = str(http.get("method") or "GET").upper()
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    user_agent = headers.get("user-agent") or http.get("userAgent") or None
    ip = http.get("sourceIp")
    # The route's path, not rawPath: behind a custom domain rawPath may carry a base path.
    route = str(event.get("routeKey") or "").partition(" ")[2]
    path = route or str(event.get("rawPath") or "")
    token = (event.get("pathParameters") or {}).get("token")
    if token is None:
        token = str(event.get("rawPath") or "").rpartition("/")[2]
    if method not in ("GET", "HEAD") or not token:
        return _text(404, "Not found.\n")
    if path.startswith(PIXEL_PREFIX):
        return pixel(str(token).removesuffix(".gif"), user_agent, ip, method)
    if path.startswith(CLICK_PREFIX):
        return click(str(token), user_agent, ip, method)
    return _text(404, "Not found.\n")
