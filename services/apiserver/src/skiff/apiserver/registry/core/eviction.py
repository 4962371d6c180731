"""``pods/eviction`` (kube's ``pkg/registry/core/pod/storage/eviction.go``): a delete that
a PodDisruptionBudget may refuse.

A pod that is already terminal, still Pending or being deleted is deleted at once. Else
the one budget covering the pod is consulted: with no disruption left the eviction is
refused with 429 ``TooManyRequests`` (the client retries, as ``kubectl drain`` does);
otherwise a disruption is spent — ``disruptionsAllowed`` decremented and the pod named
in ``disruptedPods`` in one optimistic status write of the budget, so two evictions never
spend the same disruption — and the pod is marked with the ``DisruptionTarget``
condition (``EvictionByEvictionAPI``) and deleted with the eviction's options. A pod that
is not ready does not count as healthy and, while the budget is met (or its
``unhealthyPodEvictionPolicy`` is ``AlwaysAllow``), goes without spending a disruption,
its resourceVersion the delete's precondition so that it cannot become ready unseen.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import random

from skiff.api import errors
from skiff.api.conditions import new_condition
from skiff.api.disruption import (
    ALWAYS_ALLOW,
    DISRUPTION_BUDGET_CAUSE,
    MAX_DISRUPTED_POD_SIZE,
    pdb_selector,
    set_disruption_allowed,
)
from skiff.api.errors import ApiError, Cause, Reason
from skiff.api.pods import is_ready
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.api.timestamps import rfc3339

from ..options import DeleteOptions, ListOptions, WriteOptions
from ..strategy import GenericStore, Obj

PDB_INFO = REGISTRY.by_path("policy", "v1", "poddisruptionbudgets")
assert PDB_INFO is not None

RETRY_STEPS = 20
RETRY_INTERVAL = 0.5
"""kube's ``EvictionsRetry``: 20 tries, 0.5 s apart (10% jitter), on conflicts."""
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
MORE_THAN_ONE = (
    "This pod has more than one PodDisruptionBudget, which the eviction subresource does "
    "not support."
)


def success(code: int = 201) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "code": code}  # fmt: skip


def too_many_requests(cause: str, retry_after: int | None) -> ApiError:
    """``NewTooManyRequests`` with the budget's cause (``Retry-After`` when given)."""
    return ApiError(
        429,
        Reason.TOO_MANY_REQUESTS,
        VIOLATION,
        causes=[Cause("", cause, DISRUPTION_BUDGET_CAUSE)],
        retry_after=retry_after,
    )


def _still_processing(pdb_name: str) -> ApiError:
    return too_many_requests(
        f"The disruption budget {pdb_name} is still being processed by the server.", 10
    )


def can_ignore_pdb(pod: Obj) -> bool:
    """Pods whose eviction disrupts nothing more: terminal, Pending, or being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(
        pod["metadata"].get("deletionTimestamp")
    )


def _enforces_resource_version(pod: Obj) -> bool:
    """Whether the delete must not race the pod becoming ready (not for finished or
    terminating pods)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def delete_options(body: Obj, opts: WriteOptions) -> DeleteOptions:
    """The eviction's ``deleteOptions`` with the request's dry run (``propagateDryRun``)."""
    raw = body.get("deleteOptions") or {}
    if not isinstance(raw, dict):
        raise errors.bad_request("deleteOptions must be an object")
    body_dry_run = list(raw.get("dryRun") or [])
    query_dry_run = ["All"] if opts.dry_run else []
    if body_dry_run and query_dry_run and body_dry_run != query_dry_run:
        raise errors.bad_request(
            f"Non-matching dry-run options in request and content: {query_dry_run} and "
            f"{body_dry_run}"
        )
    pre = raw.get("preconditions") or {}
    grace = raw.get("gracePeriodSeconds")
    return DeleteOptions(
        grace_period_seconds=None if grace is None else int(grace),
        propagation_policy=raw.get("propagationPolicy"),
        precondition_uid=pre.get("uid") or None,
        precondition_rv=pre.get("resourceVersion") or None,
        dry_run=opts.dry_run or body_dry_run == ["All"],
        user=opts.user,
    )


async def _pause() -> None:
    await asyncio.sleep(RETRY_INTERVAL * random.uniform(1.0, 1.1))


class Eviction:
    """One eviction request, carried through kube's steps."""

    def __init__(
        self,
        store: GenericStore,
        info: ResourceInfo,
        namespace: str,
        name: str,
        delete: DeleteOptions,
        opts: WriteOptions,
    ) -> None:
        self.store, self.info, self.namespace, self.name = store, info, namespace, name
        self.delete = delete
        self.opts = opts

    async def run(self) -> Obj:
        pod = await self._delete_if_pdb_ignorable()
        if pod is None:
            return success()
        pdbs = await self._budgets_of(pod)
        if len(pdbs) > 1:
            return {**success(500), "status": "Failure", "message": MORE_THAN_ONE}
        delete = self.delete
        pdb_name = ""
        if pdbs:
            pdb = pdbs[0]
            pdb_name = pdb["metadata"]["name"]
            if self._unhealthy_goes_free(pod, pdb):
                # No disruption is spent; the pod must still be the unready one we saw.
                if delete.precondition_rv is None:
                    delete = dataclasses.replace(delete, precondition_rv=str(pod["metadata"]
                                                 ["resourceVersion"]))  # fmt: skip
            else:
                await self._spend_disruption(pdb)
        try:
            await self._mark_and_delete(delete)
        except ApiError as e:
            if e.code == 409 and delete is not self.delete and self.delete.precondition_rv is None:
                raise _still_processing(pdb_name) from e
            raise
        return success()

    async def _delete_if_pdb_ignorable(self) -> Obj | None:
        """Delete a pod that no budget guards; the pod when budgets must be consulted."""
        for attempt in range(RETRY_STEPS):
            pod = await self.store.get(self.info, self.namespace, self.name)
            if not can_ignore_pdb(pod):
                return pod
            delete = self.delete
            if _enforces_resource_version(pod) and delete.precondition_rv is None:
                rv = str(pod["metadata"]["resourceVersion"])
                delete = dataclasses.replace(delete, precondition_rv=rv)
            try:
                await self._mark_and_delete(delete)
                return None
            except ApiError as e:
                # A conflict is retried unless the client named the resourceVersion.
                if e.code != 409 or self.delete.precondition_rv is not None:
                    raise
                if attempt == RETRY_STEPS - 1:
                    raise
                await _pause()
        raise AssertionError("unreachable")

    async def _budgets_of(self, pod: Obj) -> list[Obj]:
        assert PDB_INFO is not None
        listed = await self.store.list(PDB_INFO, self.namespace, ListOptions())
        labels = pod["metadata"].get("labels") or {}
        return [p for p in listed.items if pdb_selector(p).matches(labels)]

    @staticmethod
    def _unhealthy_goes_free(pod: Obj, pdb: Obj) -> bool:
        """An unready pod is not guarded when the policy says AlwaysAllow, or (by default,
        IfHealthyBudget) while the budget is met without it."""
        if is_ready(pod):
            return False
        if (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == ALWAYS_ALLOW:
            return True
        status = pdb.get("status") or {}
        desired = int(status.get("desiredHealthy") or 0)
        return desired > 0 and int(status.get("currentHealthy") or 0) >= desired

    async def _spend_disruption(self, pdb: Obj) -> None:
        """``checkAndDecrement``, re-reading the budget after each conflicting write."""
        assert PDB_INFO is not None
        name = pdb["metadata"]["name"]
        for attempt in range(RETRY_STEPS):
            try:
                await self._check_and_decrement(copy.deepcopy(pdb))
                return
            except ApiError as e:
                # Out of retries, the client gets the last conflict (client-go's OnError).
                if e.code != 409 or attempt == RETRY_STEPS - 1:
                    raise
            await _pause()
            pdb = await self.store.get(PDB_INFO, self.namespace, name)

    async def _check_and_decrement(self, pdb: Obj) -> None:
        assert PDB_INFO is not None
        name = pdb["metadata"]["name"]
        status = pdb.setdefault("status", {})
        if int(status.get("observedGeneration") or 0) < int(pdb["metadata"].get("generation") or 0):
            raise _still_processing(name)
        allowed = int(status.get("disruptionsAllowed") or 0)
        if allowed < 0:
            raise errors.forbidden(
                "poddisruptionbudget", name, "policy", "pdb disruptions allowed is negative"
            )
        disrupted = status.get("disruptedPods") or {}
        if len(disrupted) > MAX_DISRUPTED_POD_SIZE:
            raise errors.forbidden(
                "poddisruptionbudget",
                name,
                "policy",
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
            )
        if allowed == 0:
            raise too_many_requests(
                f"The disruption budget {name} needs {int(status.get('desiredHealthy') or 0)} "
                f"healthy pods and has {int(status.get('currentHealthy') or 0)} currently",
                None,
            )
        status["disruptionsAllowed"] = allowed - 1
        now = rfc3339()
        if allowed == 1:
            set_disruption_allowed(status, now)
        if self.delete.dry_run:
            return
        status["disruptedPods"] = {**disrupted, self.name: now}
        # The budget's resourceVersion makes this write fail if another eviction (or the
        # controller) wrote first.
        await self.store.update_object(
            PDB_INFO, self.namespace, name, pdb, WriteOptions(), subresource="status"
        )

    async def _mark_and_delete(self, delete: DeleteOptions) -> None:
        """``addConditionAndDeletePod``: the DisruptionTarget condition on the latest pod
        (the delete's preconditions checked against it), then the delete."""
        if not delete.dry_run:

            def mark(pod: Obj) -> Obj:
                _check_preconditions(pod, delete)
                status = pod.setdefault("status", {})
                kept = [c for c in status.get("conditions") or () if c.get("type")
                        != "DisruptionTarget"]  # fmt: skip
                cond = new_condition("DisruptionTarget", "True", "EvictionByEvictionAPI",
                                     "Eviction API: evicting", rfc3339())  # fmt: skip
                status["conditions"] = [*kept, {"lastProbeTime": None, **cond}]
                return pod

            updated = await self.store.update_with(
                self.info,
                self.namespace,
                self.name,
                mark,
                WriteOptions(user=self.opts.user),
                subresource="status",
            )
            if delete.precondition_rv is not None:
                # Our own write moved the resourceVersion the delete is conditioned on.
                rv = str(updated["metadata"]["resourceVersion"])
                delete = dataclasses.replace(delete, precondition_rv=rv)
        await self.store.delete(self.info, self.namespace, self.name, delete)


def _check_preconditions(pod: Obj, delete: DeleteOptions) -> None:
    meta = pod["metadata"]
    uid, rv = delete.precondition_uid, delete.precondition_rv
    if uid and uid != meta.get("uid"):
        raise errors.conflict(
            "pods",
            meta["name"],
            "",
            f"the UID in the precondition ({uid}) does not match the UID in record "
            f"({meta.get('uid')}). The object might have been deleted and then recreated",
        )
    if rv and rv != str(meta.get("resourceVersion")):
        raise errors.conflict(
            "pods",
            meta["name"],
            "",
            f"the ResourceVersion in the precondition ({rv}) does not match the "
            f"ResourceVersion in record ({meta.get('resourceVersion')}). The object might "
            "have been modified",
        )


async def evict(
    store: GenericStore,
    info: ResourceInfo,
    namespace: str,
    name: str,
    body: Obj,
    opts: WriteOptions,
) -> Obj:
    """Evict pod ``name`` as the Eviction ``body`` asks; the Status to answer with."""
    meta = body.get("metadata") or {}
    if meta.get("name", "") != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    return await Eviction(store, info, namespace, name, delete_options(body, opts), opts).run()
