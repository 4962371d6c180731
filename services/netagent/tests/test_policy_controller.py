"""The policy controller against an in-memory API and a recording stand-in for the
iptables tools: a policy, a pod's labels or a namespace's change the chains; only changed
chains are written between full syncs; an unusable rule gets one event per reason."""

from __future__ import annotations

from typing import Any

from skiff.controller.controller import ControllerContext
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.iptables import IptablesRunner
from skiff.netagent.policy.controller import KEY, PolicyController


class Recorder(IptablesRunner):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[str] = []
        self.jumps = 0

    async def restore(self, data: bytes) -> None:
        self.batches.append(data.decode())

    async def save(self, table: str) -> str:
        return "*filter\n:SKIFF-NP-I-LEFTOVER0000000 - [0:0]\nCOMMIT\n"

    async def keep_first(self, *args: Any, **kwargs: Any) -> bool:
        self.jumps += 1
        return False


def pod(name: str, labels: dict[str, str], ip: str, node: str = "n1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c"}]},
        "status": {"podIP": ip, "phase": "Running"},
    }


async def test_chains_follow_policies_pods_and_namespaces() -> None:
    fake = FakeApi()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    rec = Recorder()
    ctl = PolicyController(ControllerContext(fake, informers), rec, node_name="n1")  # type: ignore[arg-type]
    events: list[tuple[str, str]] = []
    ctl.events.emit = lambda obj, t, reason, msg, action="": events.append(  # type: ignore[method-assign]
        (obj["metadata"]["name"], reason)
    )
    informers.start()
    try:
        await fake.create("namespaces", {"metadata": {"name": "default"}})
        await fake.create("pods", pod("web", {"app": "web"}, "10.244.0.5"), namespace="default")
        await fake.create(
            "pods", pod("client", {"app": "x"}, "10.244.1.5", "n2"), namespace="default"
        )
        await informers.wait_synced(timeout=5)
        await fake.settle(*ctl.informers)
        await ctl.reconcile(KEY)  # the first sync is full: the leftover goes
        assert "-X SKIFF-NP-I-LEFTOVER0000000" in rec.batches[-1]
        assert rec.jumps == 1

        spec = {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]},
                {"from": [{"ipBlock": {"cidr": "bad"}}]},
            ],
        }
        policy = {"metadata": {"name": "p", "namespace": "default"}, "spec": spec}
        await fake.create("networkpolicies", policy, namespace="default")
        await fake.settle(*ctl.informers)
        await ctl.reconcile(KEY)
        batch = rec.batches[-1]
        assert "-d 10.244.0.5/32" in batch and "-j DROP" in batch
        assert "10.244.1.5" not in batch  # the client is not labelled app=client yet
        await ctl.reconcile(KEY)
        assert len(rec.batches) == 2  # nothing changed: nothing written
        assert events == [("p", "InvalidNetworkPolicy")]  # once, not at every sync

        client = await fake.get("pods", "client", namespace="default")
        client["metadata"]["labels"] = {"app": "client"}
        await fake.update("pods", client, namespace="default")
        await fake.settle(*ctl.informers)
        await ctl.reconcile(KEY)
        changed = rec.batches[-1]
        assert "-s 10.244.1.5/32" in changed
        # The peer set's new chain and the pod's chain that now jumps to it; not the top.
        assert changed.count(":SKIFF-NP-") == 2 and ":SKIFF-NETPOL" not in changed

        await fake.delete("networkpolicies", "p", namespace="default")
        await fake.settle(*ctl.informers)
        await ctl.reconcile(KEY)
        assert rec.batches[-1].count("-X SKIFF-NP-") == 2  # the pod's chain and the set's
    finally:
        await informers.stop()
