"""What went wrong with a calendar server, in words the user can act on.

The wording follows the mail connector's (`crmsync.mail.connect`) and the calendar
troubleshooting article: a refused login points at app passwords, a refused write at the
calendar's permissions or the IT administrator, a deleted calendar at choosing another one.
No message ever contains the password or anything the server said verbatim.
"""

from __future__ import annotations

import ssl

from crmsync.models.servers import ConnectionProblem

TWO_FACTOR_HINT = (
    "If your account uses two-factor authentication, create an app password for crmsync "
    "in your account's security settings and enter it instead of your usual password."
)
PERMISSION_FIX = (
    "Make sure crmsync was given read and write access to the calendar when you connected "
    "it (some providers show a permission box to tick), or choose a calendar you can edit. "
    "If your company manages the account, ask your IT administrator to allow third-party "
    "apps like crmsync to read and update calendars."
)
_USUAL = "CalDAV usually runs over HTTPS on port 443"


def auth_failed() -> ConnectionProblem:
    return ConnectionProblem(
        code="auth_failed",
        message="The calendar server refused the user name or password.",
        action=f"Check the user name and password. {TWO_FACTOR_HINT}",
    )


def permission_denied(what: str) -> ConnectionProblem:
    """`what` completes "crmsync is not allowed to …", e.g. "change events in this calendar"."""
    return ConnectionProblem(
        code="permission_denied",
        message=f"The calendar server says crmsync is not allowed to {what}.",
        action=PERMISSION_FIX,
    )


def calendar_missing() -> ConnectionProblem:
    return ConnectionProblem(
        code="calendar_missing",
        message=(
            "The calendar chosen for sync no longer exists on the server: it was deleted or moved."
        ),
        action="Open the calendar sync settings and choose another calendar.",
    )


def not_caldav(where: str) -> ConnectionProblem:
    return ConnectionProblem(
        code="not_caldav",
        message=f"No CalDAV calendar service was found at {where}.",
        action=(
            "Check the server address: enter the CalDAV address your provider documents "
            "(or choose your provider from the list), not the address of its web calendar."
        ),
    )


def insecure_not_allowed() -> ConnectionProblem:
    return ConnectionProblem(
        code="insecure_not_allowed",
        message=(
            "Connections without encryption are not allowed: the password would travel in "
            "clear text."
        ),
        action="Use the server's https:// address.",
    )


def hung_up(where: str) -> ConnectionProblem:
    return ConnectionProblem(
        code="server_error",
        message=f"The calendar server at {where} closed the connection unexpectedly.",
        action=(
            "Nothing was lost: the next sync picks up where this one stopped. If it keeps "
            "happening, ask your provider whether the server limits connections."
        ),
    )


def server_error(where: str, what: str) -> ConnectionProblem:
    """`what` completes "The calendar server at … ", e.g. "answered with an error (HTTP 500)"."""
    return ConnectionProblem(
        code="server_error",
        message=f"The calendar server at {where} {what}.",
        action="Try again in a few minutes; if it keeps happening, ask your provider.",
    )


def timeout(where: str, seconds: float) -> ConnectionProblem:
    return ConnectionProblem(
        code="timeout",
        message=f"The calendar server at {where} did not answer within {seconds:g} s.",
        action=(
            f"Check the server address ({_USUAL}). A firewall may be dropping the "
            "connection; if not, try later."
        ),
    )


def connection_refused(where: str, refused: bool) -> ConnectionProblem:
    message = f"Nothing answers on {where}." if refused else f"{where} cannot be reached from here."
    return ConnectionProblem(
        code="connection_refused",
        message=message,
        action=f"Check the server address and port ({_USUAL}).",
    )


def tls_failed(where: str, error: ssl.SSLError | None) -> ConnectionProblem:
    detail = "the TLS handshake failed"
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = getattr(error, "verify_message", None) or "no reason given"
        detail = f"its certificate could not be verified ({reason})"
    return ConnectionProblem(
        code="tls_failed",
        message=f"The secure connection to {where} failed: {detail}.",
        action=(
            "Check the server address, or ask your provider which certificate the server "
            "uses. A self-signed certificate cannot be trusted."
        ),
    )
