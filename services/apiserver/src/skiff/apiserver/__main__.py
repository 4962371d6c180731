"""``skiff-apiserver``: flags with environment-variable fallbacks."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os

from skiff.log import setup_logging
from skiff.tracing import setup_tracing

from .admission import ORDERED_PLUGINS, enabled_plugins
from .allocators import ServiceRanges
from .server import ApiServer, Settings


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def parse_args(argv: list[str] | None = None) -> Settings:
    d = Settings()
    p = argparse.ArgumentParser(prog="skiff-apiserver", description=__doc__)
    p.add_argument(
        "--etcd-servers",
        default=_env("SKIFF_ETCD_SERVERS", d.etcd),
        help="etcd endpoint host:port (env SKIFF_ETCD_SERVERS)",
    )
    p.add_argument(
        "--nats-url", default=_env("SKIFF_NATS_URL", d.nats), help="NATS URL (env SKIFF_NATS_URL)"
    )
    p.add_argument(
        "--bind-address",
        default=_env("SKIFF_BIND_ADDRESS", d.bind_address),
        help="address to listen on; loopback until authentication lands",
    )
    p.add_argument(
        "--secure-port",
        "--port",
        dest="port",
        type=int,
        default=int(_env("SKIFF_PORT", str(d.port))),
    )
    p.add_argument(
        "--grpc-port",
        type=int,
        default=int(_env("SKIFF_GRPC_PORT", str(d.grpc_port))),
        help="port of the gRPC object API (0: off)",
    )
    p.add_argument(
        "--compaction-interval",
        type=float,
        default=float(_env("SKIFF_COMPACTION_INTERVAL", str(d.compaction_interval))),
        help="seconds between etcd compactions",
    )
    p.add_argument(
        "--compaction-keep",
        type=int,
        default=int(_env("SKIFF_COMPACTION_KEEP", str(d.compaction_keep))),
        help="etcd revisions kept by compaction",
    )
    p.add_argument(
        "--service-cluster-ip-range",
        default=_env("SKIFF_SERVICE_CLUSTER_IP_RANGE", d.service_cluster_ip_range),
        help="CIDR Services' cluster IPs are assigned from (env SKIFF_SERVICE_CLUSTER_IP_RANGE)",
    )
    p.add_argument(
        "--service-node-port-range",
        default=_env("SKIFF_SERVICE_NODE_PORT_RANGE", d.service_node_port_range),
        help="first-last port for NodePort Services (env SKIFF_SERVICE_NODE_PORT_RANGE)",
    )
    p.add_argument(
        "--advertise-address",
        default=_env("SKIFF_ADVERTISE_ADDRESS", d.advertise_address),
        help="address published in the kubernetes Service's endpoints (default: the bind "
        "address, or this host's address when binding all)",
    )
    p.add_argument(
        "--enable-admission-plugins",
        default=_env("SKIFF_ENABLE_ADMISSION_PLUGINS", ",".join(d.enable_admission_plugins)),
        help="comma-separated admission plugins to enable besides the default ones "
        f"(default on: {', '.join(ORDERED_PLUGINS)}; env SKIFF_ENABLE_ADMISSION_PLUGINS)",
    )
    p.add_argument(
        "--disable-admission-plugins",
        default=_env("SKIFF_DISABLE_ADMISSION_PLUGINS", ",".join(d.disable_admission_plugins)),
        help="comma-separated admission plugins to disable, default ones included "
        "(env SKIFF_DISABLE_ADMISSION_PLUGINS)",
    )
    p.add_argument("--no-pump", action="store_true", help="do not campaign to run the event pump")
    p.add_argument("--log-level", default=_env("SKIFF_LOG_LEVEL", "info"))
    a = p.parse_args(argv)
    try:
        ServiceRanges.parse(a.service_cluster_ip_range, a.service_node_port_range)
    except ValueError as e:
        p.error(str(e))
    enable = _plugin_names(a.enable_admission_plugins)
    disable = _plugin_names(a.disable_admission_plugins)
    try:
        enabled_plugins(enable, disable)
    except ValueError as e:
        p.error(str(e))
    setup_logging("apiserver", level=a.log_level)
    return Settings(
        etcd=a.etcd_servers,
        nats=a.nats_url,
        bind_address=a.bind_address,
        port=a.port,
        grpc_port=a.grpc_port,
        compaction_interval=a.compaction_interval,
        compaction_keep=a.compaction_keep,
        run_pump=not a.no_pump,
        service_cluster_ip_range=a.service_cluster_ip_range,
        service_node_port_range=a.service_node_port_range,
        advertise_address=a.advertise_address,
        enable_admission_plugins=enable,
        disable_admission_plugins=disable,
    )


def _plugin_names(value: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in value.split(",") if n.strip())


def main(argv: list[str] | None = None) -> None:
    settings = parse_args(argv)
    setup_tracing("skiff-apiserver")
    # The watch cache holds every object: with CPython's default thresholds, full
    # collections walk that whole heap every few thousand allocations and stall
    # watch delivery. Collect the young generation less often instead.
    gc.set_threshold(50_000, 50, 100)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(ApiServer(settings).run_until_signalled())


if __name__ == "__main__":
    main()
