"""``skiff-controller-manager``'s flags: the configuration and clock the controllers get."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from skiff.controllers.__main__ import clock_from_args, config_from_args, parse_args
from skiff.controllers.clock import OffsetClock
from skiff.controllers.config import ControllerManagerConfig
from skiff.controllers.nodeipam import NodeIpamSettings
from skiff.controllers.nodelifecycle import LifecycleSettings

ENV_NAMES = (
    "SKIFF_NODE_MONITOR_GRACE_PERIOD",
    "SKIFF_NODE_STARTUP_GRACE_PERIOD",
    "SKIFF_NODE_EVICTION_RATE",
    "SKIFF_SECONDARY_NODE_EVICTION_RATE",
    "SKIFF_LARGE_CLUSTER_SIZE_THRESHOLD",
    "SKIFF_UNHEALTHY_ZONE_THRESHOLD",
    "SKIFF_POD_EVICTION_QPS",
    "SKIFF_CLUSTER_CIDR",
    "SKIFF_NODE_CIDR_MASK_SIZE",
    "SKIFF_NODE_CIDR_MASK_SIZE_IPV4",
    "SKIFF_NODE_CIDR_MASK_SIZE_IPV6",
    "SKIFF_PV_HOSTPATH_DIR",
    "SKIFF_CLOCK_OFFSET_FILE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_controllers_defaults() -> None:
    a = parse_args([])
    assert config_from_args(a) == ControllerManagerConfig()
    assert clock_from_args(a) is time.time


def test_flags() -> None:
    a = parse_args(
        [
            "--node-monitor-grace-period=1m30s",
            "--node-startup-grace-period=2m",
            "--node-eviction-rate=1",
            "--secondary-node-eviction-rate=0.5",
            "--large-cluster-size-threshold=7",
            "--unhealthy-zone-threshold=0.3",
            "--skiff-pod-eviction-qps=5",
            "--cluster-cidr=10.1.0.0/16,fd00:10::/56",
            "--node-cidr-mask-size-ipv4=20",
            "--node-cidr-mask-size-ipv6=60",
            "--skiff-pv-hostpath-dir=/data/pv",
            "--allocate-node-cidrs=false",
        ]
    )
    assert config_from_args(a) == ControllerManagerConfig(
        node_lifecycle=LifecycleSettings(
            monitor_grace_period=90,
            startup_grace_period=120,
            eviction_rate=1,
            secondary_eviction_rate=0.5,
            large_cluster_threshold=7,
            unhealthy_zone_threshold=0.3,
            pod_eviction_qps=5,
        ),
        node_ipam=NodeIpamSettings(
            allocate_node_cidrs=False,
            cluster_cidr="10.1.0.0/16,fd00:10::/56",
            node_cidr_mask_size_ipv4=20,
            node_cidr_mask_size_ipv6=60,
        ),
        pv_hostpath_dir="/data/pv",
    )
    assert parse_args(["--allocate-node-cidrs"]).allocate_node_cidrs == "true"


def test_environment_variables_are_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKIFF_NODE_MONITOR_GRACE_PERIOD", "5s")
    monkeypatch.setenv("SKIFF_NODE_EVICTION_RATE", "10")
    monkeypatch.setenv("SKIFF_CLUSTER_CIDR", "10.9.0.0/20")
    monkeypatch.setenv("SKIFF_NODE_CIDR_MASK_SIZE", "26")
    monkeypatch.setenv("SKIFF_PV_HOSTPATH_DIR", "/srv/pv")
    monkeypatch.setenv("SKIFF_LARGE_CLUSTER_SIZE_THRESHOLD", "")  # empty: the default
    c = config_from_args(parse_args([]))
    assert (c.node_lifecycle.monitor_grace_period, c.node_lifecycle.eviction_rate) == (5, 10)
    assert c.node_lifecycle.large_cluster_threshold == 50
    assert (c.node_ipam.cluster_cidr, c.node_ipam.node_cidr_mask_size) == ("10.9.0.0/20", 26)
    assert c.pv_hostpath_dir == "/srv/pv"
    # A flag wins over its variable.
    c = config_from_args(parse_args(["--node-monitor-grace-period=7s"]))
    assert c.node_lifecycle.monitor_grace_period == 7


@pytest.mark.parametrize(
    "args",
    [
        ["--node-monitor-grace-period=4x"],
        ["--node-eviction-rate=-1"],
        ["--large-cluster-size-threshold=1.5"],
        ["--cluster-cidr=10.1.0.1/16"],
        ["--cluster-cidr=10.1.0.0/16,fd00::/56", "--node-cidr-mask-size=24"],
        ["--cluster-cidr=10.1.0.0/16", "--node-cidr-mask-size=8"],
    ],
)
def test_invalid_settings_are_usage_errors(args: list[str]) -> None:
    with pytest.raises(SystemExit) as e:
        parse_args(args)
    assert e.value.code == 2


def test_invalid_variable_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKIFF_NODE_EVICTION_RATE", "-1")
    with pytest.raises(SystemExit):
        parse_args([])


def test_cluster_cidr_is_checked_only_for_the_ipam_controller() -> None:
    parse_args(["--cluster-cidr=nope", "--controllers=*,-node-ipam-controller"])
    parse_args(["--cluster-cidr=nope", "--allocate-node-cidrs=false"])


def test_clock_offset_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "offset"
    path.write_text("3600")
    a = parse_args([f"--clock-offset-file={path}"])
    clock = clock_from_args(a)
    assert isinstance(clock, OffsetClock)
    assert abs(clock() - time.time() - 3600) < 5
    assert config_from_args(a).cronjob_clock_check_interval == 0.2
    monkeypatch.setenv("SKIFF_CLOCK_OFFSET_FILE", str(path))
    assert isinstance(clock_from_args(parse_args([])), OffsetClock)
