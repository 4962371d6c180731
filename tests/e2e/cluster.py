"""Real etcd, NATS and apiserver processes for the cross-service tests.

Everything listens on loopback on free ports and lives in a temporary folder;
only processes started here are stopped, by their pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from skiff.client.rest import ApiClient
from skiff.clusterpki import PkiConfig, front_proxy_flags, write_cluster_pki
from skiff.kubeconfigs import kubeconfig
from skiff.natsconf import server_config
from skiff.pki import CertificateAuthority, KeyPair

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float = 30.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            if check():
                return
        except Exception as e:
            last = e
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}: {last!r}")


def _tcp_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Proc:
    name: str
    args: list[str]
    log: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        fh = self.log.open("ab")
        self.popen = subprocess.Popen(
            self.args, stdout=fh, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        fh.close()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


@dataclass
class Cluster:
    """etcd + NATS (JetStream) + one or more apiservers."""

    dir: Path
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    nats_port: int = field(default_factory=free_port)
    etcd: Proc | None = None
    nats: Proc | None = None
    apiservers: list[Proc] = field(default_factory=list)
    api_ports: list[int] = field(default_factory=list)
    grpc_ports: list[int] = field(default_factory=list)
    schedulers: list[Proc] = field(default_factory=list)
    pki: Path | None = None
    """With kubeadm's PKI here, apiservers serve HTTPS, authenticate client certificates
    and service-account tokens (``sa.key``), and :meth:`kubeconfig` is the admin's."""
    apiserver_args: list[str] = field(default_factory=list)

    @property
    def etcd_endpoint(self) -> str:
        return f"127.0.0.1:{self.etcd_port}"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def url(self) -> str:
        return self.url_of(0)

    def url_of(self, index: int) -> str:
        scheme = "https" if self.pki else "http"
        return f"{scheme}://127.0.0.1:{self.api_ports[index]}"

    def secure_args(self) -> list[str]:
        """The TLS and authentication flags of an apiserver on :attr:`pki`."""
        if self.pki is None:
            return []
        p = self.pki
        return [
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--nats-ca-file={p / 'nats' / 'ca.crt'}",
            f"--nats-cert-file={p / 'nats' / 'watch-cache.crt'}",
            f"--nats-key-file={p / 'nats' / 'watch-cache.key'}",
            f"--nats-pump-cert-file={p / 'nats' / 'event-pump.crt'}",
            f"--nats-pump-key-file={p / 'nats' / 'event-pump.key'}",
            f"--etcd-cafile={p / 'etcd' / 'ca.crt'}",
            f"--etcd-certfile={p / 'apiserver-etcd-client.crt'}",
            f"--etcd-keyfile={p / 'apiserver-etcd-client.key'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--enable-bootstrap-token-auth",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            *front_proxy_flags(p),
        ]

    def start_etcd(self) -> None:
        """etcd on loopback; with :attr:`pki`, TLS with client-certificate authentication
        (kubeadm's etcd certificates), so only holders of its CA's certificates get in."""
        scheme = "https" if self.pki else "http"
        tls: list[str] = []
        if self.pki is not None:
            e = self.pki / "etcd"
            tls = [
                f"--cert-file={e / 'server.crt'}",
                f"--key-file={e / 'server.key'}",
                "--client-cert-auth",
                f"--trusted-ca-file={e / 'ca.crt'}",
                f"--peer-cert-file={e / 'peer.crt'}",
                f"--peer-key-file={e / 'peer.key'}",
                "--peer-client-cert-auth",
                f"--peer-trusted-ca-file={e / 'ca.crt'}",
            ]
        self.etcd = Proc(
            "etcd",
            [
                "etcd",
                "--name",
                "t",
                "--data-dir",
                str(self.dir / "etcd"),
                "--listen-client-urls",
                f"{scheme}://127.0.0.1:{self.etcd_port}",
                "--advertise-client-urls",
                f"{scheme}://127.0.0.1:{self.etcd_port}",
                "--listen-peer-urls",
                f"{scheme}://127.0.0.1:{self.etcd_peer_port}",
                "--initial-advertise-peer-urls",
                f"{scheme}://127.0.0.1:{self.etcd_peer_port}",
                "--initial-cluster",
                f"t={scheme}://127.0.0.1:{self.etcd_peer_port}",
                "--unsafe-no-fsync",
                *tls,
            ],
            self.dir / "etcd.log",
        )
        self.etcd.start()
        wait_until(lambda: _tcp_open(self.etcd_port), what="etcd")

    def start_nats(self) -> None:
        """NATS with JetStream on loopback; with :attr:`pki`, TLS with client certificates
        and permissions (:mod:`skiff.natsconf`: only the event pump publishes events)."""
        if self.pki is not None:
            conf = self.dir / "nats.conf"
            conf.write_text(
                server_config(
                    self.pki, host="127.0.0.1", port=self.nats_port, store_dir=self.dir / "nats"
                )
            )
            args = ["nats-server", "-c", str(conf)]
        else:
            args = [
                "nats-server",
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(self.nats_port),
                "-sd",
                str(self.dir / "nats"),
            ]
        self.nats = Proc("nats", args, self.dir / "nats.log")
        self.nats.start()
        wait_until(lambda: _tcp_open(self.nats_port), what="nats")

    def start_apiserver(
        self, index: int | None = None, *, pump: bool = True, env: dict[str, str] | None = None
    ) -> Proc:
        """Start apiserver ``index`` (a new one when None); wait for /readyz."""
        if index is None:
            index = len(self.apiservers)
            self.api_ports.append(free_port())
            self.grpc_ports.append(free_port())
            self.apiservers.append(None)  # type: ignore[arg-type]
        port = self.api_ports[index]
        args = [
            str(VENV_BIN / "skiff-apiserver"),
            "--etcd-servers",
            self.etcd_endpoint,
            "--nats-url",
            self.nats_url,
            "--port",
            str(port),
            "--grpc-port",
            str(self.grpc_ports[index]),
            *self.secure_args(),
            *self.apiserver_args,
        ]
        if not pump:
            args.append("--no-pump")
        full_env = dict(os.environ, SKIFF_LOG_LEVEL="info", **(env or {}))
        proc = Proc(f"apiserver-{index}", args, self.dir / f"apiserver-{index}.log", full_env)
        proc.start()
        self.apiservers[index] = proc
        wait_until(
            lambda: _ready(self.url_of(index), self.pki),
            timeout=60,
            what=f"apiserver {index} /readyz",
        )
        return proc

    def start_scheduler(self, *extra: str, env: dict[str, str] | None = None) -> Proc:
        """Start a skiff-scheduler process against apiserver 0 (with :attr:`pki`, as
        ``system:kube-scheduler``, the identity kubeadm gives it)."""
        index = len(self.schedulers)
        server = ["--server", self.url]
        if self.pki is not None:
            server = ["--kubeconfig", str(self.user_kubeconfig("system:kube-scheduler"))]
        args = [str(VENV_BIN / "skiff-scheduler"), *server, "--port", "0", *extra]
        proc = Proc(
            f"scheduler-{index}",
            args,
            self.dir / f"scheduler-{index}.log",
            dict(os.environ, SKIFF_LOG_LEVEL="info", **(env or {})),
        )
        proc.start()
        self.schedulers.append(proc)
        return proc

    def kubeconfig(self, index: int = 0, user: str = "kubernetes-super-admin") -> Path:
        """A kubeconfig for apiserver ``index``: with :attr:`pki`, ``user``'s client
        certificate (default: a ``system:masters`` member, as kubeadm's super-admin)."""
        if self.pki is not None:
            return self.user_kubeconfig(user, ("system:masters",), index)
        path = self.dir / f"kubeconfig-{index}"
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: t\n  cluster:\n    server: http://127.0.0.1:{self.api_ports[index]}\n"
            "contexts:\n- name: t\n  context:\n    cluster: t\n    user: u\n"
            "current-context: t\nusers:\n- name: u\n  user: {}\n"
        )
        return path

    def client(self) -> ApiClient:
        """A client of apiserver 0 (with :attr:`pki`, a ``system:masters`` member)."""
        if self.pki is None:
            return ApiClient(self.url)
        return ApiClient.from_kubeconfig(str(self.kubeconfig()))

    def user_certificate(self, user: str, groups: tuple[str, ...] = ()) -> tuple[Path, Path]:
        """A client certificate and key for ``user`` in ``groups``, signed by the cluster CA."""
        assert self.pki is not None
        ca = CertificateAuthority(KeyPair.load(self.pki, "ca"))
        pair = ca.issue(user, organizations=groups, usages=("client",))
        return pair.save(self.dir / "users", user.replace(":", "_"))

    def user_kubeconfig(self, user: str, groups: tuple[str, ...] = (), index: int = 0) -> Path:
        """A kubeconfig with a client certificate for ``user`` in ``groups``."""
        assert self.pki is not None
        cert, _ = self.user_certificate(user, groups)
        pair = KeyPair.load(cert.parent, cert.stem)
        ca_pem = (self.pki / "ca.crt").read_bytes()
        path = self.dir / f"kubeconfig-{user.replace(':', '_')}-{index}"
        path.write_text(yaml.safe_dump(kubeconfig(self.url_of(index), ca_pem, user, pair)))
        return path

    def stop(self) -> None:
        for p in self.schedulers:
            p.stop()
        for p in self.apiservers:
            if p is not None:
                p.stop()
        for p in (self.nats, self.etcd):
            if p is not None:
                p.stop()


def _ready(url: str, pki: Path | None = None) -> bool:
    context = None
    if pki is not None:  # a client certificate, for apiservers without anonymous requests
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(
            pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key"
        )
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1, context=context) as r:
            return r.status == 200
    except OSError:
        return False


def start_cluster(
    base: Path, apiservers: int = 1, env: dict[str, str] | None = None, *, secure: bool = False
) -> Cluster:
    """etcd, NATS and ``apiservers`` apiservers; ``secure``: with a fresh cluster PKI."""
    for tool in ("etcd", "nats-server"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed; run `make deps`")
    c = Cluster(base)
    if secure:
        c.pki = base / "pki"
        write_cluster_pki(c.pki, PkiConfig(node_name="t-control", advertise_address="127.0.0.1"))
    c.start_etcd()
    c.start_nats()
    for _ in range(apiservers):
        c.start_apiserver(env=env)
    return c
