"""``skiffadm certs renew all|<name>``: kubeadm's renewal with the local CA. Each
certificate is issued again by its CA with what the current one says (subject, groups,
names and addresses, usages) and a new key; a kubeconfig keeps its server and CA and gets
the new client certificate embedded. Files are replaced in one rename each. The components
read their certificates at start: restart them afterwards, as kubeadm says."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skiff.pki import CertificateAuthority, KeyPair, Usage


@dataclass(frozen=True)
class Renewable:
    name: str
    """kubeadm's name for it (``skiffadm certs renew <name>``)."""
    path: str
    """Under the PKI folder without ``.crt``/``.key``, or a kubeconfig file name."""
    ca: str
    what: str
    """kubeadm's words for it ("certificate for serving the Kubernetes API")."""

    @property
    def kubeconfig(self) -> bool:
        return self.path.endswith(".conf")


RENEWABLE = (
    Renewable("admin.conf", "admin.conf", "ca", "certificate embedded in the kubeconfig file "
              "for the admin to use and for kubeadm itself"),
    Renewable("apiserver", "apiserver", "ca", "certificate for serving the Kubernetes API"),
    Renewable("apiserver-etcd-client", "apiserver-etcd-client", "etcd/ca",
              "certificate the apiserver uses to access etcd"),
    Renewable("apiserver-kubelet-client", "apiserver-kubelet-client", "ca",
              "certificate for the API server to connect to kubelet"),
    Renewable("controller-manager.conf", "controller-manager.conf", "ca", "certificate "
              "embedded in the kubeconfig file for the controller manager to use"),
    Renewable("etcd-healthcheck-client", "etcd/healthcheck-client", "etcd/ca",
              "certificate for liveness probes to healthcheck etcd"),
    Renewable("etcd-peer", "etcd/peer", "etcd/ca",
              "certificate for etcd nodes to communicate with each other"),
    Renewable("etcd-server", "etcd/server", "etcd/ca", "certificate for serving etcd"),
    Renewable("front-proxy-client", "front-proxy-client", "front-proxy-ca",
              "certificate for the front proxy client"),
    Renewable("nats-event-pump", "nats/event-pump", "nats/ca",
              "certificate the apiserver's event pump publishes to NATS with"),
    Renewable("nats-server", "nats/server", "nats/ca", "certificate for serving NATS"),
    Renewable("nats-watch-cache", "nats/watch-cache", "nats/ca",
              "certificate the apiserver's watch cache reads NATS with"),
    Renewable("scheduler.conf", "scheduler.conf", "ca", "certificate embedded in the "
              "kubeconfig file for the scheduler manager to use"),
    Renewable("super-admin.conf", "super-admin.conf", "ca",
              "certificate embedded in the kubeconfig file for the super-admin"),
)  # fmt: skip
NAMES = tuple(r.name for r in RENEWABLE)
DONE = (
    "\nDone renewing certificates. You must restart the kube-apiserver, "
    "kube-controller-manager, kube-scheduler, etcd and NATS, so that they can use the new "
    "certificates."
)


class RenewError(Exception):
    """A certificate to renew is missing or unreadable."""


def _again(ca: CertificateAuthority, cert: x509.Certificate) -> KeyPair:
    """A new certificate (and key) from ``ca`` saying what ``cert`` says."""
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    orgs = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n.value) for n in san if isinstance(n, x509.DNSName | x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    usages: list[Usage] = []
    if ExtendedKeyUsageOID.SERVER_AUTH in eku:
        usages.append("server")
    if ExtendedKeyUsageOID.CLIENT_AUTH in eku:
        usages.append("client")
    return ca.issue(str(cn), organizations=orgs, names=names, usages=usages)


def _replace(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    tmp.touch(mode=mode)
    tmp.write_bytes(data)
    tmp.replace(path)


def renew_one(item: Renewable, pki: Path, kubeconfigs: Path) -> None:
    ca_folder = (pki / item.ca).parent
    ca = CertificateAuthority(KeyPair.load(ca_folder, Path(item.ca).name))
    if item.kubeconfig:
        path = kubeconfigs / item.path
        try:
            doc = yaml.safe_load(path.read_text())
            user = doc["users"][0]["user"]
            cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
        except (OSError, ValueError, KeyError, IndexError, TypeError, yaml.YAMLError) as e:
            raise RenewError(f"{item.name}: cannot read {path}: {e}") from e
        pair = _again(ca, cert)
        user["client-certificate-data"] = base64.b64encode(pair.cert_pem).decode()
        user["client-key-data"] = base64.b64encode(pair.key_pem).decode()
        _replace(path, yaml.safe_dump(doc, sort_keys=False).encode(), 0o600)
        return
    crt, key = pki / f"{item.path}.crt", pki / f"{item.path}.key"
    try:
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
    except (OSError, ValueError) as e:
        raise RenewError(f"{item.name}: cannot read {crt}: {e}") from e
    pair = _again(ca, cert)
    _replace(key, pair.key_pem, 0o600)
    _replace(crt, pair.cert_pem, 0o644)


def renew(which: str, pki: Path, kubeconfigs: Path) -> list[str]:
    """Renew ``which`` (a name of :data:`NAMES`, or ``all``); kubeadm's lines."""
    items = [r for r in RENEWABLE if which in ("all", r.name)]
    if not items:
        raise RenewError(f"unknown certificate {which!r}; one of: all, {', '.join(NAMES)}")
    out = []
    for item in items:
        renew_one(item, pki, kubeconfigs)
        out.append(f"{item.what} renewed")
    return [*out, DONE] if which == "all" else out
