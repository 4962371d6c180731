"""NodeRestriction (kube's ``plugin/pkg/admission/noderestriction``): a kubelet
(``system:node:<name>``) changes only its own Node and Lease, creates only mirror pods of
its own, deletes, evicts and updates the status of only the pods bound to it, and gets
service-account tokens only bound to those pods."""

from __future__ import annotations

from typing import Any

from skiff.api import errors
from skiff.api.resources import REGISTRY

from ..authorization.node import node_name
from .interfaces import Attributes, Handler, Lister, Operation

PLUGIN_NAME = "NodeRestriction"
MIRROR = "kubernetes.io/config.mirror"
RESTRICTED_LABEL = "node-restriction.kubernetes.io/"
PODS = REGISTRY.core("pods")


def _forbidden(attrs: Attributes, why: str, name: str = "") -> errors.ApiError:
    info = attrs.info
    qualified = f"{info.plural}.{info.group}" if info.group else info.plural
    name = name or attrs.name
    return errors.ApiError(
        403,
        errors.Reason.FORBIDDEN,
        f'{qualified} "{name}" is forbidden: {why}',
        kind=info.plural,
        name=name,
        group=info.group,
    )


class NodeRestriction(Handler):
    name = PLUGIN_NAME
    operations = frozenset({Operation.CREATE, Operation.UPDATE, Operation.DELETE})

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    async def validate(self, attrs: Attributes) -> None:
        node = node_name(attrs.user) if attrs.user is not None else None
        if node is None:
            return
        group, plural = attrs.group_resource
        if (group, plural) == ("", "pods"):
            await self._pod(node, attrs)
        elif (group, plural) == ("", "nodes"):
            self._node(node, attrs)
        elif (group, plural) == ("", "serviceaccounts") and attrs.subresource == "token":
            await self._token(node, attrs)
        elif (group, plural) == ("coordination.k8s.io", "leases"):
            if attrs.namespace != "kube-node-lease" or attrs.name != node:
                raise _forbidden(
                    attrs, "can only access node lease with the same name as the requesting node"
                )

    async def _pod(self, node: str, attrs: Attributes) -> None:
        sub, op = attrs.subresource, attrs.operation
        if sub == "" and op == Operation.CREATE:
            pod = attrs.obj or {}
            if MIRROR not in ((pod.get("metadata") or {}).get("annotations") or {}):
                raise _forbidden(
                    attrs,
                    f'pod does not have "{MIRROR}" annotation, node "{node}" can only create '
                    "mirror pods",
                )
            if (pod.get("spec") or {}).get("nodeName") != node:
                raise _forbidden(
                    attrs, f'node "{node}" can only create pods with spec.nodeName set to itself'
                )
        elif sub == "" and op == Operation.DELETE:
            if _node_of(attrs.old) != node:
                raise _forbidden(
                    attrs, f'node "{node}" can only delete pods with spec.nodeName set to itself'
                )
        elif sub == "status":
            if _node_of(attrs.old) != node:
                raise _forbidden(
                    attrs,
                    f'node "{node}" can only update pod status for pods with spec.nodeName set '
                    "to itself",
                )
        elif sub == "eviction":
            pod = await self.lister.get(PODS, attrs.namespace, attrs.name)
            if _node_of(pod) != node:
                raise _forbidden(
                    attrs, f'node "{node}" can only evict pods with spec.nodeName set to itself'
                )
        elif op == Operation.UPDATE and sub == "":
            raise _forbidden(attrs, f'node "{node}" can only update pod status')

    def _node(self, node: str, attrs: Attributes) -> None:
        if attrs.name != node:
            raise _forbidden(attrs, f'node "{node}" is not allowed to modify node "{attrs.name}"')
        if attrs.operation == Operation.DELETE:
            return
        new = attrs.obj or {}
        labels = (new.get("metadata") or {}).get("labels") or {}
        old_labels = ((attrs.old or {}).get("metadata") or {}).get("labels") or {}
        restricted = sorted(
            k for k in labels if k.startswith(RESTRICTED_LABEL) and labels[k] != old_labels.get(k)
        )
        if restricted:
            verb = "set" if attrs.operation == Operation.CREATE else "modify"
            raise _forbidden(
                attrs, f"is not allowed to {verb} the following labels: {', '.join(restricted)}"
            )
        if attrs.operation == Operation.UPDATE and attrs.old is not None:
            if (new.get("spec") or {}).get("taints") != (attrs.old.get("spec") or {}).get("taints"):
                raise _forbidden(attrs, f'node "{node}" is not allowed to modify taints')

    async def _token(self, node: str, attrs: Attributes) -> None:
        ref = ((attrs.obj or {}).get("spec") or {}).get("boundObjectRef") or {}
        if ref.get("kind") != "Pod":
            raise _forbidden(attrs, "node requested token not bound to a pod")
        pod = await self.lister.get(PODS, attrs.namespace, str(ref.get("name") or ""))
        if pod is None or (ref.get("uid") and pod["metadata"].get("uid") != ref["uid"]):
            raise _forbidden(attrs, "node requested token bound to a pod that does not exist")
        if _node_of(pod) != node:
            raise _forbidden(
                attrs, "node requested token bound to a pod scheduled on a different node"
            )


def _node_of(pod: dict[str, Any] | None) -> str | None:
    return ((pod or {}).get("spec") or {}).get("nodeName")
