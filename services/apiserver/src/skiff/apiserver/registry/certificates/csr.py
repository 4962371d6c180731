"""CertificateSigningRequests (kube's ``pkg/registry/certificates``): the requester's
identity is stamped on create (``spec.username``, ``uid``, ``groups``, ``extra``); the
spec never changes afterwards; ``/approval`` changes only the Approved/Denied conditions
and ``/status`` only the issued certificate and the other conditions. Validation follows
kube's messages: a PEM ``CERTIFICATE REQUEST`` with a valid signature, a signer name,
known usages, at least ten minutes of requested duration."""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Iterable
from typing import Any

from cryptography import x509

from skiff.api.errors import Cause

from ...authentication.user import UserInfo
from ..strategy import Obj, StatusREST, Strategy, Subresource

KNOWN_USAGES = frozenset(
    {
        "signing", "digital signature", "content commitment", "key encipherment",
        "key agreement", "data encipherment", "cert sign", "crl sign", "encipher only",
        "decipher only", "any", "server auth", "client auth", "code signing",
        "email protection", "s/mime", "ipsec end system", "ipsec tunnel", "ipsec user",
        "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
    }
)  # fmt: skip
APPROVAL_TYPES = ("Approved", "Denied")


def parse_request(pem: bytes) -> x509.CertificateSigningRequest:
    """The PKCS#10 request of ``spec.request`` (ValueError when it is not one)."""
    csr = x509.load_pem_x509_csr(pem)
    if not csr.is_signature_valid:
        raise ValueError("the request's signature is not valid")
    return csr


class ApprovalREST(StatusREST):
    """``/approval``: the Approved or Denied condition (``kubectl certificate approve``)."""

    name = "approval"

    async def update(self, store, info, namespace, name, body, opts):  # type: ignore[no-untyped-def, override]
        return await store.update_object(info, namespace, name, body, opts, subresource="approval")

    async def patch(self, store, info, namespace, name, patch_type, body, opts):  # type: ignore[no-untyped-def, override]
        return await store.patch_object(
            info, namespace, name, patch_type, body, opts, subresource="approval"
        )


def _conditions(obj: Obj) -> list[dict[str, Any]]:
    return list((obj.get("status") or {}).get("conditions") or [])


class CertificateSigningRequestStrategy(Strategy):
    def make_subresources(self) -> Iterable[Subresource]:
        return (StatusREST(), ApprovalREST())

    def set_requester(self, obj: Obj, user: UserInfo | None) -> None:
        spec = obj.setdefault("spec", {})
        for key in ("username", "uid", "groups", "extra"):
            spec.pop(key, None)
        if user is None:
            return
        spec["username"] = user.name
        if user.uid:
            spec["uid"] = user.uid
        if user.groups:
            spec["groups"] = list(user.groups)
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra.items()}

    def prepare_for_update(self, obj: Obj, old: Obj, subresource: str) -> Obj:
        if subresource == "approval":
            result = copy.deepcopy(old)
            keep = [c for c in _conditions(old) if c.get("type") not in APPROVAL_TYPES]
            new = [c for c in _conditions(obj) if c.get("type") in APPROVAL_TYPES]
            result.setdefault("status", {})["conditions"] = keep + new
            return result
        if subresource == "status":
            result = copy.deepcopy(old)
            status = dict(obj.get("status") or {})
            # Approval is /approval's: status writes keep the old Approved/Denied.
            approval = [c for c in _conditions(old) if c.get("type") in APPROVAL_TYPES]
            others = [
                c for c in status.get("conditions") or [] if c.get("type") not in APPROVAL_TYPES
            ]
            if approval or others:
                status["conditions"] = approval + others
            result["status"] = status
            return result
        obj["spec"] = old.get("spec")
        obj["status"] = old.get("status")
        if obj["status"] is None:
            obj.pop("status")
        return obj

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = []
        request = spec.get("request")
        if not request:
            causes.append(Cause("spec.request", "Required value", "FieldValueRequired"))
        else:
            try:
                parse_request(base64.b64decode(request))
            except (ValueError, binascii.Error, TypeError) as e:
                causes.append(
                    Cause("spec.request", f"Invalid value: []byte{{...}}: {e}", "FieldValueInvalid")
                )
        if not spec.get("signerName"):
            causes.append(Cause("spec.signerName", "Required value", "FieldValueRequired"))
        elif "/" not in spec["signerName"]:
            causes.append(
                Cause(
                    "spec.signerName",
                    f'Invalid value: "{spec["signerName"]}": must be a fully qualified domain '
                    "and path of the form 'example.com/signer-name'",
                    "FieldValueInvalid",
                )
            )
        for i, usage in enumerate(spec.get("usages") or []):
            if usage not in KNOWN_USAGES:
                causes.append(
                    Cause(
                        f"spec.usages[{i}]",
                        f'Unsupported value: "{usage}"',
                        "FieldValueNotSupported",
                    )
                )
        seconds = spec.get("expirationSeconds")
        if seconds is not None and (not isinstance(seconds, int) or seconds < 600):
            causes.append(
                Cause(
                    "spec.expirationSeconds",
                    f"Invalid value: {seconds}: may not specify a duration less than 600 seconds "
                    "(10 minutes)",
                    "FieldValueInvalid",
                )
            )
        seen = set()
        for i, c in enumerate(_conditions(obj)):
            kind = c.get("type")
            if kind in seen and kind in (*APPROVAL_TYPES, "Failed"):
                causes.append(
                    Cause(
                        f"status.conditions[{i}].type",
                        f'Duplicate value: "{kind}"',
                        "FieldValueDuplicate",
                    )
                )
            seen.add(kind)
        if {"Approved", "Denied"} <= seen:
            causes.append(
                Cause(
                    "status.conditions",
                    'Invalid value: "Approved": Approved and Denied conditions are mutually '
                    "exclusive",
                    "FieldValueInvalid",
                )
            )
        return causes

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(obj)
        had = {c.get("type") for c in _conditions(old)}
        has = {c.get("type") for c in _conditions(obj)}
        for kind in APPROVAL_TYPES:
            if kind in had and kind not in has:
                causes.append(
                    Cause(
                        "status.conditions",
                        f'Forbidden: updates may not remove a condition of type "{kind}"',
                        "FieldValueForbidden",
                    )
                )
        if (old.get("status") or {}).get("certificate") and (obj.get("status") or {}).get(
            "certificate"
        ) != old["status"]["certificate"]:
            causes.append(
                Cause(
                    "status.certificate",
                    "Forbidden: updates may not modify existing certificate content",
                    "FieldValueForbidden",
                )
            )
        return causes
