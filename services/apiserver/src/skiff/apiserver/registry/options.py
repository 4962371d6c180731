"""Request options and patch types shared by the generic store, the strategies and the
front ends (kube's ``metav1.CreateOptions``/``UpdateOptions``/``DeleteOptions``/``ListOptions``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from skiff.api import errors
from skiff.api.fields import FieldSelector, parse_field_selector
from skiff.api.selectors import LabelSelector, parse_label_selector

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
class ListOptions:
    label_selector: LabelSelector | None = None
    field_selector: FieldSelector | None = None
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""

    @classmethod
    def parse(cls, label_selector: str, field_selector: str, **rest: Any) -> ListOptions:
        """Options from the selector strings of a REST query or a gRPC request."""
        return cls(
            label_selector=parse_label_selector(label_selector) if label_selector else None,
            field_selector=parse_field_selector(field_selector) if field_selector else None,
            **rest,
        )


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
