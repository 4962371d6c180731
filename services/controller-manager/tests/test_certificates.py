"""The certificate controllers' checks of what a request may be issued for."""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from skiff.controllers.certificates import kubelet_client_problem, kubelet_serving_problem
from skiff.pki import new_key


def request(cn: str, orgs: tuple[str, ...], dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    names = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    names += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names))
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(new_key("ECDSA-P256"), hashes.SHA256())


def test_kubelet_client_requests() -> None:
    good = request("system:node:n1", ("system:nodes",))
    assert kubelet_client_problem(good, ["digital signature", "client auth"]) == ""
    assert "organization" in kubelet_client_problem(
        request("system:node:n1", ("system:nodes", "system:masters")), ["client auth"]
    )
    assert "common name" in kubelet_client_problem(
        request("jane", ("system:nodes",)), ["client auth"]
    )
    assert "subjectAltNames" in kubelet_client_problem(
        request("system:node:n1", ("system:nodes",), dns=("n1",)), ["client auth"]
    )
    assert "usages" in kubelet_client_problem(good, ["client auth", "server auth"])


def test_kubelet_serving_requests() -> None:
    good = request("system:node:n1", ("system:nodes",), dns=("n1",), ips=("10.0.0.5",))
    assert kubelet_serving_problem(good, ["digital signature", "server auth"]) == ""
    assert "subjectAltNames are required" in kubelet_serving_problem(
        request("system:node:n1", ("system:nodes",)), ["server auth"]
    )
    assert "usages" in kubelet_serving_problem(good, ["client auth"])
