"""The disruption controller against the in-memory API (informers real): expected,
desired and current counts for each kind of budget, disruptedPods expiring, the
fail-safe, and stale DisruptionTarget conditions reset."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest

from skiff.api.timestamps import rfc3339
from skiff.client.rest import Obj
from skiff.controller.fake import FakeApi, running
from skiff.controllers.disruption import STALE_POD_DISRUPTION_TIMEOUT, DisruptionController
from skiff.controllers.manager import CONTROLLERS, resolve_controllers

T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


class Clock:
    t = T0

    def __call__(self) -> float:
        return self.t


def owner_ref(kind: str, obj: Obj, api_version: str = "apps/v1") -> Obj:
    meta = obj["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta["name"], "uid": meta["uid"],
            "controller": True}  # fmt: skip


def pod(name: str, ready: bool = True, owner: Obj | None = None, **meta: Any) -> Obj:
    cond = {"type": "Ready", "status": "True" if ready else "False"}
    m: Obj = {"name": name, "labels": {"app": "web"}, **meta}
    if owner is not None:
        m["ownerReferences"] = [owner]
    return {"metadata": m, "spec": {"containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running", "conditions": [cond]}}  # fmt: skip


def budget(**spec: Any) -> Obj:
    return {"metadata": {"name": "pdb"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}}  # fmt: skip


def env() -> contextlib.AbstractAsyncContextManager[tuple[FakeApi, DisruptionController]]:
    return running(DisruptionController, FakeApi(clock=Clock()))


async def sync(fake: FakeApi, c: DisruptionController) -> Obj:
    await fake.settle(*c.informers)
    await c.reconcile("ns/pdb")
    await fake.settle(*c.informers)
    return (await fake.get("poddisruptionbudgets", "pdb", "ns"))["status"]


def counts(status: Obj) -> tuple[int, int, int, int]:
    return (status["expectedPods"], status["desiredHealthy"], status["currentHealthy"],
            status["disruptionsAllowed"])  # fmt: skip


def test_registered_as_kubernetes_names_it() -> None:
    assert resolve_controllers(["disruption"]) == ["disruption-controller"]
    assert CONTROLLERS["disruption-controller"].enabled_by_default


async def test_min_available_count_counts_the_pods_there_are() -> None:
    async with env() as (fake, c):
        await fake.create("poddisruptionbudgets", budget(minAvailable=2), "ns")
        for i in range(3):
            await fake.create("pods", pod(f"p{i}", ready=i < 2 or False), "ns")
        await fake.create("pods", {**pod("other"), "metadata": {"name": "other"}}, "ns")
        status = await sync(fake, c)
        assert counts(status) == (3, 2, 2, 0)
        [cond] = status["conditions"]
        assert (cond["type"], cond["status"], cond["reason"], cond["message"]) == (
            "DisruptionAllowed", "False", "InsufficientPods", "")  # fmt: skip
        assert status["observedGeneration"] == 1
        await fake.patch("pods", "p2", {"status": {"conditions": [
            {"type": "Ready", "status": "True"}]}}, "ns")  # fmt: skip
        status = await sync(fake, c)
        assert counts(status) == (3, 2, 3, 1)
        assert status["conditions"][0]["reason"] == "SufficientPods"


async def test_percentages_and_max_unavailable_use_the_controllers_scale() -> None:
    async with env() as (fake, c):
        dep = await fake.create("deployments", {"metadata": {"name": "d"},
                                                "spec": {"replicas": 4}}, "ns")  # fmt: skip
        rs = await fake.create("replicasets", {"metadata": {"name": "d-1", "ownerReferences": [
            owner_ref("Deployment", dep)]}, "spec": {"replicas": 3}}, "ns")  # fmt: skip
        sts = await fake.create("statefulsets", {"metadata": {"name": "s"},
                                                 "spec": {"replicas": 2}}, "ns")  # fmt: skip
        for i in range(3):
            await fake.create("pods", pod(f"d{i}", owner=owner_ref("ReplicaSet", rs)), "ns")
        await fake.create("pods", pod("s0", owner=owner_ref("StatefulSet", sts)), "ns")
        await fake.create("poddisruptionbudgets", budget(maxUnavailable="30%"), "ns")
        # 4 (the Deployment's, not its ReplicaSet's 3) + 2; 30% of 6 rounds up to 2.
        assert counts(await sync(fake, c)) == (6, 4, 4, 0)
        percent = {"spec": {"maxUnavailable": None, "minAvailable": "50%"}}
        await fake.patch("poddisruptionbudgets", "pdb", percent, "ns")
        status = await sync(fake, c)
        assert counts(status) == (6, 3, 4, 1)
        assert status["observedGeneration"] == 2


async def test_unmanaged_pods_with_a_percentage_are_left_out_and_reported() -> None:
    async with env() as (fake, c):
        await fake.create("pods", pod("bare"), "ns")
        await fake.create("poddisruptionbudgets", budget(maxUnavailable=1), "ns")
        assert counts(await sync(fake, c)) == (0, 0, 1, 0)  # nothing expected: no disruption
        await c.events.flush()
        reasons = [e["reason"] for e in fake.list_objects("events", "ns")]
        assert "UnmanagedPods" in reasons


async def test_a_pod_whose_controller_is_unknown_fails_the_budget_safe() -> None:
    async with env() as (fake, c):
        ghost = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gone", "uid": "u-1",
                 "controller": True}  # fmt: skip
        await fake.create("pods", pod("p", owner=ghost), "ns")
        await fake.create("poddisruptionbudgets", budget(maxUnavailable=1), "ns")
        status = await sync(fake, c)
        assert status["disruptionsAllowed"] == 0
        [cond] = status["conditions"]
        assert (cond["status"], cond["reason"], cond["message"]) == (
            "False", "SyncFailed", 'found no controllers for pod "p"')  # fmt: skip


async def test_a_controller_without_scale_fails_the_budget_safe() -> None:
    async with env() as (fake, c):
        job = {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u-2",
               "controller": True}  # fmt: skip
        await fake.create("pods", pod("p", owner=job), "ns")
        await fake.create("poddisruptionbudgets", budget(maxUnavailable="50%"), "ns")
        [cond] = (await sync(fake, c))["conditions"]
        assert cond["message"] == "jobs.batch does not implement the scale subresource"


async def test_evicted_pods_stop_counting_until_the_deletion_timeout() -> None:
    async with env() as (fake, c):
        clock = fake.clock
        for i in range(3):
            await fake.create("pods", pod(f"p{i}"), "ns")
        await fake.create("poddisruptionbudgets", budget(minAvailable=1), "ns")
        assert counts(await sync(fake, c)) == (3, 1, 3, 2)
        cur = await fake.get("poddisruptionbudgets", "pdb", "ns")
        cur["status"]["disruptedPods"] = {"p0": rfc3339(clock.t)}
        await fake.update("poddisruptionbudgets", cur, "ns", subresource="status")
        await fake.settle(*c.informers)
        assert await c.reconcile("ns/pdb") == pytest.approx(120.0)
        status = (await fake.get("poddisruptionbudgets", "pdb", "ns"))["status"]
        assert counts(status) == (3, 1, 2, 1) and status["disruptedPods"] == {
            "p0": rfc3339(T0)}  # fmt: skip
        clock.t += 121  # the delete never happened: it counts again
        status = await sync(fake, c)
        assert counts(status) == (3, 1, 3, 2) and "disruptedPods" not in status


async def test_nothing_is_written_when_the_status_is_current() -> None:
    async with env() as (fake, c):
        await fake.create("pods", pod("p"), "ns")
        await fake.create("poddisruptionbudgets", budget(minAvailable=0), "ns")
        await sync(fake, c)
        before = len(fake.calls)
        await sync(fake, c)
        assert len(fake.calls) == before


async def test_a_stale_disruption_target_condition_is_reset() -> None:
    async with env() as (fake, c):
        clock = fake.clock
        p = pod("p")
        p["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True",
                                          "reason": "EvictionByEvictionAPI",
                                          "lastTransitionTime": rfc3339(T0)})  # fmt: skip
        await fake.create("pods", p, "ns")
        await fake.settle(*c.informers)
        assert await c.reconcile("stale-pod:ns/p") == pytest.approx(STALE_POD_DISRUPTION_TIMEOUT)
        clock.t += STALE_POD_DISRUPTION_TIMEOUT + 1
        assert await c.reconcile("stale-pod:ns/p") is None
        conds = (await fake.get("pods", "p", "ns"))["status"]["conditions"]
        assert [(x["type"], x["status"], x.get("reason")) for x in conds] == [
            ("Ready", "True", None), ("DisruptionTarget", "False", None)]  # fmt: skip


async def test_a_pod_under_two_budgets_is_warned_about() -> None:
    async with env() as (fake, c):
        await fake.create("poddisruptionbudgets", budget(minAvailable=1), "ns")
        second = budget(minAvailable=1)
        second["metadata"]["name"] = "pdb-2"
        await fake.create("poddisruptionbudgets", second, "ns")
        await fake.settle(*c.informers)
        await fake.create("pods", pod("p"), "ns")
        await fake.settle(*c.informers)
        await c.events.flush()
        [event] = [e for e in fake.list_objects("events", "ns")
                   if e["reason"] == "MultiplePodDisruptionBudgets"]  # fmt: skip
        assert "matches multiple PodDisruptionBudgets.  Chose" in event["message"]
