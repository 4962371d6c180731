"""Who made a request: kube's ``user.Info`` and the well-known users and groups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"
"""The group every authorizer allows everything (kubeadm's super-admin.conf holds it)."""
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS = "system:serviceaccounts"
NODE_PREFIX = "system:node:"
NODES = "system:nodes"
BOOTSTRAP_PREFIX = "system:bootstrap:"
BOOTSTRAPPERS = "system:bootstrappers"


@dataclass(frozen=True, slots=True)
class UserInfo:
    """An authenticated (or anonymous) user: name, uid, groups and extra attributes."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_api(self) -> dict[str, Any]:
        """authentication.k8s.io/v1 ``UserInfo`` (empty fields left out, as the API does)."""
        out: dict[str, Any] = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out

    def authenticated(self) -> UserInfo:
        """With ``system:authenticated`` added, as kube's AuthenticatedGroupAdder does."""
        if self.name == ANONYMOUS or AUTHENTICATED in self.groups:
            return self
        return UserInfo(self.name, self.uid, (*self.groups, AUTHENTICATED), self.extra)


ANONYMOUS_USER = UserInfo(ANONYMOUS, groups=(UNAUTHENTICATED,))


def service_account_user(namespace: str, name: str) -> str:
    """``system:serviceaccount:<namespace>:<name>``."""
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def service_account_groups(namespace: str) -> tuple[str, ...]:
    return (SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{namespace}")


UNSECURED_USER = UserInfo("system:unsecured", groups=(MASTERS, AUTHENTICATED))
"""Everyone, on an apiserver serving plain HTTP without authentication (kube's old
insecure port): a member of ``system:masters``."""
