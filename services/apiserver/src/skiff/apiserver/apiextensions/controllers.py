"""The apiextensions controllers every apiserver runs (kube's ``status/naming_controller``,
``establish`` and ``finalizer/crd_finalizer``), and the wiring that makes a served CRD's
resource reach the registry's strategies and the Table printers.

They act on this apiserver's cache and write through its store, as the apiserver itself
(no user): several apiservers doing the same work meet on resourceVersions, and a
write that changes nothing is not made.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from skiff.api.conditions import get_condition, new_condition, set_condition
from skiff.api.errors import ApiError
from skiff.api.timestamps import rfc3339
from skiff.log import get_logger

from .. import conversion, openapi, printers
from .. import registry as reg
from ..registry.options import DeleteOptions, WriteOptions
from ..store import Store
from ..watchcache import WatchCache
from .customresource import CustomResourceStrategy, table_printer
from .served import CRD_INFO, FINALIZER, CustomResource, CustomResources, is_established

log = get_logger(__name__)

Obj = dict[str, Any]


def _follow(old: CustomResource | None, new: CustomResource | None) -> None:
    """Keep the strategies, printers, converters and OpenAPI schemas of served custom
    resources current."""
    if old is not None:
        for v in old.versions.values():
            reg.CUSTOM.pop(v.info, None)
            printers.CUSTOM.pop(v.info, None)
            conversion.CUSTOM.pop(v.info, None)
            openapi.custom.withdraw(v.info)
        conversion.WEBHOOKS.pop((old.group, old.plural), None)
    if new is not None:
        if new.webhook is not None:
            conversion.WEBHOOKS[(new.group, new.plural)] = new.webhook
        for v in new.versions.values():
            reg.CUSTOM[v.info] = CustomResourceStrategy(v.info, v, new)
            printers.CUSTOM[v.info] = table_printer(v)
            if v.schema is not None:
                conversion.CUSTOM[v.info] = v.schema.prune_and_default
            openapi.custom.publish(v.info, v.openapi)
    openapi.forget()


def serve_custom_resources(cache: WatchCache) -> CustomResources:
    """What this apiserver serves, following the CRDs in ``cache`` (call before the cache
    is filled)."""
    crs = CustomResources(cache)
    crs.listen(_follow)
    return crs


# -- names ---------------------------------------------------------------------------


def _used_names(crds: list[Obj], group: str, own: str) -> tuple[set[str], set[str]]:
    resources: set[str] = set()
    kinds: set[str] = set()
    for crd in crds:
        if (crd.get("spec") or {}).get("group") != group or crd["metadata"]["name"] == own:
            continue
        accepted = (crd.get("status") or {}).get("acceptedNames") or {}
        names = (
            accepted.get("plural"),
            accepted.get("singular"),
            *(accepted.get("shortNames") or ()),
        )
        resources.update(x for x in names if x)
        kinds.update(x for x in (accepted.get("kind"), accepted.get("listKind")) if x)
    return resources, kinds


def accepted_names(crd: Obj, crds: list[Obj]) -> tuple[Obj, Obj, Obj]:
    """(accepted names, NamesAccepted, Established) as kube's naming controller computes
    them: a requested name is taken unless another CRD of the group has accepted it."""
    spec = crd.get("spec") or {}
    requested = spec.get("names") or {}
    accepted = dict((crd.get("status") or {}).get("acceptedNames") or {})
    resources, kinds = _used_names(crds, spec.get("group", ""), crd["metadata"]["name"])
    new = dict(accepted)
    conflict: tuple[str, str] | None = None  # (reason, message) of the last conflict found

    def take(field: str, used: set[str], reason: str) -> None:
        nonlocal conflict
        want = requested.get(field)
        if want == accepted.get(field) or want not in used:
            if want is not None:
                new[field] = want
        else:
            conflict = (reason, f'"{want}" is already in use')

    take("plural", resources, "PluralConflict")
    take("singular", resources, "SingularConflict")
    want_short = list(requested.get("shortNames") or [])
    if want_short != list(accepted.get("shortNames") or []):
        have = set(accepted.get("shortNames") or ())
        taken = [s for s in want_short if s not in have and s in resources]
        if taken:
            message = ", ".join(f'"{s}" is already in use' for s in taken)
            conflict = ("ShortNamesConflict", f"[{message}]" if len(taken) > 1 else message)
        elif want_short:
            new["shortNames"] = want_short
        else:
            new.pop("shortNames", None)
    take("kind", kinds, "KindConflict")
    take("listKind", kinds, "ListKindConflict")
    if requested.get("categories"):
        new["categories"] = list(requested["categories"])
    else:
        new.pop("categories", None)
    now = rfc3339()
    if conflict is not None:
        names_cond = new_condition("NamesAccepted", "False", *conflict, now)
    else:
        names_cond = new_condition(
            "NamesAccepted", "True", "NoConflicts", "no conflicts found", now
        )
    established = get_condition(crd.get("status"), "Established")
    if established is None or established.get("status") != "True":
        if names_cond["status"] == "True":
            # kube's establishing controller follows at once on a single apiserver.
            established = new_condition(
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
                now,
            )
        else:
            established = new_condition(
                "Established", "False", "NotAccepted", "not all names are accepted", now
            )
    return new, names_cond, established


class CRDControllers:
    """The naming/establishing controller and the CRD finalizer of one apiserver."""

    def __init__(self, crs: CustomResources, store: Store, cache: WatchCache) -> None:
        self.crs = crs
        self.store = store
        self.cache = cache
        self._wake = asyncio.Event()
        self._finalizing: set[str] = set()
        crs.changed = self._wake.set

    async def run(self) -> None:
        await self.cache.ready.wait()
        while True:
            self._wake.clear()
            for crd in self.cache.list(CRD_INFO):
                try:
                    await self._sync(crd)
                except ApiError as e:
                    if e.code not in (404, 409):
                        log.warning("crd sync failed", crd=crd["metadata"]["name"], error=str(e))
                except Exception as e:
                    log.error("crd sync failed", crd=crd["metadata"]["name"], error=repr(e))
            try:
                await asyncio.wait_for(self._wake.wait(), 10.0)
            except TimeoutError:
                pass

    async def _sync(self, crd: Obj) -> None:
        meta = crd["metadata"]
        if meta.get("deletionTimestamp"):
            if FINALIZER in (meta.get("finalizers") or ()) and meta["name"] not in self._finalizing:
                self._finalizing.add(meta["name"])
                task = asyncio.create_task(self._finalize(meta["name"]))
                task.add_done_callback(lambda _t, n=meta["name"]: self._finalizing.discard(n))
            return
        status = crd.get("status") or {}
        spec_names = (crd.get("spec") or {}).get("names") or {}
        if spec_names == status.get("acceptedNames") and is_established(crd):
            return
        names, names_cond, est_cond = accepted_names(crd, self.cache.list(CRD_INFO))

        def mutate(cur: Obj) -> Obj:
            st = cur.setdefault("status", {})
            st["acceptedNames"] = names
            set_condition(st, names_cond)
            set_condition(st, est_cond)
            return cur

        await self.store.update_with(
            CRD_INFO, None, meta["name"], mutate, WriteOptions(), subresource="status"
        )

    async def _set_terminating(self, name: str, status: str, reason: str, message: str) -> None:
        def mutate(cur: Obj) -> Obj:
            set_condition(
                cur.setdefault("status", {}),
                new_condition("Terminating", status, reason, message, rfc3339()),
            )
            return cur

        await self.store.update_with(
            CRD_INFO, None, name, mutate, WriteOptions(), subresource="status"
        )

    async def _finalize(self, name: str) -> None:
        """kube's CRD finalizer: delete every instance, wait until none is left (a minute
        at most, then try again), then let the CRD go."""
        try:
            await self._set_terminating(
                name, "True", "InstanceDeletionInProgress", "CustomResource deletion is in progress"
            )
            cr = next((c for c in self.crs.by_crd.values() if c.crd_name == name), None)
            if cr is not None:
                info = cr.storage_info
                for obj in self.cache.list(info):
                    m = obj["metadata"]
                    try:
                        await self.store.delete(
                            info, m.get("namespace"), m["name"], DeleteOptions()
                        )
                    except ApiError as e:
                        if e.code != 404:
                            raise
                deadline = time.monotonic() + 60
                while self.cache.list(info):
                    if time.monotonic() > deadline:
                        await self._set_terminating(
                            name,
                            "True",
                            "InstanceDeletionCheck",
                            "could not confirm zero CustomResources remaining: timed out waiting "
                            "for the condition",
                        )
                        return
                    await asyncio.sleep(0.2)
                await self._set_terminating(
                    name, "False", "InstanceDeletionCompleted", "removed all instances"
                )
            else:
                await self._set_terminating(
                    name, "False", "NeverEstablished", "resource was never established"
                )

            def release(cur: Obj) -> Obj:
                cur["metadata"]["finalizers"] = [
                    f for f in cur["metadata"].get("finalizers") or [] if f != FINALIZER
                ]
                return cur

            await self.store.update_with(CRD_INFO, None, name, release, WriteOptions())
            log.info("custom resource definition finalized", crd=name)
        except ApiError as e:
            if e.code not in (404, 409):
                log.warning("crd finalizer failed", crd=name, error=str(e))
        except Exception as e:
            log.error("crd finalizer failed", crd=name, error=repr(e))
        finally:
            self._wake.set()
