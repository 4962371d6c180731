"""Custom resources converted by their CRD's conversion webhook (kube's apiextensions
``conversion/webhook_converter.go``).

The objects not yet in the desired version go in one ``ConversionReview`` (the first of
the CRD's ``conversionReviewVersions`` this server speaks: ``v1``, then ``v1beta1``),
POSTed to the webhook's URL or Service as admission webhooks are (the same resolver, TLS
checks and pooled clients), with kube's 30 s limit. The answer must carry the request's
uid, ``Success``, and one object per object sent, each of the desired version and the
same kind, name, namespace and uid; its metadata is the original's but for the labels
and annotations the webhook set. Any failure is kube's 500 "conversion webhook for
<group/version>, Kind=<kind> failed: …".
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import orjson

from skiff.api import errors
from skiff.api.resources import ResourceInfo

from ..admission.interfaces import Lister
from ..admission.webhook import client
from ..validation import validate_annotations, validate_labels

Obj = dict[str, Any]

REVIEW_VERSIONS = ("v1", "v1beta1")
TIMEOUT_SECONDS = 30
"""kube's conversion webhooks have no timeout setting: each call gets 30 s."""

_CLIENTS = client.HttpsClients()


class ConversionFailed(Exception):
    """Why a conversion failed, as kube words what follows "conversion webhook for
    <gvk> " ("failed: …", "returned …")."""


def _gvk(obj: Obj) -> str:
    """An object's GroupVersionKind as Go prints it (``group/v1, Kind=CronTab``)."""
    return f"{obj.get('apiVersion', '')}, Kind={obj.get('kind', '')}"


def _review_version(config: Obj) -> str:
    for v in config.get("conversionReviewVersions") or ():
        if v in REVIEW_VERSIONS:
            return v
    raise ConversionFailed(
        f"failed: no supported conversion review versions: {config.get('conversionReviewVersions')}"
    )


async def _call(lister: Lister, config: Obj, review: Obj) -> Obj:
    cc = config.get("clientConfig") or {}
    try:
        where = await client.target(lister, cc, TIMEOUT_SECONDS)
        resp = await _CLIENTS.post(
            where, str(cc.get("caBundle") or ""), orjson.dumps(review), TIMEOUT_SECONDS
        )
    except client.CallError as e:
        raise ConversionFailed(f"failed: {e}") from None
    if resp.status_code != 200:
        raise ConversionFailed(
            f"failed: the server responded with the status code {resp.status_code} but did "
            "not return more information"
        )
    try:
        answer = orjson.loads(resp.content)
    except orjson.JSONDecodeError as e:
        raise ConversionFailed(f"failed: invalid response: {e}") from None
    if not isinstance(answer, dict):
        raise ConversionFailed("failed: invalid response: not an object")
    return answer


def _converted(answer: Obj, uid: str) -> list[Any]:
    """``getConvertedObjectsFromResponse``."""
    response = answer.get("response")
    if not isinstance(response, dict):
        raise ConversionFailed("failed: no response provided")
    if response.get("uid") != uid:
        got = response.get("uid", "")
        raise ConversionFailed(f'failed: expected response.uid="{uid}", got "{got}"')
    result = response.get("result") if isinstance(response.get("result"), dict) else {}
    if result.get("status") != "Success":
        if result.get("message"):
            raise ConversionFailed(f"failed: {result['message']}")
        raise ConversionFailed(
            f"failed: response.result.status was '{result.get('status', '')}', not 'Success'"
        )
    items = response.get("convertedObjects")
    return items if isinstance(items, list) else []


def _restore_meta(original: Obj, converted: Obj) -> None:
    """``restoreObjectMeta``: the original's metadata, with the webhook's labels and
    annotations (checked as kube checks them when they changed)."""
    meta = converted.get("metadata")
    if meta is None:
        raise ValueError("missing metadata in converted object")
    if not isinstance(meta, dict):
        raise ValueError(f"invalid metadata of type {_go_type(meta)} in converted object")
    out = copy.deepcopy(original.get("metadata") or {})
    for key, check in (("labels", validate_labels), ("annotations", validate_annotations)):
        value = meta.get(key)
        if value is None:
            out.pop(key, None)
            continue
        if not isinstance(value, dict):
            kind = _go_type(value)
            raise ValueError(f"invalid metadata.{key} of type {kind} in converted object")
        if value != out.get(key) and (causes := check(value, f"metadata.{key}")):
            raise ValueError("; ".join(f"{c.field}: {c.message}" for c in causes))
        out[key] = value
    converted["metadata"] = out


def _go_type(v: Any) -> str:
    return {str: "string", list: "[]interface {}", int: "int64", float: "float64",
            bool: "bool"}.get(type(v), "interface {}")  # fmt: skip


def _check(original: Obj, converted: Any, to: ResourceInfo, index: int | None) -> Obj:
    """The webhook's object for ``original``, checked and with its metadata restored
    (``index``: its place among the objects sent for a list, else None)."""
    what = "invalid object" if index is None else f"invalid converted object at index {index}"
    if not isinstance(converted, dict):
        raise ConversionFailed(f"returned {what}: not an object")
    if converted.get("apiVersion") != to.api_version:
        raise ConversionFailed(
            f"returned {what}: invalid groupVersion (expected {to.api_version}, received "
            f"{converted.get('apiVersion', '')})"
        )
    if converted.get("kind") != original.get("kind"):
        raise ConversionFailed(
            f"returned {what}: invalid kind (expected {original.get('kind', '')}, received "
            f"{converted.get('kind', '')})"
        )
    om = original.get("metadata") or {}
    cm = converted.get("metadata") if isinstance(converted.get("metadata"), dict) else {}
    for key, label in (("name", "name"), ("namespace", "namespace"), ("uid", "UID")):
        if (om.get(key) or "") != (cm.get(key) or ""):
            raise ConversionFailed(
                f"returned {what}: must have the same {label}: {om.get(key) or ''} != "
                f"{cm.get(key) or ''}"
            )
    try:
        _restore_meta(original, converted)
    except ValueError as e:
        place = "" if index is None else f" in object at index {index}"
        raise ConversionFailed(f"returned invalid metadata{place}: {e}") from None
    return converted


async def convert(
    lister: Lister, config: Obj, objs: list[Obj], to: ResourceInfo, *, as_list: bool = False
) -> list[Obj]:
    """``objs`` (of one custom resource, in any of its versions) in ``to``'s version; those
    already in it are not sent. ``as_list``: they are a list's items (kube's messages then
    name the index). A failure is kube's 500."""
    todo = [i for i, o in enumerate(objs) if o.get("apiVersion") != to.api_version]
    if not todo:
        return objs
    first = objs[todo[0]]
    try:
        version = _review_version(config)
        uid = str(uuid.uuid4())
        review = {
            "kind": "ConversionReview",
            "apiVersion": f"apiextensions.k8s.io/{version}",
            "request": {
                "uid": uid,
                "desiredAPIVersion": to.api_version,
                "objects": [objs[i] for i in todo],
            },
        }
        items = _converted(await _call(lister, config, review), uid)
        if len(items) != len(todo):
            raise ConversionFailed(f"returned {len(items)} objects, expected {len(todo)}")
        out = list(objs)
        for n, (i, item) in enumerate(zip(todo, items, strict=True)):
            out[i] = _check(objs[i], item, to, n if as_list else None)
    except ConversionFailed as e:
        raise errors.internal(
            f"Internal error occurred: conversion webhook for {_gvk(first)} {e}"
        ) from None
    return out
