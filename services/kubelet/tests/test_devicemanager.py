"""The kubelet's device manager against device plugins over real gRPC on unix sockets:
the sample plugin (fake devices backed by files) and small plugins of the test's own for
the bad answers. Registration and its refusals in kube's words, capacity and allocatable,
admission (fit, allocation, preferred allocation, init containers' devices reused, a hung
Allocate), what a container gets, the checkpoint across a restart, a plugin that stops and
comes back; the pod-resources API over its own socket."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from skiff.deviceplugin.sample import SamplePlugin
from skiff.deviceplugin.server import PluginServer, RegistrationRefused
from skiff.deviceplugin.v1beta1 import api_pb2 as dp
from skiff.deviceplugin.v1beta1 import api_pb2_grpc as dp_grpc
from skiff.kubelet import podresources
from skiff.kubelet.devicemanager import AdmissionError, DeviceManager, NotReady, checkpoint
from skiff.podresources.v1 import api_pb2 as pr
from skiff.podresources.v1 import api_pb2_grpc as pr_grpc

RESOURCE = "example.com/sample"


class Env:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.plugins = root / "dp"
        self.devs = root / "devs"
        self.devs.mkdir()
        self.changes = 0
        self.manager = self.new_manager()
        self.tasks: list[asyncio.Task[None]] = []

    def new_manager(self, **kw: Any) -> DeviceManager:
        def changed() -> None:
            self.changes += 1

        return DeviceManager(self.plugins, changed, rpc_timeout=kw.pop("rpc_timeout", 2.0), **kw)

    def devices(self, *ids: str) -> None:
        for d in ids:
            (self.devs / d).write_text(d)

    async def plugin(self, servicer: Any = None, resource: str = RESOURCE, endpoint: str = "s.sock",
                     options: dp.DevicePluginOptions | None = None) -> PluginServer:  # fmt: skip
        servicer = servicer or SamplePlugin(self.devs)
        if options is None and isinstance(servicer, SamplePlugin):
            options = servicer.options
        server = PluginServer(
            servicer, resource, directory=self.plugins, endpoint=endpoint, options=options
        )
        self.tasks.append(asyncio.create_task(server.run()))
        return server

    async def until(self, check: Any, timeout: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not check():
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.05)

    async def registered(self, server: PluginServer, n: int | None = None) -> None:
        await asyncio.wait_for(server.registered.wait(), 5)
        if n is not None:
            await self.until(lambda: self.manager.capacity()[0].get(RESOURCE) == n)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    root = Path(tempfile.mkdtemp(prefix="dm", dir="/tmp"))  # unix socket paths stay short
    e = Env(root)
    await e.manager.start()
    try:
        yield e
    finally:
        for t in e.tasks:
            t.cancel()
        await asyncio.gather(*e.tasks, return_exceptions=True)
        await e.manager.stop()
        shutil.rmtree(root, ignore_errors=True)


def pod(
    uid: str, *containers: dict[str, Any], init: tuple[dict[str, Any], ...] = ()
) -> dict[str, Any]:
    return {"metadata": {"name": f"p-{uid}", "namespace": "ns", "uid": uid},
            "spec": {"containers": list(containers), "initContainers": list(init)}}  # fmt: skip


def c(name: str, n: int = 0, resource: str = RESOURCE, **extra: Any) -> dict[str, Any]:
    res = {"limits": {resource: str(n)}, "requests": {resource: str(n)}} if n else {}
    return {"name": name, "image": "x", "resources": res, **extra}


async def test_registration_devices_and_allocation(env: Env) -> None:
    env.devices("d0", "d1", "d2")
    server = await env.plugin()
    await env.registered(server, 3)
    assert env.manager.capacity() == ({RESOURCE: 3}, {RESOURCE: 3})
    assert env.changes >= 1
    # Health follows the files; a new device appears.
    (env.devs / "d2.unhealthy").touch()
    await env.until(lambda: env.manager.capacity()[1][RESOURCE] == 2)
    (env.devs / "d2.unhealthy").unlink()
    await env.until(lambda: env.manager.capacity()[1][RESOURCE] == 3)

    await env.manager.admit(pod("a", c("main", 2)))
    [(entry, _ep)] = env.manager.allocations("a", "main")
    assert entry.device_ids == ["d0", "d1"]
    [opts] = await env.manager.container_options("a", "main")
    assert opts.envs["SAMPLE_DEVICES"] == "d0,d1"
    assert [m.container_path for m in opts.mounts] == ["/run/sample/d0", "/run/sample/d1"]
    assert all(m.read_only for m in opts.mounts)
    assert opts.annotations["example.com/sample-devices"] == "d0,d1"
    # Admitting the same pod again allocates nothing new.
    await env.manager.admit(pod("a", c("main", 2)))
    assert env.manager.allocations("a", "main")[0][0].device_ids == ["d0", "d1"]
    # Not enough left: kube's resource-fit rejection.
    with pytest.raises(AdmissionError) as e:
        await env.manager.admit(pod("b", c("main", 2)))
    assert (e.value.reason, e.value.message) == (
        f"OutOf{RESOURCE}",
        f"Node didn't have enough resource: {RESOURCE}, requested: 2, used: 2, capacity: 3",
    )
    assert not env.manager.allocations("b", "main")
    # A pod without devices needs nothing; released devices go to the next pod.
    await env.manager.admit(pod("c", c("main")))
    env.manager.release("a")
    await env.manager.admit(pod("b", c("main", 2)))
    assert env.manager.allocations("b", "main")[0][0].device_ids == ["d0", "d1"]


@pytest.mark.parametrize(
    ("version", "resource", "endpoint", "message"),
    [
        ("v1alpha", RESOURCE, "x.sock", 'requested API version "v1alpha" is not supported by '
         'kubelet. Supported versions are ["v1beta1"]'),
        ("v1beta1", "gpu", "x.sock", 'the ResourceName "gpu" is invalid'),
        ("v1beta1", "kubernetes.io/gpu", "x.sock", 'the ResourceName "kubernetes.io/gpu"'),
        ("v1beta1", "Example.com/Bad Name", "x.sock", 'the ResourceName "Example.com/Bad Name"'),
        ("v1beta1", RESOURCE, "../x.sock", 'bad endpoint "../x.sock"'),
        ("v1beta1", RESOURCE, "nobody.sock", "failed to dial device plugin"),
    ],
)  # fmt: skip
async def test_bad_registrations_are_refused(
    env: Env, version: str, resource: str, endpoint: str, message: str
) -> None:
    async with aio.insecure_channel(f"unix://{env.plugins / 'kubelet.sock'}") as ch:
        with pytest.raises(grpc.RpcError) as e:
            await dp_grpc.RegistrationStub(ch).Register(
                dp.RegisterRequest(version=version, endpoint=endpoint, resource_name=resource)
            )
    assert e.value.code() == grpc.StatusCode.UNKNOWN
    assert e.value.details().startswith(message), e.value.details()
    assert env.manager.capacity() == ({}, {})


async def test_a_second_plugin_for_a_served_resource_is_refused(env: Env) -> None:
    env.devices("d0")
    first = await env.plugin()
    await env.registered(first, 1)
    second = PluginServer(SamplePlugin(env.devs), RESOURCE, directory=env.plugins,
                          endpoint="other.sock")  # fmt: skip
    with pytest.raises(RegistrationRefused) as e:
        await asyncio.wait_for(second.run(), 5)
    assert str(e.value) == (
        f'resource "{RESOURCE}" is already registered by the running device plugin at '
        f"{env.plugins / 's.sock'}"
    )
    assert env.manager.capacity() == ({RESOURCE: 1}, {RESOURCE: 1})


class Scripted(dp_grpc.DevicePluginServicer):
    """A plugin that lists what it is told and answers Allocate with ``responses``."""

    def __init__(self, lists: list[list[dp.Device]], responses: int = 1) -> None:
        self.lists = lists
        self.responses = responses

    async def ListAndWatch(
        self, request: Any, context: Any
    ) -> AsyncIterator[dp.ListAndWatchResponse]:
        for devices in self.lists:
            yield dp.ListAndWatchResponse(devices=devices)
            await asyncio.sleep(0.2)
        await asyncio.Event().wait()

    async def Allocate(self, request: dp.AllocateRequest, context: Any) -> dp.AllocateResponse:
        return dp.AllocateResponse(
            container_responses=[dp.ContainerAllocateResponse() for _ in range(self.responses)]
        )


def dev(i: str, numa: int | None = None, health: str = "Healthy") -> dp.Device:
    d = dp.Device(ID=i, health=health)
    if numa is not None:
        d.topology.nodes.append(dp.NUMANode(ID=numa))
    return d


async def test_bad_device_lists_and_answers_are_refused(env: Env) -> None:
    lists = [
        [dev("a"), dev("b")],
        [dev("a"), dev("a")],
        [dev("a"), dev("b"), dev("c", health="Sick")],
    ]
    server = await env.plugin(Scripted(lists, responses=2))
    await env.registered(server, 2)
    await asyncio.sleep(0.8)  # the bad lists came and were refused: the first one stands
    assert env.manager.capacity() == ({RESOURCE: 2}, {RESOURCE: 2})
    with pytest.raises(AdmissionError) as e:
        await env.manager.admit(pod("p", c("main", 1)))
    assert e.value.reason == "UnexpectedAdmissionError"
    assert e.value.message == (
        f"Allocate failed due to device plugin {RESOURCE} answered Allocate for one container "
        "with 2 container responses, which is unexpected"
    )
    assert not env.manager.entries  # nothing held by a refused pod


async def test_numa_aware_choice(env: Env) -> None:
    lists = [[dev("a", 0), dev("b", 1), dev("c", 1), dev("d", 0), dev("e", 0)]]
    server = await env.plugin(Scripted(lists))
    await env.registered(server, 5)
    await env.manager.admit(pod("p", c("main", 2)))
    [(entry, _)] = env.manager.allocations("p", "main")
    assert entry.devices == {1: ["b", "c"]}  # the node that fits it best
    await env.manager.admit(pod("q", c("main", 3)))
    [(entry, _)] = env.manager.allocations("q", "main")
    assert entry.devices == {0: ["a", "d", "e"]}


async def test_preferred_allocation_and_init_containers(env: Env) -> None:
    env.devices("d0", "d1", "d2", "d3")
    server = await env.plugin(SamplePlugin(env.devs, preferred=True, pre_start=True))
    await env.registered(server, 4)
    p = pod("p", c("app", 3), init=(c("setup", 2),))
    await env.manager.admit(p)
    [(setup, _)] = env.manager.allocations("p", "setup")
    [(app, _)] = env.manager.allocations("p", "app")
    assert setup.device_ids == ["d2", "d3"]  # the plugin prefers the highest IDs
    assert sorted(app.device_ids) == ["d1", "d2", "d3"]  # the init container's reused
    await env.manager.container_options("p", "app")
    assert (env.root / "prestart.log").read_text().splitlines() == [",".join(app.device_ids)]


async def test_a_hung_allocate_fails_its_pod_only(env: Env) -> None:
    env.devices("d0")
    server = await env.plugin(SamplePlugin(env.devs, hang_allocate=60))
    await env.registered(server, 1)
    other = await env.plugin(
        Scripted([[dev("x")]]), resource="example.com/other", endpoint="o.sock"
    )
    await asyncio.wait_for(other.registered.wait(), 5)
    hung = asyncio.create_task(env.manager.admit(pod("p", c("main", 1))))
    await asyncio.sleep(0.2)
    # Other pods are admitted meanwhile, with devices of another resource or none.
    await asyncio.wait_for(env.manager.admit(pod("q", c("main", 1, "example.com/other"))), 1)
    await asyncio.wait_for(env.manager.admit(pod("r", c("main"))), 1)
    with pytest.raises(AdmissionError) as e:
        await hung
    assert e.value.message == (
        f"Allocate failed due to device plugin {RESOURCE} did not answer Allocate within 2s, "
        "which is unexpected"
    )
    assert not env.manager.allocations("p", "main")


async def test_checkpoint_and_restarts(env: Env) -> None:
    env.devices("d0", "d1")
    server = await env.plugin()
    await env.registered(server, 2)
    await env.manager.admit(pod("p", c("main", 1)))
    entries, registered = checkpoint.load(env.manager.checkpoint_path)
    assert [(e.pod_uid, e.container, e.device_ids) for e in entries] == [("p", "main", ["d0"])]
    assert registered == {RESOURCE: ["d0", "d1"]}

    # The kubelet restarts: its pods keep their devices before the plugin is back, and
    # those are not handed out again; the plugin registers again by itself.
    await env.manager.stop()
    env.manager = env.new_manager()
    await env.manager.start()
    assert env.manager.capacity() == ({RESOURCE: 2}, {RESOURCE: 0})
    assert env.manager.allocations("p", "main")[0][0].device_ids == ["d0"]
    with pytest.raises(NotReady):  # a new pod waits for the plugin rather than failing
        await env.manager.admit(pod("z", c("main", 1)))
    await env.manager.admit(pod("p", c("main", 1)))  # admitted before: nothing to ask
    [opts] = await env.manager.container_options("p", "main")
    assert opts.envs["SAMPLE_DEVICES"] == "d0"
    await env.until(lambda: env.manager.capacity() == ({RESOURCE: 2}, {RESOURCE: 2}))
    await env.manager.admit(pod("q", c("main", 1)))
    assert env.manager.allocations("q", "main")[0][0].device_ids == ["d1"]
    env.manager.retain(["q"])
    assert not env.manager.allocations("p", "main")

    # The plugin stops: allocatable drops to 0, capacity stays; it comes back.
    for t in env.tasks:
        t.cancel()
    await asyncio.gather(*env.tasks, return_exceptions=True)
    await env.until(lambda: env.manager.capacity() == ({RESOURCE: 2}, {RESOURCE: 0}))
    server = await env.plugin()
    await env.until(lambda: env.manager.capacity() == ({RESOURCE: 2}, {RESOURCE: 2}))


async def test_a_plugin_gone_past_the_grace_period_is_removed(env: Env) -> None:
    await env.manager.stop()
    env.manager = env.new_manager(grace=0.3)
    await env.manager.start()
    env.devices("d0")
    task_count = len(env.tasks)
    await env.registered(await env.plugin(), 1)
    env.tasks[task_count].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await env.tasks[task_count]
    await env.until(lambda: env.manager.capacity() == ({RESOURCE: 0}, {RESOURCE: 0}))
    assert RESOURCE not in env.manager.devices


async def test_pod_resources_api(env: Env) -> None:
    lists = [[dev("a", 0), dev("b", 1), dev("c", 1), dev("d", health="Unhealthy")]]
    server = await env.plugin(Scripted(lists))
    await env.registered(server, 4)
    p = pod("p", c("main", 2), c("side"))
    await env.manager.admit(p)
    api = await podresources.serve(
        env.root / "pr", podresources.PodResources(env.manager, lambda: [p])
    )
    try:
        async with aio.insecure_channel(f"unix://{env.root / 'pr' / 'kubelet.sock'}") as ch:
            stub = pr_grpc.PodResourcesListerStub(ch)
            listed = await stub.List(pr.ListPodResourcesRequest())
            [got] = listed.pod_resources
            assert (got.name, got.namespace) == ("p-p", "ns")
            main, side = got.containers
            assert (main.name, side.name, list(side.devices)) == ("main", "side", [])
            [devices] = main.devices
            assert (devices.resource_name, list(devices.device_ids)) == (RESOURCE, ["b", "c"])
            assert [n.ID for n in devices.topology.nodes] == [1]
            one = await stub.Get(pr.GetPodResourcesRequest(pod_name="p-p", pod_namespace="ns"))
            assert one.pod_resources == got
            with pytest.raises(grpc.RpcError) as e:
                await stub.Get(pr.GetPodResourcesRequest(pod_name="x", pod_namespace="ns"))
            assert e.value.code() == grpc.StatusCode.NOT_FOUND
            assert e.value.details() == "pod x in namespace ns not found"
            node = await stub.GetAllocatableResources(pr.AllocatableResourcesRequest())
            assert [
                (d.resource_name, list(d.device_ids), [n.ID for n in d.topology.nodes])
                for d in node.devices
            ] == [(RESOURCE, ["a"], [0]), (RESOURCE, ["b", "c"], [1])]
    finally:
        await api.stop(0)
