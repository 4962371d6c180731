"""Request options and patch types shared by the generic store, the strategies and the
front ends (kube's ``metav1.CreateOptions``/``UpdateOptions``/``DeleteOptions``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from skiff.api import errors

from ..authentication.user import UserInfo

PATCH_JSON = "application/json-patch+json"
PATCH_MERGE = "application/merge-patch+json"
PATCH_STRATEGIC = "application/strategic-merge-patch+json"
PATCH_APPLY = "application/apply-patch+yaml"


@dataclass(slots=True)
class WriteOptions:
    """Query options shared by create, update and patch."""

    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Strict"
    force: bool = False
    warnings: list[str] = field(default_factory=list)
    user: UserInfo | None = None
    """Who writes (None: the apiserver itself, or an unauthenticated front end)."""
    audit_annotations: dict[str, str] = field(default_factory=dict)
    """What admission adds to the request's audit event (PodSecurity's audit violations)."""


@dataclass(slots=True)
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False
    user: UserInfo | None = None


def require_object(body: Any) -> dict[str, Any]:
    """A request body that must be a JSON object (400 otherwise)."""
    if not isinstance(body, dict):
        raise errors.bad_request(f"the request body must be an object, not {type(body).__name__}")
    return body
