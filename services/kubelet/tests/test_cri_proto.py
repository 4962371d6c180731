"""CRI v1 protobuf subset and CriClient, tested without containerd."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc import aio

from skiff.cri.client import CriClient, CriError, ExecResult
from skiff.cri.v1 import api_pb2 as pb
from skiff.cri.v1 import api_pb2_grpc as pb_grpc

# ----------------------------------------------------------------- messages


def _sandbox_config() -> pb.PodSandboxConfig:
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="web", uid="u-1", namespace="default", attempt=1),
        hostname="web",
        log_directory="/var/log/pods/default_web_u-1",
        dns_config=pb.DNSConfig(servers=["10.96.0.10"], searches=["svc.cluster.local"]),
        port_mappings=[
            pb.PortMapping(protocol=pb.UDP, container_port=53, host_port=5353, host_ip="0.0.0.0")
        ],
        labels={"io.kubernetes.pod.name": "web"},
        annotations={"a": "b"},
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent="/kubepods/besteffort/podu-1",
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER),
                run_as_user=pb.Int64Value(value=0),
                supplemental_groups=[1000],
                seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault),
            ),
            sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
            overhead=pb.LinuxContainerResources(cpu_shares=2),
            resources=pb.LinuxContainerResources(memory_limit_in_bytes=1 << 30),
        ),
    )


def _container_config() -> pb.ContainerConfig:
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="app", attempt=0),
        image=pb.ImageSpec(image="docker.io/library/busybox:1.36"),
        command=["sh", "-c"],
        args=["sleep 3600"],
        working_dir="/",
        envs=[pb.KeyValue(key="A", value="1")],
        mounts=[
            pb.Mount(
                container_path="/data",
                host_path="/var/lib/skiff/pods/u-1/volumes/data",
                readonly=True,
                propagation=pb.PROPAGATION_HOST_TO_CONTAINER,
            )
        ],
        devices=[pb.Device(container_path="/dev/fuse", host_path="/dev/fuse", permissions="rwm")],
        log_path="app/0.log",
        stdin=True,
        tty=True,
        linux=pb.LinuxContainerConfig(
            resources=pb.LinuxContainerResources(
                cpu_period=100000,
                cpu_quota=50000,
                cpu_shares=512,
                memory_limit_in_bytes=64 << 20,
                oom_score_adj=1000,
                cpuset_cpus="0-1",
                hugepage_limits=[pb.HugepageLimit(page_size="2MB", limit=0)],
                unified={"memory.high": "60000000"},
                memory_swap_limit_in_bytes=64 << 20,
            ),
            security_context=pb.LinuxContainerSecurityContext(
                capabilities=pb.Capability(
                    add_capabilities=["NET_ADMIN"], drop_capabilities=["ALL"]
                ),
                privileged=False,
                run_as_user=pb.Int64Value(value=1000),
                run_as_group=pb.Int64Value(value=1000),
                readonly_rootfs=True,
                no_new_privs=True,
                masked_paths=["/proc/kcore"],
                readonly_paths=["/proc/sys"],
                apparmor=pb.SecurityProfile(
                    profile_type=pb.SecurityProfile.Localhost, localhost_ref="k8s-default"
                ),
            ),
        ),
    )


@pytest.mark.parametrize(
    "msg",
    [
        pb.RunPodSandboxRequest(config=_sandbox_config(), runtime_handler="runc"),
        pb.CreateContainerRequest(
            pod_sandbox_id="s1", config=_container_config(), sandbox_config=_sandbox_config()
        ),
        pb.ExecSyncRequest(container_id="c1", cmd=["true"], timeout=5),
        pb.ListContainersRequest(
            filter=pb.ContainerFilter(
                pod_sandbox_id="s1",
                state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING),
                label_selector={"k": "v"},
            )
        ),
        pb.PullImageRequest(
            image=pb.ImageSpec(image="busybox"),
            auth=pb.AuthConfig(username="u", password="p"),
            sandbox_config=_sandbox_config(),
        ),
        pb.UpdateContainerResourcesRequest(
            container_id="c1", linux=pb.LinuxContainerResources(cpu_quota=1000)
        ),
    ],
    ids=lambda m: type(m).__name__,
)
def test_round_trip(msg) -> None:
    data = msg.SerializeToString()
    back = type(msg).FromString(data)
    assert back == msg
    assert back.SerializeToString(deterministic=True) == msg.SerializeToString(deterministic=True)


def test_wire_numbers_match_spec() -> None:
    """Spot-check field numbers that are out of order in the specification."""
    fields = pb.LinuxContainerSecurityContext.DESCRIPTOR.fields_by_name
    assert fields["run_as_group"].number == 12
    assert fields["seccomp"].number == 15
    assert fields["supplemental_groups_policy"].number == 17
    assert pb.LinuxSandboxSecurityContext.DESCRIPTOR.fields_by_name["run_as_group"].number == 8
    assert pb.ImageSpec.DESCRIPTOR.fields_by_name["user_specified_image"].number == 18
    assert pb.ContainerConfig.DESCRIPTOR.fields_by_name["CDI_devices"].number == 17
    assert pb.Namespace.DESCRIPTOR.fields_by_name["options"].number == 2
    # An int64 "timeout" with value 5 encodes as tag (3 << 3 | 0) = 0x18, then 5.
    assert pb.ExecSyncRequest(timeout=5).SerializeToString() == b"\x18\x05"


def test_service_full_names() -> None:
    services = pb.DESCRIPTOR.services_by_name
    assert services["RuntimeService"].full_name == "runtime.v1.RuntimeService"
    assert services["ImageService"].full_name == "runtime.v1.ImageService"
    runtime_methods = {m.name for m in services["RuntimeService"].methods}
    assert {
        "Version",
        "RunPodSandbox",
        "StopPodSandbox",
        "RemovePodSandbox",
        "PodSandboxStatus",
        "ListPodSandbox",
        "CreateContainer",
        "StartContainer",
        "StopContainer",
        "RemoveContainer",
        "ListContainers",
        "ContainerStatus",
        "ExecSync",
        "Exec",
        "Attach",
        "PortForward",
        "UpdateContainerResources",
        "ReopenContainerLog",
        "Status",
    } == runtime_methods
    assert {m.name for m in services["ImageService"].methods} == {
        "ListImages",
        "ImageStatus",
        "PullImage",
        "RemoveImage",
        "ImageFsInfo",
    }


def test_stub_paths() -> None:
    """The generated stubs dial the paths containerd serves."""
    seen: list[str] = []

    class _Chan:
        def unary_unary(self, path: str, *args: object, **kwargs: object) -> None:
            seen.append(path)

    pb_grpc.RuntimeServiceStub(_Chan())  # type: ignore[arg-type]
    pb_grpc.ImageServiceStub(_Chan())  # type: ignore[arg-type]
    assert "/runtime.v1.RuntimeService/RunPodSandbox" in seen
    assert "/runtime.v1.RuntimeService/ExecSync" in seen
    assert "/runtime.v1.ImageService/PullImage" in seen
    assert len(seen) == 24


# -------------------------------------------------------------- fake server


class _FakeRuntime(pb_grpc.RuntimeServiceServicer):
    async def Version(self, request, context):
        return pb.VersionResponse(
            version=request.version, runtime_name="fake", runtime_api_version="v1"
        )

    async def RunPodSandbox(self, request, context):
        return pb.RunPodSandboxResponse(pod_sandbox_id="sb-" + request.config.metadata.uid)

    async def RemovePodSandbox(self, request, context):
        await context.abort(grpc.StatusCode.NOT_FOUND, f"sandbox {request.pod_sandbox_id!r}")

    async def ExecSync(self, request, context):
        return pb.ExecSyncResponse(
            exit_code=len(request.cmd), stdout=" ".join(request.cmd).encode(), stderr=b"err"
        )

    async def ListContainers(self, request, context):
        f = request.filter
        return pb.ListContainersResponse(
            containers=[
                pb.Container(
                    id="c1",
                    pod_sandbox_id=f.pod_sandbox_id,
                    state=f.state.state,
                    labels=dict(f.label_selector),
                )
            ]
        )

    async def StopContainer(self, request, context):
        # Slower than the test's deadline.
        await asyncio.sleep(2)
        return pb.StopContainerResponse()


class _FakeImages(pb_grpc.ImageServiceServicer):
    async def ImageStatus(self, request, context):
        if request.image.image == "present":
            return pb.ImageStatusResponse(image=pb.Image(id="sha256:abc", size=10))
        return pb.ImageStatusResponse()

    async def PullImage(self, request, context):
        # The client default for PullImage is 2 minutes; the fake checks it got a deadline.
        remaining = context.time_remaining()
        if remaining is None or remaining < 60:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"deadline {remaining}")
        return pb.PullImageResponse(image_ref="sha256:" + request.image.image)


@pytest.fixture
async def socket_dir() -> AsyncIterator[str]:
    # Unix socket paths are limited to ~107 bytes; pytest's tmp_path can be longer.
    d = tempfile.mkdtemp(prefix="cri-", dir="/tmp")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
async def fake_cri(socket_dir: str) -> AsyncIterator[str]:
    server = aio.server()
    pb_grpc.add_RuntimeServiceServicer_to_server(_FakeRuntime(), server)
    pb_grpc.add_ImageServiceServicer_to_server(_FakeImages(), server)
    endpoint = f"unix://{socket_dir}/containerd.sock"
    server.add_insecure_port(endpoint)
    await server.start()
    try:
        yield endpoint
    finally:
        await server.stop(grace=None)


async def test_client_calls(fake_cri: str) -> None:
    async with CriClient(fake_cri) as cri:
        v = await cri.version()
        assert (v.version, v.runtime_name) == ("v1", "fake")
        assert await cri.run_pod_sandbox(_sandbox_config()) == "sb-u-1"

        res = await cri.exec_sync("c1", ["echo", "hi"], timeout=5)
        assert isinstance(res, ExecResult)
        exit_code, out, err = res
        assert (exit_code, out, err) == (2, b"echo hi", b"err")

        cs = await cri.list_containers(
            pod_sandbox_id="sb", state=pb.CONTAINER_EXITED, label_selector={"a": "b"}
        )
        assert [(c.pod_sandbox_id, c.state, dict(c.labels)) for c in cs] == [
            ("sb", pb.CONTAINER_EXITED, {"a": "b"})
        ]

        img = await cri.image_status("present")
        assert img is not None and img.id == "sha256:abc"
        assert await cri.image_status("absent") is None
        assert await cri.pull_image("busybox") == "sha256:busybox"


async def test_error_mapping(fake_cri: str) -> None:
    async with CriClient(fake_cri) as cri:
        with pytest.raises(CriError) as ei:
            await cri.remove_pod_sandbox("nope")
        assert ei.value.code == grpc.StatusCode.NOT_FOUND
        assert ei.value.not_found
        assert ei.value.message == "sandbox 'nope'"
        assert ei.value.method == "RemovePodSandbox"

        with pytest.raises(CriError) as ei:
            await cri.start_container("c1")
        assert ei.value.code == grpc.StatusCode.UNIMPLEMENTED

        with pytest.raises(CriError) as ei:
            await cri.stop_container("c1", grace_period=0, timeout=0.1)
        assert ei.value.deadline_exceeded

        # A pull with a short explicit deadline is rejected by the fake.
        with pytest.raises(CriError) as ei:
            await cri.pull_image("busybox", timeout=5)
        assert ei.value.code == grpc.StatusCode.FAILED_PRECONDITION


async def test_unreachable_runtime(socket_dir: str) -> None:
    async with CriClient(f"{socket_dir}/missing.sock", timeout=2) as cri:
        assert cri.endpoint.startswith("unix:///")
        with pytest.raises(CriError) as ei:
            await cri.status()
        assert ei.value.unavailable


async def test_not_connected() -> None:
    cri = CriClient("unix:///nonexistent.sock")
    with pytest.raises(RuntimeError):
        await cri.version()
