"""Authorization, as kube-apiserver's: ``system:masters`` may do anything, then each
``--authorization-mode`` in order (``AlwaysAllow``, ``AlwaysDeny``, ``Node``, ``RBAC``)
until one allows; a request none allows is a 403 in kube-apiserver's words."""

from __future__ import annotations

from collections.abc import Sequence

from skiff.api.errors import ApiError, Reason

from ..authentication.user import MASTERS, UserInfo
from .attributes import RequestAttributes
from .node import NodeAuthorizer
from .rbac import RBACAuthorizer

__all__ = ["MODES", "Authorizer", "RequestAttributes", "forbidden"]

MODES = ("AlwaysAllow", "AlwaysDeny", "Node", "RBAC")


class Authorizer:
    """The chain of authorization modes one apiserver runs."""

    def __init__(
        self,
        modes: Sequence[str],
        rbac: RBACAuthorizer | None = None,
        node: NodeAuthorizer | None = None,
    ) -> None:
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            raise ValueError(f"unknown authorization mode(s) {', '.join(unknown)}")
        if "RBAC" in modes and rbac is None:
            raise ValueError("RBAC mode needs the RBAC authorizer")
        if "Node" in modes and node is None:
            raise ValueError("Node mode needs the Node authorizer")
        self.modes = tuple(modes)
        self.rbac = rbac
        self.node = node

    def authorize(self, a: RequestAttributes) -> tuple[bool, str]:
        """(allowed, reason)."""
        if MASTERS in a.user.groups:
            return True, ""
        reasons = []
        for mode in self.modes:
            if mode == "AlwaysAllow":
                return True, ""
            if mode == "AlwaysDeny":
                return False, "Everything is forbidden."
            if mode == "Node":
                assert self.node is not None
                decision, reason = self.node.authorize(a)
                if decision:
                    return True, reason
                if reason:
                    reasons.append(reason)
            if mode == "RBAC":
                assert self.rbac is not None
                allowed, reason = self.rbac.authorize(a)
                if allowed:
                    return True, reason
        return False, ", ".join(reasons)

    def check(self, a: RequestAttributes) -> None:
        """Nothing, or the 403 ApiError."""
        allowed, reason = self.authorize(a)
        if not allowed:
            raise forbidden(a, reason)


def forbidden(a: RequestAttributes, reason: str = "") -> ApiError:
    """kube-apiserver's 403: ``<resource> "<name>" is forbidden: User "x" cannot ...``."""
    message = a.forbidden_message()
    if reason:
        message = f"{message}: {reason}"
    if not a.resource_request:
        return ApiError(403, Reason.FORBIDDEN, f"forbidden: {message}")
    qualified = f"{a.resource}.{a.api_group}" if a.api_group else a.resource
    named = f' "{a.name}"' if a.name else ""
    return ApiError(
        403,
        Reason.FORBIDDEN,
        f"{qualified}{named} is forbidden: {message}",
        kind=a.resource,
        name=a.name,
        group=a.api_group,
    )


def user_can(authorizer: Authorizer, user: UserInfo, **attrs: str) -> bool:
    """Whether ``user`` may do what ``attrs`` (RequestAttributes' fields) describe."""
    a = RequestAttributes(user=user, resource_request=True, **attrs)  # type: ignore[arg-type]
    return authorizer.authorize(a)[0]
