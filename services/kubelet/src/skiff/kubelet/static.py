"""Static pods: pods from manifest files in a folder, run by the kubelet without the API.

As the kubelet's file source: each ``*.yaml`` / ``*.yml`` / ``*.json`` file holds one Pod;
it is named ``<name>-<node>``, gets a uid derived from the file's content (so an edited
file is a new pod) and ``kubernetes.io/config.*`` annotations. The kubelet mirrors each
one into the API as a *mirror pod* (``kubernetes.io/config.mirror``) for visibility.
:class:`StaticPodsMixin` is the kubelet's side: re-reading the folder, queueing the static
pods that changed, and keeping one mirror pod per static pod.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from skiff.api.defaults import apply_defaults, pod_qos_class
from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.api.timestamps import micro_time
from skiff.client.informer import Informer
from skiff.client.rest import ApiClient
from skiff.client.workqueue import WorkQueue
from skiff.log import get_logger

log = get_logger(__name__)

CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_SEEN = "kubernetes.io/config.seen"
CONFIG_MIRROR = "kubernetes.io/config.mirror"
_SUFFIXES = (".yaml", ".yml", ".json")


def is_mirror(pod: dict[str, Any]) -> bool:
    return CONFIG_MIRROR in ((pod.get("metadata") or {}).get("annotations") or {})


def mirror_hash(pod: dict[str, Any]) -> str:
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(CONFIG_MIRROR, "")


def load_manifest(path: Path, node_name: str) -> dict[str, Any]:
    """The static pod a manifest file describes; ValueError when it is not a Pod."""
    raw = path.read_bytes()
    doc = yaml.safe_load(raw)
    if not isinstance(doc, dict) or doc.get("kind", "Pod") != "Pod":
        raise ValueError(f"{path.name}: not a Pod manifest")
    pod = copy.deepcopy(doc)
    pod["apiVersion"], pod["kind"] = "v1", "Pod"
    meta = pod.setdefault("metadata", {})
    if not meta.get("name"):
        raise ValueError(f"{path.name}: metadata.name is required")
    meta["name"] = f"{meta['name']}-{node_name}"
    meta["namespace"] = meta.get("namespace") or "default"
    digest = hashlib.md5(raw + node_name.encode() + str(path).encode(), usedforsecurity=False)
    uid = str(uuid.UUID(bytes=digest.digest()))
    meta["uid"] = uid
    annotations = meta.setdefault("annotations", {})
    annotations[CONFIG_SOURCE] = "file"
    annotations[CONFIG_HASH] = uid
    annotations[CONFIG_SEEN] = micro_time()
    spec = pod.setdefault("spec", {})
    spec["nodeName"] = node_name
    # Static pods tolerate every NoExecute taint, as the kubelet makes them.
    spec.setdefault("tolerations", []).append({"operator": "Exists", "effect": "NoExecute"})
    info = REGISTRY.by_path("", "v1", "pods")
    assert info is not None
    apply_defaults(info, pod, create=True)
    pod["status"] = {"phase": "Pending", "qosClass": pod_qos_class(pod)}
    return pod


def scan(folder: Path, node_name: str) -> dict[str, dict[str, Any]]:
    """Static pods by ``namespace/name``; unreadable manifests are logged and skipped."""
    pods: dict[str, dict[str, Any]] = {}
    if not folder.is_dir():
        return pods
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix not in _SUFFIXES or not path.is_file():
            continue
        try:
            pod = load_manifest(path, node_name)
        except (OSError, ValueError, yaml.YAMLError) as e:
            log.warning("skipping static pod manifest", file=str(path), error=str(e))
            continue
        meta = pod["metadata"]
        pods[f"{meta['namespace']}/{meta['name']}"] = pod
    return pods


def mirror_of(pod: dict[str, Any], node: dict[str, Any] | None) -> dict[str, Any]:
    """The mirror pod to create in the API for a static pod."""
    mirror = copy.deepcopy(pod)
    meta = mirror["metadata"]
    meta.pop("uid", None)
    meta["annotations"][CONFIG_MIRROR] = pod["metadata"]["uid"]
    if node is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "name": node["metadata"]["name"],
                "uid": node["metadata"]["uid"],
                "controller": True,
            }
        ]
    mirror.pop("status", None)
    return mirror


class StaticPodsMixin:
    """Static pods from ``manifest_dir`` and their mirror pods in the API."""

    # Set up by Kubelet.__init__.
    client: ApiClient
    node_name: str
    queue: WorkQueue[str]
    pods: Informer
    manifest_dir: Path | None
    file_check_period: float
    static_pods: dict[str, dict[str, Any]]  # "namespace/name" → static pod
    _node: dict[str, Any] | None

    if TYPE_CHECKING:  # from the other parts of Kubelet

        async def _confirm_deletion(self, pod: dict[str, Any]) -> None: ...

    def _refresh_static(self) -> None:
        """Re-read the manifest folder; enqueue static pods that appeared, changed or went."""
        assert self.manifest_dir is not None
        new = scan(self.manifest_dir, self.node_name)
        for key in set(new) | set(self.static_pods):
            old_pod, new_pod = self.static_pods.get(key), new.get(key)
            old_uid = old_pod["metadata"]["uid"] if old_pod else None
            new_uid = new_pod["metadata"]["uid"] if new_pod else None
            if old_uid != new_uid:  # added, removed, or edited (the old stops, the new starts)
                for uid in (old_uid, new_uid):
                    if uid:
                        self.queue.add(f"{key}/{uid}")
        self.static_pods = new

    async def _static_loop(self) -> None:
        while True:
            await asyncio.sleep(self.file_check_period)
            self._refresh_static()
            try:
                await self._sync_mirrors()
            except ApiError as e:
                log.warning("mirror pod sync failed", error=e.message)

    async def _sync_mirrors(self) -> None:
        """One mirror pod in the API per static pod; none for static pods that are gone.
        Not before the Node is registered: a mirror pod belongs to its Node."""
        if self._node is None:
            return
        for key, static in self.static_pods.items():
            current = self.pods.get(key)
            uid = static["metadata"]["uid"]
            if current is None:
                try:
                    await self.client.create(
                        "pods", mirror_of(static, self._node), static["metadata"]["namespace"]
                    )
                except ApiError as e:
                    if e.code != 409:
                        raise
            elif not is_mirror(current):
                log.warning("a pod of the API has a static pod's name", pod=key)
            elif mirror_hash(current) != uid and not current["metadata"].get("deletionTimestamp"):
                await self._confirm_deletion(current)  # outdated: recreated next round
        for pod in self.pods.list():
            meta = pod["metadata"]
            if is_mirror(pod) and f"{meta['namespace']}/{meta['name']}" not in self.static_pods:
                await self._confirm_deletion(pod)
