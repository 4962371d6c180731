"""Pods (kube's ``pkg/registry/core/pod``): validation, graceful deletion, and the
``binding`` and ``eviction`` subresources."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from skiff.api import errors, names
from skiff.api.errors import Cause
from skiff.api.pods import grace_period
from skiff.api.resources import ResourceInfo
from skiff.api.timestamps import rfc3339

from ..options import DeleteOptions, WriteOptions
from ..strategy import STATUS, GenericStore, Obj, Strategy, Subresource
from .eviction import evict, success


def validate_pod_spec(spec: dict[str, Any], path: str) -> list[Cause]:
    """A pod spec's containers (also in templates, at ``path``)."""
    containers = spec.get("containers")
    if not containers:
        return [Cause(f"{path}.containers", "Required value", "FieldValueRequired")]
    causes: list[Cause] = []
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            causes.extend(_validate_container(c, f"{path}.{group}[{i}]", seen))
    return causes


def _validate_container(c: dict[str, Any], where: str, seen: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    name = c.get("name")
    if not name:
        causes.append(Cause(f"{where}.name", "Required value", "FieldValueRequired"))
    else:
        for msg in names.is_dns1123_label(name):
            causes.append(Cause(f"{where}.name", f'Invalid value: "{name}": {msg}'))
        if name in seen:
            causes.append(
                Cause(f"{where}.name", f'Duplicate value: "{name}"', "FieldValueDuplicate")
            )
        seen.add(name)
    if not c.get("image"):
        causes.append(Cause(f"{where}.image", "Required value", "FieldValueRequired"))
    return causes


class _PostOnly(Subresource):
    """A subresource that is only ever POSTed (a Binding, an Eviction) and answers with a
    Status, not the pod."""

    verbs = frozenset({"create"})
    returns_parent = False

    def not_allowed(self, info: ResourceInfo, verb: str) -> errors.ApiError:
        return errors.method_not_allowed(f"{self.name} only supports POST")


class BindingREST(_PostOnly):
    """``pods/binding``: assign a pod to a node, once (409 if it already has one)."""

    name = "binding"

    async def create(
        self,
        store: GenericStore,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: Obj,
        opts: WriteOptions,
    ) -> Obj:
        node = ((body.get("target") or {}).get("name")) or ""
        if not node:
            raise errors.invalid(
                "Binding",
                name,
                "",
                [errors.Cause("target.name", "Required value", "FieldValueRequired")],
            )
        want_uid = (body.get("metadata") or {}).get("uid")

        def bind(cur: Obj) -> Obj:
            _check_bindable(cur, name, want_uid)
            cur.setdefault("spec", {})["nodeName"] = node
            # As kube-apiserver's binding: the pod is now scheduled.
            status = cur.setdefault("status", {})
            conditions = [
                c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"
            ]
            conditions.append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": rfc3339(),
                }
            )
            status["conditions"] = conditions
            return cur

        await store.update_with(info, namespace, name, bind, opts, subresource="binding")
        return success()


def _check_bindable(cur: Obj, name: str, want_uid: str | None) -> None:
    spec = cur.get("spec") or {}
    if cur["metadata"].get("deletionTimestamp"):
        raise errors.conflict(
            "pods", name, "", "pod is being deleted, cannot be assigned to a host"
        )
    if spec.get("nodeName"):
        raise errors.conflict(
            "pods/binding", name, "", f'pod {name} is already assigned to node "{spec["nodeName"]}"'
        )
    if want_uid and want_uid != cur["metadata"].get("uid"):
        raise errors.conflict(
            "pods/binding",
            name,
            "",
            f"Precondition failed: UID in precondition: {want_uid}, UID in object meta: "
            f"{cur['metadata'].get('uid')}",
        )


class EvictionREST(_PostOnly):
    """``pods/eviction``: a delete the pod's PodDisruptionBudget may refuse
    (:mod:`.eviction`)."""

    name = "eviction"

    async def create(
        self,
        store: GenericStore,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: Obj,
        opts: WriteOptions,
    ) -> Obj:
        return await evict(store, info, namespace or "", name, body, opts)


class PodStrategy(Strategy):
    def make_subresources(self) -> Iterable[Subresource]:
        return (STATUS, BindingREST(), EvictionREST())

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_pod_spec(obj.get("spec") or {}, "spec")

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(obj)
        oldc = [c.get("name") for c in (old.get("spec") or {}).get("containers") or []]
        newc = [c.get("name") for c in (obj.get("spec") or {}).get("containers") or []]
        if oldc != newc:
            causes.append(
                Cause(
                    "spec",
                    "Forbidden: pod updates may not add or remove containers",
                    "FieldValueForbidden",
                )
            )
        return causes

    def prepare_delete(self, obj: Obj, opts: DeleteOptions) -> tuple[bool, int]:
        """The grace period: the request's, else the pod's; none for a pod no kubelet runs;
        a second delete may shorten it, never lengthen it."""
        spec = obj.get("spec") or {}
        grace = opts.grace_period_seconds
        if grace is None:
            grace = grace_period(obj)
        phase = (obj.get("status") or {}).get("phase")
        # An unscheduled or finished pod has no kubelet to wait for.
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            grace = 0
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            prev = meta.get("deletionGracePeriodSeconds")
            grace = min(grace, prev) if prev is not None else grace
        return grace > 0, grace

    def pending_graceful(self, obj: Obj) -> bool:
        """A pod whose kubelet has not yet confirmed termination stays until it does."""
        return bool((obj["metadata"].get("deletionGracePeriodSeconds") or 0) > 0)


class PodTemplateStrategy(Strategy):
    """PodTemplates (``ValidatePodTemplate``): the template's pod spec."""

    def validate(self, obj: Obj) -> list[Cause]:
        template = obj.get("template") or {}
        return validate_pod_spec(template.get("spec") or {}, "template.spec")
