"""What every apiserver does with the API Priority and Fairness configuration objects:

- the **producer** (kube's ``priority-and-fairness-config-producer`` post-start hook and
  its ensurer): creates every missing bootstrap object, keeps the mandatory ones' spec
  (all of the ``exempt`` level's but ``spec.exempt``) and the suggested ones' spec while
  their ``apf.kubernetes.io/autoupdate-spec`` annotation says so (missing or unreadable:
  while their generation is 1), writes the annotation back as ``true``/``false``, and
  deletes objects with other names whose annotation says ``true``; at start until it
  succeeds, then every minute;
- the **consumer**'s status (kube's ``apf_controller``): each FlowSchema's ``Dangling``
  condition, server-side applied to ``/status``: ``False``/``Found`` when its priority
  level exists, ``True``/``NotFound`` when not.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.timestamps import rfc3339
from skiff.log import get_logger

from ..registry.flowcontrol.flowschema import same_spec
from ..registry.options import DeleteOptions, WriteOptions
from ..store import PATCH_APPLY, Store
from ..watchcache import WatchCache
from . import bootstrap
from .classifier import FLOW_SCHEMAS, PRIORITY_LEVELS

log = get_logger(__name__)

Obj = dict[str, Any]

PRODUCER = "api-priority-and-fairness-config-producer-v1"
CONSUMER = "api-priority-and-fairness-config-consumer-v1"
ENSURE_EVERY = 60.0
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_bool(value: Any) -> bool | None:
    """Go's ``strconv.ParseBool``; None where it fails."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def revise(current: Obj, wanted: Obj, mandatory: bool) -> Obj | None:
    """The object the ensurer writes over ``current`` (kube's ``ReviseIfNeeded``); None
    when it is as it should be."""
    meta = current.get("metadata") or {}
    annotation = parse_bool((meta.get("annotations") or {}).get(bootstrap.AUTO_UPDATE))
    auto = mandatory or (annotation if annotation is not None else meta.get("generation") == 1)
    fix_annotation = annotation is None or annotation != auto
    spec, want = current.get("spec") or {}, wanted["spec"]
    if meta.get("name") == bootstrap.EXEMPT and wanted["kind"] == "PriorityLevelConfiguration":
        # The admin may tune the exempt level's own numbers.
        spec_changed = auto and not same_spec({**spec, "exempt": None}, {**want, "exempt": None})
        if spec_changed:
            want = {**want, "exempt": spec.get("exempt") or want.get("exempt")}
    else:
        spec_changed = auto and not same_spec(spec, want)
    if not (fix_annotation or spec_changed):
        return None
    revised = copy.deepcopy(current)
    if spec_changed:
        revised["spec"] = copy.deepcopy(want)
    if fix_annotation:
        annotations = revised["metadata"].setdefault("annotations", {})
        annotations[bootstrap.AUTO_UPDATE] = "true" if auto else "false"
    return revised


def dangling_condition(flow_schema: Obj, levels: set[str]) -> Obj | None:
    """The ``Dangling`` condition ``flow_schema`` should carry, None when it does."""
    level = ((flow_schema.get("spec") or {}).get("priorityLevelConfiguration") or {}).get("name")
    quoted = '"' + str(level or "").replace("\\", "\\\\").replace('"', '\\"') + '"'
    named = f"This FlowSchema references the PriorityLevelConfiguration object named {quoted}"
    if level in levels:
        status, reason, message = "False", "Found", f"{named} and it exists"
    else:
        status, reason, message = "True", "NotFound", f"{named} but there is no such object"
    for c in (flow_schema.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == "Dangling":
            if (c.get("status"), c.get("reason"), c.get("message")) == (status, reason, message):
                return None
    return {"type": "Dangling", "status": status, "lastTransitionTime": rfc3339(),
            "reason": reason, "message": message}  # fmt: skip


class FlowControlConfig:
    """The producer and the status part of the consumer, on one apiserver."""

    def __init__(self, store: Store, cache: WatchCache) -> None:
        self.store = store
        self.cache = cache
        self._wake = asyncio.Event()
        for info in (FLOW_SCHEMAS, PRIORITY_LEVELS):
            cache.observe(info, lambda _objects: self._wake.set())

    async def run(self) -> None:
        await self.cache.ready.wait()
        await asyncio.gather(self._produce(), self._consume())

    async def _produce(self) -> None:
        while True:
            try:
                await self.ensure()
                delay = ENSURE_EVERY
            except ApiError as e:
                log.warning("cannot ensure the APF bootstrap configuration", error=e.message)
                delay = 1.0
            await asyncio.sleep(delay)

    async def _consume(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.mark_dangling()
            except ApiError as e:
                log.warning("cannot write FlowSchema status", error=e.message)
            try:
                await asyncio.wait_for(self._wake.wait(), ENSURE_EVERY)
            except TimeoutError:
                pass

    async def ensure(self) -> None:
        """One pass of kube's ensurer: suggested objects, then mandatory ones (priority
        levels before flow schemas), then the unwanted ones deleted."""
        for objects, mandatory in (
            (bootstrap.SUGGESTED_PRIORITY_LEVELS, False),
            (bootstrap.SUGGESTED_FLOW_SCHEMAS, False),
            (bootstrap.MANDATORY_PRIORITY_LEVELS, True),
            (bootstrap.MANDATORY_FLOW_SCHEMAS, True),
        ):
            for wanted in objects.values():
                await self._ensure_one(wanted, mandatory)
        for info in (FLOW_SCHEMAS, PRIORITY_LEVELS):
            for obj in self.cache.list(info):
                meta = obj["metadata"]
                auto = parse_bool((meta.get("annotations") or {}).get(bootstrap.AUTO_UPDATE))
                if auto and meta["name"] not in bootstrap.WANTED_NAMES:
                    try:
                        await self.store.delete(info, None, meta["name"], DeleteOptions())
                    except ApiError as e:
                        if e.code not in (404, 409):
                            raise

    async def _ensure_one(self, wanted: Obj, mandatory: bool) -> None:
        info = FLOW_SCHEMAS if wanted["kind"] == "FlowSchema" else PRIORITY_LEVELS
        name = wanted["metadata"]["name"]
        opts = WriteOptions(field_manager=PRODUCER)
        current = self.cache.get(info, None, name)
        if current is None:
            try:
                await self.store.create(info, None, bootstrap.fresh(wanted), opts)
                log.info("created APF bootstrap configuration", kind=wanted["kind"], name=name)
            except ApiError as e:
                if e.code != 409:
                    raise
            return
        revised = revise(current, wanted, mandatory)
        if revised is None:
            return
        try:
            await self.store.update(info, None, name, revised, opts)
        except ApiError as e:
            if e.code not in (404, 409):  # changed meanwhile: the next pass looks again
                raise

    async def mark_dangling(self) -> None:
        """Apply each FlowSchema's ``Dangling`` condition where it is not yet right."""
        levels = {pl["metadata"]["name"] for pl in self.cache.list(PRIORITY_LEVELS)}
        for fs in self.cache.list(FLOW_SCHEMAS):
            condition = dangling_condition(fs, levels)
            if condition is None:
                continue
            body = {"apiVersion": bootstrap.API_VERSION, "kind": "FlowSchema",
                    "metadata": {"name": fs["metadata"]["name"]},
                    "status": {"conditions": [condition]}}  # fmt: skip
            opts = WriteOptions(field_manager=CONSUMER, force=True)
            try:
                await self.store.patch(
                    FLOW_SCHEMAS, None, fs["metadata"]["name"], PATCH_APPLY, body, opts,
                    subresource="status",
                )  # fmt: skip
            except ApiError as e:
                if e.code != 404:
                    raise
