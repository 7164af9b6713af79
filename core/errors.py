"""Project exceptions whose messages are written for people: they name the row, field, file or setting."""


class FinmedError(Exception):
    """Base of every error a face (CLI, HTTP, Streamlit) shows as one line.

    Attributes:
        exit_code: process exit status the CLI uses for this error.
        http_status: status code the HTTP API answers with.
    """

    exit_code = 1
    http_status = 400


class SettingsError(FinmedError):
    """A setting (environment variable or .env entry) is invalid."""

    exit_code = 2


class NotFoundError(FinmedError):
    """A named thing (model, file, user, collection, version) does not exist."""

    http_status = 404


class ValidationError(FinmedError):
    """Input data (a row, a field, a record) is invalid."""

    http_status = 422


class PermissionDenied(FinmedError):
    """The acting user's role does not allow the operation."""

    http_status = 403


class ConflictError(FinmedError):
    """The operation conflicts with the current state (duplicate name, illegal transition)."""

    http_status = 409


class DatabaseError(FinmedError):
    """The database cannot be reached or is not migrated."""

    http_status = 503


class RateLimited(FinmedError):
    """Too many failed attempts (sign-ins, API keys) from one name or address; refused without checking.

    Attributes:
        retry_after: whole seconds until the caller may try again (sent as `Retry-After` over HTTP).
    """

    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
