"""PodDisruptionBudgets (validation, status, printer) and the eviction subresource that
honours them, on a store over the in-memory backend, with Kubernetes' messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from memstore import MemoryStore, running

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.apiserver.printers import table_for
from skiff.apiserver.registry import strategy_for
from skiff.apiserver.store import DeleteOptions
from skiff.apiserver.store import WriteOptions as Opts

PDBS = REGISTRY.by_path("policy", "v1", "poddisruptionbudgets")
PODS = REGISTRY.core("pods")
assert PDBS is not None
STRATEGY = strategy_for(PDBS)


def causes(spec: dict[str, Any]) -> list[tuple[str, str]]:
    obj = {"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}
    return [(c.field, c.message) for c in STRATEGY.validate(obj)]


def test_a_valid_budget_passes() -> None:
    assert causes({"minAvailable": "50%", "selector": {"matchLabels": {"a": "b"}}}) == []
    assert causes({"maxUnavailable": 0, "unhealthyPodEvictionPolicy": "AlwaysAllow"}) == []


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        (
            {"minAvailable": 1, "maxUnavailable": 1},
            ("spec", "minAvailable and maxUnavailable cannot be both set"),
        ),
        (
            {"minAvailable": -1},
            ("spec.minAvailable", "Invalid value: -1: must be greater than or equal to 0"),
        ),
        (
            {"maxUnavailable": "ten"},
            (
                "spec.maxUnavailable",
                'Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"ten"}: a valid '
                "percent string must be a numeric string followed by an ending '%' (e.g. '1%',"
                "  or '93%', regex used for validation is '[0-9]+%')",
            ),
        ),
        (
            {"minAvailable": "101%"},
            (
                "spec.minAvailable",
                'Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"101%"}: must not '
                "be greater than 100%",
            ),
        ),
        (
            {"unhealthyPodEvictionPolicy": "Never"},
            (
                "spec.unhealthyPodEvictionPolicy",
                'Unsupported value: "Never": supported values: "AlwaysAllow", "IfHealthyBudget"',
            ),
        ),
    ],
)
def test_bad_specs_get_kubernetes_messages(spec: dict[str, Any], want: tuple[str, str]) -> None:
    found = causes(spec)
    assert any(f == want[0] and want[1] in m for f, m in found), found


def test_negative_status_counts_are_refused() -> None:
    old = {"metadata": {"name": "p"}, "spec": {}}
    new = {**old, "status": {"disruptionsAllowed": -1}}
    [cause] = STRATEGY.validate_update(new, old)
    assert cause.field == "status.disruptionsAllowed"
    assert cause.message == "Invalid value: -1: must be greater than or equal to 0"


def test_the_printer_shows_what_is_unset_as_na() -> None:
    obj = {"metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": {"maxUnavailable": "25%"}, "status": {"disruptionsAllowed": 2}}  # fmt: skip
    table = table_for(PDBS, [obj], now=datetime(2026, 1, 1, 0, 5, tzinfo=UTC))
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"]  # fmt: skip
    assert table["rows"][0]["cells"] == ["p", "N/A", "25%", 2, "5m"]


class Env(MemoryStore):
    async def pod(self, name: str, *, ready: bool = True, phase: str = "Running",
                  labels: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        """A pod on a node (deleted gracefully) with the given status."""
        obj = {"metadata": {"name": name, "labels": labels or {"app": "web"}},
               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}}  # fmt: skip
        await self.store.create(PODS, "ns", obj, Opts())
        ready_cond = {"type": "Ready", "status": "True" if ready else "False"}
        status = {"phase": phase, "conditions": [ready_cond]}
        return await self.store.update_with(
            PODS, "ns", name, lambda p: {**p, "status": status}, Opts(), subresource="status"
        )

    async def budget(self, name: str = "pdb", *, status: dict[str, Any] | None = None,
                     **spec: Any) -> dict[str, Any]:  # fmt: skip
        spec.setdefault("selector", {"matchLabels": {"app": "web"}})
        obj = await self.store.create(PDBS, "ns", {"metadata": {"name": name}, "spec": spec},
                                      Opts())  # fmt: skip
        if status is None:
            return obj
        full = {"observedGeneration": 1, "currentHealthy": 0, "desiredHealthy": 0,
                "expectedPods": 0, **status}  # fmt: skip
        return await self.store.update_with(
            PDBS, "ns", name, lambda p: {**p, "status": full}, Opts(), subresource="status"
        )

    async def evict(self, name: str, **body: Any) -> dict[str, Any]:
        await self.settle()
        eviction = {"apiVersion": "policy/v1", "kind": "Eviction",
                    "metadata": {"name": name, "namespace": "ns"}, **body}  # fmt: skip
        return await self.store.create_subresource(PODS, "ns", name, "eviction", eviction, Opts())


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with running(Env, {"ns": {}}) as e:
        yield e


async def test_a_new_budget_starts_with_a_zero_status_and_spec_changes_bump_its_generation(
    env: Env,
) -> None:
    obj = await env.budget(minAvailable=1)
    assert obj["status"] == {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                             "expectedPods": 0}  # fmt: skip
    obj["spec"]["minAvailable"] = 2
    updated = await env.store.update_object(PDBS, "ns", "pdb", obj, Opts())
    assert updated["metadata"]["generation"] == 2


async def test_a_pod_no_budget_covers_is_evicted(env: Env) -> None:
    await env.pod("p")
    result = await env.evict("p", deleteOptions={"gracePeriodSeconds": 5})
    assert (result["status"], result["code"]) == ("Success", 201)
    pod = await env.store.get(PODS, "ns", "p")
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 5
    [cond] = [c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget"]
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "True", "EvictionByEvictionAPI", "Eviction API: evicting")  # fmt: skip


async def test_an_eviction_spends_a_disruption_and_the_next_is_refused(env: Env) -> None:
    await env.pod("a")
    await env.pod("b")
    await env.budget(minAvailable=1, status={"disruptionsAllowed": 1, "currentHealthy": 2,
                                             "desiredHealthy": 1, "expectedPods": 2})  # fmt: skip
    await env.evict("a")
    status = (await env.store.get(PDBS, "ns", "pdb"))["status"]
    assert status["disruptionsAllowed"] == 0 and list(status["disruptedPods"]) == ["a"]
    assert status["conditions"][0]["reason"] == "InsufficientPods"
    with pytest.raises(ApiError) as e:
        await env.evict("b")
    s = e.value.status()
    assert (s["code"], s["reason"]) == (429, "TooManyRequests")
    assert s["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert s["details"]["causes"] == [{"reason": "DisruptionBudget", "message":
        "The disruption budget pdb needs 1 healthy pods and has 2 currently"}]  # fmt: skip
    assert "deletionTimestamp" not in (await env.store.get(PODS, "ns", "b"))["metadata"]


async def test_a_budget_not_yet_observed_asks_to_retry(env: Env) -> None:
    await env.pod("a")
    await env.budget(minAvailable=1)  # generation 1, no observedGeneration yet
    with pytest.raises(ApiError) as e:
        await env.evict("a")
    assert e.value.code == 429 and e.value.retry_after == 10
    assert (
        e.value.causes[0].message
        == "The disruption budget pdb is still being processed by the server."
    )


async def test_two_budgets_for_one_pod_are_refused(env: Env) -> None:
    await env.pod("a")
    await env.budget("one", status={"disruptionsAllowed": 1})
    await env.budget("two", status={"disruptionsAllowed": 1})
    result = await env.evict("a")
    assert (result["status"], result["code"]) == ("Failure", 500)
    assert "more than one PodDisruptionBudget" in result["message"]


async def test_unready_pods_go_free_while_the_budget_is_met(env: Env) -> None:
    await env.pod("sick", ready=False)
    await env.budget(minAvailable=1, status={"disruptionsAllowed": 0, "currentHealthy": 1,
                                             "desiredHealthy": 1})  # fmt: skip
    await env.evict("sick")
    assert (await env.store.get(PODS, "ns", "sick"))["metadata"]["deletionTimestamp"]
    assert "disruptedPods" not in (await env.store.get(PDBS, "ns", "pdb"))["status"]


async def test_always_allow_lets_unready_pods_go_even_when_the_budget_is_not_met(env: Env) -> None:
    await env.pod("sick", ready=False)
    await env.budget("strict", minAvailable=5, status={"currentHealthy": 0, "desiredHealthy": 5})
    with pytest.raises(ApiError) as e:
        await env.evict("sick")
    assert e.value.code == 429
    await env.store.delete(PDBS, "ns", "strict", DeleteOptions())
    await env.budget(minAvailable=5, unhealthyPodEvictionPolicy="AlwaysAllow",
                     status={"currentHealthy": 0, "desiredHealthy": 5})  # fmt: skip
    await env.evict("sick")
    assert (await env.store.get(PODS, "ns", "sick"))["metadata"]["deletionTimestamp"]


async def test_pending_pods_ignore_budgets(env: Env) -> None:
    await env.pod("new", phase="Pending")
    await env.budget(minAvailable=1, status={"disruptionsAllowed": 0})
    await env.evict("new")
    assert (await env.store.get(PODS, "ns", "new"))["metadata"]["deletionTimestamp"]


async def test_a_dry_run_changes_nothing(env: Env) -> None:
    await env.pod("a")
    await env.budget(minAvailable=0, status={"disruptionsAllowed": 1})
    await env.evict("a", deleteOptions={"dryRun": ["All"]})
    assert "deletionTimestamp" not in (await env.store.get(PODS, "ns", "a"))["metadata"]
    assert (await env.store.get(PDBS, "ns", "pdb"))["status"]["disruptionsAllowed"] == 1


async def test_the_name_must_match(env: Env) -> None:
    await env.pod("a")
    with pytest.raises(ApiError) as e:
        await env.store.create_subresource(
            PODS, "ns", "a", "eviction", {"metadata": {"name": "b"}}, Opts()
        )
    assert (e.value.code, e.value.message) == (
        400, "name in URL does not match name in Eviction object")  # fmt: skip
