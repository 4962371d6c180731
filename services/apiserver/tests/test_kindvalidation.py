"""Validation of RBAC objects, EndpointSlices, Leases, Events (both groups) and
ControllerRevisions as kube-apiserver 1.32 does it: 422s in kube's words and paths,
updates refused where kube refuses them, valid objects accepted."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from memstore import MemoryStore, running

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.apiserver.store import WriteOptions as Opts

RBAC = "rbac.authorization.k8s.io"
NOW = "2026-12-07T10:00:00.000000Z"


@pytest.fixture
async def env() -> AsyncIterator[MemoryStore]:
    async with running(MemoryStore, {"default": {}}) as e:
        yield e


def slice_(**body: Any) -> dict[str, Any]:
    return {"metadata": {"name": "s"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"]}], **body}  # fmt: skip


def binding(kind: str = "RoleBinding", **body: Any) -> dict[str, Any]:
    ref = {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"}
    return {"metadata": {"name": "b"}, "roleRef": ref, **body}


def new_event(**body: Any) -> dict[str, Any]:
    return {"metadata": {"name": "e"}, "eventTime": NOW, "reportingController": "skiff.io/x",
            "reportingInstance": "x-1", "action": "Created", "reason": "Created",
            "regarding": {"kind": "Pod", "namespace": "default", "name": "p"},
            "type": "Normal", **body}  # fmt: skip


CASES: list[tuple[str, str, dict[str, Any], tuple[str, str]]] = [
    (RBAC, "roles", {"metadata": {"name": "r"}, "rules": [{"apiGroups": [""],
                                                          "resources": ["pods"]}]},
     ("rules[0].verbs", "Required value: verbs must contain at least one value")),
    (RBAC, "roles", {"metadata": {"name": "r"}, "rules": [{"verbs": ["get"],
                                                          "nonResourceURLs": ["/healthz"]}]},
     ("rules[0].nonResourceURLs", 'Invalid value: []string{"/healthz"}: namespaced rules '
                                  "cannot apply to non-resource URLs")),
    (RBAC, "clusterroles", {"metadata": {"name": "r"}, "rules": [{"verbs": ["get"]}]},
     ("rules[0].apiGroups", "Required value: resource rules must supply at least one api group")),
    (RBAC, "clusterroles", {"metadata": {"name": "r"}, "rules": [{"verbs": ["get"],
                            "resources": ["pods"], "nonResourceURLs": ["/x"]}]},
     ("rules[0].nonResourceURLs", 'Invalid value: []string{"/x"}: rules cannot apply to both '
                                  "regular resources and non-resource URLs")),
    (RBAC, "clusterroles", {"metadata": {"name": "r"}, "aggregationRule": {
        "clusterRoleSelectors": []}},
     ("aggregationRule.clusterRoleSelectors", "Required value: at least one clusterRoleSelector "
                                              "required if aggregationRule is non-nil")),
    (RBAC, "rolebindings", binding(roleRef={"apiGroup": RBAC, "kind": "Secret", "name": "x"}),
     ("roleRef.kind", 'Unsupported value: "Secret": supported values: "Role", "ClusterRole"')),
    (RBAC, "clusterrolebindings", binding(roleRef={"apiGroup": RBAC, "kind": "Role",
                                                   "name": "x"}),
     ("roleRef.kind", 'Unsupported value: "Role": supported values: "ClusterRole"')),
    (RBAC, "rolebindings", binding(roleRef={"apiGroup": RBAC, "kind": "Role", "name": "a/b"}),
     ("roleRef.name", "Invalid value: \"a/b\": may not contain '/'")),
    (RBAC, "clusterrolebindings", binding(subjects=[{"kind": "ServiceAccount", "name": "sa"}]),
     ("subjects[0].namespace", "Required value")),
    (RBAC, "rolebindings", binding(subjects=[{"kind": "Robot", "name": "r2"}]),
     ("subjects[0].kind",
      'Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"')),
    (RBAC, "rolebindings", binding(subjects=[{"kind": "User", "apiGroup": "x.io", "name": "u"}]),
     ("subjects[0].apiGroup",
      'Unsupported value: "x.io": supported values: "rbac.authorization.k8s.io"')),
    ("discovery.k8s.io", "endpointslices", slice_(addressType="IP"),
     ("addressType", 'Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"')),
    ("discovery.k8s.io", "endpointslices", slice_(endpoints=[{"addresses": []}]),
     ("endpoints[0].addresses", "Required value: must contain at least 1 address")),
    ("discovery.k8s.io", "endpointslices", slice_(endpoints=[{"addresses": ["fd00::1"]}]),
     ("endpoints[0].addresses[0]", 'Invalid value: "fd00::1": must be a valid IPv4 address')),
    ("discovery.k8s.io", "endpointslices", slice_(endpoints=[{"addresses": ["x"]}] * 1001),
     ("endpoints", "Too many: 1001: must have at most 1000 items")),
    ("discovery.k8s.io", "endpointslices", slice_(addressType="FQDN", endpoints=[
        {"addresses": ["localhost"]}]),
     ("endpoints[0].addresses[0]", 'Invalid value: "localhost": should be a domain with at '
                                   "least two segments separated by dots")),
    ("discovery.k8s.io", "endpointslices", slice_(ports=[{"name": "http", "port": 80},
                                                        {"name": "http", "port": 81}]),
     ("ports[1].name", 'Duplicate value: "http"')),
    ("discovery.k8s.io", "endpointslices", slice_(ports=[{"name": "http", "protocol": "ICMP"}]),
     ("ports[0].protocol", 'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"')),
    ("coordination.k8s.io", "leases", {"metadata": {"name": "l"}, "spec": {
        "leaseDurationSeconds": 0}},
     ("spec.leaseDurationSeconds", "Invalid value: 0: must be greater than 0")),
    ("coordination.k8s.io", "leases", {"metadata": {"name": "l"}, "spec": {
        "leaseTransitions": -1}},
     ("spec.leaseTransitions", "Invalid value: -1: must be greater than or equal to 0")),
    ("storage.k8s.io", "storageclasses", {"metadata": {"name": "s"}, "provisioner": "a b"},
     ("provisioner", 'Invalid value: "a b": name part must consist of alphanumeric '
                     "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                     "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                     "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")),
    ("storage.k8s.io", "storageclasses", {"metadata": {"name": "s"}, "provisioner": "x.io/p",
                                          "reclaimPolicy": "Recycle"},
     ("reclaimPolicy", 'Unsupported value: "Recycle": supported values: "Delete", "Retain"')),
    ("storage.k8s.io", "storageclasses", {"metadata": {"name": "s"}, "provisioner": "x.io/p",
                                          "volumeBindingMode": "Later"},
     ("volumeBindingMode", 'Unsupported value: "Later": supported values: "Immediate", '
                           '"WaitForFirstConsumer"')),
    ("storage.k8s.io", "storageclasses", {"metadata": {"name": "s"}, "provisioner": "x.io/p",
                                          "allowedTopologies": [{"matchLabelExpressions": [
                                              {"key": "zone", "values": []}]}]},
     ("allowedTopologies[0].matchLabelExpressions[0].values", "Required value")),
    ("apps", "controllerrevisions", {"metadata": {"name": "c"}, "revision": 1},
     ("data", "Required value: data is mandatory")),
    ("apps", "controllerrevisions", {"metadata": {"name": "c"}, "data": {}, "revision": -1},
     ("revision", "Invalid value: -1: must be greater than or equal to 0")),
    ("", "events", {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod",
                    "namespace": "other", "name": "p"}},
     ("involvedObject.namespace", 'Invalid value: "other": does not match event.namespace')),
    ("", "events", {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod",
                    "namespace": "default", "name": "p"}, "eventTime": NOW},
     ("reportingComponent", "Required value")),
    ("events.k8s.io", "events", new_event(reason="r" * 129),
     ("reason", 'Invalid value: "": can have at most 128 characters')),
    ("events.k8s.io", "events", new_event(note="n" * 1025),
     ("message", 'Invalid value: "": can have at most 1024 characters')),
    ("events.k8s.io", "events", new_event(type="Odd"),
     ("type", 'Invalid value: "": has invalid value: Odd')),
    ("events.k8s.io", "events", new_event(deprecatedCount=3),
     ("count", 'Invalid value: "": needs to be unset')),
    ("events.k8s.io", "events", new_event(series={"count": 1, "lastObservedTime": NOW}),
     ("series.count", 'Invalid value: "": should be at least 2')),
    ("events.k8s.io", "events", new_event(eventTime=None),
     ("eventTime", "Required value")),
]  # fmt: skip


@pytest.mark.parametrize(("group", "plural", "body", "want"), CASES)
async def test_invalid_objects_get_kubes_words(
    env: MemoryStore, group: str, plural: str, body: dict[str, Any], want: tuple[str, str]
) -> None:
    info = REGISTRY.by_path(group, "v1", plural)
    body = {k: v for k, v in copy.deepcopy(body).items() if v is not None}
    with pytest.raises(ApiError) as e:
        await env.store.create(info, "default" if info.namespaced else None, body, Opts())
    assert e.value.code == 422, e.value.message
    assert want in [(c.field, c.message) for c in e.value.causes]


VALID: list[tuple[str, str, dict[str, Any]]] = [
    (RBAC, "clusterroles", {"metadata": {"name": "r"}, "rules": [
        {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
        {"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}]}),
    (RBAC, "clusterroles", {"metadata": {"name": "agg"}, "aggregationRule": {
        "clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}}),
    (RBAC, "rolebindings", binding(subjects=[{"kind": "ServiceAccount", "name": "sa"},
                                             {"kind": "User", "name": "jane"}])),
    ("discovery.k8s.io", "endpointslices", slice_(ports=[{"name": "", "port": 80}])),
    ("coordination.k8s.io", "leases", {"metadata": {"name": "l"}, "spec": {
        "holderIdentity": "x", "leaseDurationSeconds": 15}}),
    ("", "events", {"metadata": {"name": "e"}, "involvedObject": {"kind": "Node",
                    "name": "n1"}, "reason": "Ready", "message": "ok"}),
    ("events.k8s.io", "events", new_event()),
]  # fmt: skip


@pytest.mark.parametrize(("group", "plural", "body"), VALID)
async def test_valid_objects_are_accepted(
    env: MemoryStore, group: str, plural: str, body: dict[str, Any]
) -> None:
    info = REGISTRY.by_path(group, "v1", plural)
    await env.store.create(info, "default" if info.namespaced else None, body, Opts())


async def test_updates_refused_where_kube_refuses(env: MemoryStore) -> None:
    cases: list[tuple[str, str, dict[str, Any], Any, tuple[str, str]]] = [
        (RBAC, "rolebindings", binding(),
         lambda o: o["roleRef"].update(name="edit"),
         ("roleRef", 'Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", '
                     'Kind:"ClusterRole", Name:"edit"}: cannot change roleRef')),
        ("discovery.k8s.io", "endpointslices", slice_(),
         lambda o: o.update(addressType="IPv6", endpoints=[{"addresses": ["fd00::1"]}]),
         ("addressType", 'Invalid value: "IPv6": field is immutable')),
        ("storage.k8s.io", "storageclasses", {"metadata": {"name": "s"}, "provisioner": "x.io/p"},
         lambda o: o.update(volumeBindingMode="WaitForFirstConsumer"),
         ("volumeBindingMode", 'Invalid value: "WaitForFirstConsumer": field is immutable')),
        ("apps", "controllerrevisions", {"metadata": {"name": "c"}, "data": {"a": 1},
                                         "revision": 1},
         lambda o: o.update(data={"a": 2}),
         ("data", 'Invalid value: {"a": 2}: field is immutable')),
        ("events.k8s.io", "events", new_event(),
         lambda o: o.update(note="changed"),
         ("message", 'Invalid value: "changed": field is immutable')),
    ]  # fmt: skip
    for group, plural, body, change, want in cases:
        info = REGISTRY.by_path(group, "v1", plural)
        ns = "default" if info.namespaced else None
        created = await env.store.create(info, ns, body, Opts())
        new = copy.deepcopy(created)
        change(new)
        with pytest.raises(ApiError) as e:
            await env.store.update(info, ns, body["metadata"]["name"], new, Opts())
        assert e.value.code == 422, e.value.message
        assert want in [(c.field, c.message) for c in e.value.causes], plural


async def test_lease_strategy_fields_are_dropped_as_kube_132_does(env: MemoryStore) -> None:
    leases = REGISTRY.by_path("coordination.k8s.io", "v1", "leases")
    body = {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a",
            "strategy": "OldestEmulationVersion", "preferredHolder": "b"}}  # fmt: skip
    created = await env.store.create(leases, "default", body, Opts())
    assert created["spec"] == {"holderIdentity": "a"}
    created["spec"]["preferredHolder"] = "b"
    updated = await env.store.update(leases, "default", "l", created, Opts())
    assert updated["spec"] == {"holderIdentity": "a"}


async def test_an_update_without_resource_version_where_kube_needs_one(env: MemoryStore) -> None:
    """kube's AllowUnconditionalUpdate: false for Leases (and webhooks, policies, PDBs,
    RuntimeClasses, CRDs, custom resources, APIServices): a PUT naming no resourceVersion
    is a 422 on an existing object; ConfigMaps take it."""
    leases = REGISTRY.by_path("coordination.k8s.io", "v1", "leases")
    created = await env.store.create(leases, "default", {"metadata": {"name": "u"}}, Opts())
    bare = copy.deepcopy(created)
    del bare["metadata"]["resourceVersion"]
    bare["spec"] = {"holderIdentity": "me"}
    with pytest.raises(ApiError) as e:
        await env.store.update(leases, "default", "u", bare, Opts())
    assert (e.value.code, e.value.message) == (
        422,
        'leases.coordination.k8s.io "u" is invalid: metadata.resourceVersion: '
        "Invalid value: 0x0: must be specified for an update",
    )
    got = await env.store.update(leases, "default", "u", {**bare, "metadata": created["metadata"]},
                                 Opts())  # fmt: skip
    assert got["spec"]["holderIdentity"] == "me"
    cms = REGISTRY.core("configmaps")
    cm = await env.store.create(cms, "default", {"metadata": {"name": "u"}}, Opts())
    del cm["metadata"]["resourceVersion"]
    cm["data"] = {"a": "b"}
    assert (await env.store.update(cms, "default", "u", cm, Opts()))["data"] == {"a": "b"}
