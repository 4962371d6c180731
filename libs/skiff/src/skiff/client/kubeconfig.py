"""Reading kubeconfig files, as client-go's ``clientcmd``: which server, and with what credentials.

``path``, else the files in ``KUBECONFIG``, else ``~/.kube/config``; the first file that
sets a name wins. Relative paths in a file are relative to that file.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias

import yaml

Obj: TypeAlias = dict[str, Any]


class KubeConfig(NamedTuple):
    """What a client needs from one context of a kubeconfig."""

    server: str
    token: str | None
    ssl_context: ssl.SSLContext | None
    ca_context: ssl.SSLContext | None = None
    """The server's CA only, without the user's client certificate (for clients that
    authenticate otherwise, with a token)."""
    token_file: str | None = None
    """Where ``token`` came from; clients read it again (a projected service-account
    token is replaced before it expires)."""


def load_kubeconfig(path: str | None = None, context: str | None = None) -> KubeConfig:
    """The server and credentials of ``context`` (default: current-context).

    Supports ``server``, CA file/data, ``insecure-skip-tls-verify``, bearer
    ``token``/``tokenFile`` and client certificate and key (paths or inline data).
    Raises ``ValueError`` when no file, context, cluster or server is found.
    """
    clusters: dict[str, tuple[Obj, Path]] = {}
    users: dict[str, tuple[Obj, Path]] = {}
    contexts: dict[str, tuple[Obj, Path]] = {}
    current = ""
    found = False
    for p in _kubeconfig_paths(path):
        if not p.is_file():
            continue
        found = True
        doc = yaml.safe_load(p.read_text()) or {}
        base = p.parent
        _named(doc.get("clusters"), "cluster", clusters, base)
        _named(doc.get("users"), "user", users, base)
        _named(doc.get("contexts"), "context", contexts, base)
        current = current or doc.get("current-context") or ""
    if not found:
        raise ValueError(f"no kubeconfig found (looked at {path or 'KUBECONFIG, ~/.kube'})")
    name = context or current
    if name not in contexts:
        raise ValueError(f"kubeconfig has no context {name!r}")
    ctx = contexts[name][0]
    if ctx.get("cluster") not in clusters:
        raise ValueError(f"kubeconfig context {name!r} names unknown cluster")
    cluster, cbase = clusters[ctx["cluster"]]
    user, ubase = users.get(ctx.get("user", ""), ({}, cbase))
    server = cluster.get("server")
    if not server:
        raise ValueError(f"kubeconfig cluster {ctx['cluster']!r} has no server")
    token = user.get("token")
    token_file = None
    if not token and user.get("tokenFile"):
        token_file = _resolve(ubase, user["tokenFile"])
        token = Path(token_file).read_text().strip()
    ssl_context = ca_context = None
    if server.startswith("https://"):
        ssl_context = _ssl_context(cluster, cbase, user, ubase)
        ca_context = _ssl_context(cluster, cbase, {}, ubase)
    return KubeConfig(server, token, ssl_context, ca_context, token_file)


SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def in_cluster_config(folder: Path = SERVICE_ACCOUNT_DIR) -> KubeConfig:
    """A pod's own access to the API (client-go's ``InClusterConfig``): the ``kubernetes``
    Service's address from ``KUBERNETES_SERVICE_HOST``/``_PORT``, the mounted
    service-account token (read again as the kubelet renews it) and CA. ValueError when
    not in a pod with an API access volume."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    token_file = folder / "token"
    if not host or not token_file.is_file():
        raise ValueError(
            "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
            "KUBERNETES_SERVICE_PORT must be defined, with a service account token mounted"
        )
    if ":" in host:
        host = f"[{host}]"
    ctx = ssl.create_default_context(cafile=str(folder / "ca.crt"))
    return KubeConfig(
        f"https://{host}:{port}",
        token_file.read_text().strip(),
        ctx,
        ctx,
        str(token_file),
    )


def _kubeconfig_paths(path: str | None) -> list[Path]:
    if path:
        return [Path(path).expanduser()]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def _named(
    entries: Iterable[Any] | None, key: str, out: dict[str, tuple[Obj, Path]], base: Path
) -> None:
    for e in entries or ():
        if isinstance(e, dict) and "name" in e:
            out.setdefault(e["name"], (e.get(key) or {}, base))


def _resolve(base: Path, p: str) -> str:
    return str((base / Path(p).expanduser()).resolve())


def _ssl_context(cluster: Obj, cbase: Path, user: Obj, ubase: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        ctx.load_verify_locations(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
        )
    elif cluster.get("certificate-authority"):
        ctx.load_verify_locations(cafile=_resolve(cbase, cluster["certificate-authority"]))
    cert = user.get("client-certificate")
    key = user.get("client-key")
    if cert and key:
        ctx.load_cert_chain(_resolve(ubase, cert), _resolve(ubase, key))
    elif user.get("client-certificate-data") and user.get("client-key-data"):
        # ssl loads certificates from files only; the files live just long enough.
        with tempfile.TemporaryDirectory() as d:
            cf, kf = Path(d, "cert.pem"), Path(d, "key.pem")
            cf.write_bytes(base64.b64decode(user["client-certificate-data"]))
            kf.touch(0o600)
            kf.write_bytes(base64.b64decode(user["client-key-data"]))
            ctx.load_cert_chain(str(cf), str(kf))
    return ctx
