"""Objects between the versions of one resource (kube's conversion scheme).

A resource served in several versions is stored in one of them
(:meth:`~skiff.api.resources.Registry.storage_for`); the store converts what it reads to
the version a request names and what a request writes to the version the registry works
on. :func:`convert` does one object:

- built-in resources with versions that differ in shape have a converter per kind
  (:data:`BUILTIN`; :mod:`.autoscaling`: HorizontalPodAutoscalers, v1 ↔ v2;
  :mod:`.events`: Events, events.k8s.io/v1 ↔ core/v1, one resource in two groups);
- custom resources whose CRD says ``conversion.strategy: None`` change ``apiVersion``
  (kube's ``nopConverter``), those with ``Webhook`` go to the CRD's conversion webhook
  (:mod:`.webhook`; :func:`aconvert_all`, which the store uses, calls it); either way the
  target version's schema then prunes what it does not know and applies its defaults,
  as kube's decoder does with what it reads (:data:`CUSTOM`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from skiff.api.resources import REGISTRY, ResourceInfo

from ..admission.interfaces import Lister
from . import autoscaling, events, webhook

Obj = dict[str, Any]
Converter = Callable[[Obj, str], Obj]
"""(object in one served version, the target version) → a new object in that version."""

BUILTIN: dict[tuple[str, str], Converter] = {
    ("autoscaling", "HorizontalPodAutoscaler"): autoscaling.convert,
    ("", "Event"): events.to_core,
    ("events.k8s.io", "Event"): events.to_events,
}

CUSTOM: dict[ResourceInfo, Callable[[Obj], None]] = {}
"""Each served custom resource version's pruning and defaulting of an object converted
into it (kept by :mod:`skiff.apiserver.apiextensions`)."""
WEBHOOKS: dict[tuple[str, str], Obj] = {}
"""(group, plural) → ``spec.conversion.webhook`` of each custom resource whose CRD
converts with a webhook (kept by :mod:`skiff.apiserver.apiextensions`)."""


def storage(info: ResourceInfo) -> ResourceInfo:
    """The version ``info``'s resource is stored in."""
    return REGISTRY.storage_for(info)


def hub(info: ResourceInfo) -> ResourceInfo:
    """The version the registry works in for a request in ``info``'s version: the stored
    one for a built-in resource (kube's internal type, which the stored version of the
    resources served in several versions matches), the request's own for a custom
    resource (each version has its own schema, defaults and rules) and for one stored
    as another group's (events.k8s.io Events: their own rules)."""
    if info.custom or info.stored_in is not None:
        return info
    return REGISTRY.storage_for(info)


def multi(info: ResourceInfo) -> bool:
    """Whether objects of ``info``'s resource may be in another version than ``info``'s
    (a custom resource's stored objects may be in any version it was stored in)."""
    return info.custom or REGISTRY.storage_for(info) is not info


def by_webhook(info: ResourceInfo) -> bool:
    """Whether ``info``'s objects are converted by a webhook (:func:`aconvert_all` only)."""
    return info.custom and (info.group, info.plural) in WEBHOOKS


def field_label(info: ResourceInfo, name: str) -> str:
    """A field selector's field as the stored objects name it."""
    if info.stored_in is not None and info.kind == "Event":
        return events.FIELD_LABELS.get(name, name)
    return name


def convert(obj: Obj, to: ResourceInfo) -> Obj:
    """``obj``, an object of ``to``'s resource in any served version, in ``to``'s
    version: ``obj`` itself when it already is, else a new object (``obj`` is not
    changed, so cached objects can be converted). Not for resources converted by a
    webhook (:func:`aconvert_all`)."""
    if obj.get("apiVersion") == to.api_version:
        return obj
    if to.custom:
        out = copy.deepcopy(obj)
        out["apiVersion"] = to.api_version
        if (normalize := CUSTOM.get(to)) is not None:
            normalize(out)
        return out
    converter = BUILTIN.get((to.group, to.kind))
    if converter is None:
        return {**obj, "apiVersion": to.api_version}
    return converter(obj, to.version)


def convert_all(objs: list[Obj], to: ResourceInfo) -> list[Obj]:
    """:func:`convert` for each of ``objs``."""
    return [convert(o, to) for o in objs]


async def aconvert_all(
    objs: list[Obj], to: ResourceInfo, lister: Lister, *, as_list: bool = False
) -> list[Obj]:
    """:func:`convert_all`, with a custom resource's conversion webhook where its CRD has
    one (one review for all the objects not yet in ``to``'s version; ``as_list``: they
    are a list's items, which kube's errors then point into)."""
    config = WEBHOOKS.get((to.group, to.plural)) if to.custom else None
    if config is None:
        return convert_all(objs, to)
    out = await webhook.convert(lister, config, objs, to, as_list=as_list)
    normalize = CUSTOM.get(to)
    if normalize is not None:
        for before, after in zip(objs, out, strict=True):
            if after is not before:
                normalize(after)
    return out


async def aconvert(obj: Obj, to: ResourceInfo, lister: Lister) -> Obj:
    """:func:`convert` of one object, with the conversion webhook where there is one."""
    if obj.get("apiVersion") == to.api_version:
        return obj
    return (await aconvert_all([obj], to, lister))[0]
