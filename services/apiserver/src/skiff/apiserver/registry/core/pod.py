"""Pods (kube's ``pkg/registry/core/pod``): validation, graceful deletion, and the
``binding`` and ``eviction`` subresources."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from skiff.api import errors
from skiff.api.errors import Cause
from skiff.api.pods import grace_period
from skiff.api.resources import ResourceInfo
from skiff.api.timestamps import rfc3339

from ...validation import duplicate
from ..options import DeleteOptions, WriteOptions
from ..strategy import STATUS, GenericStore, Obj, PartREST, Strategy, Subresource
from .containers import image_whitespace, validate_container_common
from .eviction import evict, success
from .podspec import validate_pod_only, validate_pod_spec, validate_spec_update
from .podstatus import validate_status_update
from .volumes import validate_volumes


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


EPHEMERAL = "ephemeralcontainers"
_NOT_FOR_EPHEMERAL = ("ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle",
                      "resources", "restartPolicy")  # fmt: skip


class EphemeralContainersREST(PartREST):
    """``pods/ephemeralcontainers`` (``kubectl debug``): reads the pod; writes change only
    ``spec.ephemeralContainers``, which may only grow (:meth:`PodStrategy.prepare_for_update`,
    :func:`validate_ephemeral_update`)."""

    name = EPHEMERAL


def validate_ephemeral_update(spec: dict[str, Any], old_spec: dict[str, Any]) -> list[Cause]:
    """``ValidatePodEphemeralContainersUpdate`` and ``validateEphemeralContainers``:
    existing ones unchanged, new ones named uniquely, with an image, none of the fields an
    ephemeral container may not have, a target that is one of the pod's containers."""
    path = "spec.ephemeralContainers"
    causes: list[Cause] = []
    new = {c.get("name"): c for c in spec.get("ephemeralContainers") or []}
    for c in old_spec.get("ephemeralContainers") or []:
        name = c.get("name")
        if name not in new:
            causes.append(Cause(path, f'Forbidden: existing ephemeral containers "{name}" may '
                                      "not be removed\n", "FieldValueForbidden"))  # fmt: skip
        elif new[name] != c:
            causes.append(Cause(path, f'Forbidden: existing ephemeral containers "{name}" may '
                                      "not be changed\n", "FieldValueForbidden"))  # fmt: skip
    regular = [c.get("name") for g in ("initContainers", "containers") for c in spec.get(g) or []]
    seen = set(regular)
    volumes, _ = validate_volumes(spec.get("volumes") or [], "spec.volumes")
    for i, c in enumerate(spec.get("ephemeralContainers") or []):
        where = f"{path}[{i}]"
        causes += validate_container_common(c, volumes, where)
        causes += image_whitespace(c, where)
        if c.get("name") in seen:
            causes.append(duplicate(f"{where}.name", c.get("name")))
        seen.add(c.get("name"))
        for field in _NOT_FOR_EPHEMERAL:
            if c.get(field):
                causes.append(Cause(f"{where}.{field}", "Forbidden: cannot be set for an "
                                    "Ephemeral Container", "FieldValueForbidden"))  # fmt: skip
        target = c.get("targetContainerName")
        if target and target not in regular:
            causes.append(Cause(f"{where}.targetContainerName", f'Not found: "{target}"',
                                "FieldValueNotFound"))  # fmt: skip
    return causes


class PodStrategy(Strategy):
    def make_subresources(self) -> Iterable[Subresource]:
        return (STATUS, BindingREST(), EvictionREST(), EphemeralContainersREST())

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = validate_pod_spec(spec, "spec", pod=True)
        if spec.get("ephemeralContainers"):
            causes.append(Cause("spec.ephemeralContainers", "Forbidden: cannot be set on create",
                                "FieldValueForbidden"))  # fmt: skip
        return causes + validate_pod_only(spec, "spec")

    def prepare_for_update(self, obj: Obj, old: Obj, subresource: str) -> Obj:
        """An ``ephemeralcontainers`` write changes only ``spec.ephemeralContainers``;
        other writes keep them as they are."""
        if subresource == EPHEMERAL:
            result = copy.deepcopy(old)
            wanted = (obj.get("spec") or {}).get("ephemeralContainers")
            result.setdefault("spec", {})["ephemeralContainers"] = wanted
            if wanted is None:
                result["spec"].pop("ephemeralContainers")
            return result
        obj = super().prepare_for_update(obj, old, subresource)
        kept = (old.get("spec") or {}).get("ephemeralContainers")
        spec = obj.setdefault("spec", {})
        if kept is None:
            spec.pop("ephemeralContainers", None)
        else:
            spec["ephemeralContainers"] = kept
        return obj

    def validate_part_update(self, obj: Obj, old: Obj, subresource: str) -> list[Cause]:
        """``ValidatePodUpdate`` for the pod itself; a binding sets only the node, status
        and ephemeral-container writes change only their part."""
        spec, old_spec = obj.get("spec") or {}, old.get("spec") or {}
        if subresource == "status":
            return validate_status_update(obj, old)
        if subresource == "binding":
            return []
        if subresource == EPHEMERAL:
            return validate_ephemeral_update(spec, old_spec)
        causes = validate_pod_spec(spec, "spec", pod=True)
        causes += validate_ephemeral_update(spec, old_spec)
        return causes + validate_spec_update(spec, old_spec)

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
