"""``skiffadm``: kubeadm's commands for Skiff. Available so far:

skiffadm init                        a control plane on this machine: every phase below, in
                                     order, then the kubelet with the static pods, the wait,
                                     mark-control-plane, bootstrap-token and the join command
skiffadm reset                       undo what init put on this machine
skiffadm init phase preflight        kubeadm's pre-flight checks of this machine
skiffadm init phase certs all        the control plane's certificates (kubeadm's layout)
skiffadm init phase kubeconfig all   the control plane's kubeconfig files
skiffadm init phase etcd local       static pods of etcd and NATS
skiffadm init phase control-plane all  static pods of apiserver, controller manager, scheduler
skiffadm init phase kubelet-start    containerd and the kubelet with the static pod folder
skiffadm init phase upload-config kubelet  the kubelets' configuration for joining nodes
skiffadm init phase mark-control-plane  the control-plane labels and taint on this node
skiffadm init phase bootstrap-token  a bootstrap token, the RBAC for joining, cluster-info
skiffadm init phase addon all|kube-proxy|dns|network  the Service proxy, the cluster DNS,
                                     the pod network
skiffadm kubeconfig user             a kubeconfig with a client certificate for one user
skiffadm join <host>:<port> --token T --discovery-token-ca-cert-hash sha256:...
                                     token discovery, then the kubelet's bootstrap kubeconfig
skiffadm certs check-expiration      every certificate's expiry
skiffadm certs renew all|<name>      issue certificates again with the local CA
skiffadm token generate              a new bootstrap token
skiffadm token create|list|delete    bootstrap tokens in the cluster (create --print-join-command)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import socket
import sys
from pathlib import Path

import yaml

from skiff.api.errors import ApiError
from skiff.api.timestamps import parse_duration
from skiff.bootstrap import DEFAULT_GROUP, DiscoveryError, generate_token, parse_token
from skiff.client.rest import ApiClient
from skiff.clusterpki import PkiConfig, write_cluster_pki
from skiff.kubeconfigs import kubeconfig, write_kubeconfigs
from skiff.pki import CertificateAuthority, KeyPair

from . import kubeletconfig, preflight, tokens
from .addon import ADDONS, DEFAULT_DIR, AddonError, dns_address, install
from .bootstraptoken import run_phase
from .config import ConfigError, read_config
from .controlplane import CONTROL_PLANE, LOCAL_ETCD, ControlPlane, write_manifests, write_nats_conf
from .expiration import report
from .init import InitError, InitOptions, kubelet_start, run_init, wait_tls_bootstrap
from .join import join
from .markcontrolplane import mark_control_plane
from .renew import NAMES as RENEW_NAMES
from .renew import RenewError, renew
from .reset import run_reset

PKI = Path("/etc/kubernetes/pki")
KUBECONFIGS = Path("/etc/kubernetes")


def _node_name() -> str:
    return socket.gethostname().lower()


def _node_flags(p: argparse.ArgumentParser) -> None:
    """Where init puts things and the ports it uses (init and reset)."""
    p.add_argument("--cert-dir", type=Path, default=PKI)
    p.add_argument("--kubeconfig-dir", type=Path, default=KUBECONFIGS)
    p.add_argument("--manifests-dir", type=Path, default=KUBECONFIGS / "manifests")
    p.add_argument("--kubelet-dir", type=Path, default=Path("/var/lib/skiff"))
    p.add_argument("--etcd-data-dir", type=Path, default=Path("/var/lib/etcd"))
    p.add_argument("--nats-data-dir", type=Path, default=Path("/var/lib/nats"))
    p.add_argument("--node-name", default=_node_name())
    p.add_argument(
        "--apiserver-advertise-address", default="",
        help="the apiserver's and this node's address (default: the default route's, as "
        "kubeadm's; 127.0.0.1 keeps everything on loopback, but then pods cannot reach the "
        "API through the kubernetes Service)",
    )  # fmt: skip
    p.add_argument("--apiserver-bind-port", type=int, default=6443)
    p.add_argument("--etcd-port", type=int, default=2379)
    p.add_argument("--etcd-peer-port", type=int, default=2380)
    p.add_argument("--nats-port", type=int, default=4222)
    p.add_argument("--scheduler-port", type=int, default=10259)
    p.add_argument("--controller-manager-port", type=int, default=10257)
    p.add_argument("--kubelet-port", type=int, default=10250)
    p.add_argument("--kubelet-healthz-port", type=int, default=10248)
    p.add_argument("--bridge", default="skiff0", help="the node's pod bridge")
    _cni_flags(p)
    p.add_argument("--service-cidr", default="10.96.0.0/12")
    p.add_argument("--pod-network-cidr", dest="pod_subnet", default="10.244.0.0/16")
    p.add_argument("--image-repository", default="skiff")
    p.add_argument("--image-tag", default="dev")


def _cni_flags(p: argparse.ArgumentParser, data: bool = True) -> None:
    p.add_argument(
        "--cni-conf-dir", type=Path, default=Path("/etc/cni/net.d"),
        help="the node's CNI configuration folder (the network add-on writes it)",
    )  # fmt: skip
    if data:
        p.add_argument(
            "--cni-data-dir", type=Path, default=Path("/var/lib/cni"),
            help="the CNI plugins' state (address allocations)",
        )  # fmt: skip


def _init_options(a: argparse.Namespace) -> InitOptions:
    cp = ControlPlane(
        node_name=a.node_name,
        pki=a.cert_dir.resolve(),
        kubeconfigs=a.kubeconfig_dir.resolve(),
        etcd_data=a.etcd_data_dir.resolve(),
        nats_data=a.nats_data_dir.resolve(),
        advertise_address=a.apiserver_advertise_address or _route_address(),
        api_port=a.apiserver_bind_port,
        etcd_port=a.etcd_port,
        etcd_peer_port=a.etcd_peer_port,
        nats_port=a.nats_port,
        scheduler_port=a.scheduler_port,
        controller_manager_port=a.controller_manager_port,
        service_cidr=a.service_cidr,
        pod_subnet=a.pod_subnet,
        image_repository=a.image_repository,
        image_tag=a.image_tag,
    )
    split = lambda text: [s.strip() for s in (text or "").split(",") if s.strip()]  # noqa: E731
    return InitOptions(
        cp=cp,
        manifests=a.manifests_dir.resolve(),
        kubelet_dir=a.kubelet_dir.resolve(),
        cert_sans=split(getattr(a, "apiserver_cert_extra_sans", "")),
        kubelet_port=a.kubelet_port,
        kubelet_healthz_port=a.kubelet_healthz_port,
        bridge=a.bridge,
        image_archives=[p.resolve() for p in getattr(a, "image_archive", [])],
        ignore_preflight_errors=split(getattr(a, "ignore_preflight_errors", "")),
        skip_phases=split(getattr(a, "skip_phases", "")),
        token=getattr(a, "token", ""),
        timeout=getattr(a, "timeout", 240.0),
        cluster_dns=dns_address(a.service_cidr),
        addons_dir=getattr(a, "addons_dir", DEFAULT_DIR).resolve(),
        dns_upstream=getattr(a, "dns_upstream", ""),
        cni_conf_dir=a.cni_conf_dir.resolve(),
        cni_data_dir=a.cni_data_dir.resolve(),
    )


def _join_options(a: argparse.Namespace) -> InitOptions:
    folder = a.kubeconfig_dir.resolve()
    cp = ControlPlane(
        node_name=a.node_name,
        pki=folder / "pki",
        kubeconfigs=folder,
        advertise_address=a.node_ip or _route_address(),
    )
    return InitOptions(
        cp=cp,
        manifests=folder / "manifests",
        kubelet_dir=a.kubelet_dir.resolve(),
        kubelet_port=a.kubelet_port,
        kubelet_healthz_port=a.kubelet_healthz_port,
        bridge=a.bridge,
        timeout=a.timeout,
        image_archives=[p.resolve() for p in a.image_archive],
        cni_conf_dir=a.cni_conf_dir.resolve(),
    )


def _cluster_kubelet_config(opts: InitOptions, server: str, ca: Path, token: str) -> str:
    """Take the cluster DNS from the cluster's kubelet-config ConfigMap (read with the
    token, the discovered CA verifying the server); kubeadm's line, or a warning."""
    config = kubeletconfig.fetch(server, ca, token)
    if not config or not config.get("clusterDNS"):
        return (f'[kubelet-start] WARNING: no "{kubeletconfig.NAME}" ConfigMap readable in '
                f"{kubeletconfig.NAMESPACE}: the kubelet uses --cluster-dns "
                f"{opts.cluster_dns}")  # fmt: skip
    opts.cluster_dns = ",".join(str(ip) for ip in config["clusterDNS"])
    return (f'[kubelet-start] Read the kubelet configuration from the "{kubeletconfig.NAME}" '
            f"ConfigMap (clusterDNS {opts.cluster_dns})")  # fmt: skip


def _route_address() -> str:
    """This machine's source address for the default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: connect() on UDP only picks a route
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiffadm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="set up a control plane on this machine")
    _node_flags(init)
    init.add_argument("--ignore-preflight-errors", default="", help="check names or 'all'")
    init.add_argument("--skip-phases", default="", help="phases to leave out, comma-separated")
    init.add_argument("--apiserver-cert-extra-sans", default="", help="comma-separated")
    init.add_argument("--token", default="", help="the bootstrap token (default: a new one)")
    init.add_argument(
        "--image-archive", action="append", default=[], type=Path,
        help="an image archive (docker save) to import into containerd (repeatable)",
    )  # fmt: skip
    init.add_argument("--timeout", type=float, default=240.0)
    _addon_flags(init)
    init.add_argument(
        "--config", type=Path, default=None,
        help="kubeadm's configuration file (InitConfiguration, ClusterConfiguration)",
    )  # fmt: skip
    reset = sub.add_parser("reset", help="undo what init put on this machine")
    _node_flags(reset)
    phases = init.add_subparsers(dest="init_command")
    phase = phases.add_parser("phase", help="run one phase of init")
    which = phase.add_subparsers(dest="phase", required=True)
    certs = which.add_parser("certs", help="certificates")
    certs.add_argument("what", choices=["all"])
    certs.add_argument("--cert-dir", type=Path, default=PKI)
    certs.add_argument("--node-name", default=_node_name())
    certs.add_argument("--apiserver-advertise-address", default="127.0.0.1")
    certs.add_argument("--service-cidr", default="10.96.0.0/12")
    certs.add_argument("--service-dns-domain", default="cluster.local")
    certs.add_argument("--apiserver-cert-extra-sans", default="", help="comma-separated")
    certs.add_argument(
        "--etcd-cert-extra-sans",
        default="",
        help="more names of etcd's and NATS's serving certificates, comma-separated",
    )
    kubeconfig = which.add_parser("kubeconfig", help="kubeconfig files")
    kubeconfig.add_argument("what", choices=["all"])
    kubeconfig.add_argument("--cert-dir", type=Path, default=PKI)
    kubeconfig.add_argument("--kubeconfig-dir", type=Path, default=KUBECONFIGS)
    kubeconfig.add_argument("--node-name", default=_node_name())
    kubeconfig.add_argument(
        "--control-plane-endpoint", default="127.0.0.1:6443", help="host:port of the apiserver"
    )

    pre = which.add_parser("preflight", help="pre-flight checks of this machine")
    pre.add_argument("--ignore-preflight-errors", default="", help="check names or 'all'")
    pre.add_argument("--manifests-dir", type=Path, default=KUBECONFIGS / "manifests")
    pre.add_argument("--etcd-data-dir", type=Path, default=Path("/var/lib/etcd"))
    pre.add_argument(
        "--ports", default=",".join(map(str, preflight.PORTS)), help="ports that must be free"
    )

    for phase_name, choices, helptext in (
        ("etcd", ["local"], "static pods of etcd and NATS (the data stores)"),
        ("control-plane", ["all"], "static pods of the apiserver, controller manager, scheduler"),
    ):
        sp = which.add_parser(phase_name, help=helptext)
        sp.add_argument("what", choices=choices)
        _node_flags(sp)

    mark = which.add_parser(
        "mark-control-plane", help="label and taint this node as a control-plane node"
    )
    mark.add_argument("--kubeconfig", type=Path, default=KUBECONFIGS / "admin.conf")
    mark.add_argument("--node-name", default=_node_name())
    mark.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for the Node")

    bootstrap = which.add_parser(
        "bootstrap-token", help="bootstrap token, joining RBAC and the cluster-info ConfigMap"
    )
    bootstrap.add_argument("--kubeconfig", type=Path, default=KUBECONFIGS / "super-admin.conf")
    bootstrap.add_argument("--cert-dir", type=Path, default=PKI)
    bootstrap.add_argument("--token", default="", help="[a-z0-9]{6}.[a-z0-9]{16} (default: new)")
    bootstrap.add_argument(
        "--token-ttl", default="24h0m0s", help="how long the token lives (0: forever)"
    )

    start = which.add_parser(
        "kubelet-start", help="containerd and the kubelet with the static pod manifests"
    )
    _node_flags(start)
    start.add_argument(
        "--image-archive", action="append", default=[], type=Path,
        help="an image archive (docker save) to import into containerd (repeatable)",
    )  # fmt: skip
    upload = which.add_parser("upload-config", help="the kubelets' configuration ConfigMap")
    upload.add_argument("what", choices=["kubelet", "all"])
    upload.add_argument("--kubeconfig", type=Path, default=KUBECONFIGS / "admin.conf")
    upload.add_argument("--service-cidr", default="10.96.0.0/12")
    upload.add_argument("--service-dns-domain", default="cluster.local")

    addon = which.add_parser("addon", help="the Service proxy, the cluster DNS, the pod network")
    addon.add_argument("what", choices=["all", *ADDONS])
    addon.add_argument("--kubeconfig", type=Path, default=KUBECONFIGS / "admin.conf")
    addon.add_argument(
        "--control-plane-endpoint", default="127.0.0.1:6443",
        help="host:port of the apiserver, as the proxies on every node reach it",
    )  # fmt: skip
    addon.add_argument("--service-cidr", default="10.96.0.0/12")
    addon.add_argument("--pod-network-cidr", dest="pod_subnet", default="10.244.0.0/16")
    addon.add_argument("--bridge", default="skiff0", help="the nodes' pod bridge")
    _cni_flags(addon)
    _addon_flags(addon)

    kc = sub.add_parser("kubeconfig", help="kubeconfig utilities")
    kc_sub = kc.add_subparsers(dest="kubeconfig_command", required=True)
    user = kc_sub.add_parser("user", help="print a kubeconfig for a user (client certificate)")
    user.add_argument("--client-name", required=True, help="the user (certificate CN)")
    user.add_argument("--org", action="append", default=[], help="a group (certificate O)")
    user.add_argument("--cert-dir", type=Path, default=PKI)
    user.add_argument(
        "--control-plane-endpoint", default="127.0.0.1:6443", help="host:port of the apiserver"
    )

    j = sub.add_parser("join", help="join this machine to a cluster (discovery, TLS bootstrap)")
    j.add_argument("endpoint", help="host:port of the control plane")
    j.add_argument("--token", required=True, help="a bootstrap token, [a-z0-9]{6}.[a-z0-9]{16}")
    j.add_argument(
        "--discovery-token-ca-cert-hash",
        action="append",
        default=[],
        help="sha256:<hex> of the CA's public key (skiffadm init prints it; repeatable)",
    )
    j.add_argument("--discovery-token-unsafe-skip-ca-verification", action="store_true")
    j.add_argument("--kubeconfig-dir", type=Path, default=KUBECONFIGS)
    j.add_argument("--kubelet-dir", type=Path, default=Path("/var/lib/skiff"))
    j.add_argument("--node-name", default=_node_name())
    j.add_argument("--node-ip", default="", help="the node's address (default: the route's)")
    j.add_argument("--kubelet-port", type=int, default=10250)
    j.add_argument("--kubelet-healthz-port", type=int, default=10248)
    j.add_argument("--bridge", default="skiff0", help="the node's pod bridge")
    _cni_flags(j, data=False)
    j.add_argument(
        "--skip-phases", default="", help="kubelet-start: only discovery and the kubeconfig"
    )
    j.add_argument(
        "--image-archive", action="append", default=[], type=Path,
        help="an image archive (docker save) to import into containerd (repeatable)",
    )  # fmt: skip
    j.add_argument("--timeout", type=float, default=240.0)

    certs_cmd = sub.add_parser("certs", help="certificate commands")
    certs_sub = certs_cmd.add_subparsers(dest="certs_command", required=True)
    check = certs_sub.add_parser("check-expiration", help="every certificate's expiry")
    check.add_argument("--cert-dir", type=Path, default=PKI)
    check.add_argument("--kubeconfig-dir", type=Path, default=KUBECONFIGS)
    check.add_argument("--node-name", default=_node_name())
    renew_p = certs_sub.add_parser("renew", help="renew certificates with the local CA")
    renew_p.add_argument("what", choices=["all", *RENEW_NAMES])
    renew_p.add_argument("--cert-dir", type=Path, default=PKI)
    renew_p.add_argument("--kubeconfig-dir", type=Path, default=KUBECONFIGS)

    token = sub.add_parser("token", help="bootstrap tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    token_sub.add_parser("generate", help="print a new random token")
    admin = str(KUBECONFIGS / "admin.conf")
    tc = token_sub.add_parser("create", help="create a bootstrap token in the cluster")
    tc.add_argument("token", nargs="?", default="")
    tc.add_argument("--kubeconfig", default=admin)
    tc.add_argument("--ttl", default="24h0m0s", help="how long it lives (0: forever)")
    tc.add_argument("--usages", default="signing,authentication")
    tc.add_argument("--groups", default=DEFAULT_GROUP)
    tc.add_argument("--description", default="")
    tc.add_argument("--print-join-command", action="store_true")
    tl = token_sub.add_parser("list", help="list the bootstrap tokens")
    tl.add_argument("--kubeconfig", default=admin)
    td = token_sub.add_parser("delete", help="delete bootstrap tokens")
    td.add_argument("tokens", nargs="+", help="token ids or tokens")
    td.add_argument("--kubeconfig", default=admin)
    return p.parse_args(argv)


def _addon_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--addons-dir", type=Path, default=DEFAULT_DIR,
        help="the add-on manifests (kube-proxy.yaml, dns.yaml)",
    )  # fmt: skip
    p.add_argument(
        "--dns-upstream", default="",
        help="where the cluster DNS sends other names, host[:port],... (default: the nodes' "
        "resolvers)",
    )  # fmt: skip


def _with_config(a: argparse.Namespace) -> argparse.Namespace:
    """Fill the flags not given on the command line from ``--config``."""
    defaults = parse_args(["init"])
    for dest, value in read_config(a.config).items():
        if getattr(a, dest) == getattr(defaults, dest):
            setattr(a, dest, value)
    return a


def _phase(a: argparse.Namespace) -> int:
    """``skiffadm init phase <name>``: one phase of init."""
    if a.phase == "certs":
        cfg = PkiConfig(
            node_name=a.node_name,
            advertise_address=a.apiserver_advertise_address,
            service_subnet=a.service_cidr,
            dns_domain=a.service_dns_domain,
            cert_sans=[s for s in a.apiserver_cert_extra_sans.split(",") if s],
            etcd_sans=[s for s in a.etcd_cert_extra_sans.split(",") if s],
        )
        print(f'[certs] Using certificateDir folder "{a.cert_dir}"')
        print("\n".join(write_cluster_pki(a.cert_dir, cfg)))
    elif a.phase == "kubeconfig":
        server = f"https://{a.control_plane_endpoint}"
        print("\n".join(write_kubeconfigs(a.kubeconfig_dir, a.cert_dir, server, a.node_name)))
    elif a.phase == "preflight":
        problems = preflight.init_checks(
            preflight.Host(),
            [int(p) for p in a.ports.split(",") if p.strip()],
            a.manifests_dir,
            a.etcd_data_dir,
        )
        lines, ok = preflight.report(problems, a.ignore_preflight_errors.split(","))
        print("\n".join(lines), file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    elif a.phase in ("etcd", "control-plane"):
        cp = _init_options(a).cp
        if a.phase == "etcd":
            write_nats_conf(cp)
        which = LOCAL_ETCD if a.phase == "etcd" else CONTROL_PLANE
        print("\n".join(write_manifests(a.manifests_dir, cp, which)))
    elif a.phase == "mark-control-plane":
        print("\n".join(asyncio.run(_mark_control_plane(a))))
    elif a.phase == "bootstrap-token":
        print("\n".join(asyncio.run(_bootstrap_token(a))))
    elif a.phase == "addon":
        print("\n".join(asyncio.run(_addon(a))))
    elif a.phase == "kubelet-start":
        print("\n".join(kubelet_start(_init_options(a))))
    elif a.phase == "upload-config":
        print("\n".join(asyncio.run(_upload_config(a))))
    return 0


def run(a: argparse.Namespace) -> int:
    if a.command == "init" and not a.init_command and a.config is not None:
        a = _with_config(a)
    if a.command == "init" and not a.init_command:
        run_init(_init_options(a), lambda line: print(line, flush=True))
        return 0
    if a.command == "reset":
        print("\n".join(run_reset(_init_options(a))))
        return 0
    if a.command == "init":
        return _phase(a)
    if a.command == "join":
        parse_token(a.token)
        lines, server = join(
            a.endpoint,
            a.token,
            a.discovery_token_ca_cert_hash,
            a.discovery_token_unsafe_skip_ca_verification,
            a.kubeconfig_dir,
        )
        print("\n".join(lines), flush=True)
        if "kubelet-start" not in a.skip_phases.split(","):
            opts = _join_options(a)
            ca = a.kubeconfig_dir / "pki" / "ca.crt"
            print(_cluster_kubelet_config(opts, server, ca, a.token), flush=True)
            print("\n".join(kubelet_start(opts, a.kubeconfig_dir / "bootstrap-kubelet.conf")),
                  flush=True)  # fmt: skip
            print("\n".join(wait_tls_bootstrap(opts)))
    elif a.command == "kubeconfig":
        sys.stdout.write(
            user_kubeconfig(a.cert_dir, a.client_name, a.org, a.control_plane_endpoint)
        )
    elif a.command == "certs" and a.certs_command == "renew":
        print("\n".join(renew(a.what, a.cert_dir, a.kubeconfig_dir)))
    elif a.command == "certs":
        sys.stdout.write(report(a.cert_dir, a.kubeconfig_dir, a.node_name))
    elif a.command == "token" and a.token_command == "generate":
        print(generate_token())
    elif a.command == "token":
        sys.stdout.write(asyncio.run(_tokens(a)))
    return 0


async def _mark_control_plane(a: argparse.Namespace) -> list[str]:
    async with ApiClient.from_kubeconfig(str(a.kubeconfig), user_agent="skiffadm") as client:
        return await mark_control_plane(client, a.node_name, timeout=a.timeout)


async def _upload_config(a: argparse.Namespace) -> list[str]:
    async with ApiClient.from_kubeconfig(str(a.kubeconfig), user_agent="skiffadm") as client:
        return await kubeletconfig.upload(client, dns_address(a.service_cidr), a.service_dns_domain)


async def _addon(a: argparse.Namespace) -> list[str]:
    async with ApiClient.from_kubeconfig(str(a.kubeconfig), user_agent="skiffadm") as client:
        return await install(
            client, ADDONS if a.what == "all" else [a.what], folder=a.addons_dir,
            endpoint=f"https://{a.control_plane_endpoint}", pod_subnet=a.pod_subnet,
            cluster_dns=dns_address(a.service_cidr), dns_upstream=a.dns_upstream,
            bridge=a.bridge, cni_conf_dir=a.cni_conf_dir, cni_data_dir=a.cni_data_dir,
        )  # fmt: skip


async def _bootstrap_token(a: argparse.Namespace) -> list[str]:
    ttl_seconds = parse_duration(a.token_ttl)
    ttl = dt.timedelta(seconds=ttl_seconds) if ttl_seconds > 0 else None
    token = a.token or generate_token()
    parse_token(token)
    async with ApiClient.from_kubeconfig(str(a.kubeconfig), user_agent="skiffadm") as client:
        return await run_phase(
            client,
            token=token,
            ttl=ttl,
            server=client.server,
            ca_pem=(a.cert_dir / "ca.crt").read_bytes(),
        )


async def _tokens(a: argparse.Namespace) -> str:
    async with ApiClient.from_kubeconfig(a.kubeconfig, user_agent="skiffadm") as client:
        if a.token_command == "list":
            return await tokens.table(client)
        if a.token_command == "delete":
            lines = [await tokens.delete(client, t) for t in a.tokens]
            return "".join(f"{line}\n" for line in lines)
        seconds = parse_duration(a.ttl)
        token = await tokens.create(
            client,
            a.token,
            ttl=dt.timedelta(seconds=seconds) if seconds > 0 else None,
            usages=[u for u in a.usages.split(",") if u],
            groups=[g for g in a.groups.split(",") if g],
            description=a.description,
        )
        if a.print_join_command:
            return tokens.join_command(a.kubeconfig, token) + "\n"
        return token + "\n"


def user_kubeconfig(cert_dir: Path, name: str, groups: list[str], endpoint: str) -> str:
    """kubeadm's ``kubeconfig user``: a client certificate for ``name`` in ``groups``."""
    ca = CertificateAuthority(KeyPair.load(cert_dir, "ca"))
    pair = ca.issue(name, organizations=groups, usages=("client",))
    return yaml.safe_dump(kubeconfig(f"https://{endpoint}", ca.pair.cert_pem, name, pair))


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    try:
        sys.exit(run(a))
    except (
        OSError, ValueError, ApiError, DiscoveryError, RenewError, InitError, ConfigError,
        AddonError,
    ) as e:  # fmt: skip
        print(f"error execution phase: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
