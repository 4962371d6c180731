"""``skiffadm init --config FILE``: kubeadm's configuration file (``kubeadm.k8s.io/v1beta3``
or ``v1beta4``; an InitConfiguration and a ClusterConfiguration, as YAML documents), the
fields Skiff uses mapped onto init's flags. Unknown fields are refused, as kubeadm's strict
decoding refuses them; a flag given on the command line wins over the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

API_VERSIONS = ("kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4")

# (kind, dotted field) → init's flag destination; None: accepted and not used by Skiff.
FIELDS: dict[tuple[str, str], str | None] = {
    ("InitConfiguration", "bootstrapTokens"): "token",
    ("InitConfiguration", "localAPIEndpoint.advertiseAddress"): "apiserver_advertise_address",
    ("InitConfiguration", "localAPIEndpoint.bindPort"): "apiserver_bind_port",
    ("InitConfiguration", "nodeRegistration.name"): "node_name",
    ("InitConfiguration", "nodeRegistration.ignorePreflightErrors"): "ignore_preflight_errors",
    ("InitConfiguration", "nodeRegistration.criSocket"): None,
    ("InitConfiguration", "nodeRegistration.taints"): None,
    ("InitConfiguration", "nodeRegistration.kubeletExtraArgs"): None,
    ("InitConfiguration", "skipPhases"): "skip_phases",
    ("ClusterConfiguration", "networking.serviceSubnet"): "service_cidr",
    ("ClusterConfiguration", "networking.podSubnet"): "pod_subnet",
    ("ClusterConfiguration", "networking.dnsDomain"): None,
    ("ClusterConfiguration", "apiServer.certSANs"): "apiserver_cert_extra_sans",
    ("ClusterConfiguration", "certificatesDir"): "cert_dir",
    ("ClusterConfiguration", "imageRepository"): "image_repository",
    ("ClusterConfiguration", "kubernetesVersion"): None,
    ("ClusterConfiguration", "clusterName"): None,
    ("ClusterConfiguration", "controlPlaneEndpoint"): None,
    ("ClusterConfiguration", "etcd.local.dataDir"): "etcd_data_dir",
    ("ClusterConfiguration", "etcd.local.serverCertSANs"): None,
}
PATHS = {"cert_dir", "etcd_data_dir"}
LISTS = {"ignore_preflight_errors", "skip_phases", "apiserver_cert_extra_sans"}


class ConfigError(ValueError):
    """The file cannot be read as kubeadm's configuration."""


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (obj or {}).items():
        path = f"{prefix}{key}"
        known_leaf = any(field == path for (_k, field) in FIELDS)
        if isinstance(value, dict) and not known_leaf:
            out.update(_flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def read_config(path: Path) -> dict[str, Any]:
    """init's flag values named in the file (destination → value)."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read the configuration {path}: {e}") from e
    values: dict[str, Any] = {}
    for doc in docs:
        kind, version = doc.get("kind", ""), doc.get("apiVersion", "")
        if version not in API_VERSIONS:
            raise ConfigError(f'{path}: apiVersion "{version}" is not one of {API_VERSIONS}')
        if kind not in ("InitConfiguration", "ClusterConfiguration"):
            raise ConfigError(f'{path}: kind "{kind}" is not InitConfiguration or '
                              "ClusterConfiguration")  # fmt: skip
        body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}
        for field, value in _flatten(body).items():
            if (kind, field) not in FIELDS:
                raise ConfigError(f'{path}: strict decoding error: unknown field "{field}" '
                                  f"in {kind}")  # fmt: skip
            dest = FIELDS[(kind, field)]
            if dest is None:
                continue
            if dest == "token":
                tokens = [t.get("token") for t in value or [] if isinstance(t, dict)]
                value = next((t for t in tokens if t), "")
            if dest in LISTS and isinstance(value, list):
                value = ",".join(str(v) for v in value)
            if dest in PATHS:
                value = Path(value)
            values[dest] = value
    return values
