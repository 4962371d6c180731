"""LimitRanger (kube's ``plugin/pkg/admission/limitranger``): the namespace's LimitRanges
give a new pod's containers their default requests and limits (noted in the
``kubernetes.io/limit-ranger`` annotation), then every Container, Pod and
PersistentVolumeClaim item's min, max and maxLimitRequestRatio must hold, else 403 with
kube's words. Pods are checked on create only (their containers' resources are immutable);
claims on create and update."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from skiff.api import errors
from skiff.api.defaults import pod_qos_class
from skiff.api.errors import Cause
from skiff.api.quantity import canonical as _q
from skiff.api.quantity import parse_quantity
from skiff.api.resourcequota import pod_resources
from skiff.api.resources import REGISTRY

from .interfaces import Attributes, Handler, Lister, Operation, forbidden

PLUGIN_NAME = "LimitRanger"
ANNOTATION = "kubernetes.io/limit-ranger"
LIMIT_RANGES = REGISTRY.core("limitranges")

Obj = dict[str, Any]


def _items(ranges: list[Obj], kind: str) -> list[Obj]:
    return [
        item
        for lr in ranges
        for item in (lr.get("spec") or {}).get("limits") or []
        if item.get("type") == kind
    ]


def _set_defaults(spec: Obj, items: list[Obj]) -> list[str]:
    """Fill each container's missing requests and limits; the annotation's parts."""
    requests: Obj = {}
    limits: Obj = {}
    for item in items:
        requests.update(item.get("defaultRequest") or {})
        limits.update(item.get("default") or {})
    notes: list[str] = []
    for kind, key in (("init container", "initContainers"), ("container", "containers")):
        for c in spec.get(key) or []:
            resources = c.setdefault("resources", {})
            for field, defaults, word in (("requests", requests, "request"),
                                          ("limits", limits, "limit")):  # fmt: skip
                have = resources.get(field) or {}
                added = sorted(n for n in defaults if n not in have)
                if added:
                    resources[field] = {**have, **{n: defaults[n] for n in added}}
                    notes.append(f"{', '.join(added)} {word} for {kind} {c.get('name', '')}")
    return notes


def _too_small_limits(spec: Obj) -> list[Cause]:
    causes = []
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            resources = c.get("resources") or {}
            limits = resources.get("limits") or {}
            for name, raw in (resources.get("requests") or {}).items():
                req, lim = parse_quantity(raw), parse_quantity(limits.get(name))
                if req is not None and lim is not None and req > lim:
                    causes.append(Cause(
                        f"spec.{key}[{i}].resources.requests",
                        f'Invalid value: "{_q(raw)}": must be less than or equal to {name} '
                        f"limit of {_q(limits[name])}",
                    ))  # fmt: skip
    return causes


def _check(kind: str, item: Obj, requests: dict[str, Decimal], limits: dict[str, Decimal],
           raw: dict[str, Any], max_on_requests: bool = False) -> list[str]:  # fmt: skip
    """kube's minConstraint, maxConstraint and limitRequestRatioConstraint for one item."""
    errs = []
    for name, q in sorted((item.get("min") or {}).items()):
        enforced, req = parse_quantity(q), requests.get(name)
        if enforced is None:
            continue
        if req is None:
            errs.append(f"minimum {name} usage per {kind} is {_q(q)}.  No request is specified")
        elif req < enforced:
            errs.append(f"minimum {name} usage per {kind} is {_q(q)}, but request is "
                        f"{_q(raw.get('requests.' + name, req))}")  # fmt: skip
    for name, q in sorted((item.get("max") or {}).items()):
        enforced = parse_quantity(q)
        have = (requests if max_on_requests else limits).get(name)
        word = "request" if max_on_requests else "limit"
        if enforced is None:
            continue
        if have is None:
            errs.append(f"maximum {name} usage per {kind} is {_q(q)}.  No {word} is specified")
        elif have > enforced:
            shown = raw.get(f"{word}s.{name}", have)
            errs.append(f"maximum {name} usage per {kind} is {_q(q)}, but {word} is {_q(shown)}")
    for name, q in sorted((item.get("maxLimitRequestRatio") or {}).items()):
        enforced, req, lim = parse_quantity(q), requests.get(name), limits.get(name)
        if enforced is None:
            continue
        if not req:
            errs.append(f"{name} max limit to request ratio per {kind} is {_q(q)}, but no "
                        "request is specified or request is 0")  # fmt: skip
        elif lim is None:
            errs.append(f"{name} max limit to request ratio per {kind} is {_q(q)}, but no "
                        "limit is specified")  # fmt: skip
        elif lim / req > enforced:
            errs.append(f"{name} max limit to request ratio per {kind} is {_q(q)}, but "
                        f"provided ratio is {float(lim / req):f}")  # fmt: skip
    return errs


def _container_errors(spec: Obj, items: list[Obj]) -> list[str]:
    errs = []
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        resources = c.get("resources") or {}
        raw = {f"{field}.{n}": v for field in ("requests", "limits")
               for n, v in (resources.get(field) or {}).items()}  # fmt: skip
        requests = {n: q for n, v in (resources.get("requests") or {}).items()
                    if (q := parse_quantity(v)) is not None}  # fmt: skip
        limits = {n: q for n, v in (resources.get("limits") or {}).items()
                  if (q := parse_quantity(v)) is not None}  # fmt: skip
        for item in items:
            errs += _check("Container", item, requests, limits, raw)
    return errs


def _aggregate(errs: list[str]) -> str:
    return errs[0] if len(errs) == 1 else f"[{', '.join(errs)}]"


class LimitRanger(Handler):
    name = PLUGIN_NAME
    operations = frozenset({Operation.CREATE, Operation.UPDATE})

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    def _ranges(self, attrs: Attributes) -> list[Obj] | None:
        """The namespace's LimitRanges when the request is one the plugin judges."""
        if attrs.subresource or attrs.obj is None or not attrs.namespace:
            return None
        resource = attrs.group_resource
        if resource == ("", "pods") and attrs.operation == Operation.CREATE:
            pass
        elif resource != ("", "persistentvolumeclaims"):
            return None
        ranges = [
            lr for lr in self.lister.list(LIMIT_RANGES)
            if (lr.get("metadata") or {}).get("namespace") == attrs.namespace
        ]  # fmt: skip
        return ranges or None

    async def admit(self, attrs: Attributes) -> None:
        ranges = self._ranges(attrs)
        if ranges is None or attrs.group_resource != ("", "pods"):
            return
        assert attrs.obj is not None
        spec = attrs.obj.get("spec") or {}
        notes = _set_defaults(spec, _items(ranges, "Container"))
        if not notes:
            return
        causes = _too_small_limits(spec)
        if causes:
            raise errors.invalid("Pod", attrs.name, "", causes)
        meta = attrs.obj.setdefault("metadata", {})
        annotations = meta.get("annotations") or {}
        meta["annotations"] = {**annotations, ANNOTATION: f"LimitRanger plugin set: "
                                                          f"{'; '.join(notes)}"}  # fmt: skip
        attrs.obj.setdefault("status", {})["qosClass"] = pod_qos_class(attrs.obj)

    async def validate(self, attrs: Attributes) -> None:
        ranges = self._ranges(attrs)
        if ranges is None:
            return
        assert attrs.obj is not None
        spec = attrs.obj.get("spec") or {}
        if attrs.group_resource == ("", "pods"):
            errs = _container_errors(spec, _items(ranges, "Container"))
            requests, limits = pod_resources(spec, "requests"), pod_resources(spec, "limits")
            for item in _items(ranges, "Pod"):
                errs += _check("Pod", item, requests, limits, {})
        else:
            resources = spec.get("resources") or {}
            requests = {n: q for n, v in (resources.get("requests") or {}).items()
                        if (q := parse_quantity(v)) is not None}  # fmt: skip
            raw = {f"requests.{n}": v for n, v in (resources.get("requests") or {}).items()}
            errs = []
            for item in _items(ranges, "PersistentVolumeClaim"):
                errs += _check("PersistentVolumeClaim", item, requests, {}, raw, True)
        if errs:
            raise forbidden(attrs, _aggregate(errs))
