"""The manager wires the enabled controllers to one set of shared informers."""

from __future__ import annotations

import asyncio

import pytest

from skiff.controller.controller import Controller
from skiff.controller.fake import FakeApi
from skiff.controllers.config import ControllerManagerConfig
from skiff.controllers.manager import ControllerManager, ControllerSpec, resolve_controllers
from skiff.controllers.nodeipam import NodeIpamSettings
from skiff.controllers.nodelifecycle import LifecycleSettings


async def test_runs_enabled_controllers_on_shared_informers() -> None:
    fake = FakeApi()
    manager = ControllerManager(fake, controllers=["replicaset"])  # type: ignore[arg-type]
    task = asyncio.create_task(manager.run())
    try:
        await asyncio.wait_for(manager.synced.wait(), 5)
        assert list(manager.controllers) == ["replicaset-controller"]
        assert manager.informers is not None
        await fake.create(
            "replicasets",
            {
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {}},
                },
            },
            "ns",
        )
        async with asyncio.timeout(5):
            while len(fake.list_objects("pods")) < 2:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert len(fake.list_objects("pods")) == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not manager.synced.is_set()


async def test_run_again_starts_afresh() -> None:
    fake = FakeApi()
    manager = ControllerManager(fake)  # type: ignore[arg-type]
    built = []
    for _ in range(2):  # as after losing and regaining leadership
        task = asyncio.create_task(manager.run())
        await asyncio.wait_for(manager.synced.wait(), 5)
        built.append(manager.controllers["replicaset-controller"])
        built[-1].expectations.expect_creations("ns/web", 3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # New caches and new expectations: nothing carried over from the last term.
    assert built[0] is not built[1]
    assert built[0].informers[0] is not built[1].informers[0]


def test_resolve_controllers() -> None:
    registry = {
        s.name: s
        for s in (
            ControllerSpec("a-controller", Controller, aliases=("a",)),
            ControllerSpec("b-controller", Controller, aliases=("b",)),
            ControllerSpec("c-controller", Controller, enabled_by_default=False),
        )
    }
    assert resolve_controllers(["*"], registry) == ["a-controller", "b-controller"]
    assert resolve_controllers(["*", "-a"], registry) == ["b-controller"]
    assert resolve_controllers(["a-controller", "c-controller"], registry) == [
        "a-controller",
        "c-controller",
    ]
    # First match wins, as in kube-controller-manager.
    assert resolve_controllers(["-a", "a", "*"], registry) == ["b-controller"]
    assert resolve_controllers([], registry) == []
    with pytest.raises(ValueError, match="not in the list of known controllers"):
        resolve_controllers(["*", "-nope"], registry)
    assert "replicaset-controller" in resolve_controllers(["*"])  # the real registry


def test_controllers_get_their_configuration() -> None:
    fake = FakeApi()
    config = ControllerManagerConfig(
        node_lifecycle=LifecycleSettings(monitor_grace_period=5),
        node_ipam=NodeIpamSettings(cluster_cidr="10.9.0.0/20", node_cidr_mask_size=26),
        pv_hostpath_dir="/srv/pv/",
        cronjob_clock_check_interval=0.2,
    )
    manager = ControllerManager(
        fake,  # type: ignore[arg-type]
        controllers=[
            "nodelifecycle",
            "tainteviction",
            "nodeipam",
            "persistentvolume-binder",
            "cronjob",
        ],
        config=config,
    )
    c = manager.build()
    assert c["node-lifecycle-controller"].settings.monitor_grace_period == 5  # type: ignore[attr-defined]
    assert c["taint-eviction-controller"].settings is config.node_lifecycle  # type: ignore[attr-defined]
    (cidrs,) = c["node-ipam-controller"].cidr_sets  # type: ignore[attr-defined]
    assert (str(cidrs.cluster), cidrs.mask) == ("10.9.0.0/20", 26)
    assert c["persistentvolume-binder-controller"].base_dir == "/srv/pv"  # type: ignore[attr-defined]
    assert c["cronjob-controller"].clock_check_interval == 0.2  # type: ignore[attr-defined]


def test_allocate_node_cidrs_false_turns_node_ipam_off() -> None:
    config = ControllerManagerConfig(node_ipam=NodeIpamSettings(allocate_node_cidrs=False))
    manager = ControllerManager(FakeApi(), config=config)  # type: ignore[arg-type]
    assert "node-ipam-controller" not in manager.enabled
    assert "node-lifecycle-controller" in manager.enabled
    assert "node-ipam-controller" in ControllerManager(FakeApi()).enabled  # type: ignore[arg-type]
