"""The APIServices an apiserver proxies (kube-aggregator's ``handlingInfo``): those of
the watch cache that name a Service, by group version, read again when the cache
changes; and what the availability check last learned of each (its discovery
document)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from skiff.api.conditions import get_condition
from skiff.api.resources import REGISTRY, ResourceInfo

from ..watchcache import WatchCache

Obj = dict[str, Any]

INFO: ResourceInfo = REGISTRY.by_path("apiregistration.k8s.io", "v1", "apiservices")  # type: ignore[assignment]
AUTOMANAGED = "kube-aggregator.kubernetes.io/automanaged"
"""The label of the APIServices the apiserver keeps itself: ``onstart`` (built-in
groups, written once at start) or ``true`` (custom resources, kept in step)."""


@dataclass(frozen=True, slots=True)
class Remote:
    """One APIService served by another server, behind a Service."""

    name: str
    group: str
    version: str
    namespace: str
    service: str
    port: int
    ca_bundle: str
    insecure: bool
    group_priority: int
    version_priority: int
    available: bool

    @property
    def server_name(self) -> str:
        """The name the server's certificate must carry (``<svc>.<ns>.svc``)."""
        return f"{self.service}.{self.namespace}.svc"

    @property
    def discovery_path(self) -> str:
        """The group version's discovery path (``/apis/<g>/<v>``, ``/api/v1`` for core)."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


def remote_of(obj: Obj) -> Remote | None:
    """The Remote of an APIService, None for a local one."""
    spec = obj.get("spec") or {}
    svc = spec.get("service")
    if not isinstance(svc, dict):
        return None
    cond = get_condition(obj.get("status"), "Available")
    return Remote(
        name=obj["metadata"]["name"],
        group=str(spec.get("group") or ""),
        version=str(spec.get("version") or ""),
        namespace=str(svc.get("namespace") or ""),
        service=str(svc.get("name") or ""),
        port=int(svc.get("port") or 443),
        ca_bundle=str(spec.get("caBundle") or ""),
        insecure=spec.get("insecureSkipTLSVerify") is True,
        group_priority=int(spec.get("groupPriorityMinimum") or 0),
        version_priority=int(spec.get("versionPriority") or 0),
        available=cond is not None and cond.get("status") == "True",
    )


@dataclass
class APIServices:
    """The remote APIServices of ``cache``."""

    cache: WatchCache
    documents: dict[str, Obj] = field(default_factory=dict)
    """APIService name → the APIResourceList its server last answered (the availability
    check's), for aggregated discovery."""
    openapi: dict[str, str] = field(default_factory=dict)
    """APIService name → its server's OpenAPI v3 URL of the group version (with the
    server's hash), for this apiserver's ``/openapi/v3`` index."""
    _generation: int = -1
    _remotes: dict[tuple[str, str], Remote] = field(default_factory=dict)

    def _fresh(self) -> dict[tuple[str, str], Remote]:
        rc = self.cache.of(INFO)
        if rc.generation != self._generation:
            remotes = (remote_of(o) for o in rc.objects.values())
            self._remotes = {(r.group, r.version): r for r in remotes if r is not None}
            self._generation = rc.generation
        return self._remotes

    def remote(self, group: str, version: str) -> Remote | None:
        """The remote APIService serving ``group/version``, if one does."""
        return self._fresh().get((group, version))

    def remotes(self) -> list[Remote]:
        return list(self._fresh().values())
