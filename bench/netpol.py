"""NetworkPolicy sync benchmark (``make bench``): what the network agent's policy chains
cost to compute and write, in a network namespace of its own (removed afterwards).

A cluster of 5,000 pods in 50 namespaces, 110 of them on this node (the kubelet's pod
limit), and 3 policies per namespace (default deny; allow from the namespace's clients on
a named port; allow from an ipBlock with an except). Measured: computing the plan and
rendering the chains (pure Python), a full write, and partial writes after one peer pod's
labels change (it joins one peer set), each beside ``iptables-restore --noflush`` fed the
same batch directly (the floor, in the same run).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from proxy import Recording, raw_restore  # noqa: E402
from run import write_result  # noqa: E402

from skiff.netagent.policy.chains import PolicyTables, render  # noqa: E402
from skiff.netagent.policy.model import compute  # noqa: E402

NS = "sknp-bench"
NODE = "n0"


def pod(i: int, namespaces: int, local: int, role: str = "") -> dict[str, Any]:
    labels = {"app": f"app{i % 7}", "role": role or ("client" if i % 3 == 0 else "server")}
    return {
        "metadata": {"name": f"p{i}", "namespace": f"ns{i % namespaces}", "labels": labels},
        "spec": {
            "nodeName": NODE if i < local else f"n{1 + i % 40}",
            "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}],
        },
        "status": {
            "phase": "Running",
            "podIP": f"10.{64 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}",
        },
    }


def policies(namespaces: int) -> list[dict[str, Any]]:
    out = []
    for n in range(namespaces):
        ns = f"ns{n}"
        out += [
            {"metadata": {"name": "deny", "namespace": ns}, "spec": {"podSelector": {}}},
            {
                "metadata": {"name": "clients", "namespace": ns},
                "spec": {
                    "podSelector": {"matchLabels": {"role": "server"}},
                    "ingress": [
                        {
                            "from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                            "ports": [{"port": "http"}],
                        }
                    ],
                },
            },
            {
                "metadata": {"name": "lb", "namespace": ns},
                "spec": {
                    "podSelector": {"matchLabels": {"app": "app1"}},
                    "ingress": [
                        {
                            "from": [
                                {
                                    "ipBlock": {
                                        "cidr": "192.168.0.0/16",
                                        "except": ["192.168.1.0/24"],
                                    }
                                }
                            ]
                        }
                    ],
                },
            },
        ]
    return out


async def bench(total: int, namespaces: int, local: int, rounds: int) -> dict[str, Any]:
    pods = [pod(i, namespaces, local) for i in range(total)]
    spaces = [{"metadata": {"name": f"ns{n}", "labels": {}}} for n in range(namespaces)]
    pols = policies(namespaces)
    t0 = time.perf_counter()
    chains = render(compute(pols, pods, spaces, NODE))
    plan_s = time.perf_counter() - t0
    runner = Recording(prefix=["ip", "netns", "exec", NS])
    tables = PolicyTables(runner)
    t0 = time.perf_counter()
    await tables.sync(chains, full=True)
    full_s = time.perf_counter() - t0
    full_batch = runner.last
    raw_full = raw_restore(full_batch, NS)
    partial, raw_partial, sizes, written = [], [], [], []
    for r in range(rounds):
        i = local + 3 * r + 2  # a remote server pod becomes a client: it joins one set
        assert pods[i]["metadata"]["labels"]["role"] == "server"
        pods[i] = pod(i, namespaces, local, role="client")
        runner.last = b""
        t0 = time.perf_counter()
        chains = render(compute(pols, pods, spaces, NODE))
        n, _ = await tables.sync(chains)
        partial.append(time.perf_counter() - t0)
        assert runner.last, "the change wrote nothing"
        sizes.append(len(runner.last))
        written.append(n)
        raw_partial.append(raw_restore(runner.last, NS))
    return {
        "pods": total,
        "local_pods": local,
        "policies": len(pols),
        "chains": len(chains),
        "rules": full_batch.count(b"\n-A "),
        "plan_and_render_s": round(plan_s, 3),
        "full_sync_s": round(full_s, 3),
        "full_raw_restore_s": round(raw_full, 3),
        "full_batch_bytes": len(full_batch),
        "partial_sync_p50_s": round(statistics.median(partial), 4),
        "partial_raw_restore_p50_s": round(statistics.median(raw_partial), 4),
        "partial_ratio": round(statistics.median(partial) / statistics.median(raw_partial), 2),
        "partial_batch_bytes": int(statistics.median(sizes)),
        "partial_chains_written_max": max(written),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pods", type=int, default=5000)
    p.add_argument("--namespaces", type=int, default=50)
    p.add_argument("--local", type=int, default=110)
    p.add_argument("--rounds", type=int, default=10)
    a = p.parse_args()
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        result = asyncio.run(bench(a.pods, a.namespaces, a.local, a.rounds))
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    write_result(ROOT / "bench" / "results" / "netpol.json", result)


if __name__ == "__main__":
    main()
