"""``skiffadm init``: kubeadm init's phases in order, on this machine: preflight, certs,
kubeconfig, etcd (local, with NATS), control-plane, kubelet-start (the project's
containerd with the control plane's images, then the kubelet on the host with the
manifest folder; both as background processes with pid files, there being no systemd),
wait-control-plane, upload-config (the kubelets' configuration for joining nodes),
mark-control-plane, bootstrap-token, addon (the Service proxy, the cluster DNS, the pod
network); then kubeadm's closing words with the exact join command. ``--skip-phases``
leaves phases out, as kubeadm's (``addon/kube-proxy``, ``addon/dns``: one add-on)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from skiff.bootstrap import generate_token
from skiff.client.rest import ApiClient
from skiff.clusterpki import PkiConfig, write_cluster_pki
from skiff.kubeconfigs import write_kubeconfigs

from . import preflight
from .addon import ADDONS, DEFAULT_DIR, install
from .bootstraptoken import run_phase
from .controlplane import CONTROL_PLANE, LOCAL_ETCD, ControlPlane, write_manifests, write_nats_conf
from .kubeletconfig import upload as upload_kubelet_config
from .markcontrolplane import mark_control_plane
from .tokens import join_command

PHASES = ("preflight", "certs", "kubeconfig", "etcd", "control-plane", "kubelet-start",
          "wait-control-plane", "upload-config", "mark-control-plane", "bootstrap-token",
          "addon")  # fmt: skip
SUBPHASES = {f"addon/{name}" for name in ADDONS} | {"addon/coredns", "upload-config/kubelet"}


class InitError(Exception):
    """A phase failed; the message says which and why."""


@dataclass
class InitOptions:
    cp: ControlPlane
    manifests: Path
    kubelet_dir: Path
    """The node's runtime state: containerd's (``containerd/``) and the kubelet's."""
    cert_sans: list[str] = field(default_factory=list)
    kubelet_port: int = 10250
    kubelet_healthz_port: int = 10248
    bridge: str = "skiff0"
    cluster_dns: str = "10.96.0.10"
    image_archives: list[Path] = field(default_factory=list)
    ignore_preflight_errors: list[str] = field(default_factory=list)
    skip_phases: list[str] = field(default_factory=list)
    token: str = ""
    timeout: float = 240.0
    addons_dir: Path = DEFAULT_DIR
    cni_conf_dir: Path = Path("/etc/cni/net.d")
    """Where the network add-on writes the node's CNI configuration (the kubelet's and
    containerd's folder)."""
    cni_data_dir: Path = Path("/var/lib/cni")
    dns_upstream: str = ""
    """Where the cluster DNS sends names outside the cluster ("": the nodes' resolvers)."""

    @property
    def runtime(self) -> Path:
        return self.kubelet_dir / "containerd"

    @property
    def state(self) -> Path:
        """skiffadm's own records: pid files and logs of what it started."""
        return self.kubelet_dir / "skiffadm"


def local_bin(name: str) -> str:
    """A console script of this installation (beside this Python), else on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def start_background(opts: InitOptions, name: str, argv: list[str]) -> int:
    """Start ``argv`` detached, logging to ``<state>/<name>.log``; its pid is recorded in
    ``<state>/<name>.pid`` (what ``skiffadm reset`` stops)."""
    opts.state.mkdir(parents=True, exist_ok=True)
    with open(opts.state / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    (opts.state / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def _wait(what: Callable[[], bool], timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if what():
            return time.monotonic() - t0
        time.sleep(0.2)
    raise InitError(f"timed out after {timeout:.0f}s")


def _healthy(url: str) -> bool:
    import ssl

    context = ssl._create_unverified_context() if url.startswith("https") else None
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as r:
            return r.status == 200
    except OSError:
        return False


def node_sysctls() -> None:
    """What kube-proxy sets when privileged and cannot in its container here (best effort,
    as kubeadm's preflight only checks them): forwarding, and bridged pod traffic through
    iptables, or a pod reaching a Service whose endpoint shares its bridge is never DNATed
    back."""
    try:
        subprocess.run(["modprobe", "br_netfilter"], capture_output=True)
    except OSError:  # no kmod: the module may be built in or loaded already
        pass
    for name in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"):
        try:
            Path("/proc/sys", name).write_text("1\n")
        except OSError:
            pass


def kubelet_start(opts: InitOptions, bootstrap: Path | None = None) -> list[str]:
    """containerd (the project's configuration) with the images, then the kubelet: with
    the manifest folder (init), or with ``bootstrap``, the bootstrap kubeconfig (join)."""
    from skiff.kubelet.containerd_setup import RuntimePaths, import_archive

    paths = RuntimePaths(opts.runtime, opts.cni_conf_dir)
    py = sys.executable
    node_sysctls()
    subprocess.run([py, "-m", "skiff.kubelet.containerd_setup", "config", "--dir",
                    str(opts.runtime), "--cni-conf-dir", str(opts.cni_conf_dir)],
                   check=True, capture_output=True)  # fmt: skip
    out = []
    if not paths.socket.exists():
        start_background(opts, "containerd", ["containerd", "--config", str(paths.config)])
        _wait(paths.socket.exists, 30)
        out.append(f'[kubelet-start] Started containerd (socket "{paths.socket}")')
    subprocess.run([py, "-m", "skiff.kubelet.containerd_setup", "images", "--dir",
                    str(opts.runtime)], check=True, capture_output=True)  # fmt: skip
    for archive in opts.image_archives:
        import_archive(paths, archive)
        out.append(f'[kubelet-start] Imported the images of "{archive}"')
    cp = opts.cp
    argv = [
        local_bin("skiff-kubelet"), "--kubeconfig", str(cp.kubeconfigs / "kubelet.conf"),
        "--runtime-dir", str(opts.runtime), "--node-name", cp.node_name,
        "--node-ip", cp.advertise_address, "--port", str(opts.kubelet_port),
        # Every address, as kubeadm's kubelet; only loopback when the node's address is.
        "--address", "127.0.0.1" if cp.advertise_address == "127.0.0.1" else "0.0.0.0",
        "--bridge", opts.bridge, "--cluster-dns", opts.cluster_dns,
        "--client-ca-file", str(cp.pki / "ca.crt"), "--anonymous-auth", "false",
        "--authentication-token-webhook", "--authorization-mode", "Webhook",
        "--healthz-port", str(opts.kubelet_healthz_port), "--rotate-server-certificates",
        # The network add-on writes the CNI configuration; the node is Ready once it has.
        "--network-plugin", "cni", "--cni-conf-dir", str(opts.cni_conf_dir),
    ]  # fmt: skip
    if bootstrap is None:
        argv += ["--pod-manifest-path", str(opts.manifests)]
    else:
        argv += ["--bootstrap-kubeconfig", str(bootstrap), "--rotate-certificates",
                 "--cert-dir", str(opts.kubelet_dir / "pki")]  # fmt: skip
    pid = start_background(opts, "kubelet", argv)
    out.append(f"[kubelet-start] Starting the kubelet (pid {pid}, log "
               f'"{opts.state / "kubelet.log"}")')  # fmt: skip
    return out


def wait_tls_bootstrap(opts: InitOptions) -> list[str]:
    """Until the kubelet has its own client certificate (kubelet.conf) and is healthy."""
    conf = opts.cp.kubeconfigs / "kubelet.conf"
    out = ["[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap"]
    try:
        _wait(conf.exists, opts.timeout)
        healthz = f"http://127.0.0.1:{opts.kubelet_healthz_port}/healthz"
        took = _wait(lambda: _healthy(healthz), opts.timeout)
    except InitError as e:
        log = opts.state / "kubelet.log"
        raise InitError(f"the kubelet's TLS bootstrap did not finish: {e} (log {log})") from None
    return [
        *out,
        f"[kubelet-check] The kubelet is healthy after {took:.3f}s",
        "",
        "This node has joined the cluster:",
        "* Certificate signing request was sent to apiserver and a response was received.",
        "* The Kubelet was informed of the new secure connection details.",
        "",
        "Run 'kubectl get nodes' on the control-plane to see this node join the cluster.",
    ]


def wait_control_plane(opts: InitOptions) -> list[str]:
    healthz = f"http://127.0.0.1:{opts.kubelet_healthz_port}/healthz"
    out = [
        "[wait-control-plane] Waiting for the kubelet to boot up the control plane as static "
        f'Pods from directory "{opts.manifests}"',
        f"[kubelet-check] Waiting for a healthy kubelet at {healthz}. This can take up to "
        f"{opts.timeout / 60:.0f}m0s",
    ]
    try:
        took = _wait(lambda: _healthy(healthz), opts.timeout)
    except InitError as e:
        log = opts.state / "kubelet.log"
        raise InitError(f"the kubelet is not healthy: {e} (log {log})") from None
    out.append(f"[kubelet-check] The kubelet is healthy after {took:.3f}s")
    api = f"https://127.0.0.1:{opts.cp.api_port}/healthz"
    out.append(f"[api-check] Waiting for a healthy API server. This can take up to "
               f"{opts.timeout / 60:.0f}m0s")  # fmt: skip
    try:
        took = _wait(lambda: _healthy(api), opts.timeout)
    except InitError as e:
        raise InitError(f"the API server is not healthy: {e}") from None
    out.append(f"[api-check] The API server is healthy after {took:.3f}s")
    return out


def _addons(skip: list[str]) -> list[str]:
    """The add-ons ``--skip-phases`` leaves in (``addon``: none; ``addon/<name>``: not that
    one; kubeadm's ``addon/coredns`` names the DNS)."""
    left = {"addon", *(f"addon/{a}" for a in ADDONS)} & set(skip)
    if "addon/coredns" in skip:
        left.add("addon/dns")
    return [] if "addon" in left else [a for a in ADDONS if f"addon/{a}" not in left]


async def _api_phases(opts: InitOptions, token: str) -> list[str]:
    cp = opts.cp
    out: list[str] = []
    addons = _addons(opts.skip_phases)
    skip = set(opts.skip_phases)
    upload = not {"upload-config", "upload-config/kubelet"} & skip
    if not addons and not upload and {"mark-control-plane", "bootstrap-token"} <= skip:
        return out
    async with ApiClient.from_kubeconfig(
        str(cp.kubeconfigs / "super-admin.conf"), user_agent="skiffadm"
    ) as client:
        if upload:
            out += await upload_kubelet_config(client, opts.cluster_dns)
        if "mark-control-plane" not in opts.skip_phases:
            out += await mark_control_plane(client, cp.node_name, timeout=opts.timeout)
        if "bootstrap-token" not in opts.skip_phases:
            out += await run_phase(
                client, token=token, ttl=dt.timedelta(hours=24), server=client.server,
                ca_pem=(cp.pki / "ca.crt").read_bytes(),
            )  # fmt: skip
        if addons:
            out += await install(
                client, addons, folder=opts.addons_dir,
                endpoint=f"https://{cp.advertise_address}:{cp.api_port}",
                pod_subnet=cp.pod_subnet, cluster_dns=opts.cluster_dns,
                dns_upstream=opts.dns_upstream, bridge=opts.bridge,
                cni_conf_dir=opts.cni_conf_dir, cni_data_dir=opts.cni_data_dir,
            )  # fmt: skip
    return out


def closing(opts: InitOptions, token: str) -> list[str]:
    admin = opts.cp.kubeconfigs / "admin.conf"
    join = join_command(str(admin), token)
    network = (
        ["The pod network add-on (skiff-network) was installed: nodes turn Ready once it runs",
         "on them.", ""]
        if "network" in _addons(opts.skip_phases)
        else ["You should now deploy a pod network to the cluster.",
              'Run "kubectl apply -f [podnetwork].yaml" with one of the options listed at:',
              "  deploy/network.yaml (Skiff's), or any CNI add-on", ""]
    )  # fmt: skip
    return [
        "",
        "Your Kubernetes control-plane has initialized successfully!",
        "",
        "To start using your cluster, you need to run the following as a regular user:",
        "",
        "  mkdir -p $HOME/.kube",
        f"  sudo cp -i {admin} $HOME/.kube/config",
        "  sudo chown $(id -u):$(id -g) $HOME/.kube/config",
        "",
        "Alternatively, if you are the root user, you can run:",
        "",
        f"  export KUBECONFIG={admin}",
        "",
        *network,
        "Then you can join any number of worker nodes by running the following on each as root:",
        "",
        join.replace(" --discovery-token-ca-cert-hash", " \\\n\t--discovery-token-ca-cert-hash"),
    ]


def run_init(opts: InitOptions, emit: Callable[[str], None]) -> None:
    """Every phase not skipped, in kubeadm's order; lines go to ``emit`` as they come."""
    cp = opts.cp
    skip = set(opts.skip_phases)
    unknown = skip - set(PHASES) - SUBPHASES
    if unknown:
        raise InitError(f"unknown phases {sorted(unknown)}; the phases: {', '.join(PHASES)}")
    token = opts.token or generate_token()

    def say(lines: list[str]) -> None:
        for line in lines:
            emit(line)

    if "preflight" not in skip:
        problems = preflight.init_checks(
            preflight.Host(),
            [cp.api_port, cp.scheduler_port, cp.controller_manager_port, opts.kubelet_port,
             cp.etcd_port, cp.etcd_peer_port, cp.nats_port],
            opts.manifests, cp.etcd_data,
        )  # fmt: skip
        lines, ok = preflight.report(problems, opts.ignore_preflight_errors)
        say(lines)
        if not ok:
            raise InitError("preflight checks failed")
    if "certs" not in skip:
        say([f'[certs] Using certificateDir folder "{cp.pki}"'])
        pki = PkiConfig(node_name=cp.node_name, advertise_address=cp.advertise_address,
                        service_subnet=cp.service_cidr, cert_sans=opts.cert_sans)  # fmt: skip
        say(write_cluster_pki(cp.pki, pki))
    if "kubeconfig" not in skip:
        server = f"https://{cp.advertise_address}:{cp.api_port}"
        say(write_kubeconfigs(cp.kubeconfigs, cp.pki, server, cp.node_name))
    if "etcd" not in skip:
        write_nats_conf(cp)
        say(write_manifests(opts.manifests, cp, LOCAL_ETCD))
    if "control-plane" not in skip:
        say(write_manifests(opts.manifests, cp, CONTROL_PLANE))
    if "kubelet-start" not in skip:
        say(kubelet_start(opts))
    if "wait-control-plane" not in skip:
        say(wait_control_plane(opts))
    say(asyncio.run(_api_phases(opts, token)))
    if "bootstrap-token" not in skip:
        say(closing(opts, token))


def pid_of(state: Path, name: str) -> int | None:
    try:
        return int((state / f"{name}.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
