"""Workloads with a pod template: Deployments, ReplicaSets, StatefulSets, DaemonSets
(``apps``) and ReplicationControllers (core), as kube's ``pkg/registry/apps/*`` and
``pkg/registry/core/replicationcontroller``, with the ``scale`` subresource
(autoscaling/v1 ``Scale``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from skiff.api import errors
from skiff.api import patch as patching
from skiff.api.errors import Cause
from skiff.api.resources import ResourceInfo
from skiff.api.selectors import selector_from_dict

from ...validation import invalid, required
from ..core.pod import validate_pod_spec
from ..options import PATCH_JSON, WriteOptions, require_object
from ..strategy import STATUS, GenericStore, Obj, Strategy, Subresource
from . import specs


def scale_object(meta: Obj, replicas: int, status_replicas: int, selector: str | None) -> Obj:
    """An autoscaling/v1 Scale for the object with metadata ``meta``."""
    status: Obj = {"replicas": status_replicas}
    if selector is not None:
        status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": replicas},
        "status": status,
    }


def to_scale(obj: Obj) -> Obj:
    """The autoscaling/v1 Scale of a scalable object."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    sel = spec.get("selector") or {}
    if "matchLabels" in sel or "matchExpressions" in sel:
        selector = selector_from_dict(sel).to_string()
    else:
        selector = ",".join(f"{k}={v}" for k, v in sel.items())
    return scale_object(
        obj["metadata"], spec.get("replicas", 0), status.get("replicas", 0), selector
    )


def _replicas_of(scale: Any, name: str) -> int:
    replicas = ((scale if isinstance(scale, dict) else {}).get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise errors.invalid(
            "Scale",
            name,
            "autoscaling",
            [
                errors.Cause(
                    "spec.replicas",
                    f"Invalid value: {replicas!r}: must be greater than or equal to 0",
                )
            ],
        )
    return replicas


class ScaleREST(Subresource):
    """``<workload>/scale``: read and set ``spec.replicas`` through a Scale."""

    name = "scale"
    verbs = frozenset({"get", "update", "patch"})
    returns_parent = False

    def scale_of(self, obj: Obj) -> Obj:
        """The Scale of ``obj``."""
        return to_scale(obj)

    def set_replicas(self, obj: Obj, replicas: int) -> None:
        """Set ``obj``'s desired replicas."""
        obj.setdefault("spec", {})["replicas"] = replicas

    async def get(
        self, store: GenericStore, info: ResourceInfo, namespace: str | None, name: str
    ) -> Obj:
        return self.scale_of(await store.get(info, namespace, name))

    async def _set_replicas(
        self,
        store: GenericStore,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        new_scale,  # type: ignore[no-untyped-def]
        opts: WriteOptions,
    ) -> Obj:
        """``new_scale(current object) -> the Scale asked for``; sets its replicas."""

        def mutate(cur: Obj) -> Obj:
            self.set_replicas(cur, _replicas_of(new_scale(cur), name))
            return cur

        updated = await store.update_with(info, namespace, name, mutate, opts, subresource="scale")
        return self.scale_of(updated)

    async def update(
        self,
        store: GenericStore,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: Obj,
        opts: WriteOptions,
    ) -> Obj:
        def replaced(cur: Obj) -> Obj:
            scale = require_object(body)
            rv = (scale.get("metadata") or {}).get("resourceVersion")
            if rv and rv != cur["metadata"]["resourceVersion"]:
                raise errors.modified(info.plural, name, info.group)
            return scale

        return await self._set_replicas(store, info, namespace, name, replaced, opts)

    async def patch(
        self,
        store: GenericStore,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: Any,
        opts: WriteOptions,
    ) -> Obj:
        def patched(cur: Obj) -> Obj:
            if patch_type == PATCH_JSON:
                return patching.json_patch(self.scale_of(cur), body)
            return patching.merge_patch(self.scale_of(cur), require_object(body))

        return await self._set_replicas(store, info, namespace, name, patched, opts)


SCALE = ScaleREST()


def _template_causes(spec: dict[str, Any], match: dict[str, Any]) -> list[Cause]:
    """The template's labels must match the selector's; replicas must not be negative."""
    causes: list[Cause] = []
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in match.items()):
        detail = "`selector` does not match template `labels`"
        causes.append(invalid("spec.template.metadata.labels", labels, detail))
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        causes.append(
            Cause("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")
        )
    return causes


def _pod_template_causes(spec: dict[str, Any]) -> list[Cause]:
    template = spec.get("template") or {}
    return validate_pod_spec(template.get("spec") or {}, "spec.template.spec")


class WorkloadStrategy(Strategy):
    """Deployments, ReplicaSets, StatefulSets and DaemonSets: a pod template chosen by a
    required, immutable LabelSelector."""

    def make_subresources(self) -> Iterable[Subresource]:
        return (STATUS, SCALE)

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        kind = self.info.kind
        # kube 1.32 checks a StatefulSet's template labels but not its pod spec.
        causes = [] if kind == "StatefulSet" else _pod_template_causes(spec)
        sel = spec.get("selector")
        if not sel:
            causes.append(Cause("spec.selector", "Required value", "FieldValueRequired"))
        match = (sel or {}).get("matchLabels") or {}
        if sel is not None and not (sel or {}).get("matchExpressions") and not match:
            noun = "deployment" if kind in ("Deployment", "ReplicaSet") else kind.lower()
            causes.append(
                Cause(
                    "spec.selector",
                    f'Invalid value: "null": empty selector is invalid for {noun}',
                    "FieldValueInvalid",
                )
            )
        causes.extend(_template_causes(spec, match))
        template = spec.get("template") if isinstance(spec.get("template"), dict) else {}
        noun = "ReplicaSet" if kind in ("Deployment", "ReplicaSet") else kind
        causes += specs.controller_template(template, "spec.template", noun)
        if kind == "Deployment":
            causes += specs.deployment(spec)
        elif kind == "ReplicaSet":
            causes += specs.nonnegative(spec, "minReadySeconds", "spec")
        elif kind == "DaemonSet":
            causes += specs.daemon_set(spec)
        elif kind == "StatefulSet":
            causes += specs.stateful_set(spec)
        return causes

    def validate_part_update(self, obj: Obj, old: Obj, subresource: str) -> list[Cause]:
        if subresource == "status":
            status, old_status = obj.get("status") or {}, old.get("status") or {}
            return specs.workload_status(self.info.kind, status, old_status)
        return self.validate_update(obj, old)

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(obj)
        spec, old_spec = obj.get("spec") or {}, old.get("spec") or {}
        if self.info.kind == "StatefulSet":
            return causes + specs.stateful_set_update(spec, old_spec)
        sel = spec.get("selector")
        if old_spec.get("selector") != sel:
            causes.append(invalid("spec.selector", sel, "field is immutable"))
        return causes


class ReplicationControllerStrategy(Strategy):
    """ReplicationControllers: a map selector; their dependents are orphaned by default."""

    default_gc_policy = "Orphan"

    def make_subresources(self) -> Iterable[Subresource]:
        return (STATUS, SCALE)

    def validate_part_update(self, obj: Obj, old: Obj, subresource: str) -> list[Cause]:
        if subresource == "status":
            status, old_status = obj.get("status") or {}, old.get("status") or {}
            return specs.workload_status("ReplicationController", status, old_status)
        return self.validate_update(obj, old)

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = specs.nonnegative(spec, "minReadySeconds", "spec")
        if not spec.get("selector"):
            causes.append(required("spec.selector"))
        causes += _pod_template_causes(spec)
        causes.extend(_template_causes(spec, spec.get("selector") or {}))
        template = spec.get("template") if isinstance(spec.get("template"), dict) else {}
        return causes + specs.controller_template(
            template, "spec.template", "ReplicationController"
        )
