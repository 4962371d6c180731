"""Validation of core/v1 kinds beside pods, as kube-apiserver 1.32 does it: ConfigMaps,
Secrets, Endpoints, Nodes, Namespaces, PersistentVolumes and PersistentVolumeClaims —
each invalid object refused with a 422 naming the field in kube's words, updates allowed
only where kube allows them, valid objects accepted."""

from __future__ import annotations

import base64
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from memstore import MemoryStore, running

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.apiserver.store import WriteOptions as Opts


@pytest.fixture
async def env() -> AsyncIterator[MemoryStore]:
    async with running(MemoryStore, {"default": {}}) as e:
        yield e


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def pv(**spec: Any) -> dict[str, Any]:
    base = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/tmp/pv"}}  # fmt: skip
    return {"metadata": {"name": "v"}, "spec": {**base, **spec}}


def pvc(**spec: Any) -> dict[str, Any]:
    base = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    return {"metadata": {"name": "c"}, "spec": {**base, **spec}}


def svc(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}], **spec}}


def node(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "n1"}, "spec": spec}


CASES: list[tuple[str, dict[str, Any], tuple[str, str]]] = [
    ("configmaps", {"metadata": {"name": "c"}, "data": {"a b": "x"}},
     ("data[a b]", 'Invalid value: "a b": a valid config key must consist of alphanumeric '
                   "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
                   "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")),
    ("configmaps", {"metadata": {"name": "c"}, "data": {"k": "x"}, "binaryData": {"k": b64("y")}},
     ("data[k]", 'Invalid value: "k": duplicate of key present in binaryData')),
    ("configmaps", {"metadata": {"name": "c"}, "data": {"k": "x" * (1024 * 1024 + 1)}},
     ("", "Too long: may not be more than 1048576 bytes")),
    ("secrets", {"metadata": {"name": "s"}, "type": "kubernetes.io/tls",
                 "data": {"tls.crt": b64("c")}},
     ("data[tls.key]", "Required value")),
    ("secrets", {"metadata": {"name": "s"}, "type": "kubernetes.io/dockerconfigjson",
                 "data": {".dockerconfigjson": b64("oops")}},
     ("data[.dockerconfigjson]", 'Invalid value: "<secret contents redacted>": invalid '
                                 "character 'o' looking for beginning of value")),
    ("secrets", {"metadata": {"name": "s"}, "type": "kubernetes.io/basic-auth", "data": {}},
     ("data[username]", "Required value")),
    ("secrets", {"metadata": {"name": "s"}, "type": "kubernetes.io/service-account-token"},
     ("metadata.annotations[kubernetes.io/service-account.name]", "Required value")),
    ("secrets", {"metadata": {"name": "s"}, "type": "kubernetes.io/ssh-auth", "data": {}},
     ("data[ssh-privatekey]", "Required value")),
    ("endpoints", {"metadata": {"name": "e"}, "subsets": [{"ports": [{"port": 80}]}]},
     ("subsets[0]", "Required value: must specify `addresses` or `notReadyAddresses`")),
    ("endpoints", {"metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "nope"}]}]},
     ("subsets[0].addresses[0].ip",
      'Invalid value: "nope": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)')),
    ("endpoints", {"metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "0.0.0.0"}]}]},
     ("subsets[0].addresses[0].ip", 'Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)')),
    ("endpoints", {"metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "169.254.1.1"}]}]},
     ("subsets[0].addresses[0].ip", 'Invalid value: "169.254.1.1": may not be in the '
                                    "link-local range (169.254.0.0/16, fe80::/10)")),
    ("endpoints", {"metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}],
                   "ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}]}]},
     ("subsets[0].ports[0].name", "Required value")),
    ("endpoints", {"metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}],
                   "ports": [{"port": 0, "protocol": "ICMP"}]}]},
     ("subsets[0].ports[0].protocol",
      'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"')),
    ("endpoints", {"metadata": {"name": "e"}, "subsets": [{"addresses": [
        {"ip": "10.0.0.1", "hostname": "Not_A_Label"}]}]},
     ("subsets[0].addresses[0].hostname",
      'Invalid value: "Not_A_Label": a lowercase RFC 1123 label must consist of lower case '
      "alphanumeric characters or '-', and must start and end with an alphanumeric character "
      "(e.g. 'my-name',  or '123-abc', regex used for validation is "
      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")),
    ("nodes", node(taints=[{"key": "a", "effect": "Sometimes"}]),
     ("metadata.taints[0].effect",
      'Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", '
      '"NoExecute"')),
    ("nodes", node(taints=[{"key": "a", "effect": "NoSchedule"},
                           {"key": "a", "value": "b", "effect": "NoSchedule"}]),
     ("metadata.taints[1]", 'Duplicate value: {"key": "a", "value": "b", "effect": '
                            '"NoSchedule"}: taints must be unique by key and effect pair')),
    ("nodes", node(podCIDRs=["10.0.0.0/24", "10.1.0.0/24"]),
     ("spec.podCIDRs", 'Invalid value: ["10.0.0.0/24", "10.1.0.0/24"]: may specify no more '
                       "than one CIDR for each IP family")),
    ("nodes", node(podCIDRs=["10.0.0.0/33"]),
     ("spec.podCIDRs[0]", 'Invalid value: "10.0.0.0/33": must be a valid CIDR value, '
                          "(e.g. 10.9.8.0/24 or 2001:db8::/64)")),
    ("nodes", {**node(), "status": {"capacity": {"pods": "1.5"}}},
     ("status.capacity[pods]", 'Invalid value: "1500m": must be an integer')),
    ("namespaces", {"metadata": {"name": "n"}, "spec": {"finalizers": ["mine"]}},
     ("spec.finalizers", 'Invalid value: "mine": name is neither a standard finalizer name '
                         "nor is it fully qualified")),
    ("services", svc(ports=[]),
     ("spec.ports", "Required value")),
    ("services", svc(ports=[{"port": 80}, {"port": 81}]),
     ("spec.ports[0].name", "Required value")),
    ("services", svc(ports=[{"name": "a", "port": 80}, {"name": "a", "port": 81}]),
     ("spec.ports[1].name", 'Duplicate value: "a"')),
    ("services", svc(ports=[{"name": "a", "port": 80}, {"name": "b", "port": 80}]),
     ("spec.ports[1]", 'Duplicate value: {"port": 80, "protocol": "TCP"}')),
    ("services", svc(ports=[{"port": 80, "protocol": "ICMP"}]),
     ("spec.ports[0].protocol",
      'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"')),
    ("services", svc(ports=[{"port": 80, "targetPort": "Not_A_Name"}]),
     ("spec.ports[0].targetPort", 'Invalid value: "Not_A_Name": must contain only alpha-numeric '
                                  "characters (a-z, 0-9), and hyphens (-)")),
    ("services", svc(type="Balanced"),
     ("spec.type", 'Unsupported value: "Balanced": supported values: "ClusterIP", '
                   '"ExternalName", "LoadBalancer", "NodePort"')),
    ("services", svc(type="ExternalName", ports=[]),
     ("spec.externalName", "Required value")),
    ("services", svc(sessionAffinity="Sticky"),
     ("spec.sessionAffinity", 'Unsupported value: "Sticky": supported values: "ClientIP", '
                              '"None"')),
    ("services", svc(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {
        "timeoutSeconds": 100000}}),
     ("spec.sessionAffinityConfig.clientIP.timeoutSeconds",
      "Invalid value: 100000: must be greater than 0 and less than 86400")),
    ("services", svc(loadBalancerSourceRanges=["10.0.0.0/8"]),
     ("spec.LoadBalancerSourceRanges",
      "Forbidden: may only be used when `type` is 'LoadBalancer'")),
    ("services", svc(type="LoadBalancer", ports=[{"port": 10250}]),
     ("spec.ports[0]", "Invalid value: 10250: may not expose port 10250 externally since it is "
                       "used by kubelet")),
    ("services", svc(externalTrafficPolicy="Local"),
     ("spec.externalTrafficPolicy", 'Invalid value: "Local": may only be set for '
                                    "externally-accessible services")),
    ("services", svc(externalIPs=["0.0.0.0"]),
     ("spec.externalIPs[0]", 'Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)')),
    ("services", svc(selector={"app": "no spaces"}),
     ("spec.selector", 'Invalid value: "no spaces": a valid label must be an empty string or '
                       "consist of alphanumeric characters, '-', '_' or '.', and must start and "
                       "end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                       "'12345', regex used for validation is "
                       "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")),
    ("persistentvolumes", pv(accessModes=["ReadWriteSometimes"]),
     ("spec.accessModes", 'Unsupported value: "ReadWriteSometimes": supported values: '
                          '"ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"')),
    ("persistentvolumes", pv(accessModes=["ReadWriteOncePod", "ReadWriteOnce"]),
     ("spec.accessModes", "Forbidden: may not use ReadWriteOncePod with other access modes")),
    ("persistentvolumes", pv(capacity={"storage": "0"}),
     ("spec.capacity[storage]", 'Invalid value: "0": must be greater than zero')),
    ("persistentvolumes", pv(capacity={"cpu": "1"}),
     ("spec.capacity", 'Unsupported value: {"cpu": "1"}: supported values: "storage"')),
    ("persistentvolumes", pv(persistentVolumeReclaimPolicy="Keep"),
     ("spec.persistentVolumeReclaimPolicy",
      'Unsupported value: "Keep": supported values: "Delete", "Recycle", "Retain"')),
    ("persistentvolumes", pv(hostPath=None),
     ("spec", "Required value: must specify a volume type")),
    ("persistentvolumes", pv(nfs={"server": "s", "path": "/x"}),
     ("spec.nfs", "Forbidden: may not specify more than 1 volume type")),
    ("persistentvolumes", pv(hostPath=None, local={"path": "/mnt/x"}),
     ("spec.nodeAffinity", "Required value: Local volume requires node affinity")),
    ("persistentvolumes", pv(hostPath=None, csi={"driver": "x.example.com"}),
     ("spec.csi.volumeHandle", "Required value")),
    ("persistentvolumes", pv(nodeAffinity={"required": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "k", "operator": "Near"}]}]}}),
     ("spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].operator",
      'Invalid value: "Near": not a valid selector operator')),
    ("persistentvolumes", pv(nodeAffinity={"required": {"nodeSelectorTerms": []}}),
     ("spec.nodeAffinity.required.nodeSelectorTerms",
      "Required value: must have at least one node selector term")),
    ("persistentvolumes", pv(volumeMode="Tape"),
     ("spec.volumeMode", 'Unsupported value: "Tape": supported values: "Block", "Filesystem"')),
    ("persistentvolumeclaims", pvc(accessModes=[]),
     ("spec.accessModes", "Required value: at least 1 access mode is required")),
    ("persistentvolumeclaims", pvc(resources={"requests": {}}),
     ("spec.resources[storage]", "Required value")),
    ("persistentvolumeclaims", pvc(resources={"requests": {"storage": "0"}}),
     ("spec.resources[storage]", 'Invalid value: "0": must be greater than zero')),
    ("persistentvolumeclaims", pvc(storageClassName="Not_Valid"),
     ("spec.storageClassName",
      'Invalid value: "Not_Valid": a lowercase RFC 1123 subdomain must consist of lower case '
      "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
      "character (e.g. 'example.com', regex used for validation is "
      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")),
    ("persistentvolumeclaims", pvc(dataSource={"kind": "Snapshot", "name": "s"}),
     ("spec.dataSource", 'Invalid value: "Snapshot": must be \'PersistentVolumeClaim\' when '
                         "referencing the default apiGroup")),
]  # fmt: skip


@pytest.mark.parametrize(("plural", "body", "want"), CASES)
async def test_invalid_objects_get_kubes_words(
    env: MemoryStore, plural: str, body: dict[str, Any], want: tuple[str, str]
) -> None:
    info = REGISTRY.core(plural)
    body = copy.deepcopy(body)
    spec = body.get("spec") or {}
    for key in [k for k, v in spec.items() if v is None]:
        del spec[key]
    with pytest.raises(ApiError) as e:
        await env.store.create(info, "default" if info.namespaced else None, body, Opts())
    assert e.value.code == 422, e.value.message
    assert want in [(c.field, c.message) for c in e.value.causes]
    with pytest.raises(ApiError) as gone:
        await env.store.get(info, "default" if info.namespaced else None, body["metadata"]["name"])
    assert gone.value.code == 404  # nothing written


VALID: list[tuple[str, dict[str, Any]]] = [
    ("configmaps", {"metadata": {"name": "c"}, "data": {"k": "v"}, "binaryData": {"b": b64("x")}}),
    ("secrets", {"metadata": {"name": "s"}, "type": "kubernetes.io/tls",
                 "data": {"tls.crt": b64("c"), "tls.key": b64("k")}}),
    ("secrets", {"metadata": {"name": "s"}, "type": "kubernetes.io/dockerconfigjson",
                 "data": {".dockerconfigjson": b64('{"auths": {}}')}}),
    ("endpoints", {"metadata": {"name": "e"}, "subsets": [{"addresses": [
        {"ip": "127.0.0.1", "nodeName": "n1"}], "ports": [{"port": 80, "protocol": "TCP"}]}]}),
    ("nodes", {**node(podCIDRs=["10.0.0.0/24", "fd00::/64"], taints=[
        {"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoExecute"}]),
        "status": {"capacity": {"cpu": "2", "pods": "110"}}}),
    ("namespaces", {"metadata": {"name": "n"}, "spec": {"finalizers": ["kubernetes",
                                                                      "example.com/x"]}}),
    ("persistentvolumes", pv()),
    ("services", svc(type="LoadBalancer", externalTrafficPolicy="Local",
                     loadBalancerSourceRanges=["10.0.0.0/8"])),
    ("services", svc(type="ExternalName", ports=[], externalName="example.com.")),
    ("services", svc(clusterIP="None", ports=[])),
    ("persistentvolumes", pv(hostPath=None, local={"path": "/mnt/x"}, nodeAffinity={
        "required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}})),
    ("persistentvolumeclaims", pvc(storageClassName="standard", volumeMode="Filesystem")),
]  # fmt: skip


@pytest.mark.parametrize(("plural", "body"), VALID)
async def test_valid_objects_are_accepted(env: MemoryStore, plural: str, body: Any) -> None:
    info = REGISTRY.core(plural)
    await env.store.create(info, "default" if info.namespaced else None, body, Opts())


async def update_causes(
    env: MemoryStore, plural: str, body: dict[str, Any], change: Any, subresource: str = ""
) -> list[tuple[str, str]]:
    info = REGISTRY.core(plural)
    ns = "default" if info.namespaced else None
    created = await env.store.create(info, ns, body, Opts())
    new = copy.deepcopy(created)
    change(new)
    with pytest.raises(ApiError) as e:
        await env.store.update(info, ns, body["metadata"]["name"], new, Opts(),
                               subresource=subresource)  # fmt: skip
    assert e.value.code == 422, e.value.message
    return [(c.field, c.message) for c in e.value.causes]


async def test_immutable_configmaps_and_secrets_stay(env: MemoryStore) -> None:
    cm = {"metadata": {"name": "c"}, "data": {"k": "v"}, "immutable": True}

    def edit(o: dict[str, Any]) -> None:
        o["data"]["k"] = "w"
        o["immutable"] = False

    assert await update_causes(env, "configmaps", cm, edit) == [
        ("immutable", "Forbidden: field is immutable when `immutable` is set"),
        ("data", "Forbidden: field is immutable when `immutable` is set"),
    ]
    secret = {"metadata": {"name": "s"}, "data": {"k": b64("v")}}

    def retype(o: dict[str, Any]) -> None:
        o["type"] = "kubernetes.io/basic-auth"

    assert ("type", 'Invalid value: "kubernetes.io/basic-auth": field is immutable') in (
        await update_causes(env, "secrets", secret, retype)
    )


async def test_volume_and_claim_updates(env: MemoryStore) -> None:
    def move(o: dict[str, Any]) -> None:
        o["spec"]["hostPath"]["path"] = "/tmp/elsewhere"

    (where, message), *_ = await update_causes(env, "persistentvolumes", pv(), move)
    assert where == "spec.persistentvolumesource"
    assert message.startswith(
        "Forbidden: spec.persistentvolumesource is immutable after creation\n"
    )

    claims = REGISTRY.core("persistentvolumeclaims")
    created = await env.store.create(claims, "default", pvc(), Opts())
    bound = copy.deepcopy(created)
    bound["spec"]["volumeName"] = "v"  # binding sets the volume once
    bound = await env.store.update(claims, "default", "c", bound, Opts())
    bigger = copy.deepcopy(bound)
    bigger["spec"]["resources"]["requests"]["storage"] = "2Gi"
    with pytest.raises(ApiError) as e:  # not bound yet: the size is part of the spec
        await env.store.update(claims, "default", "c", bigger, Opts())
    assert e.value.causes[0].message.startswith(
        "Forbidden: spec is immutable after creation except resources.requests and "
        "volumeAttributesClassName for bound claims"
    )
    status = copy.deepcopy(bound)
    status["status"] = {"phase": "Bound", "capacity": {"storage": "1Gi"}}
    bound = await env.store.update(claims, "default", "c", status, Opts(), subresource="status")
    bigger = copy.deepcopy(bound)
    bigger["spec"]["resources"]["requests"]["storage"] = "2Gi"
    bound = await env.store.update(claims, "default", "c", bigger, Opts())
    smaller = copy.deepcopy(bound)
    smaller["spec"]["resources"]["requests"]["storage"] = "1Gi"
    with pytest.raises(ApiError) as e:
        await env.store.update(claims, "default", "c", smaller, Opts())
    assert [(c.field, c.message) for c in e.value.causes] == [
        ("spec.resources.requests.storage", "Forbidden: field can not be less than previous value")
    ]


async def test_node_updates_keep_cidrs_and_provider(env: MemoryStore) -> None:
    body = node(podCIDRs=["10.0.0.0/24"], providerID="skiff://n1")

    def change(o: dict[str, Any]) -> None:
        o["spec"]["podCIDRs"] = ["10.9.0.0/24"]
        o["spec"]["providerID"] = "skiff://other"

    assert await update_causes(env, "nodes", body, change) == [
        ("spec.podCIDRs", 'Forbidden: node updates may not change podCIDR except from "" to valid'),
        ("spec.providerID",
         'Forbidden: node updates may not change providerID except from "" to valid'),
    ]  # fmt: skip


async def test_namespace_status_phase_follows_deletion(env: MemoryStore) -> None:
    def terminate(o: dict[str, Any]) -> None:
        o["status"] = {"phase": "Terminating"}

    causes = await update_causes(
        env, "namespaces", {"metadata": {"name": "n"}}, terminate, subresource="status"
    )
    assert causes == [
        ("status.Phase",
         "Invalid value: \"Terminating\": may only be 'Active' if `deletionTimestamp` is empty")
    ]  # fmt: skip


async def test_a_type_change_drops_what_the_new_type_refuses(env: MemoryStore) -> None:
    """kube's dropTypeDependentFields: LoadBalancer → ClusterIP drops the unchanged
    external traffic policy, node-port allocation and class with the node ports."""
    services = REGISTRY.core("services")
    body = svc(type="LoadBalancer", loadBalancerClass="example.com/lb")
    created = await env.store.create(services, "default", body, Opts())
    assert created["spec"]["externalTrafficPolicy"] == "Cluster"
    change = copy.deepcopy(created)
    change["spec"]["type"] = "ClusterIP"
    updated = await env.store.update(services, "default", "s", change, Opts())
    for key in ("externalTrafficPolicy", "allocateLoadBalancerNodePorts", "loadBalancerClass"):
        assert key not in updated["spec"], key
    assert "nodePort" not in updated["spec"]["ports"][0]
