"""The PersistentVolume binder and a hostPath provisioner.

A much reduced ``persistentvolume-binder-controller`` (``pkg/controller/volume/persistentvolume``):

* A Pending claim is bound to an Available volume that satisfies it (the smallest
  one with the claim's storage class, volume mode, access modes and selector and at
  least the requested capacity; a volume pre-bound to the claim first). When there is
  none and the claim names a storage class (any, or one of ``classes`` when given) it
  is *provisioned*: a PersistentVolume ``pvc-<claim uid>`` with a hostPath
  ``<base>/<claim uid>`` (``DirectoryOrCreate``; ``<base>`` is ``--skiff-pv-hostpath-dir``,
  ``/var/lib/skiff/pv`` by default), the requested capacity, the claim's access modes
  and reclaim policy Delete, created already bound to the claim (``claimRef``). A claim
  with ``storageClassName: ""`` only binds to existing volumes.
* Binding sets the volume's ``claimRef`` and phase Bound, then the claim's
  ``spec.volumeName`` (with ``pv.kubernetes.io/bind-completed``) and its status: phase
  Bound, capacity and access modes. Each step is idempotent, so a restart mid-way
  finishes the binding (a provisioned volume is found again by the claim's uid).
* A volume whose claim is gone is Released and, with reclaim policy Delete, deleted
  (the host directory stays: this controller does not run on the node that has it);
  Retain keeps it Released. A bound claim whose volume vanished becomes Lost. A claim
  being deleted still exists: held by ``kubernetes.io/pvc-protection`` while a pod uses
  it, it keeps its volume Bound, so its data outlives the delete until the claim is
  really gone (``volumeprotection.py``). A volume deleted while Bound stays (held by
  ``kubernetes.io/pv-protection``) until its claim goes and it is Released.

* Storage classes: a claim whose StorageClass has ``volumeBindingMode:
  WaitForFirstConsumer`` is left alone until a pod using it is scheduled (or the
  scheduler's ``volume.kubernetes.io/selected-node`` annotation names a node); it is then
  bound to an existing volume whose node affinity admits that node, or provisioned *on
  that node*: the volume gets a required node affinity on the node's
  ``kubernetes.io/hostname``, so the scheduler sends
  every later pod of the claim back to the node that holds the data (as k3s's and kind's
  local-path provisioners do). A class whose provisioner is not ours is left to its
  provisioner; a claim naming a class that does not exist is provisioned as before.
* When no StorageClass is marked default, one is created: ``standard`` (this
  provisioner, reclaim policy Delete, WaitForFirstConsumer), like kind's.

Keys are ``claim:<namespace>/<name>`` and ``volume:<name>`` in one queue.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from skiff.api.defaults import parse_quantity
from skiff.api.errors import ApiError
from skiff.api.nodeselector import node_matches
from skiff.api.resources import DEFAULT_STORAGE_CLASS_ANNOTATION, is_default_storage_class
from skiff.api.selectors import selector_from_dict
from skiff.client.informer import key_of, wait_synced
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext, TerminalError

PROVISIONER = "skiff.io/hostpath"
DEFAULT_BASE_DIR = "/var/lib/skiff/pv"
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
CLAIM_UID_INDEX = "claim-uid"
"""Index of PersistentVolumes by the uid in their ``claimRef``."""
CLAIM_PREFIX, VOLUME_PREFIX = "claim:", "volume:"
CLAIM_POD_INDEX = "scheduled-claims"
"""Index of scheduled pods by the ``<namespace>/<claim>`` of their PVC volumes."""
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
DEFAULT_CLASS = "standard"
WAIT = "WaitForFirstConsumer"
HOSTNAME_LABEL = "kubernetes.io/hostname"


def scheduled_claims_index(pod: Obj) -> list[str]:
    spec = pod.get("spec") or {}
    if not spec.get("nodeName"):
        return []
    ns = pod["metadata"].get("namespace")
    return [
        f"{ns}/{v['persistentVolumeClaim']['claimName']}"
        for v in spec.get("volumes") or []
        if (v.get("persistentVolumeClaim") or {}).get("claimName")
    ]


def claim_uid_index(pv: Obj) -> list[str]:
    uid = (((pv.get("spec") or {}).get("claimRef")) or {}).get("uid")
    return [uid] if uid else []


def _class(obj: Obj) -> str:
    return (obj.get("spec") or {}).get("storageClassName") or ""


def _mode(obj: Obj) -> str:
    return (obj.get("spec") or {}).get("volumeMode") or "Filesystem"


def requested_storage(claim: Obj) -> str | None:
    """The claim's ``resources.requests.storage`` as written (None when missing)."""
    requests = (((claim.get("spec") or {}).get("resources")) or {}).get("requests") or {}
    value = requests.get("storage")
    return None if value is None else str(value)


def _quantity(value: object) -> Decimal:
    q = parse_quantity(value)
    return q if q is not None else Decimal(0)


def claim_ref(claim: Obj) -> Obj:
    """The ``claimRef`` of a volume bound to ``claim``."""
    meta = claim["metadata"]
    return {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
        "resourceVersion": meta.get("resourceVersion", ""),
    }


def refers_to(ref: Obj | None, claim: Obj) -> bool:
    """Whether a claimRef names ``claim`` (by uid, or by name when it has no uid yet)."""
    if not ref:
        return False
    meta = claim["metadata"]
    if ref.get("name") != meta["name"] or ref.get("namespace") != meta.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == meta.get("uid")


def volume_satisfies(pv: Obj, claim: Obj) -> bool:
    """Class, mode, access modes, capacity and selector of ``claim`` fit ``pv``."""
    spec, cspec = pv.get("spec") or {}, claim.get("spec") or {}
    if _class(pv) != _class(claim) or _mode(pv) != _mode(claim):
        return False
    if not set(cspec.get("accessModes") or ()) <= set(spec.get("accessModes") or ()):
        return False
    want = _quantity(requested_storage(claim) or 0)
    if _quantity((spec.get("capacity") or {}).get("storage")) < want:
        return False
    raw = cspec.get("selector")
    if raw:
        try:
            selector = selector_from_dict(raw)
        except ApiError:
            return False
        if not selector.matches(pv["metadata"].get("labels")):
            return False
    return True


class PersistentVolumeBinder(Controller):
    """Binds claims to volumes, provisioning hostPath volumes when none fits."""

    name: ClassVar[str] = "persistentvolume-binder-controller"

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        workers: int = 1,
        base_dir: str | None = None,
        classes: frozenset[str] | None = None,
    ) -> None:
        super().__init__(ctx, workers=workers)
        self.base_dir = (base_dir or DEFAULT_BASE_DIR).rstrip("/")
        """Where provisioned volumes live (``--skiff-pv-hostpath-dir``)."""
        self.classes = classes
        """Storage classes provisioned here (None: every non-empty class)."""
        self.volumes = ctx.informers.index("persistentvolumes", CLAIM_UID_INDEX, claim_uid_index)
        self.watch("persistentvolumes")
        self.claims = self.watch("persistentvolumeclaims")
        self.claims.add_handler(
            self._claim_changed, lambda _o, n: self._claim_changed(n), self._claim_deleted
        )
        self.volumes.add_handler(
            self._volume_changed, lambda _o, n: self._volume_changed(n), self._volume_changed
        )
        self.storage_classes = self.watch("storageclasses")
        self.storage_classes.add_handler(
            self._class_changed, lambda _o, n: self._class_changed(n), lambda _c: None
        )
        self.nodes = self.watch("nodes")
        self.pods = ctx.informers.index("pods", CLAIM_POD_INDEX, scheduled_claims_index)
        self.watch("pods")
        self.pods.add_handler(
            self._pod_changed, lambda _o, n: self._pod_changed(n), lambda _p: None
        )

    async def run(self) -> None:
        await wait_synced(*self.informers)
        await self.ensure_default_class()
        await super().run()

    async def ensure_default_class(self) -> None:
        """Create ``standard`` when no StorageClass is the default."""
        if any(is_default_storage_class(sc) for sc in self.storage_classes.list()):
            return
        body: Obj = {
            "metadata": {
                "name": DEFAULT_CLASS,
                "annotations": {DEFAULT_STORAGE_CLASS_ANNOTATION: "true"},
            },
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": WAIT,
        }
        try:
            await self.client.create("storageclasses", body)
            self.log.info("created the default StorageClass", name=DEFAULT_CLASS)
        except ApiError as e:
            if e.code != 409:
                self.log.warning("cannot create the default StorageClass", error=e.message)

    # -- event handlers ------------------------------------------------------------------

    def _claim_changed(self, claim: Obj) -> None:
        self.queue.add(CLAIM_PREFIX + key_of(claim))

    def _claim_deleted(self, claim: Obj) -> None:
        names = {pv["metadata"]["name"] for pv in self._volumes_of(claim)}
        if vn := (claim.get("spec") or {}).get("volumeName"):
            names.add(vn)
        for name in names:
            self.queue.add(VOLUME_PREFIX + name)

    def _class_changed(self, sc: Obj) -> None:
        for claim in self.claims.list():
            if _class(claim) == sc["metadata"]["name"]:
                self._claim_changed(claim)

    def _pod_changed(self, pod: Obj) -> None:
        for key in scheduled_claims_index(pod):
            claim = self.claims.get(key)
            if claim is not None and not (claim.get("spec") or {}).get("volumeName"):
                self.queue.add(CLAIM_PREFIX + key)

    def _volume_changed(self, pv: Obj) -> None:
        self.queue.add(VOLUME_PREFIX + pv["metadata"]["name"])
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if ref.get("name") and ref.get("namespace"):
            self.queue.add(f"{CLAIM_PREFIX}{ref['namespace']}/{ref['name']}")

    def _volumes_of(self, claim: Obj) -> list[Obj]:
        uid = claim["metadata"].get("uid")
        return self.volumes.store.by_index(CLAIM_UID_INDEX, uid) if uid else []

    # -- reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        if key.startswith(CLAIM_PREFIX):
            await self.sync_claim(key.removeprefix(CLAIM_PREFIX))
        elif key.startswith(VOLUME_PREFIX):
            await self.sync_volume(key.removeprefix(VOLUME_PREFIX))
        else:
            raise TerminalError(f"unknown key {key!r}")
        return None

    async def sync_claim(self, key: str) -> None:
        """Bind, provision for, or mark Lost one claim (``syncClaim``)."""
        claim = self.claims.get(key)
        if claim is None or claim["metadata"].get("deletionTimestamp"):
            return
        volume_name = (claim.get("spec") or {}).get("volumeName")
        completed = (claim["metadata"].get("annotations") or {}).get(ANN_BIND_COMPLETED)
        if not volume_name:
            node: str | None = None
            sc = self.storage_classes.get(_class(claim)) if _class(claim) else None
            if sc is not None and sc.get("volumeBindingMode") == WAIT:
                node = self._selected_node(claim)
                if node is None:
                    self.events.emit(
                        self._claim_about(claim),
                        "Normal",
                        "WaitForFirstConsumer",
                        "waiting for first consumer to be created before binding",
                    )
                    return  # waits for its first consumer to be scheduled
            pv = self._find_volume(claim, node)
            if pv is None:
                if not self._provisionable(claim, sc):
                    return  # waits for a volume to appear
                pv = await self.provision(claim, node)
                if pv is None:
                    return
            await self.bind(pv, claim)
            return
        pv = self.volumes.get(volume_name)
        if pv is None:
            if completed:
                await self._claim_lost(
                    claim,
                    "ClaimLost",
                    "Bound claim has lost reference to "
                    "PersistentVolume. Data on the volume is lost!",
                )
            return  # pre-bound to a volume that does not exist yet
        ref = (pv.get("spec") or {}).get("claimRef")
        if ref is None or refers_to(ref, claim):
            await self.bind(pv, claim)
        elif completed:
            await self._claim_lost(
                claim,
                "ClaimMisbound",
                "Two claims are bound to the same volume, this one is bound incorrectly",
            )

    def _provisionable(self, claim: Obj, sc: Obj | None) -> bool:
        cls = (claim.get("spec") or {}).get("storageClassName")
        if cls == "":
            return False  # explicitly no class: static binding only
        if sc is not None and sc.get("provisioner") != PROVISIONER:
            return False  # another provisioner's class
        return self.classes is None or (cls or "") in self.classes

    def _selected_node(self, claim: Obj) -> str | None:
        """The node a WaitForFirstConsumer claim is for: the scheduler's pick, or its pod's."""
        chosen = (claim["metadata"].get("annotations") or {}).get(ANN_SELECTED_NODE)
        if chosen:
            return chosen
        pods = self.pods.store.by_index(CLAIM_POD_INDEX, key_of(claim))
        pods = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return pods[0]["spec"]["nodeName"] if pods else None

    def _find_volume(self, claim: Obj, node: str | None = None) -> Obj | None:
        """A volume for an unbound claim: its own (by uid), pre-bound, or the smallest fit.

        ``node``: the claim is bound where its pod runs, so a volume with node affinity
        must admit that node.
        """
        labels: dict[str, str] = {}
        if node is not None:
            known = self.nodes.get(node)
            labels = dict((known or {}).get("metadata", {}).get("labels") or {})
            labels.setdefault(HOSTNAME_LABEL, node)
        mine = [pv for pv in self._volumes_of(claim) if not pv["metadata"].get("deletionTimestamp")]
        if mine:
            return mine[0]
        best: Obj | None = None
        for pv in self.volumes.list():
            spec = pv.get("spec") or {}
            if pv["metadata"].get("deletionTimestamp"):
                continue
            required = (spec.get("nodeAffinity") or {}).get("required")
            if node is not None and required is not None:
                if not node_matches(required.get("nodeSelectorTerms") or [], labels, node):
                    continue
            if (pv.get("status") or {}).get("phase") in ("Released", "Failed"):
                continue
            ref = spec.get("claimRef")
            if ref and not refers_to(ref, claim):
                continue
            if not volume_satisfies(pv, claim):
                continue
            if ref:
                return pv  # pre-bound to this claim by name
            size = _quantity((spec.get("capacity") or {}).get("storage"))
            best_size = _quantity(
                ((best or {}).get("spec") or {}).get("capacity", {}).get("storage")
            )
            if best is None or size < best_size:
                best = pv
        return best

    async def provision(self, claim: Obj, node: str | None = None) -> Obj | None:
        """Create the hostPath volume of ``claim``, already bound to it (on ``node``)."""
        meta, spec = claim["metadata"], claim.get("spec") or {}
        about = self._claim_about(claim)
        size = requested_storage(claim)
        if size is None:
            self.events.emit(
                about, "Warning", "ProvisioningFailed", "claim has no resources.requests.storage"
            )
            return None
        if _mode(claim) != "Filesystem":
            self.events.emit(
                about,
                "Warning",
                "ProvisioningFailed",
                f"{PROVISIONER} only provisions Filesystem volumes, not {_mode(claim)}",
            )
            return None
        name = f"pvc-{meta['uid']}"
        pv_spec: Obj = {
            "capacity": {"storage": size},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "persistentVolumeReclaimPolicy": "Delete",
            "volumeMode": "Filesystem",
            "hostPath": {"path": f"{self.base_dir}/{meta['uid']}", "type": "DirectoryOrCreate"},
            "claimRef": claim_ref(claim),
        }
        if _class(claim):
            pv_spec["storageClassName"] = _class(claim)
        if node is not None:
            hostname = (
                ((self.nodes.get(node) or {}).get("metadata") or {})
                .get("labels", {})
                .get(HOSTNAME_LABEL, node)
            )
            term = {"key": HOSTNAME_LABEL, "operator": "In", "values": [hostname]}
            pv_spec["nodeAffinity"] = {
                "required": {"nodeSelectorTerms": [{"matchExpressions": [term]}]}
            }
        pv: Obj = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": name,
                "annotations": {ANN_PROVISIONED_BY: PROVISIONER, ANN_BOUND_BY_CONTROLLER: "yes"},
            },
            "spec": pv_spec,
        }
        try:
            created = await self.client.create("persistentvolumes", pv)
        except ApiError as e:
            if e.code != 409:
                self.events.emit(about, "Warning", "ProvisioningFailed", e.message)
                raise
            created = await self.client.get("persistentvolumes", name)
            if not refers_to((created.get("spec") or {}).get("claimRef"), claim):
                raise TerminalError(f"volume {name} exists and is bound elsewhere") from e
            return created
        self.log.info("provisioned volume", claim=key_of(claim), volume=name, size=size)
        self.events.emit(
            about,
            "Normal",
            "ProvisioningSucceeded",
            f"Successfully provisioned volume {name} using {PROVISIONER}",
        )
        return created

    async def bind(self, pv: Obj, claim: Obj) -> None:
        """Bind volume and claim both ways, skipping the steps already done (``bind``)."""
        pmeta, cmeta = pv["metadata"], claim["metadata"]
        pspec = pv.get("spec") or {}
        ref = pspec.get("claimRef")
        if not ref or ref.get("uid") != cmeta["uid"]:
            pv = await self._set_claim_ref(pv, claim, by_controller=not ref)
        if (pv.get("status") or {}).get("phase") != "Bound":
            pv = await self.client.patch(
                "persistentvolumes",
                pmeta["name"],
                {"status": {"phase": "Bound"}},
                subresource="status",
            )
        ns, name = cmeta["namespace"], cmeta["name"]
        annotations = cmeta.get("annotations") or {}
        if (claim.get("spec") or {}).get("volumeName") != pmeta["name"] or not annotations.get(
            ANN_BIND_COMPLETED
        ):
            cpatch: Obj = {
                "metadata": {"annotations": {ANN_BIND_COMPLETED: "yes"}},
                "spec": {"volumeName": pmeta["name"]},
            }
            if not (claim.get("spec") or {}).get("volumeName"):
                cpatch["metadata"]["annotations"][ANN_BOUND_BY_CONTROLLER] = "yes"
            if (pv["metadata"].get("annotations") or {}).get(ANN_PROVISIONED_BY) == PROVISIONER:
                cpatch["metadata"]["annotations"][ANN_STORAGE_PROVISIONER] = PROVISIONER
            claim = await self.client.patch("persistentvolumeclaims", name, cpatch, ns)
        pspec = pv.get("spec") or {}
        status = {
            "phase": "Bound",
            "accessModes": list(pspec.get("accessModes") or ()),
            "capacity": dict(pspec.get("capacity") or {}),
        }
        current = claim.get("status") or {}
        if any(current.get(k) != v for k, v in status.items()):
            await self.client.patch(
                "persistentvolumeclaims", name, {"status": status}, ns, subresource="status"
            )
            self.log.info("bound claim", claim=f"{ns}/{name}", volume=pmeta["name"])

    async def _set_claim_ref(self, pv: Obj, claim: Obj, *, by_controller: bool) -> Obj:
        """Point the volume at ``claim``; 409 when it changed since the cache saw it."""
        meta = pv["metadata"]
        ops: list[Obj] = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
            {"op": "add", "path": "/spec/claimRef", "value": claim_ref(claim)},
        ]
        if by_controller:
            annotations = {**(meta.get("annotations") or {}), ANN_BOUND_BY_CONTROLLER: "yes"}
            ops.append({"op": "add", "path": "/metadata/annotations", "value": annotations})
        try:
            return await self.client.patch("persistentvolumes", meta["name"], ops, type="json")
        except ApiError as e:
            if e.code == 422 and "test failed" in e.message:
                raise ApiError(409, e.reason, f"volume {meta['name']} changed meanwhile") from e
            raise

    async def _claim_lost(self, claim: Obj, reason: str, message: str) -> None:
        if (claim.get("status") or {}).get("phase") == "Lost":
            return
        meta = claim["metadata"]
        self.events.emit(self._claim_about(claim), "Warning", reason, message)
        await self.client.patch(
            "persistentvolumeclaims",
            meta["name"],
            {"status": {"phase": "Lost"}},
            meta["namespace"],
            subresource="status",
        )

    def _claim_about(self, claim: Obj) -> Obj:
        return {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "metadata": claim["metadata"]}

    # -- volumes -------------------------------------------------------------------------

    async def sync_volume(self, name: str) -> None:
        """Keep a volume's phase, release and reclaim it when its claim is gone.

        A volume being deleted is still synced: it is held by ``kubernetes.io/pv-protection``
        while Bound, and goes once it is Released (or Available).
        """
        pv = self.volumes.get(name)
        if pv is None:
            return
        ref = (pv.get("spec") or {}).get("claimRef")
        if not ref or not ref.get("uid"):
            await self._set_phase(pv, "Available")
            return
        claim = self.claims.get(f"{ref.get('namespace')}/{ref.get('name')}")
        if claim is None or claim["metadata"].get("uid") != ref["uid"]:
            try:
                live = await self.client.get(
                    "persistentvolumeclaims", ref.get("name", ""), ref.get("namespace")
                )
            except ApiError as e:
                if e.code != 404:
                    raise
                live = None
            if live is not None and live["metadata"].get("uid") == ref["uid"]:
                return  # our cache is behind: the claim's own event comes
            await self.reclaim(pv)
            return
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if volume_name == name:
            await self._set_phase(pv, "Bound")
        elif volume_name:
            # The claim went to another volume: undo a binding we made.
            annotations = pv["metadata"].get("annotations") or {}
            if annotations.get(ANN_BOUND_BY_CONTROLLER):
                ops: list[Obj] = [
                    {"op": "test", "path": "/metadata/uid", "value": pv["metadata"]["uid"]},
                    {"op": "remove", "path": "/spec/claimRef"},
                ]
                await self.client.patch("persistentvolumes", name, ops, type="json")

    async def reclaim(self, pv: Obj) -> None:
        """The claim of ``pv`` is gone: Released, then deleted under policy Delete."""
        meta = pv["metadata"]
        await self._set_phase(pv, "Released")
        policy = (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") or "Retain"
        about = {"kind": "PersistentVolume", "apiVersion": "v1", "metadata": meta}
        if meta.get("deletionTimestamp"):
            return  # already being deleted: Released lets pv-protection finish it
        if policy == "Delete":
            try:
                await self.client.delete(
                    "persistentvolumes", meta["name"], preconditions={"uid": meta["uid"]}
                )
            except ApiError as e:
                if e.code in (404, 409):
                    return
                self.events.emit(about, "Warning", "VolumeFailedDelete", e.message)
                raise
            self.log.info("deleted released volume", volume=meta["name"])
        elif policy == "Recycle":
            self.events.emit(
                about, "Warning", "VolumeFailedRecycle", "Recycle is not supported: use Delete"
            )
            await self._set_phase(pv, "Failed")

    async def _set_phase(self, pv: Obj, phase: str) -> None:
        if (pv.get("status") or {}).get("phase") == phase:
            return
        try:
            await self.client.patch(
                "persistentvolumes",
                pv["metadata"]["name"],
                {"status": {"phase": phase}},
                subresource="status",
            )
        except ApiError as e:
            if e.code != 404:
                raise
