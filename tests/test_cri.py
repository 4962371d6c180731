"""Our CRI client against the real containerd + runc, with locally built images.

A pod sandbox (the catatonit "pause" image) on the host network, a busybox container
that writes to its CRI log, ExecSync into it, stop and removal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from runtime import containerd_available, start_containerd

from skiff.cri.client import CriClient, pb
from skiff.kubelet.images import BUSYBOX_NAME, PAUSE_NAME

pytestmark = pytest.mark.skipif(not containerd_available(), reason="containerd not installed")


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
