"""``skiff-kubelet``: run this machine's pods on the node's containerd."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
from pathlib import Path

from skiff.client.rest import ApiClient
from skiff.cri.client import CriClient
from skiff.log import get_logger, setup_logging
from skiff.tracing import setup_tracing

from .auth import AuthSettings
from .certificates import (
    bootstrap,
    client_certificate,
    rotate_client_certificate,
    serve_with_issued_certificate,
)
from .containerd_setup import RuntimePaths, ensure_shared_netns_dir
from .kubelet import Kubelet
from .network import PodNetwork
from .server import ServingOptions, healthz_server, start_server

log = get_logger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-kubelet", description=__doc__)
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    p.add_argument(
        "--bootstrap-kubeconfig",
        default="",
        help="when --kubeconfig does not exist yet: get a client certificate with this "
        "(a bootstrap token's) kubeconfig and write --kubeconfig (TLS bootstrap)",
    )
    p.add_argument(
        "--rotate-certificates",
        action="store_true",
        help="renew the client certificate --kubeconfig names (one file with certificate "
        "and key, as the TLS bootstrap writes it) before it expires",
    )
    p.add_argument(
        "--rotate-server-certificates",
        action="store_true",
        help="serve the API with a certificate of the cluster CA, requested (kubelet-serving) "
        "for the node's own names and addresses and renewed before it expires",
    )
    p.add_argument(
        "--cert-dir",
        type=Path,
        default=None,
        help="where the TLS bootstrap keeps the client certificate (default: "
        "<runtime dir>/kubelet/pki)",
    )
    p.add_argument("--server", default=os.environ.get("SKIFF_SERVER"))
    p.add_argument(
        "--node-name", default=os.environ.get("SKIFF_NODE_NAME", socket.gethostname().lower())
    )
    p.add_argument(
        "--runtime-dir",
        type=Path,
        default=Path(os.environ.get("SKIFF_RUNTIME_DIR", ".skiff/containerd")),
        help="the node's containerd folder (config, socket, CNI config)",
    )
    p.add_argument(
        "--pod-cidr",
        default=os.environ.get("SKIFF_POD_CIDR", ""),
        help="this node's pod range when no controller assigns spec.podCIDR (standalone); "
        "until one is known the node is not Ready and starts no pod",
    )
    p.add_argument("--bridge", default=os.environ.get("SKIFF_BRIDGE", "skiff0"))
    p.add_argument(
        "--masquerade-pod-traffic",
        default=os.environ.get("SKIFF_MASQUERADE_POD_TRAFFIC", "true"),
        choices=("true", "false"),
        help="NAT pod traffic leaving this node's pod subnet (false where the pod network "
        "agent routes between nodes)",
    )
    p.add_argument("--network-name", default="skiff", help="the CNI network (IPAM) name")
    p.add_argument(
        "--network-plugin",
        choices=("kubenet", "cni"),
        default=os.environ.get("SKIFF_NETWORK_PLUGIN", "kubenet"),
        help="kubenet: the kubelet writes the bridge network's CNI configuration for the "
        "pod CIDR; cni: a network add-on writes it (the node is not Ready until one does)",
    )
    p.add_argument(
        "--cni-conf-dir",
        type=Path,
        default=os.environ.get("SKIFF_CNI_CONF_DIR") or None,
        help="the runtime's CNI configuration folder (default: <runtime-dir>/cni/net.d)",
    )
    p.add_argument("--lease-period", type=float, default=10.0, help=argparse.SUPPRESS)
    p.add_argument(
        "--node-ip",
        default=os.environ.get("SKIFF_NODE_IP", "127.0.0.1"),
        help="the node's InternalIP: where the API server reaches the kubelet; pods' hostIP",
    )
    p.add_argument("--address", default=os.environ.get("SKIFF_KUBELET_ADDRESS", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("SKIFF_KUBELET_PORT", "10250")))
    p.add_argument(
        "--cluster-dns",
        default=os.environ.get("SKIFF_CLUSTER_DNS", ""),
        help="comma-separated DNS server IPs for ClusterFirst pods (none: the host's resolv.conf)",
    )
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument(
        "--resolv-conf",
        type=Path,
        default=os.environ.get("SKIFF_RESOLV_CONF") or None,
        help="the resolvers of dnsPolicy Default pods (none: the runtime copies the host's)",
    )
    p.add_argument(
        "--pod-manifest-path",
        type=Path,
        default=os.environ.get("SKIFF_POD_MANIFEST_PATH"),
        help="folder of static pod manifests",
    )
    p.add_argument("--file-check-frequency", type=float, default=5.0)
    p.add_argument("--node-status-update-frequency", type=float, default=10.0)
    p.add_argument(
        "--node-status-report-frequency",
        type=float,
        default=60.0,
        help="seconds between Node status reports when no condition changed",
    )
    p.add_argument(
        "--healthz-port",
        type=int,
        default=int(os.environ.get("SKIFF_KUBELET_HEALTHZ_PORT", "0")),
        help="plain-HTTP /healthz on --healthz-bind-address (kube's is 10248; 0, the default: off)",
    )
    p.add_argument("--healthz-bind-address", default="127.0.0.1")
    p.add_argument("--tls-cert-file", default="", help="the API's certificate (else self-signed)")
    p.add_argument("--tls-private-key-file", default="")
    p.add_argument(
        "--client-ca-file", default="", help="authenticate client certificates signed by it"
    )
    p.add_argument(
        "--anonymous-auth",
        choices=("true", "false"),
        default="true",
        help="requests without credentials are system:anonymous (false: 401)",
    )
    p.add_argument(
        "--authentication-token-webhook",
        action="store_true",
        help="authenticate bearer tokens with the apiserver (TokenReview)",
    )
    p.add_argument(
        "--authorization-mode",
        choices=("AlwaysAllow", "Webhook"),
        default="AlwaysAllow",
        help="Webhook: ask the apiserver (SubjectAccessReview on nodes/proxy, nodes/log...)",
    )
    p.add_argument(
        "--root-dir",
        type=Path,
        default=None,
        help="the kubelet's files: pod volumes, device-plugins/ and pod-resources/ sockets, "
        "the device checkpoint (default: <runtime-dir>/kubelet; kube's is /var/lib/kubelet, "
        "where DaemonSets of device plugins look)",
    )
    p.add_argument(
        "--device-plugin-timeout",
        type=float,
        default=30.0,
        help="seconds a device plugin has to answer Allocate, GetPreferredAllocation or "
        "PreStartContainer before the pod's admission or container start fails",
    )
    p.add_argument("--log-level", default=os.environ.get("SKIFF_LOG_LEVEL", "info"))
    return p.parse_args(argv)


async def run(a: argparse.Namespace) -> None:
    paths = RuntimePaths(a.runtime_dir.resolve(), a.cni_conf_dir)
    ensure_shared_netns_dir()
    network = PodNetwork(
        paths,
        bridge=a.bridge,
        name=a.network_name,
        masquerade=a.masquerade_pod_traffic == "true",
        plugin=a.network_plugin,
    )
    if a.bootstrap_kubeconfig and not a.server:
        if not a.kubeconfig:
            raise SystemExit("--bootstrap-kubeconfig needs --kubeconfig (where to write)")
        await bootstrap(
            Path(a.kubeconfig),
            Path(a.bootstrap_kubeconfig),
            a.node_name,
            a.cert_dir or paths.base / "kubelet" / "pki",
        )
    if a.server:
        client = ApiClient(a.server, user_agent="skiff-kubelet")
    else:
        client = ApiClient.from_kubeconfig(a.kubeconfig, user_agent="skiff-kubelet")
    async with client, CriClient(paths.endpoint) as cri:
        kubelet = Kubelet(
            client,
            cri,
            a.node_name,
            log_root=paths.base / "pods",
            root=a.root_dir.resolve() if a.root_dir else paths.base / "kubelet",
            node_ip=a.node_ip,
            cluster_dns=[s for s in a.cluster_dns.split(",") if s],
            cluster_domain=a.cluster_domain,
            resolv_conf=a.resolv_conf,
            lease_period=a.lease_period,
            manifest_dir=a.pod_manifest_path,
            file_check_period=a.file_check_frequency,
            status_period=a.node_status_update_frequency,
            report_period=a.node_status_report_frequency,
            pod_cidr=a.pod_cidr,
            network=network,
            device_plugin_timeout=a.device_plugin_timeout,
        )
        options = ServingOptions(
            paths.base / "pki",
            tls_cert_file=a.tls_cert_file,
            tls_private_key_file=a.tls_private_key_file,
            client_ca_file=a.client_ca_file,
            auth=AuthSettings(
                anonymous=a.anonymous_auth == "true",
                token_webhook=a.authentication_token_webhook,
                authorization=a.authorization_mode,
            ),
        )
        server, server_task, kubelet.kubelet_port = await start_server(
            kubelet, a.address, a.port, options
        )
        log.info("kubelet API listening", address=a.address, port=kubelet.kubelet_port)
        healthz = None
        if a.healthz_port:
            healthz = healthz_server(a.healthz_bind_address, a.healthz_port)
            healthz_task = asyncio.create_task(healthz.serve(), name="kubelet-healthz")
        task = asyncio.create_task(kubelet.run(), name="kubelet")
        rotating = None
        cert_file = client_certificate(Path(a.kubeconfig)) if a.kubeconfig else None
        if a.rotate_certificates and not a.server and cert_file is not None:
            rotating = asyncio.create_task(
                rotate_client_certificate(client, a.node_name, cert_file),
                name="kubelet-client-certificate",
            )
        elif a.rotate_certificates:
            log.warning("--rotate-certificates needs a kubeconfig naming one certificate file")
        serving = None
        if a.rotate_server_certificates:
            serving = asyncio.create_task(
                serve_with_issued_certificate(
                    client,
                    a.node_name,
                    server.config,
                    a.cert_dir or paths.base / "kubelet" / "pki",
                ),
                name="kubelet-serving-certificate",
            )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for side in (serving, rotating):
            if side is not None:
                side.cancel()
        server.should_exit = True
        await server_task
        if healthz is not None:
            healthz.should_exit = True
            await healthz_task
        log.info("kubelet stopped; pods keep running until removed")


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    setup_logging("kubelet", level=a.log_level)
    setup_tracing("skiff-kubelet")
    asyncio.run(run(a))


if __name__ == "__main__":
    main()
