"""The control plane's kubeconfig files in kubeadm's layout (``/etc/kubernetes/*.conf``),
each with a client certificate signed by the cluster CA naming its identity:

=========================  ==================================  ============================
file                       user (certificate CN)               groups (O)
=========================  ==================================  ============================
``admin.conf``             ``kubernetes-admin``                ``kubeadm:cluster-admins``
``super-admin.conf``       ``kubernetes-super-admin``          ``system:masters``
``kubelet.conf``           ``system:node:<node name>``         ``system:nodes``
``controller-manager.conf``  ``system:kube-controller-manager``
``scheduler.conf``         ``system:kube-scheduler``
=========================  ==================================  ============================

:func:`write_kubeconfigs` writes the missing ones (mode 0600) and keeps the rest, with
kubeadm's ``[kubeconfig]`` lines.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from skiff.clusterpki import ADMINS
from skiff.pki import CertificateAuthority, KeyPair

CLUSTER = "kubernetes"


def identities(node_name: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(file, user, groups) of each kubeconfig, in kubeadm's order."""
    return [
        ("admin.conf", "kubernetes-admin", (ADMINS,)),
        ("super-admin.conf", "kubernetes-super-admin", ("system:masters",)),
        ("kubelet.conf", f"system:node:{node_name}", ("system:nodes",)),
        ("controller-manager.conf", "system:kube-controller-manager", ()),
        ("scheduler.conf", "system:kube-scheduler", ()),
    ]


def kubeconfig(server: str, ca_pem: bytes, user: str, pair: KeyPair) -> dict[str, Any]:
    """A kubeconfig for ``user`` at ``server``, CA and client certificate embedded."""
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    context = f"{user}@{CLUSTER}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER,
                "cluster": {"certificate-authority-data": b64(ca_pem), "server": server},
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": CLUSTER, "user": user}}],
        "current-context": context,
        "preferences": {},
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(pair.cert_pem),
                    "client-key-data": b64(pair.key_pem),
                },
            }
        ],
    }


def write_kubeconfigs(folder: Path, pki: Path, server: str, node_name: str) -> list[str]:
    """The missing kubeconfigs under ``folder``, signed by ``pki/ca``; kubeadm's lines."""
    ca = CertificateAuthority(KeyPair.load(pki, "ca"))
    folder.mkdir(parents=True, exist_ok=True)
    out = [f'[kubeconfig] Using kubeconfig folder "{folder}"']
    for file, user, groups in identities(node_name):
        path = folder / file
        if path.exists():
            out.append(f'[kubeconfig] Using existing kubeconfig file: "{path}"')
            continue
        pair = ca.issue(user, organizations=groups, usages=("client",))
        path.touch(mode=0o600)
        path.write_text(
            yaml.safe_dump(kubeconfig(server, ca.pair.cert_pem, user, pair), sort_keys=False)
        )
        out.append(f'[kubeconfig] Writing "{file}" kubeconfig file')
    return out
