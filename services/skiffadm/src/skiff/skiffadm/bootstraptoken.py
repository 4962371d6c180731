"""``skiffadm init phase bootstrap-token``, as kubeadm's: the bootstrap token's Secret,
the RBAC that lets its holders join (get nodes, post CSRs, have them approved; nodes
rotate their certificates), the ``kubeadm:cluster-admins`` binding behind ``admin.conf``,
and the ``kube-public/cluster-info`` ConfigMap that anonymous joiners read (a Role lets
``system:anonymous`` get just that ConfigMap). Applied server-side, so running it again
changes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from skiff.addons import apply
from skiff.bootstrap import DEFAULT_GROUP, cluster_info, cluster_info_kubeconfig, token_secret
from skiff.client.rest import ApiClient

MANAGER = "skiffadm"
RBAC = "rbac.authorization.k8s.io"
ADMINS = "kubeadm:cluster-admins"


def _binding(name: str, role: str, kind: str, subject: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": RBAC, "kind": kind, "name": subject}],
    }


def rbac_objects() -> list[tuple[str, list[dict[str, Any]]]]:
    """(kubeadm's line, the objects it stands for), in kubeadm's order."""
    get_nodes = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "kubeadm:get-nodes"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}],
    }
    cluster_info_reader = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "Role",
        "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["cluster-info"],
                "verbs": ["get"],
            }
        ],
    }
    anonymous = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"},
        "roleRef": {
            "apiGroup": RBAC,
            "kind": "Role",
            "name": "kubeadm:bootstrap-signer-clusterinfo",
        },
        "subjects": [{"apiGroup": RBAC, "kind": "User", "name": "system:anonymous"}],
    }
    return [
        (
            "Configured RBAC rules to allow Node Bootstrap tokens to get nodes",
            [get_nodes, _binding("kubeadm:get-nodes", "kubeadm:get-nodes", "Group", DEFAULT_GROUP)],
        ),
        (
            "Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for "
            "nodes to get long term certificate credentials",
            [
                _binding(
                    "kubeadm:kubelet-bootstrap", "system:node-bootstrapper", "Group", DEFAULT_GROUP
                )
            ],
        ),
        (
            "Configured RBAC rules to allow the csrapprover controller automatically approve "
            "CSRs from a Node Bootstrap Token",
            [
                _binding(
                    "kubeadm:node-autoapprove-bootstrap",
                    "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                    "Group",
                    DEFAULT_GROUP,
                )
            ],
        ),
        (
            "Configured RBAC rules to allow certificate rotation for all node client "
            "certificates in the cluster",
            [
                _binding(
                    "kubeadm:node-autoapprove-certificate-rotation",
                    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                    "Group",
                    "system:nodes",
                )
            ],
        ),
        (
            'Binding the "cluster-admin" ClusterRole to the "kubeadm:cluster-admins" group',
            [_binding(ADMINS, "cluster-admin", "Group", ADMINS)],
        ),
        (
            "Configured RBAC rules to allow anonymous users to read the cluster-info ConfigMap",
            [cluster_info_reader, anonymous],
        ),
    ]


async def run_phase(
    client: ApiClient, *, token: str, ttl: dt.timedelta | None, server: str, ca_pem: bytes
) -> list[str]:
    """Apply everything; kubeadm's ``[bootstrap-token]`` lines."""
    out = [f"[bootstrap-token] Using token: {token}"]
    out.append("[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles")
    await apply(client, token_secret(token, ttl=ttl), MANAGER)
    for line, objects in rbac_objects():
        for obj in objects:
            await apply(client, obj, MANAGER)
        out.append(f"[bootstrap-token] {line}")
    out.append(
        '[bootstrap-token] Creating the "cluster-info" ConfigMap in the "kube-public" namespace'
    )
    # Unsigned: the bootstrap-signer controller adds a signature per signing token.
    await apply(client, cluster_info(cluster_info_kubeconfig(server, ca_pem)), MANAGER)
    return out
