"""Creating and deleting a controller's pods: kube-controller-manager's ``RealPodControl``
and ``GetPodFromTemplate`` (``pkg/controller/controller_utils.go``).

:class:`PodControl` creates a pod from an owner's template (controlled by the owner,
named after it) and deletes a pod (only the one of its uid), recording against the owner
``SuccessfulCreate`` / ``FailedCreate`` and ``SuccessfulDelete`` / ``FailedDelete``
events. :meth:`PodControl.create_pods` and :meth:`PodControl.delete_pods` do that for many
pods under a controller's :class:`~skiff.controller.expectations.Expectations`: creations
in slow-start batches, deletions at once, and what the cache will never show (a create
that failed or was never tried, a pod that was gone already) is taken off the
expectations at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from skiff.api.errors import ApiError, namespace_terminating
from skiff.client.events import EventRecorder
from skiff.client.informer import copy_object, key_of
from skiff.client.rest import ApiClient, Obj
from skiff.controller.batch import slow_start_batch
from skiff.controller.expectations import Expectations
from skiff.controller.owners import new_controller_ref

MAX_GENERATE_NAME_PREFIX = 58
"""63 characters of a name less the 5 random ones the server appends."""
SLOW_START_INITIAL_BATCH = 1
"""The first batch of :meth:`PodControl.create_pods` (``SlowStartInitialBatchSize``)."""
GONE = (404, 409)
"""Delete errors meaning the pod went already: not found, or the uid precondition failed
(another pod of the same name replaced it)."""

_PAST = {"Create": "Created", "Delete": "Deleted"}
_DOING = {"Create": "creating", "Delete": "deleting"}


async def force_delete_pod(client: ApiClient, pod: Obj) -> None:
    """Delete ``pod`` with no grace period, this very pod (its uid as precondition): what
    a kubelet confirming the end does, and what the pod garbage collector does for pods
    no kubelet will confirm. A pod already gone (404) or replaced (409) is fine."""
    meta = pod["metadata"]
    try:
        await client.delete(
            "pods",
            meta["name"],
            meta.get("namespace"),
            grace_period_seconds=0,
            preconditions={"uid": meta["uid"]},
        )
    except ApiError as e:
        if e.code not in (404, 409):
            raise


def generate_name_prefix(owner_name: str) -> str:
    """``<owner>-``, shortened so the generated name stays a valid name."""
    return f"{owner_name}-"[:MAX_GENERATE_NAME_PREFIX]


def pod_from_template(template: Obj, namespace: str, generate_name: str, owner_ref: Obj) -> Obj:
    """The pod a controller creates from ``spec.template`` (``GetPodFromTemplate``).

    The result shares nothing with ``template`` (a cached object).
    """
    template = copy_object(template)
    tmeta = template.get("metadata") or {}
    meta: Obj = {
        "generateName": generate_name,
        "namespace": namespace,
        "labels": tmeta.get("labels") or {},
        "ownerReferences": [owner_ref],
    }
    if tmeta.get("annotations"):
        meta["annotations"] = tmeta["annotations"]
    if tmeta.get("finalizers"):
        meta["finalizers"] = tmeta["finalizers"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template.get("spec") or {},
    }


class PodControl:
    """Creates and deletes pods for their owners, with an event for each (``RealPodControl``).

    ``owner`` is always the object events are recorded against, with its ``kind`` and
    ``apiVersion`` (cached objects lack them): see ``WorkloadController.about``. Subclasses
    may word the events differently (:meth:`message`).
    """

    def __init__(self, client: ApiClient, events: EventRecorder) -> None:
        self.client = client
        self.events = events

    # -- events --------------------------------------------------------------------------

    def message(self, verb: str, owner: Obj, pod_name: str, error: ApiError | None) -> str:
        """The message of the event of one ``verb`` (``Create``, ``Delete``) of a pod."""
        if error is not None:
            return f"Error {_DOING[verb]}: {error.message}"
        return f"{_PAST[verb]} pod: {pod_name}"

    def record(self, verb: str, owner: Obj, pod_name: str, error: ApiError | None = None) -> None:
        """The event of one ``verb`` of a pod: ``Successful<verb>`` or ``Failed<verb>``."""
        message = self.message(verb, owner, pod_name, error)
        if error is not None:
            self.events.emit(owner, "Warning", f"Failed{verb}", message)
        else:
            self.events.emit(owner, "Normal", f"Successful{verb}", message)

    # -- one pod -------------------------------------------------------------------------

    async def create_pod(
        self, owner: Obj, template: Obj, *, generate_name: str | None = None
    ) -> Obj | None:
        """Create a pod from ``template`` in ``owner``'s namespace, controlled by ``owner``
        (``CreatePods``, ``CreatePodsWithGenerateName``); its name is generated from
        ``generate_name``, by default ``<owner>-``. Returns the pod created.

        A failure is a ``FailedCreate`` event and the ApiError raised, except in a
        namespace being terminated: no pod can be created there any more, so that is
        None and no event (kube's callers all ignore that failure).
        """
        meta = owner["metadata"]
        ns = meta["namespace"]
        if generate_name is None:
            generate_name = generate_name_prefix(meta["name"])
        ref = new_controller_ref(owner, owner["apiVersion"], owner["kind"])
        pod = pod_from_template(template, ns, generate_name, ref)
        try:
            created = await self.client.create("pods", pod, ns)
        except ApiError as e:
            if namespace_terminating(e):
                return None
            self.record("Create", owner, generate_name, e)
            raise
        self.record("Create", owner, created["metadata"]["name"])
        return created

    async def delete_pod(
        self,
        owner: Obj,
        pod: Obj,
        *,
        grace_period_seconds: int | None = None,
        gone: Collection[int] = GONE,
    ) -> bool:
        """Delete ``pod`` for ``owner`` (``DeletePod``), only the pod of its uid (a
        precondition): True when deleted, with a ``SuccessfulDelete`` event.

        An error whose code is in ``gone`` (by default :data:`GONE`) means the pod went
        already: False, and no event. Any other is a ``FailedDelete`` event and raised.
        """
        meta = pod["metadata"]
        try:
            await self.client.delete(
                "pods",
                meta["name"],
                meta["namespace"],
                grace_period_seconds=grace_period_seconds,
                preconditions={"uid": meta["uid"]},
            )
        except ApiError as e:
            if e.code in gone:
                return False
            self.record("Delete", owner, meta["name"], e)
            raise
        self.record("Delete", owner, meta["name"])
        return True

    # -- many pods under expectations ----------------------------------------------------

    async def create_pods(
        self,
        expectations: Expectations,
        key: str,
        count: int,
        create: Callable[[], Awaitable[Any]],
    ) -> tuple[int, BaseException | None]:
        """Expect ``count`` creations for ``key``, then call ``create`` (one pod, e.g.
        :meth:`create_pod`) that often in slow-start batches (``slowStartBatch``).

        The creations that failed or were never tried (the batches stop at the first
        failure) are taken off the expectations: the cache will never show them.
        Returns (successes, the first error or None).
        """
        expectations.expect_creations(key, count)
        successes, error = await slow_start_batch(count, SLOW_START_INITIAL_BATCH, create)
        if skipped := count - successes:
            expectations.lower_creations(key, skipped)
        return successes, error

    async def delete_pods(
        self,
        owner: Obj,
        pods: Sequence[Obj],
        expectations: Expectations | None = None,
        key: str = "",
        *,
        delete: Callable[[Obj], Awaitable[bool]] | None = None,
    ) -> list[BaseException | None]:
        """Delete ``pods`` at once, each with ``delete`` (by default :meth:`delete_pod`;
        False: it was gone already); the outcome of each: None, or its exception.

        With ``expectations``, their deletions are expected for ``key`` first, and a pod
        not deleted by us (gone already, or an ApiError) is observed at once: the cache
        will never show its deletion by us.
        """
        if expectations is not None:
            expectations.expect_deletions(key, [key_of(p) for p in pods])

        def observe(pod: Obj) -> None:
            if expectations is not None:
                expectations.deletion_observed(key, key_of(pod))

        async def delete_one(pod: Obj) -> None:
            try:
                deleted = await (self.delete_pod(owner, pod) if delete is None else delete(pod))
            except ApiError:
                observe(pod)
                raise
            if not deleted:
                observe(pod)

        results = await asyncio.gather(*(delete_one(p) for p in pods), return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results]
