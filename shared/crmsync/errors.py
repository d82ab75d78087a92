"""Domain errors. The API maps each to one HTTP status in one place."""


class CrmSyncError(Exception):
    """Base of every error the domain raises on purpose."""

    status = 500
    title = "Internal error"

    def extensions(self) -> dict[str, str]:
        """Extra members of the problem document (RFC 7807 allows them)."""
        return {}


class NotFoundError(CrmSyncError):
    status = 404
    title = "Not found"


class ForbiddenError(CrmSyncError):
    status = 403
    title = "Forbidden"


class ValidationFailedError(CrmSyncError):
    status = 400
    title = "Invalid request"


class ConflictError(CrmSyncError):
    status = 409
    title = "Conflict"
