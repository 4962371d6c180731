"""The node's real containerd for tests: its own config, root, state and socket in a tmp dir."""

from __future__ import annotations

import shutil
from pathlib import Path

from cluster import Proc
from skiff.kubelet.containerd_setup import (
    RuntimePaths,
    containerd_command,
    import_images,
    wait_for_socket,
    write_config,
)


def containerd_available() -> bool:
    return all(shutil.which(t) for t in ("containerd", "runc", "ctr"))


def start_containerd(base: Path) -> tuple[RuntimePaths, Proc]:
    """Start containerd with the project's configuration and import the local images."""
    paths = RuntimePaths(base)
    write_config(paths)
    proc = Proc("containerd", containerd_command(paths), base / "containerd.log")
    proc.start()
    wait_for_socket(paths.socket)
    import_images(paths)
    return paths, proc
