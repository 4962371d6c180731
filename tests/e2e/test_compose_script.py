"""scripts/compose.sh on a fresh machine, with stubs (no Docker needed; runs in every CI).

A fresh machine has another ``docker`` first on PATH (a newer CLI without buildx, whose
every BuildKit build fails) and no Debian ``docker.io`` until ``deps`` installs it. The
script must pick the engine's own client only after installing it. Here ``dpkg`` reports
the packages missing, ``apt-get install`` creates the engine client, and the ``docker`` on
PATH fails as that other CLI does; test_compose proves the same path for real.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ADD_ONS = ["skiff/proxy:dev", "skiff/netagent:dev", "skiff/dns:dev"]

FAILING_DOCKER = """#!/bin/sh
echo "$0 $*" >> "{log}"
echo "ERROR: BuildKit is enabled but the buildx component is missing or broken." >&2
exit 1
"""
ENGINE = """#!/bin/sh
echo "$*" >> "{log}"
case "$1" in
  images) printf 'skiff/etcd:dev\\t1MB\\n' ;;
  save) touch "$3" ;;
esac
exit 0
"""
DPKG = """#!/bin/sh
[ -e "{installed}" ]
"""
APT_GET = """#!/bin/sh
case " $* " in
  *" install "*)
    mkdir -p "$(dirname "{engine}")"
    cat > "{engine}" <<'EOF'
{engine_text}EOF
    chmod +x "{engine}"
    touch "{installed}" ;;
esac
exit 0
"""


def _stub(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def test_images_uses_the_engine_client_installed_by_deps(tmp_path: Path) -> None:
    stubs, state = tmp_path / "bin", tmp_path / "state"
    stubs.mkdir()
    engine = tmp_path / "usr-bin" / "docker"
    installed = tmp_path / "installed"
    other_log, engine_log = tmp_path / "other.log", tmp_path / "engine.log"
    engine_text = ENGINE.format(log=engine_log)
    _stub(stubs / "docker", FAILING_DOCKER.format(log=other_log))
    _stub(stubs / "dpkg", DPKG.format(installed=installed))
    _stub(
        stubs / "apt-get",
        APT_GET.format(engine=engine, engine_text=engine_text, installed=installed),
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER", "SKIFF_ENGINE_DOCKER")} | {
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "SKIFF_ENGINE_DOCKER": str(engine),
        "SKIFF_STATE": str(state),
    }
    run = subprocess.run(
        [str(ROOT / "scripts/compose.sh"), "images"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert not other_log.exists(), other_log.read_text()
    calls = engine_log.read_text().splitlines()
    assert calls[0] == "info"
    builds = [c for c in calls if c.startswith("build")]
    # etcd, nats, python, apiserver, scheduler, controller-manager, nettools, node, and
    # the add-ons' proxy, netagent and dns, which are exported for the nodes
    images = (ROOT / "scripts/compose.sh").read_text().count("\n  build ")
    assert len(builds) == images == 11 and all("--secret id=ca" in b for b in builds)
    saved = [c.split() for c in calls if c.startswith("save")]
    assert saved == [
        ["save", "-o", f"{state}/compose/images/.node-addons.tar", *ADD_ONS],
    ]
    assert (state / "compose/images/node-addons.tar").exists()
    # `client` names the same engine client, for the tests that drive Docker themselves.
    client = subprocess.run(
        [str(ROOT / "scripts/compose.sh"), "client"], env=env, capture_output=True, text=True
    )
    assert client.returncode == 0 and client.stdout.strip() == str(engine)
