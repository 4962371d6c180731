"""The node's real parts for tests: containerd with its own config, root, state and socket
in a tmp dir, and the check that the real parts a test module needs are installed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cluster import Proc
from skiff.kubelet.containerd_setup import (
    RuntimePaths,
    containerd_command,
    import_images,
    wait_for_socket,
    write_config,
)

REQUIRE_ENV = "SKIFF_REQUIRE_REAL_PARTS"
"""Set by ``make test``, which installs every real part: there a missing one is a failure."""
CONTAINERD = ("containerd", "runc", "ctr")
CNI_PLUGINS = Path("/usr/lib/cni")


def containerd_available() -> bool:
    return all(shutil.which(t) for t in CONTAINERD)


def missing_parts(tools: tuple[str, ...] = (), paths: tuple[Path, ...] = ()) -> list[str]:
    return [t for t in tools if not shutil.which(t)] + [str(p) for p in paths if not p.exists()]


def needs(
    *tools: str, paths: tuple[Path, ...] = (), env: dict[str, str] | None = None
) -> pytest.MarkDecorator:
    """A module's ``pytestmark`` for the real parts it runs against.

    Outside ``make test`` a missing part skips the module (a developer without containerd
    can still run the rest). Under ``make test`` (``SKIFF_REQUIRE_REAL_PARTS=1``) it is an
    error: a broken install must not turn node tests into skips while CI stays green.
    """
    missing = missing_parts(tools, paths)
    if missing and (env if env is not None else os.environ).get(REQUIRE_ENV) == "1":
        raise RuntimeError(f"real parts missing under make test: {', '.join(missing)}")
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")


def start_containerd(base: Path) -> tuple[RuntimePaths, Proc]:
    """Start containerd with the project's configuration and import the local images."""
    paths = RuntimePaths(base)
    write_config(paths)
    proc = Proc("containerd", containerd_command(paths), base / "containerd.log")
    proc.start()
    wait_for_socket(paths.socket)
    import_images(paths)
    return paths, proc
