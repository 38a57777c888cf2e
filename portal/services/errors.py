"""Domain errors: raised once by the service layer, mapped to pages and problem+json once."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the service layer raises on purpose; `status` is its HTTP meaning."""

    status = 400
    title = "Bad request"
    default_message = "The request could not be processed."

    def __init__(
        self,
        message: str = "",
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict | None = None,
    ):
        self.message = message or self.default_message
        # Validation details: [{"pointer": "/dependencies/0/version", "message": "..."}]
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.message)

    @property
    def fields(self) -> dict[str, str]:
        """The errors keyed by pointer (first message wins), handy for forms and assertions."""
        result: dict[str, str] = {}
        for err in self.errors:
            result.setdefault(err["pointer"], err["message"])
        return result


class BadRequest(DomainError):
    status = 400
    title = "Bad request"
    default_message = "The request body could not be read."


class Unauthorized(DomainError):
    status = 401
    title = "Unauthorized"
    default_message = "Authentication is required."


class PermissionDenied(DomainError):
    status = 403
    title = "Forbidden"
    default_message = "You are not allowed to do this."


class NotFound(DomainError):
    status = 404
    title = "Not found"
    default_message = "Not found."


class Conflict(DomainError):
    status = 409
    title = "Conflict"
    default_message = "The request conflicts with the current state."


class TooLarge(DomainError):
    status = 413
    title = "Content too large"
    default_message = "The content is too large."


class UnsupportedType(DomainError):
    status = 415
    title = "Unsupported media type"
    default_message = "The content type is not supported."


class ValidationFailed(DomainError):
    status = 422
    title = "Validation failed"
    default_message = "The request is well-formed but invalid."


class TooManyRequests(DomainError):
    status = 429
    title = "Too many requests"
    default_message = "Too many attempts; try again later."
