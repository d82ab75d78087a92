"""Mail and calendar server endpoints, and what went wrong talking to one."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from crmsync.errors import CrmSyncError

Security = Literal["ssl", "starttls", "none"]


class ServerEndpoint(BaseModel):
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    security: Security


class ConnectionProblem(BaseModel):
    """A failure in words a user understands, and the action that fixes it.

    `code` is stable for programs: auth_failed, connection_refused, timeout, tls_failed,
    host_not_found, host_not_allowed, insecure_not_allowed, permission_denied, server_error,
    folder_missing; for calendars also calendar_missing and not_caldav.
    """

    code: str
    message: str
    action: str


class MailServerError(CrmSyncError):
    """Talking to the user's server failed; the request itself was fine."""

    status = 422
    title = "Mail server problem"

    def __init__(self, problem: ConnectionProblem) -> None:
        super().__init__(f"{problem.message} {problem.action}".strip())
        self.problem = problem

    def extensions(self) -> dict[str, str]:
        return {"code": self.problem.code, "action": self.problem.action}
