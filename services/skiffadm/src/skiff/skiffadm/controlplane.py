"""``skiffadm init phase etcd local`` and ``init phase control-plane all``: the control
plane as static pods (kubeadm's ``/etc/kubernetes/manifests``), which the kubelet runs
before any API exists: etcd, NATS (Skiff's watch fan-out), the apiserver, the controller
manager and the scheduler, each from its image (``skiff/<component>:<tag>``, built locally
by ``make images``; ``imagePullPolicy: Never``), on the host's network, as root (the keys
are root's), with the host folders it needs mounted at the same paths, secured exactly as
``make up`` runs them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from skiff.clusterpki import front_proxy_flags
from skiff.natsconf import server_config

Obj = dict[str, Any]


@dataclass(frozen=True)
class ControlPlane:
    """What the manifests name (a subset of kubeadm's ClusterConfiguration)."""

    node_name: str
    pki: Path = Path("/etc/kubernetes/pki")
    kubeconfigs: Path = Path("/etc/kubernetes")
    etcd_data: Path = Path("/var/lib/etcd")
    nats_data: Path = Path("/var/lib/nats")
    advertise_address: str = "127.0.0.1"
    api_port: int = 6443
    etcd_port: int = 2379
    etcd_peer_port: int = 2380
    nats_port: int = 4222
    scheduler_port: int = 10259
    controller_manager_port: int = 10257
    service_cidr: str = "10.96.0.0/12"
    pod_subnet: str = "10.244.0.0/16"
    """kubeadm's podSubnet: the controller manager gives each node a slice of it."""
    image_repository: str = "skiff"
    image_tag: str = "dev"

    def image(self, component: str) -> str:
        return f"{self.image_repository}/{component}:{self.image_tag}"

    @property
    def nats_conf(self) -> Path:
        return self.kubeconfigs / "nats.conf"


def _volume(name: str, path: Path, kind: str, read_only: bool = True) -> tuple[Obj, Obj]:
    return (
        {"name": name, "hostPath": {"path": str(path), "type": kind}},
        {"name": name, "mountPath": str(path), "readOnly": read_only},
    )


def _pod(
    cfg: ControlPlane,
    name: str,
    component: str,
    container: Obj,
    volumes: list[tuple[Obj, Obj]],
    health_port: int | None = None,
    scheme: str = "HTTP",
) -> Obj:
    container = {
        "name": name,
        "image": cfg.image(component),
        "imagePullPolicy": "Never",
        **container,
        "securityContext": {"runAsUser": 0, "runAsGroup": 0},
        "volumeMounts": [m for _v, m in volumes],
    }
    if health_port is not None:
        container["livenessProbe"] = {
            "httpGet": {"host": "127.0.0.1", "port": health_port, "path": "/healthz",
                        "scheme": scheme},
            "initialDelaySeconds": 10, "periodSeconds": 10, "failureThreshold": 8,
        }  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "kube-system",
            "labels": {"component": name, "tier": "control-plane"},
        },
        "spec": {
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "containers": [container],
            "volumes": [v for v, _m in volumes],
        },
    }


def etcd(cfg: ControlPlane) -> Obj:
    """etcd with TLS and client-certificate authentication (its own CA)."""
    pki = cfg.pki / "etcd"
    peer = f"https://127.0.0.1:{cfg.etcd_peer_port}"
    client = f"https://127.0.0.1:{cfg.etcd_port}"
    env = {  # the image sets its defaults as ETCD_* variables: flags would conflict
        "ETCD_NAME": cfg.node_name,
        "ETCD_DATA_DIR": str(cfg.etcd_data),
        "ETCD_LISTEN_CLIENT_URLS": client,
        "ETCD_ADVERTISE_CLIENT_URLS": client,
        "ETCD_LISTEN_PEER_URLS": peer,
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": peer,
        "ETCD_INITIAL_CLUSTER": f"{cfg.node_name}={peer}",
        "ETCD_CERT_FILE": str(pki / "server.crt"),
        "ETCD_KEY_FILE": str(pki / "server.key"),
        "ETCD_CLIENT_CERT_AUTH": "true",
        "ETCD_TRUSTED_CA_FILE": str(pki / "ca.crt"),
        "ETCD_PEER_CERT_FILE": str(pki / "peer.crt"),
        "ETCD_PEER_KEY_FILE": str(pki / "peer.key"),
        "ETCD_PEER_CLIENT_CERT_AUTH": "true",
        "ETCD_PEER_TRUSTED_CA_FILE": str(pki / "ca.crt"),
    }
    return _pod(
        cfg,
        "etcd",
        "etcd",
        {"env": [{"name": k, "value": v} for k, v in env.items()]},
        [_volume("etcd-certs", pki, "Directory"),
         _volume("etcd-data", cfg.etcd_data, "DirectoryOrCreate", read_only=False)],
    )  # fmt: skip


def nats(cfg: ControlPlane) -> Obj:
    """NATS with TLS, client certificates and permissions (``skiff.natsconf``)."""
    return _pod(
        cfg,
        "nats",
        "nats",
        {"command": ["nats-server", "-c", str(cfg.nats_conf)]},
        [_volume("nats-conf", cfg.nats_conf, "File"),
         _volume("nats-certs", cfg.pki / "nats", "Directory"),
         _volume("nats-data", cfg.nats_data, "DirectoryOrCreate", read_only=False)],
    )  # fmt: skip


def apiserver(cfg: ControlPlane) -> Obj:
    p = cfg.pki
    args = [
        f"--advertise-address={cfg.advertise_address}",
        f"--secure-port={cfg.api_port}",
        # Every address, as kubeadm's; only loopback when that is what it advertises.
        f"--bind-address={'127.0.0.1' if cfg.advertise_address == '127.0.0.1' else '0.0.0.0'}",
        f"--etcd-servers=https://127.0.0.1:{cfg.etcd_port}",
        f"--etcd-cafile={p / 'etcd/ca.crt'}",
        f"--etcd-certfile={p / 'apiserver-etcd-client.crt'}",
        f"--etcd-keyfile={p / 'apiserver-etcd-client.key'}",
        f"--nats-url=nats://127.0.0.1:{cfg.nats_port}",
        f"--nats-ca-file={p / 'nats/ca.crt'}",
        f"--nats-cert-file={p / 'nats/watch-cache.crt'}",
        f"--nats-key-file={p / 'nats/watch-cache.key'}",
        f"--nats-pump-cert-file={p / 'nats/event-pump.crt'}",
        f"--nats-pump-key-file={p / 'nats/event-pump.key'}",
        f"--tls-cert-file={p / 'apiserver.crt'}",
        f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--client-ca-file={p / 'ca.crt'}",
        f"--service-account-key-file={p / 'sa.pub'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        f"--service-cluster-ip-range={cfg.service_cidr}",
        "--enable-bootstrap-token-auth",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction,ServiceAccount",
        f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={p / 'ca.crt'}",
        *front_proxy_flags(p),
    ]
    return _pod(
        cfg, "kube-apiserver", "apiserver", {"args": args},
        [_volume("k8s-certs", p, "Directory")], cfg.api_port, "HTTPS",
    )  # fmt: skip


def controller_manager(cfg: ControlPlane) -> Obj:
    conf = cfg.kubeconfigs / "controller-manager.conf"
    args = [
        f"--kubeconfig={conf}",
        "--use-service-account-credentials",
        "--controllers=*,bootstrapsigner,tokencleaner",
        f"--root-ca-file={cfg.pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={cfg.pki / 'ca.crt'}",
        f"--cluster-signing-key-file={cfg.pki / 'ca.key'}",
        f"--port={cfg.controller_manager_port}",
        "--allocate-node-cidrs=true",
        f"--cluster-cidr={cfg.pod_subnet}",
    ]
    return _pod(
        cfg, "kube-controller-manager", "controller-manager", {"args": args},
        [_volume("k8s-certs", cfg.pki, "Directory"), _volume("kubeconfig", conf, "File")],
        cfg.controller_manager_port,
    )  # fmt: skip


def scheduler(cfg: ControlPlane) -> Obj:
    conf = cfg.kubeconfigs / "scheduler.conf"
    args = [f"--kubeconfig={conf}", f"--port={cfg.scheduler_port}"]
    return _pod(
        cfg, "kube-scheduler", "scheduler", {"args": args},
        [_volume("kubeconfig", conf, "File")], cfg.scheduler_port,
    )  # fmt: skip


CONTROL_PLANE = {
    "kube-apiserver.yaml": apiserver,
    "kube-controller-manager.yaml": controller_manager,
    "kube-scheduler.yaml": scheduler,
}
LOCAL_ETCD = {"etcd.yaml": etcd, "nats.yaml": nats}


def write_nats_conf(cfg: ControlPlane) -> None:
    """NATS's configuration next to the kubeconfigs (its TLS users and permissions)."""
    text = server_config(cfg.pki, host="127.0.0.1", port=cfg.nats_port, store_dir=cfg.nats_data)
    cfg.nats_conf.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfg.nats_conf.with_name(".nats.conf.tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(text)
    tmp.replace(cfg.nats_conf)


def write_manifests(folder: Path, cfg: ControlPlane, which: dict[str, Any]) -> list[str]:
    """Write the static pod manifests of ``which`` into ``folder``; kubeadm's lines."""
    folder.mkdir(parents=True, exist_ok=True)
    out = [f'[control-plane] Using manifest folder "{folder}"']
    for file, make in which.items():
        path = folder / file
        tmp = path.with_name(f".{file}.tmp")
        tmp.write_text(yaml.safe_dump(make(cfg), sort_keys=False))
        tmp.replace(path)
        name = file.removesuffix(".yaml")
        out.append(f'[control-plane] Creating static Pod manifest for "{name}"')
    return out
