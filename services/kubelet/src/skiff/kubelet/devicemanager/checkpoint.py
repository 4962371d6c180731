"""The device manager's checkpoint (kube's ``kubelet_internal_checkpoint``): which devices
each pod's containers hold, with the plugin's ``Allocate`` answer for each, and the devices
each resource had. A restarted kubelet reads it before any plugin registers again, so its
running pods keep their devices (and a restarted container gets the same answer) and
those devices are not handed to another pod.

The file is JSON in kube's shape (``Data.PodDeviceEntries``, ``Data.RegisteredDevices``,
``Checksum``); the checksum is Skiff's own (CRC-32 of the data), so a torn or edited file
is detected and ignored with a log line rather than trusted.
"""

from __future__ import annotations

import base64
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skiff.log import get_logger

log = get_logger(__name__)

FILE_NAME = "kubelet_internal_checkpoint"
NO_NUMA = -1


@dataclass
class Entry:
    """The devices of one resource that one container holds."""

    pod_uid: str
    container: str
    resource: str
    devices: dict[int, list[str]] = field(default_factory=dict)
    """NUMA node (``-1``: none) → device IDs, as kube records them."""
    response: bytes | None = None
    """The plugin's serialized ``ContainerAllocateResponse`` for these devices (None while
    ``Allocate`` has not answered)."""

    @property
    def device_ids(self) -> list[str]:
        return [d for ids in self.devices.values() for d in ids]


def _data(entries: list[Entry], registered: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "PodDeviceEntries": [
            {
                "PodUID": e.pod_uid,
                "ContainerName": e.container,
                "ResourceName": e.resource,
                "DeviceIDs": {str(n): ids for n, ids in sorted(e.devices.items())},
                "AllocResp": base64.b64encode(e.response or b"").decode(),
            }
            for e in entries
        ],
        "RegisteredDevices": {r: sorted(ids) for r, ids in sorted(registered.items())},
    }


def _checksum(data: dict[str, Any]) -> int:
    return zlib.crc32(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())


def save(path: Path, entries: list[Entry], registered: dict[str, list[str]]) -> None:
    """Write the checkpoint atomically (a temporary file, fsync, rename)."""
    data = _data(entries, registered)
    body = json.dumps({"Data": data, "Checksum": _checksum(data)}).encode()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: Path) -> tuple[list[Entry], dict[str, list[str]]]:
    """The checkpoint's entries and registered devices; nothing when there is none or it
    cannot be trusted (logged)."""
    try:
        doc = json.loads(path.read_bytes())
        data = doc["Data"]
        if _checksum(data) != doc["Checksum"]:
            raise ValueError("checksum mismatch")
        entries = [
            Entry(
                pod_uid=str(e["PodUID"]),
                container=str(e["ContainerName"]),
                resource=str(e["ResourceName"]),
                devices={int(n): [str(d) for d in ids] for n, ids in e["DeviceIDs"].items()},
                response=base64.b64decode(e.get("AllocResp") or ""),
            )
            for e in data.get("PodDeviceEntries") or []
        ]
        registered = {
            str(r): [str(d) for d in ids]
            for r, ids in (data.get("RegisteredDevices") or {}).items()
        }
    except FileNotFoundError:
        return [], {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        log.error("device manager checkpoint ignored", path=str(path), error=str(e))
        return [], {}
    return entries, registered
