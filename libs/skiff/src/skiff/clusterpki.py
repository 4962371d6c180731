"""A control plane's certificates in kubeadm's layout (``/etc/kubernetes/pki``), so that
people who know a kubeadm node find each file where they expect it:

============================================  ==========================================
``ca``                                        the cluster CA ("kubernetes")
``apiserver``                                 serving: node name, address, ``kubernetes``
                                              ``.default[.svc[.<domain>]]``, Service IP
``apiserver-kubelet-client``                  the apiserver to kubelets
``front-proxy-ca``, ``front-proxy-client``    the aggregation layer's identity
``etcd/ca``                                   etcd's own CA
``etcd/server``, ``etcd/peer``                etcd serving and peering
``etcd/healthcheck-client``                   probes of etcd
``apiserver-etcd-client``                     the only etcd client
``sa.key``, ``sa.pub``                        the service-account token signing keys
============================================  ==========================================

:func:`write_cluster_pki` makes what is missing and keeps what exists (as ``kubeadm init
phase certs`` reuses an existing CA), printing kubeadm's ``[certs]`` lines.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from skiff.pki import CertificateAuthority, KeyPair, Usage, new_key

ADMINS = "kubeadm:cluster-admins"
"""The group kubeadm gives its admin and apiserver-to-kubelet client certificates."""


@dataclass
class PkiConfig:
    """What the certificates name (a subset of kubeadm's ClusterConfiguration)."""

    node_name: str
    advertise_address: str
    service_subnet: str = "10.96.0.0/12"
    dns_domain: str = "cluster.local"
    cert_sans: list[str] = field(default_factory=list)
    """Extra names and addresses of the apiserver (a load balancer, a DNS name)."""
    etcd_sans: list[str] = field(default_factory=list)
    """Extra names and addresses of etcd's (and NATS's) serving certificates (kubeadm's
    ``etcd.local.serverCertSANs``): where they are reached by another name."""

    @property
    def service_ip(self) -> str:
        """The ``kubernetes`` Service's address: the first of the Service range."""
        return str(next(ipaddress.ip_network(self.service_subnet, strict=False).hosts()))

    def apiserver_names(self) -> list[str]:
        d = self.dns_domain
        return [
            self.node_name,
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            f"kubernetes.default.svc.{d}",
            self.service_ip,
            self.advertise_address,
            *self.cert_sans,
        ]

    def etcd_names(self) -> list[str]:
        return [
            "localhost", self.node_name, "127.0.0.1", "::1", self.advertise_address,
            *self.etcd_sans,
        ]  # fmt: skip


@dataclass(frozen=True)
class Leaf:
    path: str
    ca: str
    common_name: str
    usages: tuple[Usage, ...]
    organizations: tuple[str, ...] = ()
    names: str = ""
    """Which name list of :class:`PkiConfig` becomes its SANs ("" none)."""


CAS = (
    ("ca", "kubernetes"),
    ("front-proxy-ca", "front-proxy-ca"),
    ("etcd/ca", "etcd-ca"),
    ("nats/ca", "nats-ca"),
)
"""kubeadm's three CAs, and Skiff's own for the event stream's NATS (which kubeadm has not)."""
NATS_EVENT_PUMP = "skiff-event-pump"
"""The NATS identity that may publish watch events (the apiserver's leader-elected pump)."""
NATS_WATCH_CACHE = "skiff-watch-cache"
"""The NATS identity that may only read them (every apiserver's watch cache)."""


def leaves(node: str) -> list[Leaf]:
    """Every leaf certificate of the control plane on ``node``, in kubeadm's order."""
    both: tuple[Usage, ...] = ("server", "client")
    return [
        Leaf("apiserver", "ca", "kube-apiserver", ("server",), names="apiserver"),
        Leaf(
            "apiserver-kubelet-client",
            "ca",
            "kube-apiserver-kubelet-client",
            ("client",),
            (ADMINS,),
        ),
        Leaf("front-proxy-client", "front-proxy-ca", "front-proxy-client", ("client",)),
        Leaf("etcd/server", "etcd/ca", node, both, names="etcd"),
        Leaf("etcd/peer", "etcd/ca", node, both, names="etcd"),
        Leaf("etcd/healthcheck-client", "etcd/ca", "kube-etcd-healthcheck-client", ("client",)),
        Leaf("apiserver-etcd-client", "etcd/ca", "kube-apiserver-etcd-client", ("client",)),
        Leaf("nats/server", "nats/ca", "skiff-nats", ("server",), names="etcd"),
        Leaf("nats/event-pump", "nats/ca", NATS_EVENT_PUMP, ("client",)),
        Leaf("nats/watch-cache", "nats/ca", NATS_WATCH_CACHE, ("client",)),
    ]


def _exists(folder: Path, path: str) -> bool:
    return (folder / f"{path}.crt").exists() and (folder / f"{path}.key").exists()


def _split(folder: Path, path: str) -> tuple[Path, str]:
    p = folder / path
    return p.parent, p.name


def write_cluster_pki(folder: Path, cfg: PkiConfig) -> list[str]:
    """Make the missing certificates and keys under ``folder``; kubeadm's log lines."""
    out: list[str] = []
    cas: dict[str, CertificateAuthority] = {}
    for path, cn in CAS:
        where, name = _split(folder, path)
        if _exists(folder, path):
            cas[path] = CertificateAuthority(KeyPair.load(where, name))
            out.append(f"[certs] Using existing {path} certificate authority")
            continue
        cas[path] = CertificateAuthority.create(cn)
        cas[path].pair.save(where, name)
        out.append(f'[certs] Generating "{path}" certificate and key')
    for leaf in leaves(cfg.node_name):
        if _exists(folder, leaf.path):
            out.append(f"[certs] Using existing {leaf.path} certificate and key on disk")
            continue
        names = {"apiserver": cfg.apiserver_names, "etcd": cfg.etcd_names}
        sans = names[leaf.names]() if leaf.names else []
        pair = cas[leaf.ca].issue(
            leaf.common_name, organizations=leaf.organizations, names=sans, usages=leaf.usages
        )
        pair.save(*_split(folder, leaf.path))
        out.append(f'[certs] Generating "{leaf.path}" certificate and key')
        if sans:
            shown = ", ".join(sans)
            out.append(
                f"[certs] {leaf.path} serving cert is signed for DNS names and IPs [{shown}]"
            )
    if (folder / "sa.key").exists() and (folder / "sa.pub").exists():
        out.append('[certs] Using the existing "sa" key')
    else:
        key = new_key()
        (folder / "sa.key").touch(mode=0o600)
        (folder / "sa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        (folder / "sa.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        out.append('[certs] Generating "sa" key and public key')
    return out


def front_proxy_flags(pki: Path) -> list[str]:
    """The apiserver's aggregation-layer flags as kubeadm sets them: the front-proxy CA
    authenticates front proxies by these headers, and the front-proxy client certificate
    is what the apiserver presents to aggregated API servers."""
    return [
        f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
    ]
