"""The pod network's CNI configuration: a bridge with host-local IPAM for one node's pod
CIDR, hostPort mappings, and the firewall plugin. Written by the kubelet (its built-in
``kubenet``-like mode) or by the pod network add-on (skiff-netagent), read by containerd.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILE = "10-skiff.conflist"
NETWORK = "skiff"
"""The CNI network's name (its host-local allocations live in ``<ipam dir>/<name>``)."""


def bridge_conflist(
    subnet: str,
    *,
    ipam_dir: Path,
    bridge: str = "skiff0",
    name: str = NETWORK,
    masquerade: bool = True,
) -> dict[str, Any]:
    """The network for ``subnet``. The firewall plugin is there because Docker's FORWARD
    DROP policy would otherwise drop pod-to-pod traffic.

    ``masquerade``: the bridge plugin NATs what leaves the node's subnet. Off where the
    pod network agent routes between nodes and masquerades only what leaves the cluster
    (pods on different nodes then see each other's own addresses)."""
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": masquerade,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "firewall"},
        ],
    }


def write_conflist(conf_dir: Path, conflist: dict[str, Any], file: str = FILE) -> Path:
    """Write the configuration whole (a new file renamed into place: the runtime watches
    the folder and must never read half of one)."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    out = conf_dir / file
    tmp = conf_dir / f".{file}.tmp"
    tmp.write_text(json.dumps(conflist, indent=2))
    os.replace(tmp, out)
    return out


def configured_subnet(conf_dir: Path, file: str = FILE) -> str | None:
    """The subnet the configuration in ``conf_dir`` is for (None: none, or unreadable)."""
    try:
        conflist = json.loads((conf_dir / file).read_text())
        bridge = next(p for p in conflist["plugins"] if p.get("type") == "bridge")
        return bridge["ipam"]["ranges"][0][0]["subnet"]
    except (OSError, ValueError, KeyError, IndexError, StopIteration, TypeError):
        return None


def has_config(conf_dir: Path) -> bool:
    """Whether ``conf_dir`` holds a network configuration (what containerd looks for)."""
    try:
        return any(
            f.suffix in (".conf", ".conflist", ".json") and not f.name.startswith(".")
            for f in conf_dir.iterdir()
        )
    except OSError:
        return False
