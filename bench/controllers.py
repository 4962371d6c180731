"""Controller-manager benchmark (``make bench``): a 3,000-replica Deployment on 300 nodes.

Starts etcd, NATS and an apiserver (as the tests do), one ``skiff-hollow-nodes`` process
holding 300 simulated nodes, one ``skiff-scheduler`` and one ``skiff-controller-manager``.
Baseline in the same run: 3,000 bare pods created through the API by 32 clients (time to
create, and to all Running). Then a Deployment of 3,000 replicas: time to Available; a
rolling update of its template (25 % surge / 25 % unavailable): time to complete; the
controller manager's CPU and RSS.

Every phase is timed from just before its first write to the moment one watch stream
shows the end state (no polling): the baseline's watch on its namespace's pods counts the
Running ones; the Deployment's watch on the Deployment waits for its status to report
every replica updated and available at the current generation. Both watches are a
single raw HTTP stream read by this process, so the two sides pay the same, small cost
for being observed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
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


async def watch(url: str, path: str, rv: str) -> AsyncIterator[dict]:
    """The events of one raw HTTP watch of ``path`` from ``rv`` (decoded, bookmarks left
    out); a cheap client, as the load generators' (:class:`run.RawHttp`)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), limit=2**24)
    writer.write(
        (
            f"GET {path}?watch=1&resourceVersion={rv}&timeoutSeconds=3600 HTTP/1.1\r\n"
            f"Host: {host}\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if head[9:12] != b"200":
        raise RuntimeError(f"watch {path}: {head[:200]!r}")
    chunked = b"transfer-encoding: chunked" in head.lower()
    rest = b""
    try:
        while True:
            if chunked:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    return
                data = (await reader.readexactly(size + 2))[:-2]
            else:
                data = await reader.read(2**16)
                if not data:
                    return
            *lines, rest = (rest + data).split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                ev = orjson.loads(line)
                if ev["type"] == "ERROR":
                    raise RuntimeError(f"watch {path}: {ev['object']}")
                if ev["type"] != "BOOKMARK":
                    yield ev
    finally:
        writer.close()


async def until_running(url: str, ns: str, rv: str, count: int) -> float:
    """``time.monotonic()`` when a watch of ``ns``'s pods from ``rv`` has seen ``count``
    of them Running (and not being deleted)."""
    running: set[str] = set()
    async for ev in watch(url, f"/api/v1/namespaces/{ns}/pods", rv):
        obj = ev["object"]
        name = obj["metadata"]["name"]
        if (
            ev["type"] != "DELETED"
            and (obj.get("status") or {}).get("phase") == "Running"
            and not obj["metadata"].get("deletionTimestamp")
        ):
            running.add(name)
        else:
            running.discard(name)
        if len(running) >= count:
            return time.monotonic()
    raise RuntimeError(f"the watch of {ns}'s pods ended with {len(running)} Running")


def complete(d: dict, replicas: int) -> bool:
    st = d.get("status") or {}
    return (
        st.get("observedGeneration") == d["metadata"].get("generation")
        and st.get("updatedReplicas") == replicas
        and st.get("availableReplicas") == replicas
        and st.get("replicas") == replicas
    )


async def until_complete(url: str, written: dict, replicas: int) -> float:
    """``time.monotonic()`` when the Deployment ``written`` (as a write returned it) is
    complete: the object itself, then a watch of it from its resourceVersion."""
    if complete(written, replicas):
        return time.monotonic()
    name = written["metadata"]["name"]
    path = f"/apis/apps/v1/namespaces/{APPS}/deployments"
    async for ev in watch(url, path, written["metadata"]["resourceVersion"]):
        if ev["object"]["metadata"]["name"] == name and complete(ev["object"], replicas):
            return time.monotonic()
    raise RuntimeError("the watch of the Deployment ended before it was complete")


async def count_running(http: RawHttp, ns: str) -> int:
    """Running pods in ``ns`` (a list: only to wait, untimed, between phases)."""
    _, body = await http.request("GET", f"/api/v1/namespaces/{ns}/pods?resourceVersion=0")
    return sum(
        1
        for p in orjson.loads(body)["items"]
        if (p.get("status") or {}).get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
    )


async def bare_pods(url: str, count: int, timeout: float) -> tuple[float, float]:
    """(seconds to create ``count`` pods with 32 clients, seconds until a watch has seen
    all of them Running)."""
    http = RawHttp(url)
    await http.request("POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": BARE}}))
    _, listed = await http.request("GET", f"/api/v1/namespaces/{BARE}/pods")
    rv = orjson.loads(listed)["metadata"]["resourceVersion"]
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
    # The watch replays from ``rv``: it misses nothing whenever its stream opens.
    watcher = asyncio.create_task(asyncio.wait_for(until_running(url, BARE, rv, count), timeout))
    try:
        await asyncio.gather(*(creator(cl) for cl in clients))
        created = time.monotonic() - start
        running = await watcher - start
    finally:
        watcher.cancel()
    await http.request("DELETE", f"/api/v1/namespaces/{BARE}/pods?gracePeriodSeconds=0")
    for cl in clients:
        cl.close()
    http.close()
    return created, running


async def timed_write(
    http: RawHttp, url: str, method: str, path: str, body: dict, replicas: int, timeout: float
) -> float:
    """Seconds from sending a write of the Deployment to a watch showing it complete."""
    start = time.monotonic()
    ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
    status, b = await http.request(method, path, orjson.dumps(body), ctype=ctype)
    assert status in (200, 201), b
    done = await asyncio.wait_for(until_complete(url, orjson.loads(b), replicas), timeout)
    return done - start


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
            created, running = await bare_pods(c.url, args.replicas, args.timeout)
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
            path = f"/apis/apps/v1/namespaces/{APPS}/deployments"
            results["deployment_available_s"] = await timed_write(
                http, c.url, "POST", path, deployment, args.replicas, args.timeout
            )
            cpu1 = cpu_seconds(pid)
            patch = {"spec": {"template": {"metadata": {"annotations": {"version": "2"}}}}}
            results["rolling_update_s"] = await timed_write(
                http, c.url, "PATCH", f"{path}/big", patch, args.replicas, args.timeout
            )
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
