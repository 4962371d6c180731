"""The PersistentVolumeClaim and PersistentVolume protection controllers
(``pkg/controller/volume/pvcprotection`` and ``pvprotection``).

The apiserver's StorageObjectInUseProtection admission gives every new claim the
``kubernetes.io/pvc-protection`` finalizer and every new volume
``kubernetes.io/pv-protection``, so a delete only sets their ``deletionTimestamp``.
These controllers remove the finalizer once the object is no longer in use, and the
apiserver then removes the object:

* A claim is in use while a scheduled pod of its namespace that has not terminated
  (phase neither Succeeded nor Failed) names it in ``spec.volumes[].persistentVolumeClaim``.
  The informer cache is asked first; when it knows no such pod, the namespace's pods are
  listed from the API before the finalizer goes, so a pod the cache has not seen yet
  still keeps its claim. Pods not yet scheduled do not count, as in Kubernetes: the
  scheduler does not place a pod whose claim is being deleted, so a controller that
  recreates such a pod cannot hold the claim for ever. Every pod event requeues the
  claims the pod names that are being deleted (a pod deleted, finished or replaced may
  free them).
* A volume is in use while its phase is Bound. The volume binder makes it Released only
  once its claim is really gone, and then deletes it under reclaim policy Delete.

Both add their finalizer to objects that lack it and are not being deleted (created
before the admission step existed, or stripped by a client). Writes are JSON patches
guarded by ``test`` operations (:func:`~skiff.controller.finalizers.set_finalizers`), so a
finalizer another party adds or removes meanwhile is never lost.
"""

from __future__ import annotations

from typing import ClassVar

from skiff.api.resources import PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER
from skiff.client.informer import key_of
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext
from skiff.controller.finalizers import (
    add_finalizer,
    is_deletion_candidate,
    needs_finalizer,
    remove_finalizer,
)

from .volumebinding import CLAIM_POD_INDEX, scheduled_claims_index

CLAIMS = "persistentvolumeclaims"
VOLUMES = "persistentvolumes"


def claim_names(pod: Obj) -> list[str]:
    """The claims ``pod``'s volumes name (``spec.volumes[].persistentVolumeClaim``)."""
    return [
        name
        for v in (pod.get("spec") or {}).get("volumes") or ()
        if (name := (v.get("persistentVolumeClaim") or {}).get("claimName"))
    ]


def pod_uses_claim(pod: Obj, claim: Obj) -> bool:
    """Whether ``pod`` keeps ``claim`` from being removed: same namespace, scheduled, not
    terminated, and one of its volumes names the claim."""
    if pod["metadata"].get("namespace") != claim["metadata"].get("namespace"):
        return False
    if not (pod.get("spec") or {}).get("nodeName"):
        return False
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    return claim["metadata"]["name"] in claim_names(pod)


class PvcProtectionController(Controller):
    """Keeps a claim that is being deleted while a pod still uses it."""

    name: ClassVar[str] = "persistentvolumeclaim-protection-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 1) -> None:
        super().__init__(ctx, workers=workers)
        self.claims = self.watch(CLAIMS)
        self.claims.add_handler(
            self._claim_changed, lambda _o, n: self._claim_changed(n), lambda _c: None
        )
        self.pods = ctx.informers.index("pods", CLAIM_POD_INDEX, scheduled_claims_index)
        self.watch("pods")
        self.pods.add_handler(
            self._pod_changed, lambda o, n: self._pod_changed(n, o), self._pod_changed
        )

    # -- event handlers ------------------------------------------------------------------

    def _claim_changed(self, claim: Obj) -> None:
        if needs_finalizer(claim, PVC_PROTECTION_FINALIZER) or is_deletion_candidate(
            claim, PVC_PROTECTION_FINALIZER
        ):
            self.enqueue(claim)

    def _pod_changed(self, pod: Obj, old: Obj | None = None) -> None:
        """Requeue the claims being deleted that ``pod`` (or what it replaced) names."""
        names = set(claim_names(pod))
        if old is not None:
            names.update(claim_names(old))  # the same name may now be another pod
        ns = pod["metadata"].get("namespace")
        for name in names:
            claim = self.claims.get(f"{ns}/{name}")
            if claim is not None and is_deletion_candidate(claim, PVC_PROTECTION_FINALIZER):
                self.enqueue(claim)

    # -- reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        claim = self.claims.get(key)
        if claim is None:
            return None
        if is_deletion_candidate(claim, PVC_PROTECTION_FINALIZER):
            user = self._user_in_cache(claim) or await self._user_in_api(claim)
            if user is not None:
                self.log.debug("keeping claim: a pod uses it", claim=key, pod=user)
                return None  # the pod's events bring the claim back
            await remove_finalizer(self.client, CLAIMS, claim, PVC_PROTECTION_FINALIZER)
            self.log.info("removed the protection finalizer of an unused claim", claim=key)
            return None
        if needs_finalizer(claim, PVC_PROTECTION_FINALIZER):
            await add_finalizer(self.client, CLAIMS, claim, PVC_PROTECTION_FINALIZER)
            self.log.info("added the protection finalizer", claim=key)
        return None

    def _user_in_cache(self, claim: Obj) -> str | None:
        for pod in self.pods.store.by_index(CLAIM_POD_INDEX, key_of(claim)):
            if pod_uses_claim(pod, claim):
                return key_of(pod)
        return None

    async def _user_in_api(self, claim: Obj) -> str | None:
        """A live list: the cache may not have seen a pod created just now."""
        pods, _ = await self.client.list_all("pods", claim["metadata"]["namespace"])
        for pod in pods:
            if pod_uses_claim(pod, claim):
                return key_of(pod)
        return None


class PvProtectionController(Controller):
    """Keeps a volume that is being deleted while it is Bound to a claim."""

    name: ClassVar[str] = "persistentvolume-protection-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 1) -> None:
        super().__init__(ctx, workers=workers)
        self.volumes = self.watch(VOLUMES)
        self.volumes.add_handler(
            self._volume_changed, lambda _o, n: self._volume_changed(n), lambda _v: None
        )

    def _volume_changed(self, pv: Obj) -> None:
        if needs_finalizer(pv, PV_PROTECTION_FINALIZER) or is_deletion_candidate(
            pv, PV_PROTECTION_FINALIZER
        ):
            self.enqueue(pv)

    async def reconcile(self, key: str) -> float | None:
        pv = self.volumes.get(key)
        if pv is None:
            return None
        if is_deletion_candidate(pv, PV_PROTECTION_FINALIZER):
            if (pv.get("status") or {}).get("phase") == "Bound":
                return None  # its phase changes when the claim is gone: the event comes
            await remove_finalizer(self.client, VOLUMES, pv, PV_PROTECTION_FINALIZER)
            self.log.info("removed the protection finalizer of an unbound volume", volume=key)
            return None
        if needs_finalizer(pv, PV_PROTECTION_FINALIZER):
            await add_finalizer(self.client, VOLUMES, pv, PV_PROTECTION_FINALIZER)
            self.log.info("added the protection finalizer", volume=key)
        return None
