"""Deployments against a real apiserver, scheduler, hollow nodes and controller manager.

A controller-manager process runs the deployment and replicaset controllers; kubectl
(``KUBECTL``, default ``kubectl``) drives ``rollout status / history / undo / pause /
resume / restart`` as a user would. Every pod event in the namespace goes through
:class:`Monitor`, so the bounds of a rollout (at most replicas + maxSurge pods, at
least replicas - maxUnavailable available) are checked at every observed moment,
not only at the end. Hollow nodes make pods Ready at once; nothing sets
minReadySeconds, so a Ready pod is an available one.

No garbage collector runs here: each test deletes its Deployment, ReplicaSets and
pods itself.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterenv import HollowEnv, hollow_env, started_cluster
from cmenv import Managers, until

from cluster import Cluster
from skiff.client.informer import Informer
from skiff.client.rest import ApiClient
from skiff.hollownode.nodes import NodeShape

NS = "deployments"
KUBECTL = os.environ.get("KUBECTL", "kubectl")
CONTROLLERS = "--controllers=deployment-controller,replicaset-controller"
HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"


class Monitor:
    """Watches the namespace's pods; at every event, measures the watched app's pods.

    ``max_running``: most pods not terminating (nor Succeeded/Failed) at once;
    ``min_available``: fewest of those Ready at once; ``mixed``: pods of two templates
    (``pod-template-hash``) existed at once, terminating ones included. ``created``:
    pod uids per controlling ReplicaSet uid.
    """

    def __init__(self, client: ApiClient) -> None:
        self.informer = Informer(client, "pods", NS)
        self.app: str | None = None
        self.max_running = 0
        self.min_available = math.inf
        self.mixed = False
        self.created: dict[str, set[str]] = defaultdict(set)
        self.informer.add_handler(self._event, lambda _o, n: self._event(n), self._event)

    def watch(self, app: str) -> None:
        """Measure ``app`` from now on (from the pods as they are now)."""
        self.app = app
        self.max_running = 0
        self.min_available = math.inf
        self.mixed = False
        self._measure()

    def _event(self, pod: dict[str, Any]) -> None:
        for ref in pod["metadata"].get("ownerReferences") or ():
            if ref.get("controller"):
                self.created[ref["uid"]].add(pod["metadata"]["uid"])
        self._measure()

    def pods(self, app: str) -> list[dict[str, Any]]:
        return [
            p for p in self.informer.list() if (p["metadata"].get("labels") or {}).get("app") == app
        ]

    def _measure(self) -> None:
        if self.app is None:
            return
        pods = self.pods(self.app)
        running = [p for p in pods if _running(p)]
        available = [p for p in running if _ready(p)]
        self.max_running = max(self.max_running, len(running))
        self.min_available = min(self.min_available, len(available))
        if len({(p["metadata"].get("labels") or {}).get(HASH) for p in pods}) > 1:
            self.mixed = True


def _running(pod: dict[str, Any]) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return not pod["metadata"].get("deletionTimestamp") and phase not in ("Succeeded", "Failed")


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or ()
    )


@pytest.fixture(scope="module")
def dc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started_cluster(tmp_path_factory, "deployments")


@pytest.fixture(scope="module")
async def hollow(dc: Cluster) -> AsyncIterator[HollowEnv]:
    async with hollow_env(
        dc,
        NS,
        nodes=4,
        prefix="dep-",
        shape=NodeShape(cpu="8", memory="16Gi"),
        manager=(CONTROLLERS,),
        watch=[Monitor],
    ) as env:
        yield env


@pytest.fixture(scope="module")
def env(hollow: HollowEnv) -> tuple[ApiClient, Monitor]:
    return hollow.client, hollow.watchers[0]


@pytest.fixture(scope="module")
def managers(hollow: HollowEnv) -> Managers:
    return hollow.managers


@pytest.fixture(scope="module")
def kubeconfig(dc: Cluster) -> Path:
    return dc.kubeconfig(0)


async def kubectl(
    kubeconfig: Path, *args: str, check: bool = True, timeout: float = 90
) -> tuple[int, str]:
    """Run kubectl in the test namespace without blocking the event loop: (rc, output)."""
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        "--kubeconfig",
        str(kubeconfig),
        "-n",
        NS,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode()
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{text}")
    return proc.returncode or 0, text


def deployment(
    name: str,
    replicas: int,
    *,
    image: str = "busybox:1",
    strategy: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": "c",
                            "image": image,
                            "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}},
                        }
                    ],
                },
            },
            **({"strategy": strategy} if strategy else {}),
            **spec,
        },
    }


def rolling(surge: int | str, unavailable: int | str) -> dict[str, Any]:
    return {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
    }


def rolled_out(client: ApiClient, name: str) -> Callable[[], Any]:
    """Check: observed, every replica updated and available, no old ones left."""

    async def check() -> dict[str, Any] | None:
        d = await client.get("deployments", name, NS)
        s = d.get("status") or {}
        want = d["spec"]["replicas"]
        if s.get("observedGeneration") != d["metadata"]["generation"]:
            return None
        counts = (s.get("replicas", 0), s.get("updatedReplicas", 0), s.get("availableReplicas", 0))
        return d if counts == (want, want, want) else None

    return check


async def replica_sets(client: ApiClient, name: str) -> list[dict[str, Any]]:
    """The Deployment's ReplicaSets, oldest revision first."""
    items = (await client.list("replicasets", NS, label_selector=f"app={name}"))["items"]
    return sorted(items, key=lambda r: int(r["metadata"].get("annotations", {}).get(REVISION, 0)))


def image_of(obj: dict[str, Any]) -> str:
    """The image of a pod, or of the pod template of a Deployment or ReplicaSet."""
    spec = obj["spec"]
    return (spec["template"]["spec"] if "template" in spec else spec)["containers"][0]["image"]


def running_images(monitor: Monitor, app: str) -> set[str]:
    return {image_of(p) for p in monitor.pods(app) if _running(p)}


def conditions(d: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (d.get("status") or {}).get("conditions") or ()}


async def remove(client: ApiClient, name: str) -> None:
    """Delete the Deployment, then its ReplicaSets, then its pods (no garbage collector)."""
    await client.delete("deployments", name, NS)
    for rs in (await client.list("replicasets", NS, label_selector=f"app={name}"))["items"]:
        await client.delete("replicasets", rs["metadata"]["name"], NS)
    for pod in (await client.list("pods", NS, label_selector=f"app={name}"))["items"]:
        await client.delete("pods", pod["metadata"]["name"], NS, grace_period_seconds=0)


async def test_deployment_becomes_available(
    env: tuple[ApiClient, Monitor], kubeconfig: Path
) -> None:
    client, monitor = env
    d = await client.create("deployments", deployment("web", 10), NS)
    got = await until(rolled_out(client, "web"), timeout=30, what="10 available replicas")
    await kubectl(kubeconfig, "rollout", "status", "deployment/web", "--timeout=30s")
    status = got["status"]
    assert status["readyReplicas"] == 10 and "unavailableReplicas" not in status
    conds = conditions(got)
    assert (conds["Available"]["status"], conds["Available"]["reason"]) == (
        "True",
        "MinimumReplicasAvailable",
    )
    assert got["metadata"]["annotations"][REVISION] == "1"

    [rs] = await replica_sets(client, "web")
    h = rs["metadata"]["labels"][HASH]
    assert rs["metadata"]["name"] == f"web-{h}" and h.isalnum()
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", HASH: h}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", HASH: h}
    ann = rs["metadata"]["annotations"]
    assert (ann[REVISION], ann["deployment.kubernetes.io/desired-replicas"]) == ("1", "10")
    assert ann["deployment.kubernetes.io/max-replicas"] == "13"  # 25% surge, rounded up
    ref = rs["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"]) == (
        "Deployment",
        d["metadata"]["uid"],
        True,
    )
    pods = monitor.pods("web")
    assert len(pods) == 10 and all(p["metadata"]["labels"][HASH] == h for p in pods)
    await until(
        lambda: conditions_reason(client, "web", "Progressing", "NewReplicaSetAvailable"),
        what="Progressing=NewReplicaSetAvailable",
    )

    async def scaling_events() -> list[str]:
        sel = "involvedObject.name=web,reason=ScalingReplicaSet"
        return [
            e["message"] for e in (await client.list("events", NS, field_selector=sel))["items"]
        ]

    events = await until(scaling_events, what="a ScalingReplicaSet event")
    assert events == [f"Scaled up replica set web-{h} from 0 to 10"]
    _, out = await kubectl(kubeconfig, "get", "deployment", "web")
    assert "10/10" in out
    await remove(client, "web")


async def conditions_reason(
    client: ApiClient, name: str, type_: str, reason: str
) -> dict[str, Any] | None:
    d = await client.get("deployments", name, NS)
    cond = conditions(d).get(type_)
    return d if cond is not None and cond.get("reason") == reason else None


async def test_rolling_update_history_and_undo(
    env: tuple[ApiClient, Monitor], kubeconfig: Path
) -> None:
    client, monitor = env
    await client.create("deployments", deployment("roll", 10, strategy=rolling(2, 1)), NS)
    await until(rolled_out(client, "roll"), timeout=30, what="the first rollout")
    [v1] = await replica_sets(client, "roll")

    async def roll(*args: str) -> None:
        monitor.watch("roll")
        await kubectl(kubeconfig, *args)
        await kubectl(kubeconfig, "rollout", "status", "deployment/roll", "--timeout=60s")
        await until(rolled_out(client, "roll"), what="the rollout in status")
        await until(
            lambda: len([p for p in monitor.pods("roll") if _running(p)]) == 10,
            what="10 running pods",
        )
        assert monitor.max_running <= 12, f"{monitor.max_running} pods at once (max 10 + 2)"
        assert monitor.min_available >= 9, f"{monitor.min_available} available (min 10 - 1)"

    # The change-cause comes with the change (annotated earlier, the current revision
    # would get it too, as in Kubernetes).
    change = {
        "metadata": {"annotations": {"kubernetes.io/change-cause": "to v2"}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}},
    }
    await roll("patch", "deployment/roll", "-p", json.dumps(change))
    old, new = await replica_sets(client, "roll")
    assert old["metadata"]["uid"] == v1["metadata"]["uid"] and old["spec"]["replicas"] == 0
    assert image_of(new) == "busybox:2" and new["spec"]["replicas"] == 10
    assert new["metadata"]["annotations"][REVISION] == "2"
    assert running_images(monitor, "roll") == {"busybox:2"}

    _, history = await kubectl(kubeconfig, "rollout", "history", "deployment/roll")
    lines = [line.split(None, 1) for line in history.splitlines()[1:] if line.strip()]
    assert lines == [["REVISION", "CHANGE-CAUSE"], ["1", "<none>"], ["2", "to v2"]], history
    _, rev1 = await kubectl(kubeconfig, "rollout", "history", "deployment/roll", "--revision=1")
    assert "busybox:1" in rev1 and "busybox:2" not in rev1

    await roll("rollout", "undo", "deployment/roll")
    rss = await replica_sets(client, "roll")
    assert len(rss) == 2
    back = rss[-1]
    assert back["metadata"]["uid"] == v1["metadata"]["uid"]  # the old ReplicaSet, reused
    assert back["spec"]["replicas"] == 10 and image_of(back) == "busybox:1"
    ann = back["metadata"]["annotations"]
    assert (ann[REVISION], ann["deployment.kubernetes.io/revision-history"]) == ("3", "1")
    d = await client.get("deployments", "roll", NS)
    assert image_of(d) == "busybox:1" and d["metadata"]["annotations"][REVISION] == "3"
    assert running_images(monitor, "roll") == {"busybox:1"}

    await roll("rollout", "undo", "deployment/roll", "--to-revision=2")
    d = await client.get("deployments", "roll", NS)
    assert image_of(d) == "busybox:2" and d["metadata"]["annotations"][REVISION] == "4"
    assert d["metadata"]["annotations"]["kubernetes.io/change-cause"] == "to v2"
    _, history = await kubectl(kubeconfig, "rollout", "history", "deployment/roll")
    revisions = [line.split(None, 1)[0] for line in history.splitlines()[2:] if line.strip()]
    assert revisions == ["3", "4"], history
    await remove(client, "roll")


async def test_pause_resume_and_restart(env: tuple[ApiClient, Monitor], kubeconfig: Path) -> None:
    client, monitor = env
    await client.create(
        "deployments", deployment("pause", 3, revisionHistoryLimit=1, strategy=rolling(1, 0)), NS
    )
    await until(rolled_out(client, "pause"), timeout=30, what="the first rollout")
    await kubectl(kubeconfig, "rollout", "pause", "deployment/pause")
    await kubectl(kubeconfig, "set", "image", "deployment/pause", "c=busybox:2")
    await kubectl(kubeconfig, "scale", "deployment/pause", "--replicas=5")
    paused = await until(
        lambda: conditions_reason(client, "pause", "Progressing", "DeploymentPaused"),
        what="Progressing=DeploymentPaused",
    )
    assert conditions(paused)["Progressing"]["status"] == "Unknown"

    async def scaled() -> dict[str, Any] | None:
        d = await client.get("deployments", "pause", NS)
        s = d.get("status") or {}
        if s.get("observedGeneration") != d["metadata"]["generation"]:
            return None
        return d if (s.get("replicas"), s.get("availableReplicas")) == (5, 5) else None

    d = await until(scaled, what="the paused deployment scaled to 5")
    assert "updatedReplicas" not in d["status"]  # no ReplicaSet has the new template
    rss = await replica_sets(client, "pause")
    assert [(image_of(r), r["spec"]["replicas"]) for r in rss] == [("busybox:1", 5)]
    rc, out = await kubectl(
        kubeconfig, "rollout", "undo", "deployment/pause", check=False, timeout=30
    )
    assert rc != 0 and "no rollout history found" in out  # one revision only, so far

    monitor.watch("pause")
    await kubectl(kubeconfig, "rollout", "resume", "deployment/pause")
    await kubectl(kubeconfig, "rollout", "status", "deployment/pause", "--timeout=60s")
    await until(rolled_out(client, "pause"), what="the resumed rollout")
    assert monitor.max_running <= 6 and monitor.min_available >= 5
    rss = await replica_sets(client, "pause")
    assert [(image_of(r), r["spec"]["replicas"]) for r in rss] == [
        ("busybox:1", 0),
        ("busybox:2", 5),
    ]

    # Two restarts: a new ReplicaSet each; revisionHistoryLimit 1 keeps one old one.
    for _ in range(2):
        second = int(time.time())
        while int(time.time()) == second:  # restartedAt has a one-second resolution
            await asyncio.sleep(0.05)
        await kubectl(kubeconfig, "rollout", "restart", "deployment/pause")
        await kubectl(kubeconfig, "rollout", "status", "deployment/pause", "--timeout=60s")
        await until(rolled_out(client, "pause"), what="the restart")

    async def two_left() -> list[dict[str, Any]] | None:
        rss = await replica_sets(client, "pause")
        return rss if len(rss) == 2 else None

    rss = await until(two_left, what="the oldest ReplicaSets cleaned up")
    assert [r["metadata"]["annotations"][REVISION] for r in rss] == ["3", "4"]
    assert rss[0]["spec"]["replicas"] == 0 and rss[1]["spec"]["replicas"] == 5
    restarted = rss[1]["spec"]["template"]["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in restarted
    await remove(client, "pause")


async def test_recreate_never_mixes_old_and_new_pods(
    env: tuple[ApiClient, Monitor], kubeconfig: Path
) -> None:
    client, monitor = env
    await client.create("deployments", deployment("recreate", 4, strategy={"type": "Recreate"}), NS)
    await until(rolled_out(client, "recreate"), timeout=30, what="the first rollout")
    monitor.watch("recreate")
    await kubectl(kubeconfig, "set", "image", "deployment/recreate", "c=busybox:2")
    await kubectl(kubeconfig, "rollout", "status", "deployment/recreate", "--timeout=60s")
    await until(rolled_out(client, "recreate"), what="the Recreate rollout")
    await until(
        lambda: {image_of(p) for p in monitor.pods("recreate")} == {"busybox:2"},
        what="only new pods",
    )
    assert not monitor.mixed, "old and new pods existed at once"
    assert monitor.max_running <= 4
    await remove(client, "recreate")


async def test_progress_deadline_and_proportional_scaling(
    env: tuple[ApiClient, Monitor], kubeconfig: Path
) -> None:
    client, _ = env
    await client.create("deployments", deployment("stuck", 10), NS)  # 25% / 25%
    await until(rolled_out(client, "stuck"), timeout=30, what="the first rollout")
    # New pods that no node can take: the rollout stalls with 3 surge pods and 2
    # unavailable (10 - 2 = 8 old, 5 new).
    patch = {
        "spec": {
            "progressDeadlineSeconds": 2,
            "template": {"spec": {"nodeSelector": {"no-such-label": "anywhere"}}},
        }
    }
    await client.patch("deployments", "stuck", patch, NS, type="strategic")

    async def sizes() -> list[int]:
        return [r["spec"]["replicas"] for r in await replica_sets(client, "stuck")]

    await until(lambda: _eq(sizes(), [8, 5]), timeout=20, what="the stalled sizes 8 and 5")
    d = await until(
        lambda: conditions_reason(client, "stuck", "Progressing", "ProgressDeadlineExceeded"),
        timeout=20,
        what="ProgressDeadlineExceeded",
    )
    prog = conditions(d)["Progressing"]
    assert prog["status"] == "False" and "has timed out progressing" in prog["message"]
    assert conditions(d)["Available"]["status"] == "True"  # 8 available of at least 8
    rc, out = await kubectl(
        kubeconfig, "rollout", "status", "deployment/stuck", "--timeout=20s", check=False
    )
    assert rc != 0 and "exceeded its progress deadline" in out, out

    # Scaling mid-rollout spreads 20 + 25% surge over both in proportion: 15 and 10.
    await kubectl(kubeconfig, "scale", "deployment/stuck", "--replicas=20")
    await until(lambda: _eq(sizes(), [15, 10]), timeout=20, what="proportional sizes 15 and 10")

    # Undo: the old ReplicaSet takes all 20, the unschedulable one goes to 0.
    await kubectl(kubeconfig, "rollout", "undo", "deployment/stuck")
    await kubectl(kubeconfig, "rollout", "status", "deployment/stuck", "--timeout=60s")
    await until(rolled_out(client, "stuck"), what="the rollback")
    assert await sizes() == [0, 20]
    await remove(client, "stuck")


async def _eq(value: Any, want: Any) -> bool:
    return (await value) == want


async def test_restart_mid_rollout_creates_no_extra_pods(
    env: tuple[ApiClient, Monitor], kubeconfig: Path, managers: Managers
) -> None:
    client, monitor = env
    await client.create("deployments", deployment("survive", 20, strategy=rolling(2, 1)), NS)
    await until(rolled_out(client, "survive"), timeout=30, what="the first rollout")
    [old] = await replica_sets(client, "survive")
    created_old = len(monitor.created[old["metadata"]["uid"]])
    monitor.watch("survive")
    await kubectl(kubeconfig, "set", "image", "deployment/survive", "c=busybox:2")

    async def new_rs() -> dict[str, Any] | None:
        rss = await replica_sets(client, "survive")
        return rss[-1] if len(rss) == 2 else None

    new = await until(new_rs, what="the new ReplicaSet")
    uid = new["metadata"]["uid"]
    async with asyncio.timeout(20):  # kill once the rollout is under way, not done
        while len(monitor.created[uid]) < 3:
            await asyncio.sleep(0.005)
    managers.procs[-1].kill(signal.SIGKILL)
    at_kill = len(monitor.created[uid])
    assert at_kill < 20
    await asyncio.sleep(0.5)  # requests the dead process had in flight land now or never
    managers.start(CONTROLLERS)
    await until(rolled_out(client, "survive"), timeout=40, what="the rollout after the restart")
    await until(
        lambda: len([p for p in monitor.pods("survive") if _running(p)]) == 20,
        what="20 running pods",
    )
    assert len(monitor.created[uid]) == 20, f"{at_kill} new pods existed at the kill"
    assert len(monitor.created[old["metadata"]["uid"]]) == created_old
    assert monitor.max_running <= 22, f"{monitor.max_running} pods at once (max 20 + 2)"
    assert monitor.min_available >= 19, f"{monitor.min_available} available (min 20 - 1)"
    await remove(client, "survive")
