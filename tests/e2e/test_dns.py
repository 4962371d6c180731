"""skiff-dns as a process against the real apiserver: the records follow Services and
EndpointSlices as they change (a StatefulSet pod's stable name follows it to a new
address), names outside the cluster go to a resolver of our own on loopback (never the
Internet), and with two replicas one killed leaves the other answering."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rrset
import pytest

from cluster import VENV_BIN, Cluster, Proc, free_port
from skiff.client.rest import ApiClient

NS = "dns-e2e"


class OwnResolver(asyncio.DatagramProtocol):
    """The upstream: outside.test A 192.0.2.7; everything else NXDOMAIN."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.asked: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        q = dns.message.from_wire(data)
        name = str(q.question[0].name)
        self.asked.append(name)
        resp = dns.message.make_response(q)
        if name == "outside.test.":
            resp.answer.append(dns.rrset.from_text(name, 300, "IN", "A", "192.0.2.7"))
        else:
            resp.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(resp.to_wire(), addr)


def start_dns(cluster: Cluster, port: int, ready: int, upstream: int, log: Path) -> Proc:
    proc = Proc(
        f"dns-{port}",
        [
            str(VENV_BIN / "skiff-dns"),
            "--server",
            cluster.url,
            "--bind-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--upstream",
            f"127.0.0.1:{upstream}",
            "--health-port",
            "0",
            "--ready-port",
            str(ready),
        ],
        log,
    )
    proc.start()
    return proc


def is_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


async def ask(port: int, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    query = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await query(q, "127.0.0.1", port=port, timeout=2)


def answers(resp: dns.message.Message) -> set[str]:
    return {rd.to_text() for rrset in resp.answer for rd in rrset}


async def until(check: Callable[[], Any], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)


@pytest.fixture
async def servers(cluster: Cluster, tmp_path: Path) -> AsyncIterator[tuple[list[int], list[Proc]]]:
    loop = asyncio.get_running_loop()
    upstream = OwnResolver()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: upstream, local_addr=("127.0.0.1", 0)
    )
    up_port = transport.get_extra_info("sockname")[1]
    ports = [free_port(), free_port()]
    readies = [free_port(), free_port()]
    procs = [
        start_dns(cluster, p, r, up_port, tmp_path / f"dns-{i}.log")
        for i, (p, r) in enumerate(zip(ports, readies, strict=True))
    ]
    try:
        for r in readies:
            await until(lambda r=r: asyncio.to_thread(is_ready, r))
        yield ports, procs
    finally:
        for p in procs:
            p.stop()
        transport.close()


async def test_records_follow_the_api_and_a_replica_can_die(
    cluster: Cluster, servers: tuple[list[int], list[Proc]]
) -> None:
    ports, procs = servers
    async with ApiClient(cluster.url) as api:
        with contextlib.suppress(Exception):
            await api.create("namespaces", {"metadata": {"name": NS}})
        web = await api.create(
            "services",
            {"metadata": {"name": "web"}, "spec": {"ports": [{"name": "http", "port": 80}]}},
            NS,
        )
        await api.create(
            "services",
            {
                "metadata": {"name": "db"},
                "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]},
            },
            NS,
        )
        es = await api.create(
            "endpointslices",
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
                "addressType": "IPv4",
                "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
                "endpoints": [
                    {
                        "addresses": ["10.244.5.10"],
                        "hostname": "db-0",
                        "conditions": {"ready": True},
                    },
                ],
            },
            NS,
        )
        fqdn = f"web.{NS}.svc.cluster.local"
        ip = web["spec"]["clusterIP"]

        async def web_resolves() -> bool:
            return all([answers(await ask(p, fqdn)) == {ip} for p in ports])

        await until(web_resolves)
        assert answers(await ask(ports[0], fqdn, tcp=True)) == {ip}
        srv = await ask(ports[0], f"_http._tcp.{fqdn}", "SRV")
        assert answers(srv) == {f"0 100 80 {fqdn}."}
        ptr = await ask(ports[0], ".".join(reversed(ip.split("."))) + ".in-addr.arpa", "PTR")
        assert answers(ptr) == {f"{fqdn}."}
        pod = f"db-0.db.{NS}.svc.cluster.local"
        assert answers(await ask(ports[0], pod)) == {"10.244.5.10"}

        # The StatefulSet pod is deleted and comes back with a new address.
        es["endpoints"][0]["addresses"] = ["10.244.6.20"]
        await api.update("endpointslices", es, NS)

        async def moved() -> bool:
            return answers(await ask(ports[0], pod)) == {"10.244.6.20"}

        await until(moved)
        # The Service goes: NXDOMAIN with the zone's SOA.
        await api.delete("services", "web", NS)

        async def gone() -> bool:
            return (await ask(ports[0], fqdn)).rcode() == dns.rcode.NXDOMAIN

        await until(gone)
        assert (await ask(ports[0], fqdn)).authority[0].rdtype == 6  # SOA

        # Outside the cluster: our own resolver answers, through either replica.
        assert answers(await ask(ports[0], "outside.test")) == {"192.0.2.7"}
        # One replica dies (kill -9); the other goes on answering.
        procs[0].kill()
        assert answers(await ask(ports[1], pod)) == {"10.244.6.20"}
        assert answers(await ask(ports[1], "outside.test")) == {"192.0.2.7"}
        await api.delete("services", "db", NS)
        await api.delete("endpointslices", "db-1", NS)
