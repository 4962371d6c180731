"""Which custom resources are served, from the CustomResourceDefinitions in the watch cache.

kube's ``crdHandler`` and discovery controller: a CRD whose names are accepted is served
under its accepted names in every version marked ``served``, with the storage version's
etcd prefix ``/registry/<group>/<plural>/``. :class:`CustomResources` watches the CRDs
in this apiserver's cache (:meth:`WatchCache.observe`: a CRD is known before the first
object of its resource arrives) and keeps :data:`~skiff.api.resources.REGISTRY`, the
registry's strategies and the Table printers in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skiff.api.conditions import get_condition
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.log import get_logger

from ..watchcache import WatchCache
from .crschema import CompiledSchema

log = get_logger(__name__)

Obj = dict[str, Any]

_crd_info = REGISTRY.by_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
assert _crd_info is not None
CRD_INFO: ResourceInfo = _crd_info

FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
"""Held by a deleted CRD until its objects are gone (kube's CRD finalizer)."""


@dataclass(frozen=True, slots=True)
class Column:
    """One ``additionalPrinterColumns`` entry."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""


@dataclass(slots=True)
class ScalePaths:
    """The ``scale`` subresource's JSON paths."""

    spec_replicas: str
    status_replicas: str
    label_selector: str = ""


@dataclass(slots=True)
class Version:
    """What one served version of a custom resource needs per request."""

    info: ResourceInfo
    schema: CompiledSchema | None
    columns: tuple[Column, ...]
    scale: ScalePaths | None
    openapi: Obj | None = None
    """The version's ``openAPIV3Schema`` as written (published in ``/openapi/v3``)."""


@dataclass(slots=True)
class CustomResource:
    """A served CustomResourceDefinition: its versions, storage first."""

    crd_name: str
    resource_version: str
    group: str
    plural: str
    versions: dict[str, Version]
    storage: str
    terminating: bool
    webhook: Obj | None = None
    """``spec.conversion.webhook`` (clientConfig, conversionReviewVersions) when the CRD
    converts between versions with a webhook."""

    @property
    def storage_info(self) -> ResourceInfo:
        return self.versions[self.storage].info


def _definition_name(group: str, version: str, kind: str) -> str:
    """kube's OpenAPI name of a custom kind: the group reversed (``com.example.v1.CronTab``)."""
    return ".".join([*reversed(group.split(".")), version, kind])


def _columns(version: Obj) -> tuple[Column, ...]:
    cols = version.get("additionalPrinterColumns") or []
    if not cols:
        return (Column("Age", "date", ".metadata.creationTimestamp"),)
    return tuple(
        Column(
            c.get("name", ""),
            c.get("type", "string"),
            c.get("jsonPath", ""),
            c.get("description", ""),
            int(c.get("priority") or 0),
            c.get("format", ""),
        )
        for c in cols
    )


def storage_version(crd: Obj) -> str | None:
    """The name of the version marked ``storage``."""
    for v in (crd.get("spec") or {}).get("versions") or []:
        if isinstance(v, dict) and v.get("storage"):
            return v.get("name")
    return None


def is_established(crd: Obj) -> bool:
    cond = get_condition(crd.get("status"), "Established")
    return bool(cond and cond.get("status") == "True")


def build(crd: Obj) -> CustomResource | None:
    """The served form of ``crd``; None while its names are not accepted (or it serves
    nothing)."""
    spec = crd.get("spec") or {}
    status = crd.get("status") or {}
    names = status.get("acceptedNames") or {}
    if not names.get("plural") or not names.get("kind"):
        return None
    accepted = get_condition(status, "NamesAccepted")
    if not is_established(crd) and not (accepted and accepted.get("status") == "True"):
        return None
    group = spec.get("group", "")
    namespaced = spec.get("scope") == "Namespaced"
    versions: dict[str, Version] = {}
    storage = storage_version(crd)
    for v in spec.get("versions") or []:
        if not v.get("served"):
            continue
        subs = v.get("subresources") or {}
        scale = subs.get("scale")
        info = ResourceInfo(
            group,
            v["name"],
            names["kind"],
            names["plural"],
            namespaced,
            _definition_name(group, v["name"], names["kind"]),
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            subresources=tuple(s for s in ("status", "scale") if s in subs),
            has_status="status" in subs,
            custom=True,
        )
        openapi = (v.get("schema") or {}).get("openAPIV3Schema")
        versions[v["name"]] = Version(
            info,
            CompiledSchema(openapi) if isinstance(openapi, dict) else None,
            _columns(v),
            ScalePaths(
                scale.get("specReplicasPath", ""),
                scale.get("statusReplicasPath", ""),
                scale.get("labelSelectorPath", ""),
            )
            if isinstance(scale, dict)
            else None,
            openapi if isinstance(openapi, dict) else None,
        )
    if not versions or not storage:
        return None
    if storage not in versions:
        # The storage version is not served: objects are still kept in its prefix.
        storage = next(iter(versions))
    meta = crd.get("metadata") or {}
    conversion = spec.get("conversion") or {}
    webhook = conversion.get("webhook") if conversion.get("strategy") == "Webhook" else None
    return CustomResource(
        meta.get("name", ""),
        meta.get("resourceVersion", ""),
        group,
        names["plural"],
        versions,
        storage,
        bool(meta.get("deletionTimestamp")),
        webhook if isinstance(webhook, dict) else None,
    )


Listener = Callable[[CustomResource | None, CustomResource | None], None]


class CustomResources:
    """The custom resources this apiserver serves, kept from its watch cache's CRDs."""

    def __init__(self, cache: WatchCache | None = None) -> None:
        self.cache = cache
        self.by_crd: dict[str, CustomResource] = {}
        self.by_resource: dict[tuple[str, str], CustomResource] = {}
        self._listeners: list[Listener] = []
        self.changed: Callable[[], None] | None = None
        """Called after every sync (the naming controller's wake-up)."""
        if cache is not None:
            cache.observe(CRD_INFO, self.sync)

    def listen(self, listener: Listener) -> None:
        """``listener(old, new)`` after a custom resource starts, changes or stops being
        served (the strategies and printers follow it)."""
        self._listeners.append(listener)

    def get(self, info: ResourceInfo) -> CustomResource | None:
        return self.by_resource.get((info.group, info.plural))

    def version(self, info: ResourceInfo) -> Version | None:
        cr = self.get(info)
        return cr.versions.get(info.version) if cr is not None else None

    def sync(self, crds: dict[str, Obj]) -> None:
        """Bring what is served in line with ``crds`` (the cache's CRDs by key)."""
        seen = set()
        for crd in crds.values():
            name = (crd.get("metadata") or {}).get("name", "")
            seen.add(name)
            current = self.by_crd.get(name)
            rv = (crd.get("metadata") or {}).get("resourceVersion", "")
            if current is not None and current.resource_version == rv:
                continue
            try:
                new = build(crd)
            except Exception as e:  # a schema the compiler cannot take serves nothing
                log.error("custom resource definition not served", crd=name, error=repr(e))
                new = None
            self._replace(name, current, new)
        for name in [n for n in self.by_crd if n not in seen]:
            self._replace(name, self.by_crd[name], None)
        if self.changed is not None:
            self.changed()

    def _replace(self, name: str, old: CustomResource | None, new: CustomResource | None) -> None:
        if old is None and new is None:
            return
        if old is not None:
            self.by_crd.pop(name, None)
            self.by_resource.pop((old.group, old.plural), None)
            if new is None or (new.group, new.plural) != (old.group, old.plural):
                REGISTRY.set_custom(old.group, old.plural, ())
                if self.cache is not None:
                    self.cache.drop(old.storage_info)
        if new is not None:
            self.by_crd[name] = new
            self.by_resource[(new.group, new.plural)] = new
            others = (v.info for k, v in new.versions.items() if k != new.storage)
            infos = (new.storage_info, *others)
            REGISTRY.set_custom(new.group, new.plural, infos)
        for listener in self._listeners:
            listener(old, new)
        log.info(
            "custom resource served" if new is not None else "custom resource no longer served",
            crd=name,
            versions=sorted(new.versions) if new is not None else [],
        )
