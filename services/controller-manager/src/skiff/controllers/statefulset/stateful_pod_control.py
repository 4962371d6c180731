"""Creating and deleting a StatefulSet's pods and claims (``stateful_pod_control.go``).

A pod of a set is created under its own name (not ``generateName``) from the template
of the revision its ordinal gets (``newVersionedStatefulSetPod``: the current revision
below the partition, or without a ``rollingUpdate`` below ``status.currentReplicas``;
otherwise, and always under ``OnDelete``, the update revision), after the missing claims
of its ordinal (``createPersistentVolumeClaims``). A live pod gets its identity labels and
missing claims restored, and its claims' owner references follow the retention policy
(``updateClaimOwnerRefForSetAndPod``), also for pods scaled away. Events are worded as
Kubernetes words them (``recordPodEvent``, ``recordClaimEvent``).
"""

from __future__ import annotations

from typing import ClassVar

from skiff.api.errors import ApiError, Reason
from skiff.client.informer import Informer
from skiff.client.rest import Obj
from skiff.controller.podcontrol import PodControl
from skiff.controller.workload import PodOwnerController

from ..history import revision_template
from .utils import (
    ON_DELETE,
    claim_owner_refs,
    claims_for,
    identity_labels,
    identity_matches,
    new_pod,
    ordinal_of,
    spec_of,
    storage_matches,
)


def _same_refs(a: list[Obj], b: list[Obj]) -> bool:
    return sorted(r.get("uid", "") for r in a) == sorted(r.get("uid", "") for r in b)


class StatefulPodControl(PodControl):
    """Pod events worded as the StatefulSet controller words them (``recordPodEvent``)."""

    def message(self, verb: str, owner: Obj, pod_name: str, error: ApiError | None) -> str:
        what = f"{verb.lower()} Pod {pod_name} in StatefulSet {owner['metadata']['name']}"
        if error is not None:
            return f"{what} failed error: {error.message}"
        return f"{what} successful"


class StatefulPodControlMixin(PodOwnerController):
    """The pods and claims of
    :class:`~skiff.controllers.statefulset.stateful_set.StatefulSetController`."""

    pod_control_type: ClassVar[type[PodControl]] = StatefulPodControl

    # Set up by StatefulSetController.__init__.
    claims: Informer

    def _template_for(self, sts: Obj, ordinal: int, current: Obj, update: Obj) -> tuple[Obj, str]:
        """``newVersionedStatefulSetPod``: which revision a new pod of ``ordinal`` gets."""
        strategy = spec_of(sts).get("updateStrategy") or {}
        use_current = False
        if strategy.get("type", "RollingUpdate") != ON_DELETE:
            rolling = strategy.get("rollingUpdate")
            if rolling is None:
                current_replicas = int((sts.get("status") or {}).get("currentReplicas") or 0)
                use_current = ordinal < current_replicas
            else:
                use_current = ordinal < int(rolling.get("partition") or 0)
        revision = current if use_current else update
        return revision_template(revision), revision["metadata"]["name"]

    async def _create_pods(
        self, sts: Obj, key: str, ordinals: list[int], current: Obj, update: Obj
    ) -> None:
        about = self.about(sts)
        pending = list(ordinals)

        async def create_one() -> None:
            # Not PodControl.create_pod: the claims come first, and a pod of a set has
            # its own name (``CreateStatefulPod``).
            ordinal = pending.pop(0)
            template, revision = self._template_for(sts, ordinal, current, update)
            pod = new_pod(sts, template, ordinal, revision)
            name = pod["metadata"]["name"]
            try:
                await self._create_claims(sts, ordinal, name)
                await self.client.create("pods", pod, pod["metadata"]["namespace"])
            except ApiError as e:
                self.pod_control.record("Create", about, name, e)
                raise
            self.pod_control.record("Create", about, name)

        self.log.info("creating pods", key=key, ordinals=ordinals)
        _, error = await self.pod_control.create_pods(
            self.creations, key, len(ordinals), create_one
        )
        if error is not None:
            raise error

    async def _create_claims(self, sts: Obj, ordinal: int, pod: str) -> None:
        """Create the missing claims of ``ordinal`` (``createPersistentVolumeClaims``)."""
        set_name = sts["metadata"]["name"]
        for claim in claims_for(sts, ordinal).values():
            cmeta = claim["metadata"]
            existing = self.claims.get(f"{cmeta['namespace']}/{cmeta['name']}")
            if existing is not None:
                if existing["metadata"].get("deletionTimestamp"):
                    raise ApiError(409, Reason.CONFLICT, f"pvc {cmeta['name']} is being deleted")
                continue
            refs = claim_owner_refs(claim, sts, None, scaled_down=False)
            if refs:
                cmeta["ownerReferences"] = refs
            try:
                await self.client.create("persistentvolumeclaims", claim, cmeta["namespace"])
            except ApiError as e:
                if e.code == 409 and e.reason == Reason.ALREADY_EXISTS:
                    continue  # our cache is behind
                self.events.emit(
                    self.about(sts),
                    "Warning",
                    "FailedCreate",
                    f"create Claim {cmeta['name']} for Pod {pod} in StatefulSet {set_name} "
                    f"failed error: {e.message}",
                )
                raise
            self.events.emit(
                self.about(sts),
                "Normal",
                "SuccessfulCreate",
                f"create Claim {cmeta['name']} Pod {pod} in StatefulSet {set_name} success",
            )

    async def _enforce_invariants(self, sts: Obj, pod: Obj, ordinal: int) -> None:
        """Restore a live pod's identity labels, its missing claims and the claims' owners.

        Missing claims are created for a Pending pod, or one whose volumes do not name
        them, as Kubernetes does; a running pod is left alone.
        """
        meta = pod["metadata"]
        if not identity_matches(sts, pod, ordinal):
            await self.client.patch(
                "pods",
                meta["name"],
                {"metadata": {"labels": identity_labels(sts, ordinal)}},
                meta["namespace"],
            )
            self.pod_control.record("Update", self.about(sts), meta["name"])
        if not spec_of(sts).get("volumeClaimTemplates"):
            return
        pending = (pod.get("status") or {}).get("phase", "Pending") == "Pending"
        if pending or not storage_matches(sts, pod, ordinal):
            await self._create_claims(sts, ordinal, meta["name"])
        await self._update_claim_owners(sts, pod, ordinal, scaled_down=False)

    async def _update_claim_owners(
        self, sts: Obj, pod: Obj, ordinal: int, *, scaled_down: bool
    ) -> None:
        """Make the claims' ownerReferences follow the retention policy."""
        for claim in claims_for(sts, ordinal).values():
            cmeta = claim["metadata"]
            existing = self.claims.get(f"{cmeta['namespace']}/{cmeta['name']}")
            if existing is None or existing["metadata"].get("deletionTimestamp"):
                continue
            have = list(existing["metadata"].get("ownerReferences") or ())
            want = claim_owner_refs(existing, sts, pod, scaled_down)
            if _same_refs(have, want):
                continue
            emeta = existing["metadata"]
            ops: list[Obj] = [
                {"op": "test", "path": "/metadata/uid", "value": emeta["uid"]},
                {"op": "add", "path": "/metadata/ownerReferences", "value": want},
            ]
            if not want:
                ops[1] = {"op": "remove", "path": "/metadata/ownerReferences"}
            try:
                await self.client.patch(
                    "persistentvolumeclaims", emeta["name"], ops, emeta["namespace"], type="json"
                )
            except ApiError as e:
                if e.code != 404:
                    raise

    async def _delete_pods(
        self, sts: Obj, key: str, pods: list[Obj], *, scaled_down: bool = False
    ) -> None:
        if scaled_down and spec_of(sts).get("volumeClaimTemplates"):
            for pod in pods:
                await self._update_claim_owners(sts, pod, ordinal_of(pod), scaled_down=True)
        self.log.info("deleting pods", key=key, pods=[p["metadata"]["name"] for p in pods])
        results = await self.pod_control.delete_pods(self.about(sts), pods, self.deletions, key)
        for error in results:
            if error is not None:
                raise error
