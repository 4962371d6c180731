"""AdmissionReview v1 (``admission.k8s.io/v1``): the request a webhook gets, and the checks
on its answer (kube's ``request`` package and ``VerifyAdmissionResponse``)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from skiff.api.resources import ResourceInfo

from ..interfaces import Attributes, Operation

API_VERSION = "admission.k8s.io/v1"
_OPTIONS_KIND = {
    Operation.CREATE: "CreateOptions",
    Operation.UPDATE: "UpdateOptions",
    Operation.DELETE: "DeleteOptions",
    Operation.CONNECT: "",
}


def _kind_of(attrs: Attributes, info: ResourceInfo) -> dict[str, str]:
    """The group/version/kind of the object under review as ``info`` (a subresource's own
    kind when one is posted: pods/binding is a Binding, pods/eviction an Eviction)."""
    obj = attrs.obj if attrs.obj is not None else attrs.old
    if attrs.subresource and obj is not None and obj.get("kind") and obj["kind"] != info.kind:
        group, _, version = str(obj.get("apiVersion") or "v1").rpartition("/")
        return {"group": group, "version": version, "kind": obj["kind"]}
    return {"group": info.group, "version": info.version, "kind": info.kind}


def request(attrs: Attributes) -> dict[str, Any]:
    """The ``request`` of a review of ``attrs`` (also CEL's ``request`` variable): the
    object's kind and resource as the webhook sees them (``attrs.info``), and as the
    request named them (``requestKind``, ``requestResource``)."""
    info, asked = attrs.info, attrs.requested
    resource = {"group": info.group, "version": info.version, "resource": info.plural}
    asked_resource = {"group": asked.group, "version": asked.version, "resource": asked.plural}
    req: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": _kind_of(attrs, info),
        "resource": resource,
        "requestKind": _kind_of(attrs, asked),
        "requestResource": asked_resource,
        "name": attrs.name,
        "operation": attrs.operation.value,
        "userInfo": attrs.user.to_api() if attrs.user is not None else {"username": ""},
        "object": attrs.obj,
        "oldObject": attrs.old,
        "dryRun": attrs.dry_run,
    }
    if attrs.subresource:
        req["subResource"] = req["requestSubResource"] = attrs.subresource
    namespace = attrs.namespace
    if info.group == "" and info.plural == "namespaces":
        namespace = attrs.name  # kube's RequestInfo names a namespace request after it
    if namespace:
        req["namespace"] = namespace
    if kind_name := _OPTIONS_KIND[attrs.operation]:
        req["options"] = {"kind": kind_name, "apiVersion": "meta.k8s.io/v1"}
    return req


def review(req: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "AdmissionReview", "apiVersion": API_VERSION, "request": req}


class InvalidResponse(Exception):
    """The webhook's answer is not an AdmissionReview for this request."""


@dataclass(slots=True)
class Response:
    """A verified answer."""

    allowed: bool
    status: dict[str, Any] | None = None
    patch: list[Any] | None = None
    warnings: list[str] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)


def verify(body: bytes, uid: str) -> Response:
    """Parse and check a webhook's answer (``VerifyAdmissionResponse`` for v1)."""
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise InvalidResponse(f"couldn't get version/kind; json parse error: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidResponse("couldn't get version/kind; json parse error: not an object")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != "AdmissionReview":
        got = f"{doc.get('apiVersion') or ''}, Kind={doc.get('kind') or ''}"
        raise InvalidResponse(
            f"expected webhook response of {API_VERSION}, Kind=AdmissionReview, got {got}"
        )
    resp = doc.get("response")
    if not isinstance(resp, dict):
        raise InvalidResponse("webhook response was absent")
    if resp.get("uid") != uid:
        raise InvalidResponse(f'expected response.uid="{uid}", got "{resp.get("uid") or ""}"')
    patch_type, raw_patch = resp.get("patchType"), resp.get("patch")
    patch = None
    if raw_patch and not patch_type:
        raise InvalidResponse("webhook returned response.patch but not response.patchType")
    if patch_type and not raw_patch:
        raise InvalidResponse("webhook returned response.patchType but not response.patch")
    if patch_type and patch_type != "JSONPatch":
        raise InvalidResponse(f'webhook returned invalid response.patchType of "{patch_type}"')
    if raw_patch:
        try:
            patch = json.loads(base64.b64decode(raw_patch, validate=True))
        except (binascii.Error, ValueError, TypeError) as e:
            raise InvalidResponse(f"invalid response.patch: {e}") from None
    warnings = [str(w) for w in resp.get("warnings") or () if isinstance(w, str)]
    annotations = resp.get("auditAnnotations")
    status = resp.get("status")
    return Response(
        allowed=resp.get("allowed") is True,
        status=status if isinstance(status, dict) else None,
        patch=patch,
        warnings=warnings,
        audit_annotations={str(k): str(v) for k, v in (annotations or {}).items()}
        if isinstance(annotations, dict)
        else {},
    )
