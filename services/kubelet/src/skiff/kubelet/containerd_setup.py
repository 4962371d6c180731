"""Setting up the node's own containerd: its configuration, start-up and local images.

``python -m skiff.kubelet.containerd_setup config|images|cleanup`` is what ``make up``,
``make down`` and the node image run; the kubelet itself only talks CRI to it (through
``skiff.cri.client``).

Skiff runs a containerd of its own (own config, root, state, socket and runc root), so
it never collides with another containerd on the machine (two cannot share a root).
``restrict_oom_score_adj`` is required on machines without CAP_SYS_RESOURCE.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff.cni import bridge_conflist, write_conflist

from .local_images import PAUSE_NAME, busybox_image, pause_image, write_oci_tar

CNI_BIN_DIR = "/usr/lib/cni"
# `make down`: seconds each container gets between SIGTERM and SIGKILL (kind delete: none).
DOWN_GRACE_SECONDS = 1


@dataclass(slots=True)
class RuntimePaths:
    """Everything the node's containerd keeps, under one folder."""

    base: Path
    cni_conf: Path | None = None
    """Where the CNI configuration lives (default: ``<base>/cni/net.d``); on a node whose
    network add-on writes it, the conventional ``/etc/cni/net.d``."""

    @property
    def config(self) -> Path:
        return self.base / "containerd.toml"

    @property
    def socket(self) -> Path:
        return self.base / "containerd.sock"

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def runc_root(self) -> Path:
        return self.base / "runc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.cni_conf or self.base / "cni" / "net.d"

    @property
    def images(self) -> Path:
        return self.base / "images"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"


def _overlay_works(probe_dir: Path) -> bool:
    """overlayfs is the usual snapshotter; inside some containers only 'native' works."""
    return "overlay" in Path("/proc/filesystems").read_text()


def write_config(paths: RuntimePaths, *, sandbox_image: str = PAUSE_NAME) -> Path:
    """containerd's config for this node (version 2 format, containerd 1.6)."""
    for d in (paths.root, paths.state, paths.runc_root, paths.cni_conf_dir):
        d.mkdir(parents=True, exist_ok=True)
    snapshotter = "overlayfs" if _overlay_works(paths.base) else "native"
    paths.config.write_text(f"""version = 2
root = "{paths.root}"
state = "{paths.state}"

[grpc]
  address = "{paths.socket}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{snapshotter}"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{paths.runc_root}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{paths.cni_conf_dir}"
""")
    return paths.config


def write_cni_config(
    paths: RuntimePaths,
    subnet: str,
    *,
    bridge: str = "skiff0",
    name: str = "skiff",
    masquerade: bool = True,
) -> Path:
    """The node's pod network for ``subnet`` (:func:`skiff.cni.bridge_conflist`), with its
    IPAM leases under the runtime folder."""
    conflist = bridge_conflist(
        subnet,
        ipam_dir=paths.base / "cni" / "ipam",
        bridge=bridge,
        name=name,
        masquerade=masquerade,
    )
    return write_conflist(paths.cni_conf_dir, conflist)


def ensure_shared_netns_dir(path: Path = Path("/run/netns")) -> None:
    """Make /run/netns a shared bind mount before containerd creates pod namespaces.

    Otherwise the first ``ip netns add`` bind-mounts it over itself and namespaces made
    before can no longer be removed ("device or resource busy").
    """
    path.mkdir(parents=True, exist_ok=True)
    mounted = any(
        line.split()[4] == str(path)
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
    )
    if not mounted:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    subprocess.run(["mount", "--make-shared", str(path)], check=True)


def teardown_network(bridge: str = "skiff0") -> None:
    """Remove what the CNI plugins leave after this bridge's last pod: the bridge, and the
    iptables rules and chains of addresses in its subnet.

    Only this network's: other CNI networks on the host (another cluster, the tests' own)
    share the firewall plugin's ``CNI-FORWARD``/``CNI-ADMIN`` chains, which are removed
    only once no other network's rule is left in them. Removing every ``CNI-`` chain used
    to break the pods of a second cluster on the same machine (their plugin's DEL then
    failed on a missing chain).
    """
    subnet = _bridge_subnet(bridge)
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    if subnet is None:
        return
    for table in ("filter", "nat"):
        rules = _rules(table)
        mine = [r for r in rules if r[:1] == ["-A"] and _in_subnet(r, subnet)]
        chains = {r[r.index("-j") + 1] for r in mine if "-j" in r}
        owned = {c for c in chains if c.startswith("CNI-") and not c.startswith(_SHARED)}
        for r in mine:
            subprocess.run(["iptables", "-t", table, "-D", *r[1:]], capture_output=True)
        for chain in owned:
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)
        _remove_shared_if_unused(table)


_SHARED = ("CNI-FORWARD", "CNI-ADMIN", "CNI-HOSTPORT-")


def _rules(table: str) -> list[list[str]]:
    out = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True).stdout
    return [shlex.split(line) for line in out.splitlines()]  # comments hold spaces


def bridge_addresses(bridge: str) -> list[str]:
    """The IPv4 addresses (``a.b.c.d/n``) on a link; ``[]`` when it does not exist."""
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", bridge], capture_output=True, text=True
    )
    if out.returncode != 0:
        return []
    return [line.split()[3] for line in out.stdout.splitlines() if len(line.split()) > 3]


def _bridge_subnet(bridge: str) -> ipaddress.IPv4Network | None:
    addresses = bridge_addresses(bridge)
    if not addresses:
        return None
    return ipaddress.ip_network(addresses[0], strict=False)  # type: ignore[return-value]


def _in_subnet(rule: list[str], subnet: ipaddress.IPv4Network) -> bool:
    for flag in ("-s", "-d"):
        if flag in rule:
            try:
                if ipaddress.ip_network(rule[rule.index(flag) + 1], strict=False).subnet_of(subnet):
                    return True
            except (ValueError, TypeError, IndexError):
                continue
    return False


def _remove_shared_if_unused(table: str) -> None:
    rules = _rules(table)
    shared = [r[1] for r in rules if r[:1] == ["-N"] and r[1].startswith(_SHARED)]
    if not shared:
        return

    # A rule in a shared chain about one pod (an address, or a jump to a pod's own
    # chain): another network's pods still use them. Their fixed rules (the mark, the
    # masquerade, the jumps between them) say nothing.
    def about_a_pod(r: list[str]) -> bool:
        target = r[r.index("-j") + 1] if "-j" in r else ""
        own_chain = target.startswith("CNI-") and target not in shared
        return "-s" in r or "-d" in r or own_chain

    inside = [r for r in rules if r[:1] == ["-A"] and r[1] in shared and about_a_pod(r)]
    if inside:
        return
    for r in rules:
        if r[:1] == ["-A"] and r[1] not in shared and "-j" in r and r[r.index("-j") + 1] in shared:
            subprocess.run(["iptables", "-t", table, "-D", *r[1:]], capture_output=True)
    for chain in shared:
        subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
    for chain in shared:
        subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)


def wait_for_socket(path: Path, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists():
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(str(path))
                    return
                except OSError:
                    pass
        time.sleep(0.1)
    raise TimeoutError(f"containerd did not open {path}")


def import_archive(paths: RuntimePaths, tar: Path) -> None:
    """Import an image archive (OCI, or ``docker save``'s) into the k8s.io namespace."""
    ctr = ["ctr", "--address", str(paths.socket), "--namespace", "k8s.io"]
    subprocess.run([*ctr, "images", "import", str(tar)], check=True, capture_output=True)


def import_images(paths: RuntimePaths) -> list[str]:
    """Build busybox and the pause image and import them into the k8s.io namespace."""
    names = []
    for image, file in ((busybox_image(), "busybox.tar"), (pause_image(), "pause.tar")):
        import_archive(paths, write_oci_tar(image, paths.images / file))
        names.append(image.name)
    return names


def containerd_command(paths: RuntimePaths) -> list[str]:
    return [shutil.which("containerd") or "containerd", "--config", str(paths.config)]


async def remove_sandboxes(cri: Any, sandboxes: list[Any], *, grace: int = 5) -> None:
    """Stop and remove pod sandboxes with their containers (and so their CNI attachment),
    all at once: each container gets SIGTERM, then SIGKILL after ``grace`` seconds."""
    from skiff.cri.client import pb

    async def remove(sb: Any) -> None:
        containers = await cri.list_containers(pod_sandbox_id=sb.id)
        running = [c for c in containers if c.state == pb.CONTAINER_RUNNING]
        await asyncio.gather(*(cri.stop_container(c.id, grace_period=grace) for c in running))
        for c in containers:
            await cri.remove_container(c.id)
        await cri.stop_pod_sandbox(sb.id)
        await cri.remove_pod_sandbox(sb.id)

    await asyncio.gather(*(remove(sb) for sb in sandboxes))


async def remove_all_pods(paths: RuntimePaths, *, grace: int = DOWN_GRACE_SECONDS) -> int:
    """Remove every pod sandbox of the node's containerd (``make down``), with a short
    grace period as ``kind delete`` (which removes its node containers at once)."""
    from skiff.cri.client import CriClient

    if not paths.socket.exists():
        return 0
    async with CriClient(paths.endpoint) as cri:
        sandboxes = await cri.list_pod_sandbox()
        await remove_sandboxes(cri, sandboxes, grace=grace)
        return len(sandboxes)


async def remove_pod_volumes(paths: RuntimePaths) -> int:
    """Unmount and remove the volumes the kubelet left (``make down`` stops it before its
    pods: their secret, projected and memory volumes are tmpfs mounts); how many pods had
    some."""
    from .volumes import VolumeManager

    volumes = VolumeManager(paths.base / "kubelet", _no_lookup)
    pods = volumes.known_pods()
    for uid in pods:
        await volumes.teardown(uid)
    return len(pods)


async def _no_lookup(_kind: str, _namespace: str, _name: str) -> dict:  # type: ignore[type-arg]
    raise RuntimeError("no API during cleanup")


def main(argv: list[str] | None = None) -> None:
    """``python -m skiff.kubelet.containerd_setup config|images --dir DIR``: used by ``make up``."""
    p = argparse.ArgumentParser(prog="python -m skiff.kubelet.containerd_setup")
    p.add_argument("action", choices=("config", "images", "cleanup"))
    p.add_argument("--bridge", default="skiff0")
    p.add_argument(
        "--grace",
        type=int,
        default=DOWN_GRACE_SECONDS,
        help="cleanup: seconds each container has between SIGTERM and SIGKILL",
    )
    p.add_argument("--dir", type=Path, default=Path(os.environ.get("SKIFF_RUNTIME_DIR", ".")))
    p.add_argument(
        "--cni-conf-dir",
        type=Path,
        default=os.environ.get("SKIFF_CNI_CONF_DIR") or None,
        help="containerd's CNI configuration folder (default: <dir>/cni/net.d)",
    )
    p.add_argument(
        "--image-dir",
        type=Path,
        default=os.environ.get("SKIFF_IMAGE_DIR") or None,
        help="images: also import every image archive (*.tar) in this folder",
    )
    a = p.parse_args(argv)
    paths = RuntimePaths(a.dir.resolve(), a.cni_conf_dir)
    if a.action == "config":
        print(write_config(paths))
    elif a.action == "cleanup":
        count = asyncio.run(remove_all_pods(paths, grace=a.grace))
        volumes = asyncio.run(remove_pod_volumes(paths))
        print(f"stopped {count} pods (grace period {a.grace} s), unmounted {volumes} pods' volumes")
        teardown_network(a.bridge)
    else:
        wait_for_socket(paths.socket)
        for name in import_images(paths):
            print(name)
        for tar in sorted(a.image_dir.glob("*.tar")) if a.image_dir else ():
            import_archive(paths, tar)
            print(tar.name)


if __name__ == "__main__":
    main()
