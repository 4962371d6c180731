"""kube-apiserver's certificate admission plugins, kept with the authorizer they ask:
CertificateApproval (approving or denying needs ``approve`` on
``signers/<signerName>``), CertificateSigning (issuing needs ``sign`` on it) and
CertificateSubjectRestriction (the kube-apiserver-client signer never issues
``system:masters``)."""

from __future__ import annotations

import base64
from typing import Any

from cryptography.x509.oid import NameOID

from skiff.api import errors
from skiff.api.errors import ApiError

from ..admission import Attributes, Operation
from ..authentication.user import MASTERS
from ..registry.certificates.csr import parse_request
from . import Authorizer
from .attributes import RequestAttributes

GROUP = "certificates.k8s.io"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"


def _forbidden(attrs: Attributes, why: str) -> ApiError:
    return errors.forbidden("certificatesigningrequests", attrs.name, GROUP, why)


def _may(authorizer: Authorizer, attrs: Attributes, verb: str, signer: str) -> bool:
    assert attrs.user is not None
    names = [signer]
    if "/" in signer:
        names.append(signer.split("/", 1)[0] + "/*")  # "example.com/*" covers its signers
    for name in names:
        a = RequestAttributes(
            attrs.user, verb, True, api_group=GROUP, resource="signers", name=name
        )
        if authorizer.authorize(a)[0]:
            return True
    return False


def _signer(obj: dict[str, Any] | None) -> str:
    return str(((obj or {}).get("spec") or {}).get("signerName") or "")


def check(authorizer: Authorizer, attrs: Attributes) -> None:
    """Nothing, or the 403 of one of the three plugins."""
    if attrs.info.group != GROUP or attrs.info.plural != "certificatesigningrequests":
        return
    if attrs.operation == Operation.CREATE and not attrs.subresource:
        _subject_restriction(attrs)
        return
    if attrs.operation != Operation.UPDATE or attrs.user is None:
        return
    signer = _signer(attrs.old)
    if attrs.subresource == "approval" and not _may(authorizer, attrs, "approve", signer):
        raise _forbidden(
            attrs, f'user not permitted to approve requests with signerName "{signer}"'
        )
    if attrs.subresource == "status":
        old = ((attrs.old or {}).get("status") or {}).get("certificate")
        new = ((attrs.obj or {}).get("status") or {}).get("certificate")
        if new and new != old and not _may(authorizer, attrs, "sign", signer):
            raise _forbidden(
                attrs, f'user not permitted to sign requests with signerName "{signer}"'
            )


def _subject_restriction(attrs: Attributes) -> None:
    if _signer(attrs.obj) != CLIENT_SIGNER:
        return
    try:
        request = base64.b64decode(((attrs.obj or {}).get("spec") or {}).get("request") or "")
        csr = parse_request(request)
    except ValueError:
        return  # validation says what is wrong with it
    orgs = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if MASTERS in orgs:
        raise _forbidden(
            attrs, f"use of {CLIENT_SIGNER} signer with {MASTERS} group is not allowed"
        )
