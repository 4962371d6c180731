"""Writes Kubernetes' default RBAC objects at start (kube-apiserver's RBAC post-start
hook): the default ClusterRoles and bindings (:mod:`.policy`) and the controllers' roles
(:mod:`.controller_policy`), created when missing and brought up to date while they carry
the autoupdate annotation. Several apiservers may do it at once: a conflict means another
one wrote it."""

from __future__ import annotations

from typing import Any

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.log import get_logger

from ..registry.options import WriteOptions
from . import controller_policy, policy
from .rbac import GROUP

log = get_logger(__name__)


def default_objects() -> list[tuple[str, list[dict[str, Any]]]]:
    """(plural, objects) in the order they are written."""
    return [
        ("clusterroles", [*policy.cluster_roles(), *controller_policy.controller_cluster_roles()]),
        (
            "clusterrolebindings",
            [
                *policy.cluster_role_bindings(),
                *controller_policy.controller_cluster_role_bindings(),
            ],
        ),
        ("roles", controller_policy.namespaced_roles()),
        ("rolebindings", controller_policy.namespaced_role_bindings()),
    ]


async def ensure_default_policy(store: Any) -> None:
    """Create or update every default object through ``store`` (the generic Store)."""
    opts = WriteOptions(field_manager="skiff-apiserver")
    for plural, objects in default_objects():
        info = REGISTRY.by_path(GROUP, "v1", plural)
        assert info is not None
        for obj in objects:
            await _ensure(store, info, obj, opts)


async def _ensure(store: Any, info: ResourceInfo, obj: dict[str, Any], opts: WriteOptions) -> None:
    name, namespace = obj["metadata"]["name"], obj["metadata"].get("namespace")
    try:
        current = await store.get(info, namespace, name)
    except ApiError as e:
        if e.code != 404:
            raise
        current = None
    try:
        if current is None:
            await store.create(info, namespace, obj, opts)
        elif (updated := policy.reconciled(current, obj)) is not None:
            await store.update(info, namespace, name, updated, opts)
            log.info("updated default RBAC object", kind=obj["kind"], name=name)
    except ApiError as e:
        if e.code != 409:  # another apiserver got there first
            log.warning("cannot write default RBAC", name=name, error=e.message)
