"""The StatefulSet controller and the volume binder against a real apiserver, scheduler and
hollow nodes.

A watch on the test namespace (an informer in the test) records every pod event, so the
ordering guarantees are checked at every observed moment: with OrderedReady a pod is
created only once every lower ordinal is Running and Ready, and pods are removed from
the highest ordinal down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from clusterenv import hollow_env, started_cluster
from cmenv import until

from cluster import Cluster
from skiff.client.informer import Informer
from skiff.client.rest import ApiClient
from skiff.hollownode.nodes import NodeShape

NS = "stateful"
REVISION = "controller-revision-hash"


def _ordinal(pod: dict[str, Any]) -> tuple[str, int]:
    set_name, _, ordinal = pod["metadata"]["name"].rpartition("-")
    return set_name, int(ordinal) if ordinal.isdigit() else -1


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )


class PodLog:
    """Every pod event in the namespace, with the pods' states at that moment."""

    def __init__(self, client: ApiClient) -> None:
        self.informer = Informer(client, "pods", NS)
        self.state: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.deleting: list[str] = []
        self.violations: list[str] = []
        self.informer.add_handler(self._added, lambda _o, n: self._seen(n), self._deleted)

    def _added(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        set_name, ordinal = _ordinal(pod)
        self.created.append(name)
        if not (pod["metadata"].get("labels") or {}).get("ordered"):
            self._seen(pod)
            return
        for lower in range(ordinal):
            other = self.state.get(f"{set_name}-{lower}")
            if other is None or not _ready(other) or other["metadata"].get("deletionTimestamp"):
                self.violations.append(f"{name} created before {set_name}-{lower} was Ready")
        self._seen(pod)

    def _seen(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        if pod["metadata"].get("deletionTimestamp") and name not in self.deleting:
            self.deleting.append(name)
        self.state[name] = pod

    def _deleted(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        if name not in self.deleting:
            self.deleting.append(name)
        self.state.pop(name, None)

    def pods(self, set_name: str) -> dict[int, dict[str, Any]]:
        return {
            _ordinal(p)[1]: p
            for p in self.state.values()
            if _ordinal(p)[0] == set_name and not p["metadata"].get("deletionTimestamp")
        }

    def reset(self) -> None:
        self.created.clear()
        self.deleting.clear()


@pytest.fixture(scope="module")
def sc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started_cluster(tmp_path_factory, "statefulsets")


@pytest.fixture(scope="module")
async def env(sc: Cluster) -> AsyncIterator[tuple[ApiClient, PodLog]]:
    async with hollow_env(
        sc,
        NS,
        nodes=3,
        prefix="sts-",
        shape=NodeShape(cpu="4", memory="8Gi"),
        manager=("--controllers=statefulset,persistentvolume-binder",),
        watch=[PodLog],
    ) as env:
        yield env.client, env.watchers[0]


def stateful_set(name: str, replicas: int, *, claims: bool = True, **spec: Any) -> dict[str, Any]:
    labels = {"app": name, "ordered": "yes" if spec.get("podManagementPolicy") is None else ""}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}},
                        }
                    ]
                },
            },
            **spec,
        },
    }
    if claims:
        body["spec"]["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "standard",
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        ]
    return body


def status_is(client: ApiClient, name: str, **want: Any) -> Callable[[], Any]:
    async def check() -> dict[str, Any] | None:
        obj = await client.get("statefulsets", name, NS)
        status = obj.get("status") or {}
        if status.get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        return obj if all(status.get(k, 0) == v for k, v in want.items()) else None

    return check


async def _claims(client: ApiClient, prefix: str) -> dict[str, dict[str, Any]]:
    items = (await client.list("persistentvolumeclaims", NS))["items"]
    return {c["metadata"]["name"]: c for c in items if c["metadata"]["name"].startswith(prefix)}


async def test_ordered_creation_claims_and_scale_down(
    env: tuple[ApiClient, PodLog],
) -> None:
    client, log = env
    await client.create("statefulsets", stateful_set("web", 3), NS)
    await until(
        status_is(client, "web", replicas=3, readyReplicas=3, availableReplicas=3),
        timeout=30,
        what="3 ready replicas",
    )
    assert log.violations == []
    assert [n for n in log.created if n.startswith("web-")] == ["web-0", "web-1", "web-2"]
    pods = log.pods("web")
    for i, pod in pods.items():
        name = f"web-{i}"
        assert pod["spec"]["hostname"] == name and pod["spec"]["subdomain"] == "web"
        labels = pod["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == name
        assert labels["apps.kubernetes.io/pod-index"] == str(i)
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["data"]["persistentVolumeClaim"]["claimName"] == f"data-{name}"
        assert pod["spec"]["nodeName"].startswith("sts-")

    async def bound() -> dict[str, dict[str, Any]] | None:
        claims = await _claims(client, "data-web-")
        ok = len(claims) == 3 and all(c["status"]["phase"] == "Bound" for c in claims.values())
        return claims if ok else None

    claims = await until(bound, timeout=15, what="3 bound claims")
    for c in claims.values():
        pv = await client.get("persistentvolumes", c["spec"]["volumeName"])
        assert pv["status"]["phase"] == "Bound"
        assert pv["spec"]["claimRef"]["uid"] == c["metadata"]["uid"]
        assert pv["spec"]["hostPath"]["path"].endswith(c["metadata"]["uid"])
        assert c["status"]["capacity"] == {"storage": "1Gi"}
    uids = {n: c["metadata"]["uid"] for n, c in claims.items()}

    # Scale down: from the highest ordinal, one at a time; the claims stay.
    log.reset()
    await client.patch("statefulsets", "web", {"spec": {"replicas": 1}}, NS, subresource="scale")
    await until(status_is(client, "web", replicas=1, readyReplicas=1), what="1 replica")
    assert [n for n in log.deleting if n.startswith("web-")] == ["web-2", "web-1"]
    assert {
        n: c["metadata"]["uid"] for n, c in (await _claims(client, "data-web-")).items()
    } == uids

    # Scale up: the same claims are used again, none created.
    log.reset()
    await client.patch("statefulsets", "web", {"spec": {"replicas": 3}}, NS, subresource="scale")
    await until(status_is(client, "web", replicas=3, readyReplicas=3), what="3 replicas again")
    assert log.violations == []
    assert [n for n in log.created if n.startswith("web-")] == ["web-1", "web-2"]
    assert {
        n: c["metadata"]["uid"] for n, c in (await _claims(client, "data-web-")).items()
    } == uids
    pod = log.pods("web")[2]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "data-web-2"

    # A deleted pod comes back under its name, with its claim.
    old_uid = pod["metadata"]["uid"]
    await client.delete("pods", "web-2", NS)
    await until(
        lambda: (
            (p := log.pods("web").get(2)) is not None
            and p["metadata"]["uid"] != old_uid
            and _ready(p)
        ),
        what="web-2 recreated",
    )
    assert len(await _claims(client, "data-web-")) == 3


async def test_rolling_update_with_partition(env: tuple[ApiClient, PodLog]) -> None:
    client, log = env
    await client.create("statefulsets", stateful_set("roll", 4, claims=False), NS)
    ready = await until(
        status_is(client, "roll", replicas=4, readyReplicas=4, updatedReplicas=4),
        timeout=30,
        what="4 ready replicas",
    )
    old = ready["status"]["currentRevision"]
    assert ready["status"]["updateRevision"] == old
    log.reset()
    template = ready["spec"]["template"]
    template["spec"]["containers"][0]["image"] = "busybox:1.37"
    await client.patch(
        "statefulsets",
        "roll",
        {"spec": {"template": template, "updateStrategy": {"rollingUpdate": {"partition": 2}}}},
        NS,
    )
    done = await until(
        status_is(client, "roll", replicas=4, readyReplicas=4, updatedReplicas=2),
        timeout=30,
        what="the ordinals from the partition up updated",
    )
    new = done["status"]["updateRevision"]
    assert new != old and done["status"]["currentRevision"] == old
    assert done["status"]["currentReplicas"] == 2
    assert [n for n in log.deleting if n.startswith("roll-")] == ["roll-3", "roll-2"]
    revisions = {o: p["metadata"]["labels"][REVISION] for o, p in log.pods("roll").items()}
    assert revisions == {0: old, 1: old, 2: new, 3: new}
    assert log.pods("roll")[3]["spec"]["containers"][0]["image"] == "busybox:1.37"
    assert log.pods("roll")[0]["spec"]["containers"][0]["image"] == "busybox"
    history = (await client.list("controllerrevisions", NS))["items"]
    mine = sorted(
        (r["revision"], r["metadata"]["name"])
        for r in history
        if r["metadata"]["name"].startswith("roll-")
    )
    assert mine == [(1, old), (2, new)]

    log.reset()
    await client.patch(
        "statefulsets",
        "roll",
        {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}},
        NS,
    )
    done = await until(
        status_is(client, "roll", readyReplicas=4, updatedReplicas=4, currentReplicas=4),
        timeout=30,
        what="the update to finish",
    )
    assert done["status"]["currentRevision"] == new
    assert [n for n in log.deleting if n.startswith("roll-")] == ["roll-1", "roll-0"]


async def test_parallel_creates_without_waiting(env: tuple[ApiClient, PodLog]) -> None:
    client, log = env
    # Pods no node can take never become Ready: OrderedReady would stop at one.
    body = stateful_set("par", 4, podManagementPolicy="Parallel")
    body["spec"]["template"]["spec"]["nodeSelector"] = {"no-such-label": "x"}
    await client.create("statefulsets", body, NS)
    await until(status_is(client, "par", replicas=4, readyReplicas=0), what="4 pending replicas")
    assert sorted(log.pods("par")) == [0, 1, 2, 3]
    assert len(await _claims(client, "data-par-")) == 4
    await client.patch("statefulsets", "par", {"spec": {"replicas": 1}}, NS, subresource="scale")
    await until(status_is(client, "par", replicas=1), what="scaled down at once")
    assert len(await _claims(client, "data-par-")) == 4


async def test_local_volumes_keep_pods_on_their_nodes(env: tuple[ApiClient, PodLog]) -> None:
    """The default class waits for the first consumer, provisions on its node and pins it."""
    client, log = env
    sc = await client.get("storageclasses", "standard")
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    body = stateful_set("db", 3, podManagementPolicy="Parallel")
    del body["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"]  # the default
    await client.create("statefulsets", body, NS)
    await until(status_is(client, "db", replicas=3, readyReplicas=3), timeout=30, what="3 ready")

    async def placement() -> dict[str, str] | None:
        claims = await _claims(client, "data-db-")
        if len(claims) != 3 or any(not c["spec"].get("volumeName") for c in claims.values()):
            return None
        where = {}
        for name, c in claims.items():
            assert c["spec"]["storageClassName"] == "standard"  # DefaultStorageClass admission
            pv = await client.get("persistentvolumes", c["spec"]["volumeName"])
            term = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]
            where[name.removeprefix("data-")] = term["matchExpressions"][0]["values"][0]
        return where

    volumes_on = await until(placement, timeout=30, what="3 claims bound to local volumes")
    pods = log.pods("db")
    assert {f"db-{i}": p["spec"]["nodeName"] for i, p in pods.items()} == volumes_on
    # Recreated pods go back to the node that holds their data, every one of them.
    for i in range(3):
        await client.delete("pods", f"db-{i}", NS)

    async def back() -> bool:
        now = log.pods("db")
        if len(now) != 3 or not all(_ready(p) for p in now.values()):
            return False
        uids = {p["metadata"]["uid"] for p in now.values()}
        return not uids & {p["metadata"]["uid"] for p in pods.values()}

    await until(back, timeout=30, what="3 recreated pods")
    assert {f"db-{i}": p["spec"]["nodeName"] for i, p in log.pods("db").items()} == volumes_on
