"""skiff-controller-manager: flags with environment-variable fallbacks.

The flags fill the controllers' configuration (kube-controller-manager's flag names
where it has the setting, --skiff-* for Skiff's own) and the process's clock, which
the manager hands to every controller it builds.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

from skiff.component import add_common_args, api_client, env, run_component, start
from skiff.log import get_logger

from .certificates import SigningSettings
from .clock import OffsetClock
from .config import CRONJOB_CLOCK_CHECK_INTERVAL, ControllerManagerConfig
from .credentials import ServiceAccountCredentials
from .manager import CONTROLLERS, ControllerManager, resolve_controllers
from .nodeipam import DEFAULT_CLUSTER_CIDR, NodeIpamSettings
from .nodelifecycle import LifecycleSettings, parse_duration
from .volumebinding import DEFAULT_BASE_DIR

log = get_logger(__name__)

TEST_CLOCK_CHECK_INTERVAL = 0.2
"""The CronJob controller's clock-jump check on a test clock: a moved clock acts at once."""


def _fallback(name: str, default: str | None) -> str | None:
    """The environment variable ``name`` (unset or empty: ``default``), as a flag default."""
    return os.environ.get(name) or default


def duration(text: str) -> float:
    """A non-negative Go duration (``40s``, ``1m30s``) or number of seconds."""
    value = parse_duration(text)
    if value < 0:
        raise ValueError(text)
    return value


def non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(text)
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _add_setting(
    p: argparse.ArgumentParser,
    flag: str,
    env_name: str,
    default: str | None,
    kind: Callable[[str], object],
    text: str,
) -> None:
    p.add_argument(
        flag,
        type=kind,
        default=_fallback(env_name, default),
        help=f"{text} (default {default}; env {env_name})"
        if default
        else f"{text} (env {env_name})",
    )


def add_controller_args(p: argparse.ArgumentParser) -> None:
    """The controllers' settings (``ControllerManagerConfig``) and the hidden test clock."""
    d = LifecycleSettings()
    settings: tuple[tuple[str, str, str | None, Callable[[str], object], str], ...] = (
        (
            "--node-monitor-grace-period",
            "SKIFF_NODE_MONITOR_GRACE_PERIOD",
            f"{d.monitor_grace_period:g}s",
            duration,
            "how long a node may be silent before it is marked Unknown",
        ),
        (
            "--node-startup-grace-period",
            "SKIFF_NODE_STARTUP_GRACE_PERIOD",
            f"{d.startup_grace_period:g}s",
            duration,
            "how long a starting node may be silent before it is marked Unknown",
        ),
        (
            "--node-eviction-rate",
            "SKIFF_NODE_EVICTION_RATE",
            f"{d.eviction_rate:g}",
            non_negative,
            "nodes per second per healthy zone given NoExecute taints",
        ),
        (
            "--secondary-node-eviction-rate",
            "SKIFF_SECONDARY_NODE_EVICTION_RATE",
            f"{d.secondary_eviction_rate:g}",
            non_negative,
            "nodes per second per unhealthy large zone given NoExecute taints",
        ),
        (
            "--large-cluster-size-threshold",
            "SKIFF_LARGE_CLUSTER_SIZE_THRESHOLD",
            str(d.large_cluster_threshold),
            non_negative_int,
            "zones with more nodes than this are large (secondary rate when unhealthy)",
        ),
        (
            "--unhealthy-zone-threshold",
            "SKIFF_UNHEALTHY_ZONE_THRESHOLD",
            f"{d.unhealthy_zone_threshold:g}",
            non_negative,
            "fraction of not-ready nodes (at least 3) that makes a zone unhealthy",
        ),
        (
            "--skiff-pod-eviction-qps",
            "SKIFF_POD_EVICTION_QPS",
            f"{d.pod_eviction_qps:g}",
            non_negative,
            "pods per second the taint-eviction controller deletes",
        ),
        (
            "--cluster-cidr",
            "SKIFF_CLUSTER_CIDR",
            DEFAULT_CLUSTER_CIDR,
            str,
            "pod CIDR range(s) of the cluster, comma-separated, one per IP family",
        ),
        (
            "--node-cidr-mask-size",
            "SKIFF_NODE_CIDR_MASK_SIZE",
            None,
            non_negative_int,
            "node pod CIDR mask size of a single-stack cluster (default 24, 64 for IPv6)",
        ),
        (
            "--node-cidr-mask-size-ipv4",
            "SKIFF_NODE_CIDR_MASK_SIZE_IPV4",
            None,
            non_negative_int,
            "node pod CIDR mask size for IPv4 (default 24)",
        ),
        (
            "--node-cidr-mask-size-ipv6",
            "SKIFF_NODE_CIDR_MASK_SIZE_IPV6",
            None,
            non_negative_int,
            "node pod CIDR mask size for IPv6 (default 64)",
        ),
        (
            "--skiff-pv-hostpath-dir",
            "SKIFF_PV_HOSTPATH_DIR",
            DEFAULT_BASE_DIR,
            str,
            "directory of the volumes the hostPath provisioner creates",
        ),
    )
    for flag, env_name, default, kind, text in settings:
        _add_setting(p, flag, env_name, default, kind, text)
    p.add_argument(
        "--allocate-node-cidrs",
        nargs="?",
        const="true",
        default="true",
        choices=("true", "false"),
        help="run the node IPAM controller, giving nodes pod CIDRs (default true)",
    )
    p.add_argument(
        "--clock-offset-file",
        default=_fallback("SKIFF_CLOCK_OFFSET_FILE", None),
        help=argparse.SUPPRESS,  # tests: seconds to add to the clock, re-read on change
    )


def config_from_args(a: argparse.Namespace) -> ControllerManagerConfig:
    return ControllerManagerConfig(
        node_lifecycle=LifecycleSettings(
            monitor_grace_period=a.node_monitor_grace_period,
            startup_grace_period=a.node_startup_grace_period,
            eviction_rate=a.node_eviction_rate,
            secondary_eviction_rate=a.secondary_node_eviction_rate,
            large_cluster_threshold=a.large_cluster_size_threshold,
            unhealthy_zone_threshold=a.unhealthy_zone_threshold,
            pod_eviction_qps=a.skiff_pod_eviction_qps,
        ),
        node_ipam=NodeIpamSettings(
            allocate_node_cidrs=a.allocate_node_cidrs == "true",
            cluster_cidr=a.cluster_cidr,
            node_cidr_mask_size=a.node_cidr_mask_size,
            node_cidr_mask_size_ipv4=a.node_cidr_mask_size_ipv4,
            node_cidr_mask_size_ipv6=a.node_cidr_mask_size_ipv6,
        ),
        pv_hostpath_dir=a.skiff_pv_hostpath_dir,
        cronjob_clock_check_interval=(
            TEST_CLOCK_CHECK_INTERVAL if a.clock_offset_file else CRONJOB_CLOCK_CHECK_INTERVAL
        ),
        root_ca=Path(a.root_ca_file).read_text() if a.root_ca_file else "",
        resource_quota_sync_period=a.resource_quota_sync_period,
        terminated_pod_gc_threshold=a.terminated_pod_gc_threshold,
        signing=SigningSettings(
            a.cluster_signing_cert_file, a.cluster_signing_key_file, a.cluster_signing_duration
        ),
    )


def clock_from_args(a: argparse.Namespace) -> Callable[[], float]:
    """The wall clock, moved by the offset file of ``--clock-offset-file`` when given."""
    if a.clock_offset_file:
        return OffsetClock(time.time, a.clock_offset_file)
    return time.time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-controller-manager", description=__doc__)
    add_common_args(
        p,
        port=10257,
        port_env="SKIFF_CONTROLLER_MANAGER_PORT",
        lease_name="kube-controller-manager",
    )
    p.add_argument(
        "--controllers",
        default=env("SKIFF_CONTROLLERS", "*"),
        help="comma-separated: '*' for the defaults, 'foo' to enable, '-foo' to disable; "
        f"known: {', '.join(CONTROLLERS)}",
    )
    for spec in CONTROLLERS.values():
        if spec.flag:
            p.add_argument(
                f"--{spec.flag}",
                type=int,
                default=spec.workers,
                dest=f"workers_{spec.name}",
                metavar="N",
                help=f"workers of the {spec.name} (default {spec.workers})",
            )
    p.add_argument("--cluster-signing-cert-file", default="")
    p.add_argument("--cluster-signing-key-file", default="")
    p.add_argument(
        "--cluster-signing-duration",
        type=duration,
        default=365 * 24 * 3600.0,
        help="the longest certificate the signer issues (default 8760h)",
    )
    p.add_argument(
        "--terminated-pod-gc-threshold",
        type=int,
        default=12_500,
        help="terminated pods kept before the pod garbage collector deletes the oldest "
        "(0: it deletes none)",
    )
    p.add_argument(
        "--resource-quota-sync-period",
        type=duration,
        default=300.0,
        help="how often every ResourceQuota's usage is recounted in full (default 5m0s)",
    )
    p.add_argument(
        "--root-ca-file",
        default=env("SKIFF_ROOT_CA_FILE", ""),
        help="the CA published in every namespace as the kube-root-ca.crt ConfigMap",
    )
    p.add_argument(
        "--use-service-account-credentials",
        action="store_true",
        default=env("SKIFF_USE_SERVICE_ACCOUNT_CREDENTIALS", "") == "true",
        help="each controller writes as its own ServiceAccount in kube-system, holding only "
        "its role (system:controller:<name>), as kubeadm runs kube-controller-manager",
    )
    add_controller_args(p)
    a = p.parse_args(argv)
    try:
        enabled = resolve_controllers(a.controllers.split(","))
    except ValueError as e:
        p.error(f"--controllers: {e}")
    ipam = config_from_args(a).node_ipam
    if "node-ipam-controller" in enabled and ipam.allocate_node_cidrs:
        try:
            ipam.cidr_sets()
        except ValueError as e:
            p.error(str(e))
    return a


async def run(a: argparse.Namespace) -> None:
    async with api_client(a, "skiff-controller-manager") as client:
        workers = {name: getattr(a, f"workers_{name}") for name, s in CONTROLLERS.items() if s.flag}
        credentials = (
            ServiceAccountCredentials(client) if a.use_service_account_credentials else None
        )
        manager = ControllerManager(
            client,
            controllers=a.controllers.split(","),
            workers=workers,
            clock=clock_from_args(a),
            config=config_from_args(a),
            credentials=credentials,
        )
        try:
            await run_component(
                client, a, manager.run, name="controller-manager", checks=manager.health_checks
            )
        finally:
            if credentials is not None:
                await credentials.close()


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    start("controller-manager", a, run)


if __name__ == "__main__":
    main()
