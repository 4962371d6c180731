"""API Priority and Fairness objects: kube's validation and defaults, the bootstrap
configuration every apiserver creates and keeps, each FlowSchema's Dangling status, the
classification of requests, and ``kubectl get``'s columns."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from memstore import MemoryStore, running

from skiff.api.errors import ApiError
from skiff.apiserver.authentication.user import UserInfo
from skiff.apiserver.authorization.attributes import RequestAttributes
from skiff.apiserver.flowcontrol import bootstrap
from skiff.apiserver.flowcontrol.classifier import (
    FLOW_SCHEMAS,
    PRIORITY_LEVELS,
    Classification,
    Classifier,
)
from skiff.apiserver.flowcontrol.config import FlowControlConfig, revise
from skiff.apiserver.flowcontrol.dispatch import Dispatcher, Rejected, deal, nominal_limits
from skiff.apiserver.printers import table_for
from skiff.apiserver.registry.flowcontrol import flowschema, prioritylevelconfiguration
from skiff.apiserver.store import DeleteOptions
from skiff.apiserver.store import WriteOptions as Opts


def fs_causes(spec: dict[str, Any], name: str = "mine") -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in flowschema.validate_spec(name, spec)]


def pl_causes(spec: dict[str, Any], name: str = "mine") -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in prioritylevelconfiguration.validate_spec(name, spec)]


RULE = {"subjects": [{"kind": "Group", "group": {"name": "dev"}}],
        "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"],
                           "namespaces": ["*"]}]}  # fmt: skip


def test_the_bootstrap_objects_are_valid() -> None:
    for name, obj in {
        **bootstrap.MANDATORY_FLOW_SCHEMAS,
        **bootstrap.SUGGESTED_FLOW_SCHEMAS,
    }.items():
        assert fs_causes(obj["spec"], name) == [], name
    for name, obj in {**bootstrap.MANDATORY_PRIORITY_LEVELS,
                      **bootstrap.SUGGESTED_PRIORITY_LEVELS}.items():  # fmt: skip
        assert pl_causes(obj["spec"], name) == [], name


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ({"matchingPrecedence": 1, "priorityLevelConfiguration": {"name": "x"}},
         [("spec.matchingPrecedence",
           "Invalid value: 1: only the schema named 'exempt' may have matchingPrecedence 1")]),
        ({"matchingPrecedence": 10001, "priorityLevelConfiguration": {}},
         [("spec.matchingPrecedence", "Invalid value: 10001: must not be greater than 10000"),
          ("spec.priorityLevelConfiguration.name",
           "Required value: must reference a priority level")]),
        ({"matchingPrecedence": 5, "priorityLevelConfiguration": {"name": "x"},
          "distinguisherMethod": {"type": "ByFoo"}},
         [("spec.distinguisherMethod.type",
           'Unsupported value: flowcontrol.FlowDistinguisherMethod{Type:"ByFoo"}: supported '
           'values: "ByNamespace", "ByUser"')]),
        ({"matchingPrecedence": 5, "priorityLevelConfiguration": {"name": "x"},
          "rules": [{"subjects": [{"kind": "User", "user": {"name": "a"},
                                   "group": {"name": "g"}}],
                     "resourceRules": [{"verbs": ["*", "get"], "apiGroups": [],
                                        "resources": ["pods"]}],
                     "nonResourceRules": [{"verbs": ["fly"], "nonResourceURLs": ["/a/*/b"]}]}]},
         [("spec.rules[0].subjects[0].group",
           "Forbidden: group is forbidden when subject kind is not 'Group'"),
          ("spec.rules[0].resourceRules[0].verbs",
           "Invalid value: []string{\"*\", \"get\"}: if '*' is present, must not specify other "
           "verbs"),
          ("spec.rules[0].resourceRules[0].apiGroups",
           "Required value: resource rules must supply at least one api group"),
          ("spec.rules[0].resourceRules[0].namespaces",
           "Required value: resource rules that are not cluster scoped must supply at least one "
           "namespace"),
          ("spec.rules[0].nonResourceRules[0].verbs",
           'Unsupported value: []string{"fly"}: supported values: "create", "delete", '
           '"deletecollection", "get", "list", "patch", "proxy", "update", "watch"'),
          ("spec.rules[0].nonResourceRules[0].nonResourceURLs[0]",
           'Invalid value: "/a/*/b": wildcard can only do suffix matching')]),
        ({"matchingPrecedence": 5, "priorityLevelConfiguration": {"name": "x"},
          "rules": [{"subjects": [{"kind": "ServiceAccount",
                                   "serviceAccount": {"name": "a"}}]}]},
         [("spec.rules[0].subjects[0].serviceAccount.namespace",
           "Required value: must specify namespace for service account"),
          ("spec.rules[0]", "Required value: at least one of resourceRules and nonResourceRules "
                            "has to be non-empty")]),
    ],
)  # fmt: skip
def test_flow_schema_rules_in_kubes_words(spec: dict[str, Any], want: list[Any]) -> None:
    assert fs_causes(spec) == want


@pytest.mark.parametrize(
    ("name", "spec", "want"),
    [
        ("mine", {"type": "Exempt"},
         [("spec.type", "Invalid value: \"Exempt\": type must be 'Exempt' if and only if name "
                        "is 'exempt'")]),
        ("mine", {"type": "Limited"},
         [("spec.limited", "Required value: must not be empty when type is Limited")]),
        ("mine", {"type": "Limited", "limited": {"nominalConcurrencyShares": -1,
                                                 "lendablePercent": 101,
                                                 "limitResponse": {"type": "Queue"}}},
         [("spec.limited.nominalConcurrencyShares",
           "Invalid value: -1: must be a non-negative integer"),
          ("spec.limited.limitResponse.queuing",
           "Required value: must not be empty if limited.limitResponse.type is Limited"),
          ("spec.limited.lendablePercent",
           "Invalid value: 101: must be between 0 and 100, inclusive")]),
        ("mine", {"type": "Limited", "limited": {"limitResponse": {
            "type": "Queue", "queuing": {"queues": 128, "handSize": 10, "queueLengthLimit": 0}}}},
         [("spec.limited.limitResponse.queuing.queueLengthLimit", "Invalid value: 0: must be "
                                                                  "positive"),
          ("spec.limited.limitResponse.queuing.handSize",
           "Invalid value: 10: required entropy bits of deckSize 128 and handSize 10 should not "
           "be greater than 60")]),
        ("mine", {"type": "Limited", "limited": {"limitResponse": {
            "type": "Reject", "queuing": {}}}},
         [("spec.limited.limitResponse.queuing",
           "Forbidden: must be nil if limited.limitResponse.type is not Limited")]),
    ],
)  # fmt: skip
def test_priority_level_rules_in_kubes_words(
    name: str, spec: dict[str, Any], want: list[Any]
) -> None:
    assert pl_causes(spec, name) == want


def test_revise_follows_the_auto_update_annotation() -> None:
    wanted = bootstrap.SUGGESTED_FLOW_SCHEMAS["global-default"]
    current = copy.deepcopy(wanted)
    current["metadata"]["generation"] = 2
    current["spec"]["matchingPrecedence"] = 9800
    assert revise(current, wanted, False)["spec"]["matchingPrecedence"] == 9900
    current["metadata"]["annotations"] = {bootstrap.AUTO_UPDATE: "false"}
    assert revise(current, wanted, False) is None  # the admin's edit is kept
    current["metadata"]["annotations"] = {}
    kept = revise(current, wanted, False)
    assert kept is not None and kept["spec"]["matchingPrecedence"] == 9800
    assert kept["metadata"]["annotations"] == {bootstrap.AUTO_UPDATE: "false"}
    mandatory = bootstrap.MANDATORY_PRIORITY_LEVELS["exempt"]
    tuned = copy.deepcopy(mandatory)
    tuned["spec"]["exempt"]["nominalConcurrencyShares"] = 10
    assert revise(tuned, mandatory, True) is None  # exempt's own numbers are the admin's


@pytest.fixture
async def env() -> AsyncIterator[MemoryStore]:
    async with running(MemoryStore, {}) as e:
        yield e


async def test_the_bootstrap_configuration_is_created_kept_and_marked(env: MemoryStore) -> None:
    config = FlowControlConfig(env.store, env.cache)
    await config.ensure()
    await env.settle()
    names = {o["metadata"]["name"] for o in env.cache.list(FLOW_SCHEMAS)}
    assert names == set(bootstrap.MANDATORY_FLOW_SCHEMAS) | set(bootstrap.SUGGESTED_FLOW_SCHEMAS)
    assert len(env.cache.list(PRIORITY_LEVELS)) == 8
    exempt = env.cache.get(FLOW_SCHEMAS, None, "exempt")
    assert exempt["metadata"]["managedFields"][0]["manager"] == (
        "api-priority-and-fairness-config-producer-v1"
    )
    # A mandatory object's spec is fixed; a user's object marked auto-update is removed.
    bad = copy.deepcopy(exempt)
    bad["spec"]["matchingPrecedence"] = 2
    with pytest.raises(ApiError) as e:
        await env.store.update(FLOW_SCHEMAS, None, "exempt", bad, Opts())
    assert "spec: Invalid value: " in e.value.message
    assert "spec of 'exempt' must equal the fixed value" in e.value.message
    spec = {"priorityLevelConfiguration": {"name": "nowhere"}, "rules": [RULE]}
    mine = {"metadata": {"name": "mine", "annotations": {bootstrap.AUTO_UPDATE: "true"}},
            "spec": spec}  # fmt: skip
    created = await env.store.create(FLOW_SCHEMAS, None, mine, Opts())
    assert created["spec"]["matchingPrecedence"] == 1000
    await env.settle()
    await config.mark_dangling()
    await env.settle()
    dangling = env.cache.get(FLOW_SCHEMAS, None, "mine")["status"]["conditions"][0]
    assert (dangling["type"], dangling["status"], dangling["reason"]) == (
        "Dangling", "True", "NotFound")  # fmt: skip
    assert dangling["message"] == (
        'This FlowSchema references the PriorityLevelConfiguration object named "nowhere" '
        "but there is no such object"
    )
    found = env.cache.get(FLOW_SCHEMAS, None, "exempt")["status"]["conditions"][0]
    assert (found["status"], found["reason"]) == ("False", "Found")
    rows = table_for(FLOW_SCHEMAS, env.cache.list(FLOW_SCHEMAS))["rows"]
    assert [r["cells"][0] for r in rows][:3] == ["exempt", "probes", "system-leader-election"]
    assert rows[0]["cells"][1:4] == ["exempt", 1, "<none>"] and rows[0]["cells"][5] == "False"
    await config.ensure()
    await env.settle()
    assert env.cache.get(FLOW_SCHEMAS, None, "mine") is None
    # A deleted suggested object comes back.
    await env.store.delete(PRIORITY_LEVELS, None, "workload-low", DeleteOptions())
    await env.settle()
    await config.ensure()
    await env.settle()
    level = env.cache.get(PRIORITY_LEVELS, None, "workload-low")
    assert level is not None
    cells = table_for(PRIORITY_LEVELS, [level])["rows"][0]["cells"]
    assert cells[:6] == ["workload-low", "Limited", 100, 128, 6, 50]


def user(name: str, *groups: str) -> UserInfo:
    return UserInfo(name, groups=(*groups, "system:authenticated"))


async def test_requests_are_classified_as_kube_classifies_them(env: MemoryStore) -> None:
    await FlowControlConfig(env.store, env.cache).ensure()
    await env.settle()
    classifier = Classifier(env.cache)

    def classify(who: UserInfo, **kw: Any) -> str:
        resource = "resource" in kw
        attrs = RequestAttributes(who, kw.pop("verb", "get"), resource, **kw)
        found = classifier.classify(attrs)
        assert found is not None
        assert found.flow_schema_uid and found.priority_level_uid
        return f"{found.flow_schema}/{found.priority_level}"

    admin = user("kubernetes-admin", "system:masters")
    assert classify(admin, resource="pods", namespace="x") == "exempt/exempt"
    anyone = UserInfo("system:anonymous", groups=("system:unauthenticated",))
    assert classify(anyone, path="/healthz") == "probes/exempt"
    assert classify(anyone, path="/api") == "global-default/global-default"
    sa = user("system:serviceaccount:kube-system:lease-holder", "system:serviceaccounts")
    assert classify(sa, resource="leases", api_group="coordination.k8s.io",
                    namespace="kube-system", verb="update") == (
        "system-leader-election/leader-election")  # fmt: skip
    assert classify(sa, resource="pods", namespace="default") == (
        "kube-system-service-accounts/workload-high"
    )
    node = user("system:node:n1", "system:nodes")
    assert classify(node, resource="nodes", subresource="status", verb="patch") == (
        "system-node-high/node-high"
    )
    assert classify(node, resource="pods", verb="list") == "system-nodes/system"
    other = user("system:serviceaccount:apps:builder", "system:serviceaccounts")
    assert classify(other, resource="pods", namespace="apps") == "service-accounts/workload-low"


# -- the limits --------------------------------------------------------------------------


def test_levels_share_the_servers_seats_by_their_shares() -> None:
    levels = [*bootstrap.MANDATORY_PRIORITY_LEVELS.values(),
              *bootstrap.SUGGESTED_PRIORITY_LEVELS.values()]  # fmt: skip
    limits = nominal_limits(levels, 600)
    # 245 shares in all: catch-all 5, workload-low 100 …; exempt is not limited.
    assert limits["exempt"] is None
    assert limits["catch-all"] == 13 and limits["workload-low"] == 245
    assert limits["leader-election"] == 25


def test_shuffle_sharding_deals_a_fixed_hand_of_distinct_queues() -> None:
    hand = deal("global-default/alice", 128, 6)
    assert hand == deal("global-default/alice", 128, 6)
    assert len(set(hand)) == 6 and all(0 <= q < 128 for q in hand)
    assert deal("global-default/bob", 128, 6) != hand


def tiny(name: str, shares: int, queuing: dict[str, int] | None) -> dict[str, Any]:
    response: dict[str, Any] = {"type": "Reject"}
    if queuing is not None:
        response = {"type": "Queue", "queuing": queuing}
    return {"metadata": {"name": name}, "spec": {"type": "Limited", "limited": {
        "nominalConcurrencyShares": shares, "limitResponse": response}}}  # fmt: skip


def flows_in_different_queues(queues: int) -> tuple[str, str]:
    first = deal("fs/a", queues, 1)
    other = next(f"b{i}" for i in range(100) if deal(f"fs/b{i}", queues, 1) != first)
    return "a", other


async def test_a_full_level_queues_fairly_refuses_and_times_out(env: MemoryStore) -> None:
    queuing = {"queues": 2, "handSize": 1, "queueLengthLimit": 2}
    await env.store.create(PRIORITY_LEVELS, None, tiny("small", 1, queuing), Opts())
    await env.settle()
    dispatcher = Dispatcher(env.cache, server_limit=1, queue_wait=0.5)
    a, b = flows_in_different_queues(2)
    order: list[str] = []

    async def request(flow: str, hold: asyncio.Event | None = None) -> str:
        c = Classification("fs", "small", "uid", "uid", flow)
        try:
            async with dispatcher.seat(c):
                order.append(flow)
                if hold is not None:
                    await hold.wait()
            return "served"
        except Rejected as e:
            return e.reason

    hold = asyncio.Event()
    first = asyncio.create_task(request(a, hold))
    await asyncio.sleep(0.01)
    waiting = [asyncio.create_task(request(f)) for f in (a, a, b)]
    await asyncio.sleep(0.01)
    assert await request(a) == "queue-full"  # its queue holds two already
    hold.set()
    assert await first == "served"
    assert [await w for w in waiting] == ["served"] * 3
    # The quiet flow is served between the busy one's requests, not after them all.
    assert order == [a, a, b, a]
    hold = asyncio.Event()
    blocker = asyncio.create_task(request(a, hold))
    await asyncio.sleep(0.01)
    assert await request(b) == "time-out"
    hold.set()
    await blocker


async def test_a_rejecting_level_without_shares_refuses_everything(env: MemoryStore) -> None:
    await env.store.create(PRIORITY_LEVELS, None, tiny("jail", 0, None), Opts())
    await env.settle()
    dispatcher = Dispatcher(env.cache)
    with pytest.raises(Rejected) as e:
        async with dispatcher.seat(Classification("fs", "jail", "", "")):
            pass
    assert e.value.reason == "concurrency-limit"
    async with dispatcher.seat(Classification("fs", "not-a-level", "", "")):
        pass  # a level that is not an object yet limits nothing
