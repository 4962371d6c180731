"""Our CRI client against the real containerd + runc, with locally built images.

A pod sandbox (the catatonit "pause" image) on the host network, a busybox container
that writes to its CRI log, ExecSync into it, stop and removal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from runtime import CONTAINERD, needs, start_containerd

from skiff.cri.client import CriClient, pb
from skiff.kubelet.containerd_setup import DOWN_GRACE_SECONDS, remove_sandboxes
from skiff.kubelet.local_images import BUSYBOX_NAME, PAUSE_NAME

pytestmark = needs(*CONTAINERD)


@pytest.fixture(scope="module")
async def cri(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CriClient]:
    # A short path: unix socket paths are limited to 108 bytes.
    base = Path(tmp_path_factory.mktemp("ctd"))
    paths, proc = start_containerd(base)
    try:
        async with CriClient(paths.endpoint) as client:
            yield client
            for sb in await client.list_pod_sandbox():
                await client.stop_pod_sandbox(sb.id)
                await client.remove_pod_sandbox(sb.id)
    finally:
        proc.stop()


async def test_version_and_images(cri: CriClient) -> None:
    v = await cri.version()
    assert v.runtime_name == "containerd" and v.runtime_api_version == "v1"
    names = {t for img in await cri.list_images() for t in img.repo_tags}
    assert {BUSYBOX_NAME, PAUSE_NAME} <= names
    assert await cri.image_status("busybox") is not None


async def test_pod_lifecycle(cri: CriClient, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    sandbox_config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(
            name="cri-test", namespace="default", uid="uid-1", attempt=0
        ),
        log_directory=str(logs),
        labels={"io.kubernetes.pod.name": "cri-test"},
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE)
            )
        ),
    )
    sandbox = await cri.run_pod_sandbox(sandbox_config)
    status = await cri.pod_sandbox_status(sandbox)
    assert status.status.state == pb.SANDBOX_READY
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="app", attempt=0),
        image=pb.ImageSpec(image="busybox"),
        command=["sh", "-c", "echo hello from skiff; exec sleep 3600"],
        envs=[pb.KeyValue(key="GREETING", value="hi")],
        log_path="app/0.log",
        linux=pb.LinuxContainerConfig(
            resources=pb.LinuxContainerResources(
                memory_limit_in_bytes=64 * 1024 * 1024, cpu_period=100000, cpu_quota=50000
            )
        ),
    )
    container = await cri.create_container(sandbox, config, sandbox_config)
    await cri.start_container(container)
    log = logs / "app" / "0.log"
    for _ in range(50):
        if log.exists() and "hello from skiff" in log.read_text():
            break
        await asyncio.sleep(0.1)
    line = log.read_text().splitlines()[0]
    # CRI log format: <RFC3339Nano> <stream> <P|F> <message>
    assert line.split(" ", 3)[1:] == ["stdout", "F", "hello from skiff"]
    result = await cri.exec_sync(container, ["sh", "-c", "echo $GREETING; exit 3"], timeout=10)
    assert result.exit_code == 3 and result.stdout == b"hi\n"
    st = await cri.container_status(container)
    assert st.status.state == pb.CONTAINER_RUNNING
    await cri.stop_container(container, grace_period=2)
    st = await cri.container_status(container)
    assert st.status.state == pb.CONTAINER_EXITED
    await cri.remove_container(container)
    await cri.stop_pod_sandbox(sandbox)
    await cri.remove_pod_sandbox(sandbox)
    assert not [s for s in await cri.list_pod_sandbox() if s.id == sandbox]


class _Recording:
    """The real client, noting when each StopContainer ran and with which grace period."""

    def __init__(self, cri: CriClient) -> None:
        self.cri = cri
        self.stops: list[tuple[float, float, int]] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.cri, name)

    async def stop_container(self, container_id: str, grace_period: int) -> None:
        start = time.monotonic()
        await self.cri.stop_container(container_id, grace_period=grace_period)
        self.stops.append((start, time.monotonic(), grace_period))


async def test_down_stops_every_pod_at_once_with_a_short_grace(
    cri: CriClient, tmp_path: Path
) -> None:
    """``make down`` (runtime cleanup): containers that ignore SIGTERM are stopped all
    together with the short grace period, not one after another with the pod's."""
    for i in range(3):
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=f"down-{i}", namespace="default", uid=f"d{i}"),
            log_directory=str(tmp_path),
            linux=pb.LinuxPodSandboxConfig(
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(network=pb.NODE)
                )
            ),
        )
        sandbox = await cri.run_pod_sandbox(config)
        container = await cri.create_container(
            sandbox,
            pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name="stubborn", attempt=0),
                image=pb.ImageSpec(image="busybox"),
                command=["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
                log_path=f"down-{i}.log",
            ),
            config,
        )
        await cri.start_container(container)
    recording = _Recording(cri)
    await remove_sandboxes(recording, await cri.list_pod_sandbox(), grace=DOWN_GRACE_SECONDS)
    assert await cri.list_pod_sandbox() == []
    assert len(recording.stops) == 3
    assert {grace for _, _, grace in recording.stops} == {DOWN_GRACE_SECONDS} == {1}
    # All three waited out their grace period at the same time.
    assert max(start for start, _, _ in recording.stops) < min(end for _, end, _ in recording.stops)
