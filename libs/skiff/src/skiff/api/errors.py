"""Kubernetes ``Status`` errors.

Every failure the API server reports is an :class:`ApiError`; it renders as a
``meta/v1 Status`` object so kubectl and client libraries show its message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """``Status.reason`` values used by Kubernetes (``metav1.StatusReason``)."""

    BAD_REQUEST = "BadRequest"
    UNAUTHORIZED = "Unauthorized"
    FORBIDDEN = "Forbidden"
    NOT_FOUND = "NotFound"
    ALREADY_EXISTS = "AlreadyExists"
    CONFLICT = "Conflict"
    GONE = "Gone"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    NOT_ACCEPTABLE = "NotAcceptable"
    REQUEST_ENTITY_TOO_LARGE = "RequestEntityTooLarge"
    UNSUPPORTED_MEDIA_TYPE = "UnsupportedMediaType"
    TOO_MANY_REQUESTS = "TooManyRequests"
    INTERNAL_ERROR = "InternalError"
    TIMEOUT = "Timeout"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"


@dataclass(slots=True)
class Cause:
    """One ``StatusCause``: which field is wrong and why."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def to_dict(self) -> dict[str, str]:
        """The StatusCause (empty fields left out, as the API's ``omitempty``)."""
        out = {"reason": self.reason, "message": self.message, "field": self.field}
        return {k: v for k, v in out.items() if v}


@dataclass
class ApiError(Exception):
    """An error that is answered with a Kubernetes ``Status`` object."""

    code: int
    reason: Reason
    message: str
    kind: str = ""
    name: str = ""
    group: str = ""
    causes: list[Cause] = field(default_factory=list)
    retry_after: int | None = None

    def __str__(self) -> str:
        return self.message

    def status(self) -> dict[str, Any]:
        """The ``Status`` object for this error."""
        # metav1.Status's field order, empty fields left out (omitempty), as kube writes it.
        out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Failure"}  # fmt: skip
        if self.message:
            out["message"] = self.message
        if str(self.reason):
            out["reason"] = str(self.reason)
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        if details:
            out["details"] = details
        out["code"] = self.code
        return out


NAMESPACE_TERMINATING_CAUSE = "NamespaceTerminating"
"""The cause of a create refused in a namespace being deleted (``NamespaceTerminatingCause``)."""


def namespace_terminating(e: ApiError) -> bool:
    """Whether a create failed because its namespace is being deleted."""
    if any(c.reason == NAMESPACE_TERMINATING_CAUSE for c in e.causes):
        return True
    return e.code == 403 and "because it is being terminated" in e.message


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def bad_request(message: str) -> ApiError:
    return ApiError(400, Reason.BAD_REQUEST, message)


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        404,
        Reason.NOT_FOUND,
        f'{_qualified(resource, group)} "{name}" not found',
        kind=resource,
        name=name,
        group=group,
    )


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        409,
        Reason.ALREADY_EXISTS,
        f'{_qualified(resource, group)} "{name}" already exists',
        kind=resource,
        name=name,
        group=group,
    )


def conflict(resource: str, name: str, group: str, why: str) -> ApiError:
    return ApiError(
        409,
        Reason.CONFLICT,
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
        kind=resource,
        name=name,
        group=group,
    )


def forbidden(resource: str, name: str, group: str, why: str) -> ApiError:
    """403 ``<resource>.<group> "<name>" is forbidden: <why>`` (``NewForbidden``)."""
    return ApiError(
        403,
        Reason.FORBIDDEN,
        f'{_qualified(resource, group)} "{name}" is forbidden: {why}',
        kind=resource,
        name=name,
        group=group,
    )


def invalid(kind: str, name: str, group: str, causes: list[Cause]) -> ApiError:
    """422 with one cause per bad field, worded like Kubernetes' validation errors."""
    detail = ", ".join(f"{c.field}: {c.message}" if c.field else c.message for c in causes)
    label = f"{kind}.{group}" if group else kind
    return ApiError(
        422,
        Reason.INVALID,
        f'{label} "{name}" is invalid: {detail}',
        kind=kind,
        name=name,
        group=group,
        causes=causes,
    )


OPTIMISTIC_LOCK_MESSAGE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def modified(resource: str, name: str, group: str = "") -> ApiError:
    """409 for a write whose resourceVersion is stale (``OptimisticLockErrorMsg``)."""
    return conflict(resource, name, group, OPTIMISTIC_LOCK_MESSAGE)


def gone(message: str) -> ApiError:
    return ApiError(410, Reason.EXPIRED, message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, Reason.METHOD_NOT_ALLOWED, message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        Reason.UNSUPPORTED_MEDIA_TYPE,
        f"the body of the request was in an unknown format: {content_type}",
    )


def too_large(message: str = "Request entity too large: limit is 3145728") -> ApiError:
    return ApiError(413, Reason.REQUEST_ENTITY_TOO_LARGE, message)


def internal(message: str) -> ApiError:
    return ApiError(500, Reason.INTERNAL_ERROR, message)


def unavailable(message: str, retry_after: int = 1) -> ApiError:
    return ApiError(503, Reason.SERVICE_UNAVAILABLE, message, retry_after=retry_after)


def timeout(message: str) -> ApiError:
    return ApiError(504, Reason.TIMEOUT, message, retry_after=1)
