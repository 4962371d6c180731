"""Controller-manager benchmark (``make bench``): a 3,000-replica Deployment on 300 nodes.

Starts etcd, NATS and an apiserver (as the tests do), one ``skiff-hollow-nodes`` process
holding 300 simulated nodes, one ``skiff-scheduler`` and one ``skiff-controller-manager``.
Baseline in the same run: 3,000 bare pods created through the API by 32 clients (time to
create, and to all Running). Then a Deployment of 3,000 replicas: time to Available; a
rolling update of its template (25 % surge / 25 % unavailable): time to complete; the
controller manager's CPU and RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from run import RawHttp, rss_mb, write_result  # noqa: E402
from scheduler import cpu_seconds, py_spy, top_frames, wait_nodes  # noqa: E402

from cluster import VENV_BIN, Proc, start_cluster  # noqa: E402

BARE, APPS = "bare", "apps"


def template(version: str) -> dict:
    return {
        "metadata": {"labels": {"app": "big"}, "annotations": {"version": version}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ]
        },
    }


async def count_running(http: RawHttp, ns: str) -> int:
    _, body = await http.request("GET", f"/api/v1/namespaces/{ns}/pods?resourceVersion=0")
    return sum(
        1
        for p in orjson.loads(body)["items"]
        if (p.get("status") or {}).get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
    )


async def bare_pods(url: str, count: int) -> tuple[float, float]:
    """(seconds to create ``count`` pods with 32 clients, seconds until all Running)."""
    http = RawHttp(url)
    await http.request("POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": BARE}}))
    clients = [RawHttp(url) for _ in range(32)]
    counter = iter(range(count))
    body = template("1")

    async def creator(cl: RawHttp) -> None:
        for i in counter:
            pod = {"metadata": {"name": f"p{i}", **body["metadata"]}, "spec": body["spec"]}
            status, b = await cl.request(
                "POST", f"/api/v1/namespaces/{BARE}/pods", orjson.dumps(pod)
            )
            assert status == 201, b

    start = time.monotonic()
    await asyncio.gather(*(creator(cl) for cl in clients))
    created = time.monotonic() - start
    while await count_running(http, BARE) < count:
        await asyncio.sleep(0.5)
    running = time.monotonic() - start
    await http.request("DELETE", f"/api/v1/namespaces/{BARE}/pods?gracePeriodSeconds=0")
    for cl in clients:
        cl.close()
    http.close()
    return created, running


async def deployment_status(http: RawHttp) -> dict:
    _, body = await http.request("GET", f"/apis/apps/v1/namespaces/{APPS}/deployments/big")
    return orjson.loads(body)


async def wait_complete(http: RawHttp, replicas: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        d = await deployment_status(http)
        st = d.get("status") or {}
        if (
            st.get("observedGeneration") == d["metadata"].get("generation")
            and st.get("updatedReplicas") == replicas
            and st.get("availableReplicas") == replicas
            and st.get("replicas") == replicas
        ):
            return time.monotonic() - start
        await asyncio.sleep(0.5)
    raise TimeoutError(f"deployment not complete after {timeout} s: {st}")


async def run(args: argparse.Namespace) -> dict:
    results: dict = {
        "nodes": args.nodes,
        "replicas": args.replicas,
        "machine": f"{os.cpu_count()} CPUs",
        "date": time.strftime("%F %T"),
    }
    with tempfile.TemporaryDirectory(prefix="skiff-cm-bench-") as tmp:
        c = start_cluster(Path(tmp))
        procs: list[Proc] = []

        def start(name: str, *argv: str) -> Proc:
            p = Proc(name, [str(VENV_BIN / name), "--server", c.url, *argv], Path(tmp) / name)
            p.start()
            procs.append(p)
            return p

        try:
            start(
                "skiff-hollow-nodes",
                "--count", str(args.nodes), "--cpu", "32", "--memory", "128Gi", "--pods", "110",
            )  # fmt: skip
            await wait_nodes(c.url, args.nodes)
            start("skiff-scheduler", "--port", "0", "--leader-elect", "false")
            await asyncio.sleep(3)
            created, running = await bare_pods(c.url, args.replicas)
            results["bare_create_s"] = created
            results["bare_all_running_s"] = running
            http = RawHttp(c.url)
            while await count_running(http, BARE):
                await asyncio.sleep(0.5)
            cm = start(
                "skiff-controller-manager",
                "--port", "0", "--leader-elect", "false", "--controllers", args.controllers,
            )  # fmt: skip
            await asyncio.sleep(3)
            pid = cm.popen.pid  # type: ignore[union-attr]
            spy = None
            if args.profile:
                spy = py_spy(pid, args.profile, Path(tmp))
            cpu0 = cpu_seconds(pid)
            await http.request(
                "POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": APPS}})
            )
            deployment = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "big"},
                "spec": {
                    "replicas": args.replicas,
                    "selector": {"matchLabels": {"app": "big"}},
                    "template": template("1"),
                },
            }
            status, b = await http.request(
                "POST", f"/apis/apps/v1/namespaces/{APPS}/deployments", orjson.dumps(deployment)
            )
            assert status == 201, b
            results["deployment_available_s"] = await wait_complete(
                http, args.replicas, args.timeout
            )
            cpu1 = cpu_seconds(pid)
            patch = {"spec": {"template": {"metadata": {"annotations": {"version": "2"}}}}}
            status, b = await http.request(
                "PATCH",
                f"/apis/apps/v1/namespaces/{APPS}/deployments/big",
                orjson.dumps(patch),
                ctype="application/merge-patch+json",
            )
            assert status == 200, b
            results["rolling_update_s"] = await wait_complete(http, args.replicas, args.timeout)
            cpu2 = cpu_seconds(pid)
            results["cm_cpu_create_s"] = cpu1 - cpu0
            results["cm_cpu_rollout_s"] = cpu2 - cpu1
            results["cm_rss_mb"] = rss_mb(pid)
            results["ratio_available_vs_bare_running"] = (
                results["deployment_available_s"] / results["bare_all_running_s"]
            )
            http.close()
            if spy is not None:
                await asyncio.to_thread(spy.popen.wait)  # type: ignore[union-attr]
                results["profile_top"] = top_frames(Path(tmp) / "prof.txt", 40)
        finally:
            for p in reversed(procs):
                p.stop()
            c.stop()
    return results


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser()
    p.add_argument("--nodes", type=int, default=300)
    p.add_argument("--replicas", type=int, default=3000)
    p.add_argument("--controllers", default="*")
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--profile", type=int, default=0, help="py-spy the controller manager")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "controllers.json"))
    args = p.parse_args()
    results = asyncio.run(run(args))
    write_result(args.out, results)


if __name__ == "__main__":
    main()
