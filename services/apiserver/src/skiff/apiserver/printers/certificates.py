"""Printers of the ``certificates.k8s.io`` group: CertificateSigningRequests as
``kubectl get csr`` shows them (signer, requestor, requested duration, condition)."""

from __future__ import annotations

from skiff.apiserver.printers.common import (
    AGE_COL,
    NAME_COL,
    Cells,
    Col,
    TablePrinter,
    age,
    human_duration,
    name_of,
)

_CSR = "io.k8s.api.certificates.v1.CertificateSigningRequest"


def condition(obj: dict) -> str:
    """kube's ``extractCSRStatus``: Approved/Denied/Failed joined, Issued when signed,
    else Pending."""
    status = obj.get("status") or {}
    found = []
    for c in status.get("conditions") or []:
        if c.get("type") in ("Approved", "Denied", "Failed") and c.get("status", "True") == "True":
            found.append(c["type"])
    if status.get("certificate"):
        found.append("Issued")
    return ",".join(found) or "Pending"


def _print(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    seconds = spec.get("expirationSeconds")
    return [
        name_of(obj),
        age(obj, now),
        spec.get("signerName", "<none>"),
        spec.get("username", ""),
        human_duration(seconds) if seconds else "<none>",
        condition(obj),
    ]


PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("certificates.k8s.io", "CertificateSigningRequest"): TablePrinter(
        (
            NAME_COL,
            AGE_COL,
            Col("SignerName", "string", (f"{_CSR}Spec", "signerName")),
            Col("Requestor", "string", "Name of the user that requested the certificate"),
            Col("RequestedDuration", "string", (f"{_CSR}Spec", "expirationSeconds")),
            Col("Condition", "string", "Current state of the request"),
        ),
        _print,
    )
}
