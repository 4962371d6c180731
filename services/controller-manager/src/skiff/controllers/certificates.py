"""The certificate controllers (kube's ``pkg/controller/certificates``):

- ``csrapproving``: approves a kubelet's client certificate request when the requester
  may (a SubjectAccessReview on ``certificatesigningrequests/nodeclient`` for a new node's
  bootstrap token, ``selfnodeclient`` for a node renewing its own), and — unlike
  kube-controller-manager, which never approves them — a kubelet's serving certificate
  request when it names only that node's own name and addresses;
- ``csrsigning``: issues approved requests of the built-in signers
  (``kube-apiserver-client``, ``kube-apiserver-client-kubelet``, ``kubelet-serving``) with
  the cluster CA (``--cluster-signing-cert-file``/``--cluster-signing-key-file``), after
  checking each signer's rules; a request a signer refuses gets a Failed condition.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skiff.api.errors import ApiError
from skiff.api.timestamps import rfc3339
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext
from skiff.pki import CertificateAuthority, KeyPair

CSRS = "certificatesigningrequests.certificates.k8s.io"
CLIENT = "kubernetes.io/kube-apiserver-client"
KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
NODE_PREFIX = "system:node:"
DEFAULT_DURATION = 365 * 24 * 3600.0


def _conditions(csr: Obj) -> dict[str, Obj]:
    return {c.get("type", ""): c for c in (csr.get("status") or {}).get("conditions") or []}


def _request(csr: Obj) -> x509.CertificateSigningRequest:
    return x509.load_pem_x509_csr(base64.b64decode((csr.get("spec") or {}).get("request", "")))


def _subject(req: x509.CertificateSigningRequest) -> tuple[str, list[str]]:
    cn = [str(a.value) for a in req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [str(a.value) for a in req.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return (cn[0] if cn else ""), orgs


def _sans(req: x509.CertificateSigningRequest) -> tuple[list[str], list[str], bool]:
    """(DNS names, IP addresses, whether there are other kinds: emails, URIs)."""
    try:
        ext = req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], [], False
    dns = ext.get_values_for_type(x509.DNSName)
    ips = [str(i) for i in ext.get_values_for_type(x509.IPAddress)]
    other = bool(
        ext.get_values_for_type(x509.RFC822Name)
        or ext.get_values_for_type(x509.UniformResourceIdentifier)
    )
    return dns, ips, other


def kubelet_client_problem(req: x509.CertificateSigningRequest, usages: list[str]) -> str:
    """Why a request is not a kubelet client certificate ("" when it is one)."""
    cn, orgs = _subject(req)
    if orgs != ["system:nodes"]:
        return 'subject organization is not exactly ["system:nodes"]'
    if not cn.startswith(NODE_PREFIX):
        return f'subject common name does not begin with "{NODE_PREFIX}"'
    dns, ips, other = _sans(req)
    if dns or ips or other:
        return "subjectAltNames are not allowed"
    if not set(usages) <= {"digital signature", "key encipherment", "client auth"} or (
        "client auth" not in usages
    ):
        return "usages must be client auth with digital signature and optional key encipherment"
    return ""


def kubelet_serving_problem(req: x509.CertificateSigningRequest, usages: list[str]) -> str:
    """Why a request is not a kubelet serving certificate ("" when it is one)."""
    cn, orgs = _subject(req)
    if orgs != ["system:nodes"]:
        return 'subject organization is not exactly ["system:nodes"]'
    if not cn.startswith(NODE_PREFIX):
        return f'subject common name does not begin with "{NODE_PREFIX}"'
    dns, ips, other = _sans(req)
    if other or not (dns or ips):
        return "DNS or IP subjectAltNames are required, and only those"
    if not set(usages) <= {"digital signature", "key encipherment", "server auth"} or (
        "server auth" not in usages
    ):
        return "usages must be server auth with digital signature and optional key encipherment"
    return ""


class CSRApprovingController(Controller):
    """Approves kubelets' client and serving certificate requests, as described above."""

    name: ClassVar[str] = "certificatesigningrequest-approving-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 1) -> None:
        super().__init__(ctx, workers=workers)
        self.csrs = self.watch(CSRS)
        self.nodes = self.watch("nodes")
        self.csrs.add_handler(self.enqueue, lambda _o, n: self.enqueue(n))

    async def _allowed(self, csr: Obj, subresource: str) -> bool:
        spec = csr.get("spec") or {}
        review = await self.client.create(
            "subjectaccessreviews.authorization.k8s.io",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": spec.get("username", ""),
                    "uid": spec.get("uid", ""),
                    "groups": spec.get("groups") or [],
                    "extra": spec.get("extra") or {},
                    "resourceAttributes": {
                        "group": "certificates.k8s.io",
                        "resource": "certificatesigningrequests",
                        "verb": "create",
                        "subresource": subresource,
                        "version": "*",
                    },
                },
            },
        )
        return bool((review.get("status") or {}).get("allowed"))

    def _node_owns(self, node_name: str, dns: list[str], ips: list[str]) -> bool:
        node = self.nodes.get(node_name)
        if node is None:
            return False
        addresses = {a.get("address") for a in (node.get("status") or {}).get("addresses") or []}
        names = {node_name} | {a for a in addresses if a}
        return all(d in names for d in dns) and all(
            str(ipaddress.ip_address(i)) in addresses for i in ips
        )

    async def reconcile(self, key: str) -> float | None:
        csr = self.csrs.get(key)
        if csr is None or set(_conditions(csr)) & {"Approved", "Denied"}:
            return None
        spec = csr.get("spec") or {}
        try:
            req = _request(csr)
        except ValueError:
            return None
        cn, _ = _subject(req)
        usages = list(spec.get("usages") or [])
        message = ""
        if spec.get("signerName") == KUBELET_CLIENT and not kubelet_client_problem(req, usages):
            renewal = spec.get("username") == cn
            if await self._allowed(csr, "selfnodeclient" if renewal else "nodeclient"):
                message = "Auto approving kubelet client certificate after SubjectAccessReview."
        elif spec.get("signerName") == KUBELET_SERVING and not kubelet_serving_problem(req, usages):
            dns, ips, _ = _sans(req)
            if spec.get("username") == cn and self._node_owns(cn[len(NODE_PREFIX) :], dns, ips):
                message = "Auto approving kubelet serving certificate: the node's own names."
        if not message:
            return None
        now = rfc3339()
        condition = {
            "type": "Approved",
            "status": "True",
            "reason": "AutoApproved",
            "message": message,
            "lastUpdateTime": now,
            "lastTransitionTime": now,
        }
        updated = dict(csr, status=dict(csr.get("status") or {}))
        updated["status"]["conditions"] = [
            *((csr.get("status") or {}).get("conditions") or []),
            condition,
        ]
        try:
            await self.client.update(CSRS, updated, subresource="approval")
        except ApiError as e:
            if e.code in (404, 409):
                return None
            raise
        self.log.info("approved certificate request", csr=key, requester=spec.get("username"))
        return None


@dataclass(frozen=True, slots=True)
class SigningSettings:
    """``--cluster-signing-cert-file``, ``--cluster-signing-key-file``,
    ``--cluster-signing-duration``."""

    cert_file: str = ""
    key_file: str = ""
    duration: float = DEFAULT_DURATION

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file and self.key_file)


_USAGES = {
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
}


class CSRSigningController(Controller):
    """Issues approved requests of the built-in signers with the cluster CA."""

    name: ClassVar[str] = "certificatesigningrequest-signing-controller"

    def __init__(
        self, ctx: ControllerContext, *, workers: int = 1, settings: SigningSettings
    ) -> None:
        super().__init__(ctx, workers=workers)
        self.settings = settings
        cert, key = Path(settings.cert_file), Path(settings.key_file)
        self.ca = CertificateAuthority(KeyPair.load(cert.parent, cert.stem))
        if key != cert.with_suffix(".key"):  # a key kept elsewhere than beside its cert
            private = serialization.load_pem_private_key(key.read_bytes(), None)
            self.ca = CertificateAuthority(KeyPair(self.ca.pair.cert, private))  # type: ignore[arg-type]
        self.csrs = self.watch(CSRS)
        self.csrs.add_handler(self.enqueue, lambda _o, n: self.enqueue(n))

    def _problem(self, signer: str, req: x509.CertificateSigningRequest, usages: list[str]) -> str:
        if signer == KUBELET_CLIENT:
            return kubelet_client_problem(req, usages)
        if signer == KUBELET_SERVING:
            return kubelet_serving_problem(req, usages)
        if "server auth" in usages or "client auth" not in usages:
            return "kube-apiserver-client certificates are for client auth only"
        _, orgs = _subject(req)
        if "system:masters" in orgs:
            return "system:masters is not issued by this signer"
        return ""

    async def reconcile(self, key: str) -> float | None:
        csr = self.csrs.get(key)
        if csr is None:
            return None
        spec, status = csr.get("spec") or {}, csr.get("status") or {}
        conditions = _conditions(csr)
        signer = spec.get("signerName")
        if (
            signer not in (CLIENT, KUBELET_CLIENT, KUBELET_SERVING)
            or "Approved" not in conditions
            or {"Denied", "Failed"} & set(conditions)
            or status.get("certificate")
        ):
            return None
        usages = list(spec.get("usages") or [])
        try:
            req = _request(csr)
            problem = self._problem(signer, req, usages)
        except ValueError as e:
            problem = f"the request cannot be read: {e}"
        if problem:
            now = rfc3339()
            failed = {
                "type": "Failed",
                "status": "True",
                "reason": "SignerValidationFailure",
                "message": problem,
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            }
            body = dict(
                csr, status=dict(status, conditions=[*status.get("conditions", []), failed])
            )
            await self._write(body)
            return None
        seconds = min(
            float(spec.get("expirationSeconds") or self.settings.duration), self.settings.duration
        )
        cert = self._issue(req, usages, seconds)
        await self._write(
            dict(csr, status=dict(status, certificate=base64.b64encode(cert).decode()))
        )
        self.log.info("issued certificate", csr=key, signer=signer)
        return None

    def _issue(
        self, req: x509.CertificateSigningRequest, usages: list[str], seconds: float
    ) -> bytes:
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(req.subject)
            .issuer_name(self.ca.pair.cert.subject)
            .public_key(req.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(
                min(now + dt.timedelta(seconds=seconds), self.ca.pair.cert.not_valid_after_utc)
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment="key encipherment" in usages,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([_USAGES[u] for u in usages if u in _USAGES]), critical=False
            )
        )
        try:
            sans = req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            builder = builder.add_extension(sans, critical=False)
        except x509.ExtensionNotFound:
            pass
        cert = builder.sign(self.ca.pair.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM)

    async def _write(self, body: Obj) -> None:
        try:
            await self.client.update(CSRS, body, subresource="status")
        except ApiError as e:
            if e.code not in (404, 409):
                raise
