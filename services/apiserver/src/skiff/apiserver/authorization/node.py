"""The Node authorizer (kube's ``plugin/pkg/auth/authorizer/node``): kubelets
(``system:node:<name>`` in ``system:nodes``) get the ``system:node`` role's permissions,
except that Secrets, ConfigMaps, PersistentVolumeClaims, PersistentVolumes and
service-account tokens are readable only when a pod bound to that node uses them, and
Leases and CSINodes only under the node's own name. Any other user: no opinion.

kube keeps a graph of these relations; here they are read from the watch cache on each
request (the pods of the object's namespace bound to the node)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from skiff.api.resources import REGISTRY

from ..authentication.user import NODE_PREFIX, NODES, UserInfo
from .attributes import RequestAttributes
from .policy import CLUSTER_ROLES
from .rbac import Lister, rule_allows

Obj = dict[str, Any]
PODS = REGISTRY.core("pods")
PVCS = REGISTRY.core("persistentvolumeclaims")
NODE_RULES = CLUSTER_ROLES["system:node"][0]
_GRAPHED = {"secrets", "configmaps", "persistentvolumeclaims", "persistentvolumes"}
_READS = {"get", "list", "watch"}


def node_name(user: UserInfo) -> str | None:
    """The node a kubelet's user names, or None for anyone else."""
    if NODES in user.groups and user.name.startswith(NODE_PREFIX):
        return user.name[len(NODE_PREFIX) :] or None
    return None


def pod_references(pod: Obj) -> dict[str, set[str]]:
    """Secrets, ConfigMaps, claims and the service account a pod uses, by resource."""
    spec = pod.get("spec") or {}
    refs: dict[str, set[str]] = {
        "secrets": set(),
        "configmaps": set(),
        "persistentvolumeclaims": set(),
        "serviceaccounts": {spec.get("serviceAccountName") or "default"},
    }
    for s in spec.get("imagePullSecrets") or []:
        refs["secrets"].add(s.get("name", ""))
    for v in spec.get("volumes") or []:
        if v.get("secret"):
            refs["secrets"].add(v["secret"].get("secretName", ""))
        if v.get("configMap"):
            refs["configmaps"].add(v["configMap"].get("name", ""))
        if v.get("persistentVolumeClaim"):
            refs["persistentvolumeclaims"].add(v["persistentVolumeClaim"].get("claimName", ""))
        if v.get("ephemeral"):
            refs["persistentvolumeclaims"].add(f"{pod['metadata']['name']}-{v.get('name')}")
        for source in (v.get("projected") or {}).get("sources") or []:
            if source.get("secret"):
                refs["secrets"].add(source["secret"].get("name", ""))
            if source.get("configMap"):
                refs["configmaps"].add(source["configMap"].get("name", ""))
        for key in ("cephfs", "cinder", "flexVolume", "iscsi", "rbd", "scaleIO", "storageos"):
            ref = (v.get(key) or {}).get("secretRef") or {}
            if ref.get("name"):
                refs["secrets"].add(ref["name"])
        if (v.get("csi") or {}).get("nodePublishSecretRef"):
            refs["secrets"].add(v["csi"]["nodePublishSecretRef"].get("name", ""))
    for c in _containers(spec):
        for e in c.get("envFrom") or []:
            if e.get("secretRef"):
                refs["secrets"].add(e["secretRef"].get("name", ""))
            if e.get("configMapRef"):
                refs["configmaps"].add(e["configMapRef"].get("name", ""))
        for e in c.get("env") or []:
            source = e.get("valueFrom") or {}
            if source.get("secretKeyRef"):
                refs["secrets"].add(source["secretKeyRef"].get("name", ""))
            if source.get("configMapKeyRef"):
                refs["configmaps"].add(source["configMapKeyRef"].get("name", ""))
    return refs


def _containers(spec: Obj) -> Iterable[Obj]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


class NodeAuthorizer:
    """Allows kubelets what they need for the pods bound to them, and nothing else."""

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    def authorize(self, a: RequestAttributes) -> tuple[bool | None, str]:
        """(True: allow, None: no opinion, with a reason)."""
        node = node_name(a.user)
        if node is None:
            return None, ""
        if a.resource_request and a.api_group == "" and a.resource in _GRAPHED:
            return self._graphed(node, a)
        if a.resource_request and a.api_group == "" and a.resource == "serviceaccounts":
            if a.subresource == "token" and a.verb == "create":
                return self._related(node, a, "serviceaccounts")
            return None, "can only create tokens for individual service accounts"
        if a.resource_request and (a.api_group, a.resource) == ("coordination.k8s.io", "leases"):
            return self._lease(node, a)
        if a.resource_request and (a.api_group, a.resource) == ("storage.k8s.io", "csinodes"):
            if a.name == node or (a.verb == "create" and not a.name):
                return True, ""
            return None, "can only access CSINode with the same name as the requesting node"
        if any(rule_allows(rule, a) for rule in NODE_RULES):
            return True, ""
        return None, ""

    @staticmethod
    def _lease(node: str, a: RequestAttributes) -> tuple[bool | None, str]:
        if a.verb not in ("get", "create", "update", "patch", "delete"):
            return None, "can only get, create, update, patch, or delete a node lease"
        if a.namespace != "kube-node-lease":
            return None, "can only access leases in the kube-node-lease namespace"
        if a.verb != "create" and a.name != node:  # a create's name is in its body
            return None, "can only access node lease with the same name as the requesting node"
        return True, ""

    def _graphed(self, node: str, a: RequestAttributes) -> tuple[bool | None, str]:
        if a.verb not in _READS or a.subresource not in ("", "status"):
            if a.resource == "persistentvolumeclaims" and a.subresource == "status":
                if a.verb in ("get", "update", "patch"):
                    return self._related(node, a, a.resource)
            return None, "can only read resources of this type"
        if not a.name:
            return None, "can only read namespaced object of this type"
        return self._related(node, a, a.resource)

    def _related(self, node: str, a: RequestAttributes, plural: str) -> tuple[bool | None, str]:
        if plural == "persistentvolumes":
            claims = {
                (c["metadata"].get("namespace"), c["metadata"]["name"])
                for c in self.lister.list(PVCS)
                if (c.get("spec") or {}).get("volumeName") == a.name
            }
            for ns, claim in claims:
                if self._pod_uses(node, ns or "", "persistentvolumeclaims", claim):
                    return True, ""
        elif self._pod_uses(node, a.namespace, plural, a.name):
            return True, ""
        return None, f"no relationship found between node '{node}' and this object"

    def _pod_uses(self, node: str, namespace: str, plural: str, name: str) -> bool:
        for pod in self.lister.list(PODS, namespace):
            if (pod.get("spec") or {}).get("nodeName") != node:
                continue
            if name in pod_references(pod)[plural]:
                return True
        return False
