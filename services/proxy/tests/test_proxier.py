"""The proxier's syncs against a recording stand-in for the iptables tools: a full sync
first, then only the chains that changed; stale chains flushed and deleted in the same
batch; a refused batch changes nothing and is written again next time; leftovers from
an earlier run deleted on a full sync."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.iptables import IptablesRunner, RestoreError
from skiff.proxy.iptables.proxier import IptablesProxier


def _join(args: tuple[str, ...]) -> str:
    return " ".join(f'"{a}"' if " " in a else a for a in args)


class Recorder(IptablesRunner):
    """Stands in for the iptables tools: keeps each batch and the built-in chains'
    rules (``-S``, ``-C``, ``-I``, ``-D``); ``fail`` refuses the next batch."""

    def __init__(self, nat_save: str = "") -> None:
        super().__init__()
        self.batches: list[str] = []
        self.jumps: list[tuple[str, str, str]] = []
        self.nat_save = nat_save
        self.fail = False
        self.builtin: dict[tuple[str, str], list[str]] = {}

    async def restore(self, data: bytes) -> None:
        if self.fail:
            self.fail = False
            raise RestoreError("iptables-restore: line 7 failed", "-A KUBE-SVC-X bad")
        self.batches.append(data.decode())

    async def save(self, table: str) -> str:
        return self.nat_save if table == "nat" else ""

    async def run(self, *args: str, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        assert args[:4] == ("iptables", "-w", "5", "-t"), args
        table, verb, chain, *rest = args[4:]
        rules = self.builtin.setdefault((table, chain), [])
        if verb == "-S":
            return 0, "".join(f"-A {chain} {r}\n" for r in rules).encode(), b""
        if verb == "-I":
            at = int(rest.pop(0)) - 1 if rest and rest[0].isdigit() else 0
            rule = _join(tuple(rest))
            self.jumps.append((table, chain, rule))
            rules.insert(at, rule)
            return 0, b"", b""
        rule = _join(tuple(rest))
        if rule not in rules:
            return 1, b"", b"Bad rule"
        if verb == "-D":
            rules.remove(rule)
        return 0, b"", b""


def service(name: str, ip: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": ip, "ports": [{"port": 80, "protocol": "TCP"}]},
    }


def slice_(name: str, *ips: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{name}-abc",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "ports": [{"port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
    }


def declared(batch: str) -> list[str]:
    nat = batch.split("*nat", 1)[1]
    return [line[1:].split()[0] for line in nat.splitlines() if line.startswith(":KUBE-S")]


async def test_partial_syncs_write_only_what_changed() -> None:
    rec = Recorder()
    p = IptablesProxier(rec, node_name="n1", cluster_cidr="10.244.0.0/16")  # type: ignore[arg-type]
    for i in range(3):
        p.on_service(service(f"s{i}", f"10.96.0.{10 + i}"))
        p.on_slice(slice_(f"s{i}", f"10.244.0.{10 + i}", f"10.244.1.{10 + i}"))
    full = await p.sync()
    assert full.full and full.chains_written == 9  # 3 Services: SVC + 2 SEP each
    assert len(rec.jumps) == 11  # the jumps from the built-in chains, once

    # Nothing changed: the owned chains are rewritten, no Service chain is.
    again = await p.sync()
    assert not again.full and again.chains_written == 0
    assert declared(rec.batches[-1]) == ["KUBE-SERVICES"]

    # One endpoint of one Service goes: its SVC chain is rewritten, its SEP deleted.
    p.on_slice(slice_("s1", "10.244.0.11"))
    one = await p.sync()
    assert (one.chains_written, one.chains_deleted, one.changed_services) == (1, 1, {"default/s1"})
    batch = rec.batches[-1]
    (stale,) = [line.split()[1] for line in batch.splitlines() if line.startswith("-X ")]
    assert f":{stale} - [0:0]" in batch  # flushed, then deleted, in one batch
    assert len(rec.jumps) == 11


async def test_a_refused_batch_is_written_again() -> None:
    rec = Recorder()
    p = IptablesProxier(rec, node_name="n1")  # type: ignore[arg-type]
    p.on_service(service("s0", "10.96.0.10"))
    p.on_slice(slice_("s0", "10.244.0.10"))
    await p.sync()
    p.on_slice(slice_("s0", "10.244.0.10", "10.244.0.11"))
    rec.fail = True
    with pytest.raises(RestoreError) as e:
        await p.sync()
    assert e.value.line == "-A KUBE-SVC-X bad"
    # Nothing is pending as "dirty", but the chains still differ from what was written.
    retry = await p.sync()
    assert retry.chains_written == 2  # the SVC chain and the new SEP


async def test_service_deleted_removes_its_chains() -> None:
    rec = Recorder()
    p = IptablesProxier(rec, node_name="n1")  # type: ignore[arg-type]
    p.on_service(service("s0", "10.96.0.10"))
    p.on_slice(slice_("s0", "10.244.0.10"))
    await p.sync()
    p.on_service(service("s0", "10.96.0.10"), deleted=True)
    gone = await p.sync()
    assert gone.chains_deleted == 2 and gone.services == 0
    assert "10.96.0.10" not in rec.batches[-1].split("-X")[0].split("COMMIT")[1]


async def test_full_sync_deletes_leftovers_of_an_earlier_run() -> None:
    leftover = ":KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n:KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]\n"
    rec = Recorder(nat_save="*nat\n:PREROUTING ACCEPT [0:0]\n" + leftover + "COMMIT\n")
    p = IptablesProxier(rec, node_name="n1")  # type: ignore[arg-type]
    p.on_service(service("s0", "10.96.0.10"))
    result = await p.sync()
    assert result.chains_deleted == 2
    assert "-X KUBE-SVC-AAAAAAAAAAAAAAAA" in rec.batches[-1]


async def test_jumps_are_moved_back_in_front_of_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CNI firewall plugin puts its accepting chain first in FORWARD when the first
    pod starts; behind it our REJECT for a Service without endpoints is never reached."""
    from skiff.proxy.iptables import proxier as proxier_module

    rec = Recorder()
    p = IptablesProxier(rec, node_name="n1")  # type: ignore[arg-type]
    await p.sync()
    forward = rec.builtin[("filter", "FORWARD")]
    ours = list(forward)
    forward.insert(0, '-m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD')
    await p.sync()  # within the check period: not looked at
    assert forward[0].endswith("CNI-FORWARD")
    monkeypatch.setattr(proxier_module, "JUMP_CHECK_PERIOD", 0.0)
    await p.sync()
    forward = rec.builtin[("filter", "FORWARD")]
    assert forward[: len(ours)] == ours and forward[-1].endswith("CNI-FORWARD")

    # skiff-netagent's policy chain may stay in front: the two never take turns at the top.
    policy = '-m comment --comment "network policy" -j SKIFF-NETPOL'
    forward.insert(0, policy)
    inserted = len(rec.jumps)
    await p.sync()
    assert rec.builtin[("filter", "FORWARD")][: len(ours) + 1] == [policy, *ours]
    assert len(rec.jumps) == inserted
    forward.insert(1, "-j CNI-FORWARD")
    await p.sync()
    assert rec.builtin[("filter", "FORWARD")][: len(ours) + 1] == [policy, *ours]


async def test_a_refused_batch_is_blamed_on_its_service() -> None:
    """The Service whose rule iptables-restore named gets a FailedToProgram event."""
    from skiff.controller.controller import ControllerContext
    from skiff.controller.fake import FakeApi
    from skiff.controller.informers import SharedInformers
    from skiff.proxy.controller import ProxyController

    fake = FakeApi()
    svc = await fake.create("services", service("s0", "10.96.0.10"), "default")
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    rec = Recorder()
    c = ProxyController(
        ControllerContext(fake, informers),  # type: ignore[arg-type]
        IptablesProxier(rec, node_name="n1"),  # type: ignore[arg-type]
    )
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        emitted: list[tuple[str, str]] = []
        c.events.emit = lambda obj, type_, reason, message, action="": emitted.append(  # type: ignore[method-assign]
            (obj["metadata"]["name"], reason)
        )
        rec.fail = True
        line = '-A KUBE-SERVICES -d 10.96.0.10/32 -m comment --comment "default/s0 cluster IP" -j X'
        error = RestoreError("iptables-restore: line 7 failed", line)
        c._blame(error)
        assert emitted == [("s0", "FailedToProgram")]
        assert svc["metadata"]["name"] == "s0"
    finally:
        await informers.stop()
