"""``kube-system/extension-apiserver-authentication`` (kube's
``clusterauthenticationtrust`` controller): the CAs and request-header settings an
aggregated API server reads to authenticate the requests this apiserver proxies to it
(``client-ca-file``, ``requestheader-client-ca-file`` and the ``requestheader-*`` lists
as JSON arrays). Values already there are kept and merged with this apiserver's, so
apiservers with different settings do not undo each other."""

from __future__ import annotations

import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY

from ..registry.options import WriteOptions
from ..store import Store
from .requestheader import RequestHeaderConfig

NAMESPACE, NAME = "kube-system", "extension-apiserver-authentication"
_CONFIGMAPS = REGISTRY.core("configmaps")
Obj = dict[str, Any]


def _merge_pem(old: str, new: str) -> str:
    seen: list[bytes] = []
    for text in (old, new):
        try:
            certs = x509.load_pem_x509_certificates(text.encode()) if text.strip() else []
        except ValueError:
            certs = []
        for c in certs:
            pem = c.public_bytes(Encoding.PEM)
            if pem not in seen:
                seen.append(pem)
    return b"".join(seen).decode()


def _json_list(values: tuple[str, ...] | list[str]) -> str:
    return json.dumps(list(values), separators=(",", ":"))


def _merge_list(old: str, new: tuple[str, ...]) -> str:
    try:
        have = [str(x) for x in json.loads(old)] if old else []
    except (ValueError, TypeError):
        have = []
    return _json_list(have + [x for x in new if x not in have])


def trust_data(client_ca_file: str, request_header: RequestHeaderConfig | None) -> dict[str, str]:
    """What this apiserver publishes."""
    data: dict[str, str] = {}
    if client_ca_file:
        with open(client_ca_file) as fh:
            data["client-ca-file"] = fh.read()
    if request_header is not None:
        with open(request_header.client_ca_file) as fh:
            data["requestheader-client-ca-file"] = fh.read()
        for key, values in (
            ("requestheader-username-headers", request_header.username_headers),
            ("requestheader-uid-headers", ()),
            ("requestheader-group-headers", request_header.group_headers),
            ("requestheader-extra-headers-prefix", request_header.extra_headers_prefix),
            ("requestheader-allowed-names", request_header.allowed_names),
        ):
            data[key] = _json_list(values)
    return data


def merged(current: dict[str, str], mine: dict[str, str]) -> dict[str, str]:
    out = dict(current)
    for key, value in mine.items():
        if key.endswith("ca-file"):
            out[key] = _merge_pem(current.get(key, ""), value)
        else:
            out[key] = _merge_list(current.get(key, ""), tuple(json.loads(value)))
    return out


async def publish(store: Store, data: dict[str, str]) -> None:
    """Create or update the ConfigMap with ``data`` merged in."""
    if not data:
        return

    def mutate(cur: Obj) -> Obj:
        cur["data"] = merged(cur.get("data") or {}, data)
        return cur

    async def create() -> Obj:
        obj = {"metadata": {"name": NAME, "namespace": NAMESPACE}, "data": merged({}, data)}
        return await store.create(_CONFIGMAPS, NAMESPACE, obj, WriteOptions())

    try:
        await store.update_with(
            _CONFIGMAPS, NAMESPACE, NAME, mutate, WriteOptions(), create_if_missing=create
        )
    except ApiError as e:
        if e.code != 409:
            raise
