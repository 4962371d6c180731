"""Autopath: the ``ndots:5`` search-path fan-out answered on the server (CoreDNS' autopath).

A pod's resolver tries a name with few dots under every search domain first:
``example.com.<ns>.svc.cluster.local``, ``example.com.svc.cluster.local``,
``example.com.cluster.local``, and only then ``example.com``: four round trips (eight with
AAAA) for every outside name. When the first of those arrives from a pod of namespace
``<ns>`` (known from its address) and does not exist, the server walks the rest of the
pod's search path itself and answers the first name that exists, as a CNAME from the
asked name to it plus its records: one round trip.

Only queries whose name ends in the asking pod's own first search domain are
rewritten (a client of another namespace, or one with a search path of its own, gets
plain answers), so a resolver never sees an answer for a question it did not mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PodIndex:
    """Pod address → namespace, from the pods informer."""

    _ns: dict[str, str] = field(default_factory=dict)
    _by_key: dict[str, str] = field(default_factory=dict)

    def set_pod(self, pod: dict[str, Any], *, deleted: bool = False) -> None:
        meta = pod.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        old = self._by_key.pop(key, None)
        if old is not None and self._ns.get(old) == meta.get("namespace"):
            del self._ns[old]
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        ip = status.get("podIP")
        if deleted or not ip or spec.get("hostNetwork"):
            return
        self._ns[ip] = meta.get("namespace") or "default"
        self._by_key[key] = ip

    def namespace_of(self, ip: str) -> str | None:
        return self._ns.get(ip)

    def __len__(self) -> int:
        return len(self._ns)


def search_path(name: str, namespace: str, zone: str) -> list[str] | None:
    """The names to try instead of ``name``, or None when autopath does not apply.

    ``name`` is a lower-case FQDN; ``zone`` ends with a dot. Applies when ``name`` is
    ``<x>.<namespace>.svc.<zone>``: then ``<x>.svc.<zone>``, ``<x>.<zone>``, ``<x>.``.
    """
    first = f".{namespace}.svc.{zone}"
    if not name.endswith(first):
        return None
    base = name[: -len(first)]
    if not base:
        return None
    return [f"{base}.svc.{zone}", f"{base}.{zone}", f"{base}."]
