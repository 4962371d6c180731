"""docker compose benchmark (``make bench``): image sizes, start-up and idle memory.

Builds the images (``scripts/compose.sh images``: cached after the first build), then, as
its own compose project on its own port:
1. the size of every image, and the disk they take together (each image counted above the
   image it starts from, so shared layers count once);
2. ``docker-compose up -d`` → a Ready node, and → a busybox pod Running (created after
   the node is Ready, timed from ``up`` and from its creation);
3. idle memory of every container (``docker stats``) after ``--settle`` seconds;
4. a second node: ``up --scale node=2`` → two Ready nodes (the new node's container
   start, containerd, ``skiffadm join`` and the kubelet's TLS bootstrap: join → Ready).
The reference figures (k3s, k0s) are published numbers, not measured here.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run import write_result  # noqa: E402

PROJECT = "skiff-bench"
# Each image and the image it starts from (None: the imported Debian base itself).
IMAGES: dict[str, str | None] = {
    "skiff/debian:bookworm": None,
    "skiff/etcd": "skiff/debian:bookworm",
    "skiff/nats": "skiff/debian:bookworm",
    "skiff/python": "skiff/debian:bookworm",
    "skiff/apiserver": "skiff/python",
    "skiff/scheduler": "skiff/python",
    "skiff/controller-manager": "skiff/python",
    "skiff/node": "skiff/python",
}
CONTROL_PLANE = ("etcd", "nats", "apiserver", "scheduler", "controller-manager")


@functools.cache
def docker() -> str:
    """The engine's own client, resolved by compose.sh after it installed docker.io."""
    return _run(str(ROOT / "scripts/compose.sh"), "client").strip()


def _run(*cmd: str, env: dict[str, str] | None = None, input: str | None = None) -> str:
    return subprocess.run(
        cmd, env=env, input=input, capture_output=True, text=True, check=True
    ).stdout


def _tagged(image: str, tag: str) -> str:
    return image if ":" in image else f"{image}:{tag}"


def image_sizes(tag: str) -> tuple[dict[str, float], float]:
    """Every image's size in MB, and the MB all of them take on disk together."""
    sizes = {
        name: int(_run(docker(), "image", "inspect", "-f", "{{.Size}}", _tagged(name, tag))) / 1e6
        for name in IMAGES
    }
    total = sum(
        size - (sizes[parent] if parent else 0)
        for name, size in sizes.items()
        for parent in [IMAGES[name]]
    )
    return sizes, total


def _ready(kubeconfig: Path, nodes: int = 1) -> bool:
    try:
        out = _run("kubectl", "--kubeconfig", str(kubeconfig), "get", "nodes", "--no-headers")
    except subprocess.CalledProcessError:
        return False
    return sum(line.split()[1] == "Ready" for line in out.splitlines() if line.split()) >= nodes


def _until(check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError("timed out")


def _mem_mib(usage: str) -> float:
    """``docker stats`` MemUsage ("12.3MiB / 23.4GiB") → MiB."""
    value = usage.split("/")[0].strip()
    for unit, factor in (("GiB", 1024), ("MiB", 1), ("KiB", 1 / 1024), ("B", 1 / 1024**2)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * factor
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--settle", type=float, default=60.0, help="seconds idle before docker stats")
    p.add_argument("--port", default="17443")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "compose.json"))
    a = p.parse_args()
    state = Path(tempfile.mkdtemp(prefix="skiff-compose-bench-"))
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "SKIFF_STATE": str(state),
        "SKIFF_API_PORT": a.port,
    }
    tag = env.get("SKIFF_IMAGE_TAG", "dev")
    compose = ["docker-compose", "-f", str(ROOT / "compose.yaml")]
    subprocess.run(
        [str(ROOT / "scripts/compose.sh"), "images"], env=env, check=True, stdout=subprocess.DEVNULL
    )
    sizes, total = image_sizes(tag)
    results: dict = {
        "images_mb": {k: round(v) for k, v in sizes.items()},
        "images_on_disk_mb": round(total),
    }
    kubeconfig = state / "compose" / "kubeconfig"
    env["SKIFF_COMPOSE_OUT"] = str(state / "compose")
    try:
        t0 = time.monotonic()
        _run(*compose, "up", "-d", env=env)
        _until(lambda: kubeconfig.exists() and _ready(kubeconfig), 300)
        results["up_to_ready_node_s"] = round(time.monotonic() - t0, 1)
        kc = ["kubectl", "--kubeconfig", str(kubeconfig)]
        t1 = time.monotonic()
        _run(*kc, "run", "bench", "--image=busybox", "--", "sleep", "3600")
        _run(*kc, "wait", "--for=jsonpath={.status.phase}=Running", "pod/bench", "--timeout=120s")
        results["pod_created_to_running_s"] = round(time.monotonic() - t1, 2)
        results["up_to_running_pod_s"] = round(time.monotonic() - t0, 1)
        _run(*kc, "delete", "pod", "bench", "--wait=true")
        time.sleep(a.settle)
        ids = _run(docker(), "ps", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}")
        memory: dict[str, float] = {}
        for line in _run(
            docker(), "stats", "--no-stream", "--format", "{{.ID}}\t{{.MemUsage}}", *ids.split()
        ).splitlines():
            cid, usage = line.split("\t")
            service = _run(
                docker(),
                "inspect",
                "-f",
                '{{index .Config.Labels "com.docker.compose.service"}}',
                cid,
            ).strip()
            memory[service] = round(memory.get(service, 0) + _mem_mib(usage), 1)
        results["idle_mib"] = memory
        results["control_plane_idle_mib"] = round(sum(memory.get(s, 0) for s in CONTROL_PLANE))
        t2 = time.monotonic()
        _run(*compose, "up", "-d", "--scale", "node=2", "node", env=env)
        _until(lambda: _ready(kubeconfig, 2), 300)
        results["join_to_ready_node_s"] = round(time.monotonic() - t2, 1)
    finally:
        subprocess.run(
            [str(ROOT / "scripts/compose.sh"), "down"],
            env=env,
            check=False,
            stdout=subprocess.DEVNULL,
        )
    write_result(a.out, results)


if __name__ == "__main__":
    main()
