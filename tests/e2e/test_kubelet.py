"""The first kubelet: a pod bound to its node runs as a real container under containerd,
gets an IP from CNI, reports Running, and is torn down when deleted."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from runtime import CNI_PLUGINS, CONTAINERD, needs, start_containerd

from cluster import VENV_BIN, Cluster, Proc
from skiff.api.errors import ApiError
from skiff.client.rest import ApiClient
from skiff.cri.client import CriClient, pb
from skiff.kubelet.containerd_setup import (
    RuntimePaths,
    ensure_shared_netns_dir,
    teardown_network,
    write_cni_config,
)

BRIDGE = "skiffkl0"
NODE = "kl-node"

pytestmark = needs(*CONTAINERD, "iptables", paths=(CNI_PLUGINS / "bridge",))


class Node:
    """The test's real node: containerd and a kubelet process serving its HTTPS API."""

    def __init__(self, cluster: Cluster, client: ApiClient, cri: CriClient, base: Path) -> None:
        self.cluster, self.client, self.cri, self.base = cluster, client, cri, base
        self.proc: Proc | None = None
        self.containerd: Proc | None = None

    def start(self, pod_cidr: str | None = "10.244.251.0/24") -> None:
        args = [
            sys.executable, "-m", "skiff.kubelet",
            "--server", self.cluster.url,
            "--node-name", NODE,
            "--runtime-dir", str(self.base),
            *(("--pod-cidr", pod_cidr) if pod_cidr else ()),
            "--bridge", BRIDGE,
            "--network-name", "skiffkl",
            "--port", "0",
            "--lease-period", "1",
            "--pod-manifest-path", str(self.base / "manifests"),
            "--file-check-frequency", "0.5",
            "--node-status-update-frequency", "1",
            "--node-status-report-frequency", "2",
        ]  # fmt: skip
        self.proc = Proc("kubelet", args, self.base / "kubelet.log")
        self.proc.start()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()


@pytest.fixture(scope="module")
async def node(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    base = Path(tmp_path_factory.mktemp("kl"))
    ensure_shared_netns_dir()
    write_cni_config(RuntimePaths(base), "10.244.251.0/24", bridge=BRIDGE, name="skiffkl")
    paths, proc = start_containerd(base)
    n: Node | None = None
    try:
        async with ApiClient(cluster.url) as client, CriClient(paths.endpoint) as cri:
            n = Node(cluster, client, cri, base)
            n.containerd = proc
            n.start()
            try:
                yield n
            finally:
                if n.proc is not None:
                    n.proc.stop()
                with contextlib.suppress(ApiError):  # later tests must not see this node
                    await client.delete("nodes", NODE)
                for sb in await cri.list_pod_sandbox():
                    await cri.stop_pod_sandbox(sb.id)
                    await cri.remove_pod_sandbox(sb.id)
    finally:
        (n.containerd if n is not None and n.containerd else proc).stop()
        teardown_network(BRIDGE)


@pytest.fixture(scope="module")
def kubelet(node: Node) -> tuple[ApiClient, CriClient]:
    return node.client, node.cri


async def _until(pred, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = await pred()
        if value:
            return value
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.2)


async def test_node_registers(kubelet: tuple[ApiClient, CriClient]) -> None:
    client, _ = kubelet

    async def ready() -> bool:
        try:
            node = await client.get("nodes", NODE)
        except ApiError:
            return False
        return any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]
        )

    await _until(ready)
    node = await client.get("nodes", NODE)
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")

    async def lease() -> dict | None:  # the Lease follows the Node by one request
        try:
            return await client.get("leases.coordination.k8s.io", NODE, "kube-node-lease")
        except ApiError:
            return None

    assert await _until(lease)


async def test_pod_runs_and_is_torn_down(kubelet: tuple[ApiClient, CriClient]) -> None:
    client, cri = kubelet
    await client.create(
        "pods",
        {
            "metadata": {"name": "real"},
            "spec": {
                "nodeName": NODE,
                "terminationGracePeriodSeconds": 2,
                "containers": [
                    {
                        "name": "app",
                        "image": "busybox",
                        "command": ["sh", "-c", "echo started; exec sleep 3600"],
                    }
                ],
            },
        },
        "default",
    )

    async def running() -> dict | None:
        pod = await client.get("pods", "real", "default")
        status = pod.get("status") or {}
        return pod if status.get("phase") == "Running" and status.get("podIP") else None

    pod = await _until(running)
    assert pod["status"]["podIP"].startswith("10.244.251.")
    cs = pod["status"]["containerStatuses"][0]
    assert cs["ready"] is True and cs["containerID"].startswith("containerd://")
    # The container really runs: exec into it through CRI.
    cid = cs["containerID"].removeprefix("containerd://")
    result = await cri.exec_sync(cid, ["cat", "/proc/1/cmdline"], timeout=10)
    assert b"sleep" in result.stdout
    await client.delete("pods", "real", "default")

    async def gone() -> bool:
        items, _ = await client.list_all("pods", "default", field_selector="metadata.name=real")
        return not items

    await _until(gone)
    assert not await cri.list_pod_sandbox()


async def test_env_sources_resources_and_config_errors(
    kubelet: tuple[ApiClient, CriClient],
) -> None:
    client, cri = kubelet
    await client.create(
        "configmaps", {"metadata": {"name": "settings"}, "data": {"MODE": "fast"}}, "default"
    )
    web = await client.create(
        "services",
        {"metadata": {"name": "web-front"}, "spec": {"ports": [{"name": "http", "port": 80}]}},
        "default",
    )
    await client.create(
        "pods",
        {
            "metadata": {"name": "envy", "labels": {"app": "envy"}},
            "spec": {
                "nodeName": NODE,
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "app",
                        "image": "busybox",
                        "command": ["sleep", "$(NAP)"],  # expanded by the kubelet
                        "envFrom": [{"configMapRef": {"name": "settings"}}],
                        "env": [
                            {"name": "NAP", "value": "3600"},
                            {
                                "name": "ME",
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                            },
                            {
                                "name": "IP",
                                "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                            },
                        ],
                        "resources": {"limits": {"memory": "32Mi", "cpu": "250m"}},
                    }
                ],
            },
        },
        "default",
    )

    async def running() -> dict | None:
        pod = await client.get("pods", "envy", "default")
        return pod if (pod.get("status") or {}).get("phase") == "Running" else None

    pod = await _until(running)
    cid = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    out = (await cri.exec_sync(cid, ["env"], timeout=10)).stdout.decode()
    assert "MODE=fast" in out and "ME=envy" in out
    assert f"IP={pod['status']['podIP']}" in out
    # Service variables: this namespace's Services and the kubernetes Service.
    ip = web["spec"]["clusterIP"]
    assert f"WEB_FRONT_SERVICE_HOST={ip}" in out and "WEB_FRONT_SERVICE_PORT_HTTP=80" in out
    assert f"WEB_FRONT_PORT=tcp://{ip}:80" in out
    assert "KUBERNETES_SERVICE_HOST=10.96.0.1" in out
    await client.delete("services", "web-front", "default")
    # The memory and CPU limits reached the container's cgroup (v2 files, else v1's).
    script = (
        "if [ -f /sys/fs/cgroup/cpu.max ]; then cat /sys/fs/cgroup/memory.max "
        "/sys/fs/cgroup/cpu.max; else cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us; fi"
    )
    limits = await cri.exec_sync(cid, ["sh", "-c", script], timeout=10)
    assert limits.exit_code == 0, limits
    memory, quota, period = limits.stdout.split()
    assert int(memory) == 32 * 1024 * 1024
    assert int(quota) * 1000 // int(period) == 250  # 250m: a quarter of a core
    await client.delete("pods", "envy", "default")

    await client.create(
        "pods",
        {
            "metadata": {"name": "broken"},
            "spec": {
                "nodeName": NODE,
                "containers": [
                    {
                        "name": "app",
                        "image": "busybox",
                        "command": ["sleep", "3600"],
                        "env": [
                            {
                                "name": "X",
                                "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}},
                            }
                        ],
                    }
                ],
            },
        },
        "default",
    )

    async def config_error() -> dict | None:
        pod = await client.get("pods", "broken", "default")
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        waiting = statuses[0]["state"].get("waiting", {}) if statuses else {}
        return pod if waiting.get("reason") == "CreateContainerConfigError" else None

    pod = await _until(config_error)
    assert pod["status"]["phase"] == "Pending"
    assert (
        'configmap "absent" not found'
        in pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    )
    await client.delete("pods", "broken", "default", grace_period_seconds=0)


# -- acceptance: kubectl against pods on the real node ----------------------------------

KUBECTL = os.environ.get("KUBECTL", "kubectl")


async def kubectl(
    kubeconfig: Path,
    *args: str,
    input: str | None = None,
    check: bool = True,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """kubectl in a thread, so the test's event loop keeps serving its own clients."""
    proc = await asyncio.to_thread(
        subprocess.run,
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def busybox_pod(name: str, command: str, **spec: object) -> dict:
    container = {"name": "app", "image": "busybox", "command": ["sh", "-c", command]}
    container.update(spec.pop("container", {}))  # type: ignore[arg-type]
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 1,
            "containers": [container],
            **spec,
        },
    }


async def wait_pod(client: ApiClient, name: str, pred, timeout: float = 30.0) -> dict:  # type: ignore[no-untyped-def]
    async def check() -> dict | None:
        try:
            pod = await client.get("pods", name, "default")
        except ApiError:
            return None
        return pod if pred(pod) else None

    return await _until(check, timeout)


def _running(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def _container(pod: dict, index: int = 0) -> dict:
    return ((pod.get("status") or {}).get("containerStatuses") or [{}])[index]


async def test_kubectl_logs_and_exec(node: Node, kubeconfig: Path) -> None:
    overrides = json.dumps({"spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1}})
    await kubectl(
        kubeconfig, "run", "talker", "--image=busybox", "--restart=Never",
        f"--overrides={overrides}", "--", "sh", "-c",
        "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three; exec sleep 3600",
    )  # fmt: skip
    await wait_pod(node.client, "talker", _running)

    async def three_lines() -> list[str] | None:
        lines = (await kubectl(kubeconfig, "logs", "talker")).stdout.splitlines()
        return lines if len(lines) >= 3 else None

    assert await _until(three_lines, 10) == ["one", "two", "three"]
    assert (await kubectl(kubeconfig, "logs", "talker", "--tail=1")).stdout == "three\n"
    stamped = (await kubectl(kubeconfig, "logs", "talker", "--timestamps")).stdout.splitlines()
    assert stamped[0].endswith(" one") and stamped[0][:4].isdigit()
    # exec: output, exit codes, stdin.
    res = await kubectl(kubeconfig, "exec", "talker", "--", "cat", "/etc/hostname")
    assert res.stdout.strip() == "talker"
    res = await kubectl(kubeconfig, "exec", "talker", "--", "sh", "-c", "exit 7", check=False)
    assert res.returncode == 7
    res = await kubectl(kubeconfig, "exec", "-i", "talker", "--", "head", "-n1", input="hi\n")
    assert res.stdout == "hi\n"
    res = await kubectl(kubeconfig, "exec", "talker", "--", "no-such-binary", check=False)
    assert res.returncode != 0
    # An interactive session on a real terminal (script, from Debian's essential bsdutils).
    cmd = f"{KUBECTL} --kubeconfig {kubeconfig} exec -it talker -- sh -c 'tty; exit 4'"
    tty = await asyncio.to_thread(
        subprocess.run,
        ["script", "-qec", cmd, "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tty.returncode == 4 and "/dev/pts/" in tty.stdout, tty
    # follow a container to its end.
    await node.client.create(
        "pods",
        busybox_pod(
            "counter", "for i in 1 2 3; do echo $i; sleep 0.5; done", restartPolicy="Never"
        ),
        "default",
    )
    await wait_pod(
        node.client,
        "counter",
        lambda p: (
            _container(p).get("state", {}).get("running") or p["status"].get("phase") == "Succeeded"
        ),
    )
    res = await kubectl(kubeconfig, "logs", "-f", "counter")
    assert res.stdout.split() == ["1", "2", "3"]
    res = await kubectl(kubeconfig, "logs", "counter", "-c", "nope", check=False)
    assert res.returncode != 0 and "container nope is not valid" in res.stderr
    for name in ("talker", "counter"):
        await node.client.delete("pods", name, "default")


async def test_kubectl_run_interactive_attaches(node: Node, kubeconfig: Path) -> None:
    """``kubectl run -i --rm``: pods/attach relays the container's own stdin and stdout."""
    overrides = json.dumps({"spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1}})
    res = await kubectl(
        kubeconfig, "run", "reader", "-i", "--rm", "--restart=Never", "--image=busybox",
        f"--overrides={overrides}", "--", "sh", "-c", "read line; echo got:$line",
        input="hello\n", timeout=90,
    )  # fmt: skip
    assert "got:hello" in res.stdout, res
    assert 'pod "reader" deleted' in res.stdout + res.stderr

    async def gone() -> bool:
        try:
            await node.client.get("pods", "reader", "default")
        except ApiError as e:
            return e.code == 404
        return False

    await _until(gone, 30)


async def test_exec_stdin_end_reaches_the_container(
    node: Node, kubeconfig: Path, tmp_path: Path
) -> None:
    """The end of kubectl's stdin ends the container's (v5 close channel → SPDY FIN):
    ``exec -i`` with piped input, ``kubectl cp`` both ways, ``run -i`` with ``cat``."""
    await node.client.create("pods", busybox_pod("copier", "exec sleep 3600"), "default")
    await wait_pod(node.client, "copier", _running)
    res = await kubectl(kubeconfig, "exec", "-i", "copier", "--", "cat", input="hello\n")
    assert res.stdout == "hello\n"
    big = "".join(f"line {i:06d}\n" for i in range(30_000))  # 360 kB, past any window
    res = await kubectl(kubeconfig, "exec", "-i", "copier", "--", "wc", "-c", input=big)
    assert res.stdout.split() == [str(len(big))]
    res = await kubectl(
        kubeconfig, "exec", "-i", "copier", "--", "sh", "-c", "cat >/dev/null; exit 3",
        input="x\n", check=False,
    )  # fmt: skip
    assert res.returncode == 3, res

    local = tmp_path / "payload.txt"
    local.write_text(big)
    await kubectl(kubeconfig, "cp", str(local), "copier:/tmp/payload.txt")
    res = await kubectl(kubeconfig, "exec", "copier", "--", "md5sum", "/tmp/payload.txt")
    assert res.stdout.split()[0] == hashlib.md5(big.encode()).hexdigest()
    back = tmp_path / "back.txt"
    await kubectl(kubeconfig, "cp", "copier:/tmp/payload.txt", str(back))
    assert back.read_text() == big

    overrides = json.dumps({"spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1}})
    res = await kubectl(
        kubeconfig, "run", "catter", "-i", "--rm", "--restart=Never", "--image=busybox",
        f"--overrides={overrides}", "--", "cat", input="first\nsecond\n", timeout=90,
    )  # fmt: skip
    assert "first\nsecond\n" in res.stdout, res
    await node.client.delete("pods", "copier", "default")


async def test_port_forward_and_pod_to_pod(node: Node, kubeconfig: Path) -> None:
    client = node.client
    await client.create(
        "pods",
        busybox_pod(
            "web",
            "mkdir -p /www && echo hi-from-web > /www/index.html && exec httpd -f -p 8080 -h /www",
            container={"ports": [{"containerPort": 8080, "name": "http"}]},
        ),
        "default",
    )
    await client.create("pods", busybox_pod("peer", "exec sleep 3600"), "default")
    web = await wait_pod(client, "web", _running)
    await wait_pod(client, "peer", _running)
    # pod → pod by IP
    res = await kubectl(
        kubeconfig, "exec", "peer", "--", "timeout", "5", "wget", "-qO-",
        f"http://{web['status']['podIP']}:8080/",
    )  # fmt: skip
    assert res.stdout.strip() == "hi-from-web"
    # kubectl port-forward
    pf = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", str(kubeconfig), "port-forward", "pod/web", ":8080",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert pf.stdout is not None
        line = (await asyncio.wait_for(pf.stdout.readline(), 20)).decode()
        if "Forwarding from 127.0.0.1:" not in line:
            assert pf.stderr is not None
            raise AssertionError(f"port-forward: {line} {(await pf.stderr.read()).decode()}")
        port = int(line.split("127.0.0.1:")[1].split()[0])
        for _ in range(3):
            body = await asyncio.to_thread(
                lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
            )
            assert body == b"hi-from-web\n"
    finally:
        pf.terminate()
        await pf.wait()
    for name in ("web", "peer"):
        await client.delete("pods", name, "default")


async def test_probes_restarts_and_crash_loop(node: Node, kubeconfig: Path) -> None:
    client = node.client
    await client.create(
        "pods",
        busybox_pod(
            "flaky",
            "touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 3600",
            container={
                "livenessProbe": {
                    "exec": {"command": ["test", "-f", "/tmp/healthy"]},
                    "periodSeconds": 1,
                    "failureThreshold": 1,
                }
            },
        ),
        "default",
    )
    await client.create("pods", busybox_pod("crasher", "echo bye; exit 3"), "default")
    await client.create(
        "pods",
        busybox_pod(
            "gated",
            "exec sleep 3600",
            container={
                "readinessProbe": {
                    "exec": {"command": ["test", "-f", "/tmp/ready"]},
                    "periodSeconds": 1,
                    "failureThreshold": 1,
                }
            },
        ),
        "default",
    )
    flaky = await wait_pod(client, "flaky", lambda p: _container(p).get("restartCount", 0) >= 1)
    assert _container(flaky)["lastState"]["terminated"]["exitCode"] != 0

    def crash_looping(p: dict) -> bool:
        return _container(p).get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"

    crasher = await wait_pod(client, "crasher", crash_looping)
    cs = _container(crasher)
    assert cs["restartCount"] >= 1 and cs["lastState"]["terminated"]["exitCode"] == 3
    assert "back-off 10s restarting failed container=app" in cs["state"]["waiting"]["message"]
    previous = await kubectl(kubeconfig, "logs", "crasher", "--previous")
    assert previous.stdout == "bye\n"

    gated = await wait_pod(client, "gated", _running)
    conditions = {c["type"]: c["status"] for c in gated["status"]["conditions"]}
    assert conditions["Ready"] == "False" and not _container(gated)["ready"]
    cid = _container(gated)["containerID"].removeprefix("containerd://")
    await node.cri.exec_sync(cid, ["touch", "/tmp/ready"], timeout=5)
    await wait_pod(client, "gated", lambda p: _container(p).get("ready") is True)
    await node.cri.exec_sync(cid, ["rm", "/tmp/ready"], timeout=5)
    gated = await wait_pod(client, "gated", lambda p: _container(p).get("ready") is False)
    assert _container(gated)["restartCount"] == 0  # readiness never restarts
    events, _ = await client.list_all(
        "events", "default", field_selector="involvedObject.name=flaky"
    )
    assert any(e["reason"] == "Unhealthy" for e in events)
    for name in ("flaky", "crasher", "gated"):
        await client.delete("pods", name, "default")


async def test_memory_limit_oom_killed(node: Node) -> None:
    client = node.client
    await client.create(
        "pods",
        busybox_pod(
            "hog",
            "tail /dev/zero",
            restartPolicy="Never",
            container={"resources": {"limits": {"memory": "16Mi"}}},
        ),
        "default",
    )
    pod = await wait_pod(client, "hog", lambda p: p["status"].get("phase") == "Failed", 60)
    term = _container(pod)["state"]["terminated"]
    assert term["reason"] == "OOMKilled" and term["exitCode"] == 137
    await client.delete("pods", "hog", "default")


async def test_volumes_init_containers_and_updates(node: Node) -> None:
    client = node.client
    await client.create(
        "configmaps", {"metadata": {"name": "app-config"}, "data": {"mode": "fast"}}, "default"
    )
    await client.create(
        "secrets",
        {
            "metadata": {"name": "app-secret"},
            "data": {"password": base64.b64encode(b"s3cret").decode()},
        },
        "default",
    )
    pod = busybox_pod(
        "mounted",
        "exec sleep 3600",
        container={
            "env": [
                {
                    "name": "PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "password"}},
                }
            ],
            "volumeMounts": [
                {"name": "cfg", "mountPath": "/etc/cfg"},
                {"name": "sec", "mountPath": "/etc/sec"},
                {"name": "meta", "mountPath": "/etc/meta"},
                {"name": "work", "mountPath": "/work"},
                {"name": "mem", "mountPath": "/mem"},
            ],
        },
        initContainers=[
            {
                "name": "first",
                "image": "busybox",
                "command": ["sh", "-c", "echo first >> /work/order"],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}],
            },
            {
                "name": "second",
                "image": "busybox",
                "command": ["sh", "-c", "echo second >> /work/order"],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}],
            },
        ],
        volumes=[
            {"name": "cfg", "configMap": {"name": "app-config"}},
            {"name": "sec", "secret": {"secretName": "app-secret"}},
            {
                "name": "meta",
                "downwardAPI": {
                    "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
                },
            },
            {"name": "work", "emptyDir": {}},
            {"name": "mem", "emptyDir": {"medium": "Memory"}},
        ],
    )
    await client.create("pods", pod, "default")
    running = await wait_pod(client, "mounted", _running)
    assert [
        s["state"]["terminated"]["reason"] for s in running["status"]["initContainerStatuses"]
    ] == ["Completed", "Completed"]
    conditions = {c["type"]: c["status"] for c in running["status"]["conditions"]}
    assert conditions["Initialized"] == "True"
    cid = _container(running)["containerID"].removeprefix("containerd://")

    async def sh(cmd: str) -> str:
        res = await node.cri.exec_sync(cid, ["sh", "-c", cmd], timeout=10)
        return res.stdout.decode()

    assert await sh("cat /work/order") == "first\nsecond\n"
    assert await sh("cat /etc/cfg/mode") == "fast"
    assert await sh("cat /etc/sec/password") == "s3cret"
    assert await sh("echo $PASSWORD") == "s3cret\n"
    assert 'app="mounted"' in await sh("cat /etc/meta/labels")
    assert "tmpfs" in await sh("grep ' /mem ' /proc/mounts")
    assert "tmpfs" in await sh("grep ' /etc/sec ' /proc/mounts")  # secrets never touch disk
    write = await node.cri.exec_sync(cid, ["sh", "-c", "echo x > /etc/cfg/new"], timeout=10)
    assert write.exit_code != 0  # configMap volumes are read-only
    cm = await client.get("configmaps", "app-config", "default")
    cm["data"]["mode"] = "slow"
    await client.update("configmaps", cm)

    async def updated() -> bool:
        return await sh("cat /etc/cfg/mode") == "slow"

    await _until(updated, 40)
    await client.delete("pods", "mounted", "default")


async def test_image_pull_errors(node: Node) -> None:
    client = node.client
    pod = busybox_pod("ghost", "true")
    pod["spec"]["containers"][0]["image"] = "registry.invalid/nothing:1.0"
    await client.create("pods", pod, "default")

    def pull_failed(p: dict) -> bool:
        reason = _container(p).get("state", {}).get("waiting", {}).get("reason")
        return reason in ("ErrImagePull", "ImagePullBackOff")

    ghost = await wait_pod(client, "ghost", pull_failed)
    assert ghost["status"]["phase"] == "Pending"
    await client.delete("pods", "ghost", "default")


async def test_kubectl_debug_adds_an_ephemeral_container(node: Node, kubeconfig: Path) -> None:
    """``kubectl debug --target`` adds an ephemeral container through
    ``pods/ephemeralcontainers``; the kubelet starts it in the target's PID namespace (its
    ``ps`` sees the target's process) and reports it in ``ephemeralContainerStatuses``."""
    client = node.client
    await client.create("pods", busybox_pod("debuggee", "sleep 3601"), "default")
    try:
        await wait_pod(client, "debuggee", _running)
        out = await kubectl(
            kubeconfig, "debug", "debuggee", "--image=busybox", "--target=app",
            "--container=debugger", "--", "sh", "-c", "ps; sleep 3600",
        )  # fmt: skip
        assert 'Targeting container "app"' in out.stdout + out.stderr

        def debugger_running(p: dict) -> bool:
            statuses = (p.get("status") or {}).get("ephemeralContainerStatuses") or []
            return any(s["name"] == "debugger" and "running" in s["state"] for s in statuses)

        pod = await wait_pod(client, "debuggee", debugger_running)
        [ec] = pod["spec"]["ephemeralContainers"]
        assert ec["targetContainerName"] == "app"
        logs = await _until(
            lambda: _logs_with(kubeconfig, "debuggee", "debugger", "sleep 3601"), 20
        )
        assert "sleep 3601" in logs  # the target's process, seen from the debugger
        patched = await kubectl(
            kubeconfig, "get", "pod", "debuggee", "-o", "jsonpath={.status.phase}"
        )
        assert patched.stdout == "Running"
    finally:
        with contextlib.suppress(ApiError):
            await client.delete("pods", "debuggee", "default")


async def _logs_with(kubeconfig: Path, pod: str, container: str, text: str) -> str | None:
    out = await kubectl(kubeconfig, "logs", pod, "-c", container, check=False)
    return out.stdout if text in out.stdout else None


async def test_runtime_class_handler_reaches_containerd(node: Node) -> None:
    """A RuntimeClass's handler is what the kubelet asks containerd for: ``runc`` (the one
    Skiff's containerd configures) runs the pod, with the class's overhead admitted onto
    it; a handler containerd lacks fails the sandbox with containerd's own error."""
    client = node.client
    await client.create("runtimeclasses", {"metadata": {"name": "rc-runc"}, "handler": "runc",
                        "overhead": {"podFixed": {"cpu": "10m"}}})  # fmt: skip
    await client.create("runtimeclasses", {"metadata": {"name": "rc-none"}, "handler": "nosuch"})
    try:
        await client.create(
            "pods", busybox_pod("sandboxed", "sleep 3600", runtimeClassName="rc-runc"), "default"
        )
        pod = await wait_pod(client, "sandboxed", _running)
        assert pod["spec"]["overhead"] == {"cpu": "10m"}
        [sandbox] = [
            s
            for s in await node.cri.list_pod_sandbox()
            if s.metadata.name == "sandboxed" and s.state == pb.SANDBOX_READY
        ]
        assert sandbox.runtime_handler == "runc"

        await client.create(
            "pods", busybox_pod("unsupported", "true", runtimeClassName="rc-none"), "default"
        )

        async def failed() -> str | None:
            events, _ = await client.list_all(
                "events", "default", field_selector="involvedObject.name=unsupported"
            )
            return next(
                (e["message"] for e in events if e["reason"] == "FailedCreatePodSandBox"), None
            )

        message = await _until(failed, 30)
        assert "nosuch" in message, message
        with pytest.raises(ApiError) as e:
            await client.create(
                "pods", busybox_pod("classless", "true", runtimeClassName="rc-gone"), "default"
            )
        assert e.value.code == 403
        assert 'pod rejected: RuntimeClass "rc-gone" not found' in e.value.message
    finally:
        for name in ("sandboxed", "unsupported"):
            with contextlib.suppress(ApiError):
                await client.delete("pods", name, "default")
        for name in ("rc-runc", "rc-none"):
            await client.delete("runtimeclasses", name)


def _netns() -> set[str]:
    return set(os.listdir("/var/run/netns")) if os.path.isdir("/var/run/netns") else set()


async def test_claim_in_use_survives_its_delete(
    node: Node, kubeconfig: Path, tmp_path: Path
) -> None:
    """A claim that a running pod mounts stays Terminating after ``kubectl delete pvc``
    (``kubernetes.io/pvc-protection``) and its volume (reclaim policy Delete) stays Bound
    with the pod's data; once the pod is gone, the claim goes and the volume is deleted."""
    manager = Proc(
        "controller-manager-storage",
        [
            str(VENV_BIN / "skiff-controller-manager"),
            "--server", node.cluster.url, "--port", "0", "--leader-elect", "false",
            "--controllers", "persistentvolume-binder,pvc-protection,pv-protection",
        ],
        node.base / "controller-manager-storage.log",
    )  # fmt: skip
    manager.start()
    client = node.client
    try:
        await client.create(
            "persistentvolumes",
            {
                "metadata": {"name": "kept-pv"},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Delete",
                    "storageClassName": "",
                    "hostPath": {"path": str(tmp_path), "type": "Directory"},
                },
            },
        )
        await client.create(
            "persistentvolumeclaims",
            {
                "metadata": {"name": "kept"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "volumeName": "kept-pv",
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
            "default",
        )
        pod = busybox_pod(
            "claimant",
            "echo precious > /data/f; exec sleep 3600",
            container={"volumeMounts": [{"name": "d", "mountPath": "/data"}]},
            volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "kept"}}],
        )
        await client.create("pods", pod, "default")
        await wait_pod(client, "claimant", _running, timeout=60)
        claim = await client.get("persistentvolumeclaims", "kept", "default")
        assert claim["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
        assert claim["status"]["phase"] == "Bound"

        await kubectl(kubeconfig, "delete", "pvc", "kept", "--wait=false")
        res = await kubectl(kubeconfig, "get", "pvc", "kept", "--no-headers")
        assert res.stdout.split()[1] == "Terminating", res.stdout
        await asyncio.sleep(2)  # the protection controller has seen the delete by now
        claim = await client.get("persistentvolumeclaims", "kept", "default")
        assert claim["metadata"]["deletionTimestamp"]
        volume = await client.get("persistentvolumes", "kept-pv")
        assert volume["status"]["phase"] == "Bound"
        assert volume["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
        res = await kubectl(kubeconfig, "exec", "claimant", "--", "cat", "/data/f")
        assert res.stdout == "precious\n"

        await client.delete("pods", "claimant", "default")

        async def released() -> bool:
            for res_, name, ns in (
                ("persistentvolumeclaims", "kept", "default"),
                ("persistentvolumes", "kept-pv", None),
            ):
                try:
                    await client.get(res_, name, ns)
                    return False
                except ApiError as e:
                    assert e.code == 404
            return True

        await _until(released, 60)
        assert (tmp_path / "f").read_text() == "precious\n"  # Delete removes the object only
    finally:
        manager.stop()


async def test_delete_leaves_nothing_behind(node: Node) -> None:
    client = node.client
    before = _netns()
    await client.create("pods", busybox_pod("tidy", "exec sleep 3600"), "default")
    pod = await wait_pod(client, "tidy", _running)
    uid = pod["metadata"]["uid"]
    ipam = node.base / "cni" / "ipam" / "skiffkl" / pod["status"]["podIP"]
    assert ipam.exists()
    assert len(_netns() - before) == 1
    await client.delete("pods", "tidy", "default")

    async def gone() -> bool:
        items, _ = await client.list_all("pods", "default", field_selector="metadata.name=tidy")
        return not items

    await _until(gone)
    assert not await node.cri.list_pod_sandbox(label_selector={"io.kubernetes.pod.uid": uid})
    assert not await node.cri.list_containers(label_selector={"io.kubernetes.pod.uid": uid})
    assert not ipam.exists()
    assert not (_netns() - before)
    assert not (node.base / "kubelet" / "pods" / uid).exists()


async def test_kubelet_restart_adopts_running_pods(node: Node) -> None:
    client = node.client
    await client.create("pods", busybox_pod("steady", "exec sleep 3600"), "default")
    before = _container(await wait_pod(client, "steady", _running))
    node.kill()
    await asyncio.sleep(1)
    node.start()
    await asyncio.sleep(4)  # a few sync rounds of the new kubelet
    await client.create("pods", busybox_pod("after", "exec sleep 3600"), "default")
    await wait_pod(client, "after", _running)
    now = _container(await client.get("pods", "steady", "default"))
    assert now["containerID"] == before["containerID"]
    assert now["restartCount"] == 0
    assert now["state"]["running"]["startedAt"] == before["state"]["running"]["startedAt"]
    containers = await node.cri.list_containers(
        label_selector={"io.kubernetes.container.name": "app"}
    )
    assert (
        len(
            [
                c
                for c in containers
                if c.labels.get("io.kubernetes.pod.uid")
                == (await client.get("pods", "steady", "default"))["metadata"]["uid"]
            ]
        )
        == 1
    )
    for name in ("steady", "after"):
        await client.delete("pods", name, "default")


def _ready(node: dict) -> tuple[str, str]:
    cond = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    return cond["status"], cond.get("message", "")


async def test_no_pod_starts_before_the_node_has_its_pod_cidr(node: Node) -> None:
    """A kubelet without ``--pod-cidr`` waits for ``spec.podCIDR`` (node IPAM's): the node
    is not Ready and a pod bound to it gets no sandbox, so no address from a range that is
    not the node's, until the CIDR is there; then it runs with an address inside it."""
    client = node.client
    node.kill()
    await asyncio.sleep(0.5)
    await client.delete("nodes", NODE)  # a new node: no podCIDR yet
    node.start(pod_cidr=None)
    try:

        async def waiting() -> bool:
            with contextlib.suppress(ApiError):
                status, message = _ready(await client.get("nodes", NODE))
                return status == "False" and "NetworkReady=false" in message
            return False

        await _until(waiting)
        await client.create("pods", busybox_pod("early", "exec sleep 3600"), "default")

        async def warned() -> bool:
            events, _ = await client.list_all(
                "events", "default", field_selector="involvedObject.name=early"
            )
            return any(e["reason"] == "NetworkNotReady" for e in events)

        await _until(warned)
        pod = await client.get("pods", "early", "default")
        assert not pod["status"].get("podIP")
        assert not await node.cri.list_pod_sandbox(
            label_selector={"io.kubernetes.pod.uid": pod["metadata"]["uid"]}
        )
        # The node IPAM controller's part, by hand.
        await client.patch("nodes", NODE, {"spec": {"podCIDR": "10.244.251.0/24"}})
        pod = await wait_pod(client, "early", _running)
        assert pod["status"]["podIP"].startswith("10.244.251.")
        assert _ready(await client.get("nodes", NODE))[0] == "True"
        await client.delete("pods", "early", "default")
    finally:
        node.kill()
        await asyncio.sleep(0.5)
        node.start()


async def test_containerd_restart_keeps_pods(node: Node) -> None:
    client = node.client
    await client.create("pods", busybox_pod("survivor", "exec sleep 3600"), "default")
    before = _container(await wait_pod(client, "survivor", _running))
    assert node.containerd is not None
    node.containerd.kill()  # SIGKILL: the shims and containers live on
    _, node.containerd = start_containerd(node.base)
    await client.create("pods", busybox_pod("newcomer", "exec sleep 3600"), "default")
    await wait_pod(client, "newcomer", _running, 60)
    now = _container(await client.get("pods", "survivor", "default"))
    assert now["containerID"] == before["containerID"] and now["restartCount"] == 0
    assert "running" in now["state"]
    for name in ("survivor", "newcomer"):
        await client.delete("pods", name, "default")


async def test_graceful_termination_runs_pre_stop_then_sigterm(node: Node, tmp_path: Path) -> None:
    client = node.client
    pod = busybox_pod(
        "polite",
        "trap 'echo term >> /host/log; exit 0' TERM; while true; do sleep 0.2; done",
        container={
            "volumeMounts": [{"name": "host", "mountPath": "/host"}],
            "lifecycle": {
                "preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /host/log"]}}
            },
        },
        volumes=[{"name": "host", "hostPath": {"path": str(tmp_path), "type": "Directory"}}],
    )
    pod["spec"]["terminationGracePeriodSeconds"] = 20
    await client.create("pods", pod, "default")
    await wait_pod(client, "polite", _running)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await client.delete("pods", "polite", "default")

    async def gone() -> bool:
        items, _ = await client.list_all("pods", "default", field_selector="metadata.name=polite")
        return not items

    await _until(gone)
    assert loop.time() - started < 15  # the container left on SIGTERM, not at the deadline
    assert (tmp_path / "log").read_text().split() == ["prestop", "term"]


async def test_static_pod_is_mirrored(node: Node) -> None:
    client = node.client
    manifests = node.base / "manifests"
    manifests.mkdir(exist_ok=True)
    (manifests / "static-web.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\n"
        "spec:\n  terminationGracePeriodSeconds: 1\n  containers:\n"
        "  - name: web\n    image: busybox\n    command: [sleep, '3600']\n"
    )
    name = f"static-web-{NODE}"
    mirror = await wait_pod(client, name, _running)
    annotations = mirror["metadata"]["annotations"]
    assert annotations["kubernetes.io/config.source"] == "file"
    assert annotations["kubernetes.io/config.mirror"] == annotations["kubernetes.io/config.hash"]
    assert mirror["metadata"]["ownerReferences"][0]["kind"] == "Node"
    uid = annotations["kubernetes.io/config.hash"]
    assert await node.cri.list_containers(label_selector={"io.kubernetes.pod.uid": uid})
    # Deleting the mirror pod does not stop the static pod; the mirror comes back.
    await client.delete("pods", name, "default")
    again = await wait_pod(
        client, name, lambda p: p["metadata"]["uid"] != mirror["metadata"]["uid"] and _running(p)
    )
    assert _container(again)["containerID"] == _container(mirror)["containerID"]
    # Removing the manifest stops the pod and removes its mirror.
    (manifests / "static-web.yaml").unlink()

    async def gone() -> bool:
        items, _ = await client.list_all("pods", "default", field_selector=f"metadata.name={name}")
        running = await node.cri.list_pod_sandbox(label_selector={"io.kubernetes.pod.uid": uid})
        return not items and not running

    await _until(gone)


async def test_node_status_heartbeat(node: Node) -> None:
    """The real kubelet renews its Lease and reports its status again when nothing changed."""
    first = await node.client.get("nodes", NODE)
    beat = {c["type"]: c["lastHeartbeatTime"] for c in first["status"]["conditions"]}
    assert set(beat) == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
    addresses = {a["type"]: a["address"] for a in first["status"]["addresses"]}
    assert addresses["InternalIP"] == "127.0.0.1"
    assert first["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
    lease = await node.client.get("leases.coordination.k8s.io", NODE, "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == NODE

    async def renewed() -> dict | None:
        again = await node.client.get("leases.coordination.k8s.io", NODE, "kube-node-lease")
        return again if again["spec"]["renewTime"] > lease["spec"]["renewTime"] else None

    await _until(renewed, 10)  # --lease-period 1

    async def reported() -> dict | None:
        node_now = await node.client.get("nodes", NODE)
        ready = next(c for c in node_now["status"]["conditions"] if c["type"] == "Ready")
        return node_now if ready["lastHeartbeatTime"] > beat["Ready"] else None

    later = await _until(reported, 15)  # --node-status-report-frequency 2 (whole seconds)
    ready = next(c for c in later["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert ready["lastTransitionTime"] <= beat["Ready"]  # a heartbeat, not a transition


async def test_python_client_exec_stream(node: Node, kubeconfig: Path) -> None:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.stream import stream

    await node.client.create("pods", busybox_pod("streamer", "exec sleep 3600"), "default")
    await wait_pod(node.client, "streamer", _running)

    def run() -> str:
        api_client = k8s_config.new_client_from_config(str(kubeconfig))
        api = k8s.CoreV1Api(api_client)
        return stream(
            api.connect_get_namespaced_pod_exec,
            "streamer",
            "default",
            command=["sh", "-c", "echo out; echo err >&2"],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
        )

    out = await asyncio.to_thread(run)
    assert "out" in out
    await node.client.delete("pods", "streamer", "default")


@contextlib.contextmanager
def control_plane(node: Node, controllers: str) -> Iterator[None]:
    """The scheduler and a controller manager running ``controllers`` for the node."""
    scheduler = node.cluster.start_scheduler("--leader-elect", "false")
    manager = Proc(
        "controller-manager-e2e",
        [
            str(VENV_BIN / "skiff-controller-manager"),
            "--server", node.cluster.url, "--port", "0", "--leader-elect", "false",
            "--controllers", controllers,
        ],
        node.base / "controller-manager.log",
    )  # fmt: skip
    manager.start()
    try:
        yield
    finally:
        manager.stop()
        scheduler.stop()


async def test_deployment_end_to_end(node: Node, kubeconfig: Path) -> None:
    """Scheduler + controller manager + the real kubelet: a 3-replica Deployment becomes
    Available and a rolling update of its image completes."""
    with control_plane(node, "deployment,replicaset,garbagecollector"):
        manifest = (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: e2e\nspec:\n"
            "  replicas: 3\n  selector:\n    matchLabels: {app: e2e}\n"
            "  strategy:\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n"
            "  template:\n    metadata:\n      labels: {app: e2e}\n    spec:\n"
            # Other modules leave simulated Nodes behind in this shared cluster.
            f"      nodeSelector: {{kubernetes.io/hostname: {NODE}}}\n"
            "      terminationGracePeriodSeconds: 1\n      containers:\n"
            "      - name: app\n        image: busybox\n        command: [sleep, '3600']\n"
            "        readinessProbe:\n          exec: {command: ['true']}\n"
            "          periodSeconds: 1\n"
        )
        await kubectl(kubeconfig, "apply", "-f", "-", input=manifest)
        await kubectl(
            kubeconfig, "rollout", "status", "deployment/e2e", "--timeout=90s", timeout=100
        )
        await kubectl(
            kubeconfig, "set", "image", "deployment/e2e", "app=docker.io/library/busybox:latest"
        )
        await kubectl(
            kubeconfig, "rollout", "status", "deployment/e2e", "--timeout=120s", timeout=130
        )
        dep = await node.client.get("deployments", "e2e", "default")
        assert dep["status"]["availableReplicas"] == 3 and dep["status"]["updatedReplicas"] == 3
        pods, _ = await node.client.list_all("pods", "default", label_selector="app=e2e")
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        assert len(live) == 3
        assert all(_container(p)["image"] == "docker.io/library/busybox:latest" for p in live)
        assert all(_running(p) and p["status"]["podIP"] for p in live)
        await kubectl(kubeconfig, "delete", "deployment", "e2e", "--wait=true")

        async def pods_gone() -> bool:
            items, _ = await node.client.list_all("pods", "default", label_selector="app=e2e")
            return not items

        await _until(pods_gone, 60)  # the garbage collector removed the ReplicaSets' pods


async def test_kubectl_drain_honours_a_disruption_budget(node: Node, kubeconfig: Path) -> None:
    """``kubectl drain`` against a Deployment of 2 with a PodDisruptionBudget of
    minAvailable 1: the node is cordoned, one pod is evicted, the other is refused (429,
    retried by kubectl) while its replacement cannot run; once the node takes pods again
    the replacement becomes ready, the budget allows one more disruption, and the drain
    completes."""
    with control_plane(node, "deployment,replicaset,disruption,garbagecollector"):
        try:
            manifest = (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: drained\nspec:\n"
                "  replicas: 2\n  selector:\n    matchLabels: {app: drained}\n"
                "  template:\n    metadata:\n      labels: {app: drained}\n    spec:\n"
                f"      nodeSelector: {{kubernetes.io/hostname: {NODE}}}\n"
                "      terminationGracePeriodSeconds: 1\n      containers:\n"
                "      - name: app\n        image: busybox\n        command: [sleep, '3600']\n"
                "        readinessProbe:\n          exec: {command: ['true']}\n"
                "          periodSeconds: 1\n"
                "---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n"
                "  name: drained\nspec:\n  minAvailable: 1\n"
                "  selector:\n    matchLabels: {app: drained}\n"
            )
            await kubectl(kubeconfig, "apply", "-f", "-", input=manifest)
            await kubectl(
                kubeconfig, "rollout", "status", "deployment/drained", "--timeout=90s", timeout=100
            )

            async def allowed(n: int) -> bool:
                pdb = await node.client.get("poddisruptionbudgets", "drained", "default")
                return (pdb.get("status") or {}).get("disruptionsAllowed") == n

            await _until(lambda: allowed(1), 30)
            table = (await kubectl(kubeconfig, "get", "pdb", "drained")).stdout.split()
            assert table[:8] == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED",
                                 "DISRUPTIONS", "AGE"]  # fmt: skip
            assert table[8:12] == ["drained", "1", "N/A", "1"]

            drain = asyncio.create_task(
                kubectl(kubeconfig, "drain", NODE, "--ignore-daemonsets", "--force",
                        "--delete-emptydir-data", "--timeout=150s", check=False, timeout=170)
            )  # fmt: skip

            async def one_left_and_one_pending() -> bool:
                pods, _ = await node.client.list_all(
                    "pods", "default", label_selector="app=drained"
                )
                live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
                running = [p for p in live if p["spec"].get("nodeName") and _running(p)]
                pending = [p for p in live if not p["spec"].get("nodeName")]
                return len(running) == 1 and len(pending) == 1

            try:
                await _until(one_left_and_one_pending, 60)
                assert (await node.client.get("nodes", NODE))["spec"].get("unschedulable") is True
                await asyncio.sleep(6)  # at least one refused eviction, retried every 5 s
                assert await one_left_and_one_pending()
                assert await allowed(0)
            finally:
                await kubectl(kubeconfig, "uncordon", NODE)
            result = await drain
            assert result.returncode == 0, result.stdout + result.stderr
            assert (
                "Cannot evict pod as it would violate the pod's disruption budget." in result.stderr
            )
            assert "will retry after 5s" in result.stderr
            assert f"node/{NODE} cordoned" in result.stdout
            assert f"node/{NODE} drained" in result.stdout
            assert result.stdout.count("evicted") >= 2
            await kubectl(
                kubeconfig, "rollout", "status", "deployment/drained", "--timeout=90s", timeout=100
            )
        finally:
            await kubectl(kubeconfig, "uncordon", NODE, check=False)
            await kubectl(kubeconfig, "delete", "deployment,pdb", "drained", "--wait=false",
                          check=False)  # fmt: skip


async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def test_static_pods_run_before_the_api_answers(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A kubelet whose API does not answer yet still runs its static pods (kubeadm's control
    plane is such pods); once the API answers it registers and mirrors them."""
    base = Path(tmp_path_factory.mktemp("kl-standalone"))
    (base / "manifests").mkdir()
    (base / "manifests" / "early.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: early\n"
        "spec:\n  hostNetwork: true\n  terminationGracePeriodSeconds: 1\n  containers:\n"
        "  - name: c\n    image: busybox\n    command: [sleep, '3600']\n"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here until the gate opens
    paths, containerd = start_containerd(base)
    name = "kl-standalone"
    kubelet = Proc("kubelet", [
        sys.executable, "-m", "skiff.kubelet", "--server", f"http://127.0.0.1:{port}",
        "--node-name", name, "--runtime-dir", str(base), "--port", "0",
        "--bridge", "skiffkl1", "--network-name", "skiffkl1", "--lease-period", "1",
        "--pod-manifest-path", str(base / "manifests"), "--file-check-frequency", "0.5",
    ], base / "kubelet.log")  # fmt: skip
    gate = None
    try:
        async with ApiClient(cluster.url) as client, CriClient(paths.endpoint) as cri:
            try:
                kubelet.start()

                async def running() -> bool:
                    found = await cri.list_containers()
                    return any(c.metadata.name == "c" and c.state == 1 for c in found)

                await _until(running, timeout=60)
                with pytest.raises(ApiError):
                    await client.get("nodes", name)  # not registered: no API to tell
                host, api_port = cluster.url.removeprefix("http://").split(":")

                async def relay(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                    ur, uw = await asyncio.open_connection(host, int(api_port))
                    await asyncio.gather(_forward(r, uw), _forward(ur, w))

                gate = await asyncio.start_server(relay, "127.0.0.1", port)
                mirror = await wait_pod(client, f"early-{name}", _running, timeout=60)
                assert mirror["metadata"]["ownerReferences"][0]["name"] == name
                found = await cri.list_containers()
                assert [c.metadata.attempt for c in found if c.metadata.name == "c"] == [0]
            finally:
                kubelet.stop()
                with contextlib.suppress(ApiError):
                    await client.delete("nodes", name)
                with contextlib.suppress(ApiError):
                    await client.delete("pods", f"early-{name}", "default")
                for sb in await cri.list_pod_sandbox():
                    await cri.stop_pod_sandbox(sb.id)
                    await cri.remove_pod_sandbox(sb.id)
    finally:
        kubelet.stop()
        if gate is not None:
            gate.close()
        containerd.stop()
        teardown_network("skiffkl1")
