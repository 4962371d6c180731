"""The cluster's records as the DNS service discovery specification lays them out, and
the authoritative answers built from them (no sockets)."""

from __future__ import annotations

from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from skiff.dns.handler import Handler, to_wire
from skiff.dns.records import ClusterRecords

ZONE = "cluster.local"


def service(name: str, ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def slice_(name: str, *endpoints: dict[str, Any], ports: Any = None) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{name}-x", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": ports or [{"name": "web", "port": 80, "protocol": "TCP"}],
        "endpoints": list(endpoints),
    }


def ep(ip: str, hostname: str = "", ready: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        out["hostname"] = hostname
    return out


def cluster() -> ClusterRecords:
    r = ClusterRecords(ZONE)
    r.set_service(
        "default/web",
        service(
            "web",
            clusterIP="10.96.0.20",
            clusterIPs=["10.96.0.20"],
            ports=[{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 9090}],
        ),
        [],
    )
    r.set_service(
        "default/db",
        service("db", clusterIP="None", ports=[{"name": "pg", "port": 5432}]),
        [
            slice_(
                "db",
                ep("10.244.0.7", "db-0"),
                ep("10.244.1.9", "db-1"),
                ep("10.244.2.3", ready=False),
                ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}],
            )
        ],
    )
    r.set_service(
        "other/ext", service("ext", ns="other", type="ExternalName", externalName="example.org"), []
    )
    r.set_service("default/empty", service("empty", clusterIP="None"), [slice_("empty")])
    return r


def ask(r: ClusterRecords, name: str, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    resp = Handler(r).answer_local(query)
    assert resp is not None
    return resp


def values(resp: dns.message.Message, section: str = "answer") -> set[str]:
    return {rd.to_text() for rrset in getattr(resp, section) for rd in rrset}


def test_cluster_ip_service_a_srv_and_ptr() -> None:
    r = cluster()
    resp = ask(r, "web.default.svc.cluster.local")
    assert resp.rcode() == dns.rcode.NOERROR and resp.flags & dns.flags.AA
    assert values(resp) == {"10.96.0.20"}
    assert resp.answer[0].ttl == 5
    srv = ask(r, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert values(srv) == {"0 100 80 web.default.svc.cluster.local."}
    assert values(srv, "additional") == {"10.96.0.20"}
    ptr = ask(r, "20.0.96.10.in-addr.arpa", "PTR")
    assert values(ptr) == {"web.default.svc.cluster.local."}
    # Names are case-insensitive; an unnamed port has no SRV record.
    assert values(ask(r, "WEB.Default.SVC.cluster.LOCAL")) == {"10.96.0.20"}
    assert ask(r, "_9090._tcp.web.default.svc.cluster.local", "SRV").rcode() == dns.rcode.NXDOMAIN


def test_headless_service_stable_pod_names() -> None:
    r = cluster()
    assert values(ask(r, "db.default.svc.cluster.local")) == {"10.244.0.7", "10.244.1.9"}
    assert values(ask(r, "db-0.db.default.svc.cluster.local")) == {"10.244.0.7"}
    srv = ask(r, "_pg._tcp.db.default.svc.cluster.local", "SRV")
    assert values(srv) == {
        "0 100 5432 db-0.db.default.svc.cluster.local.",
        "0 100 5432 db-1.db.default.svc.cluster.local.",
    }
    assert values(srv, "additional") == {"10.244.0.7", "10.244.1.9"}
    assert values(ask(r, "9.1.244.10.in-addr.arpa", "PTR")) == {
        "db-1.db.default.svc.cluster.local."
    }
    # A not-ready endpoint is not published; no ready endpoint at all: the name is gone.
    assert ask(r, "10-244-2-3.db.default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    empty = ask(r, "empty.default.svc.cluster.local")
    assert empty.rcode() == dns.rcode.NXDOMAIN
    # The pod moves (deleted, recreated with a new IP): the name follows it.
    r.set_service(
        "default/db",
        service("db", clusterIP="None"),
        [slice_("db", ep("10.244.3.3", "db-0"))],
    )
    assert values(ask(r, "db-0.db.default.svc.cluster.local")) == {"10.244.3.3"}
    assert ask(r, "db-1.db.default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN


def test_external_name_pods_and_version() -> None:
    r = cluster()
    ext = ask(r, "ext.other.svc.cluster.local")
    assert values(ext) == {"example.org."} and ext.answer[0].rdtype == dns.rdatatype.CNAME
    assert values(ask(r, "10-244-1-5.default.pod.cluster.local")) == {"10.244.1.5"}
    assert values(ask(r, "dns-version.cluster.local", "TXT")) == {'"1.1.0"'}


def test_negative_answers_carry_the_soa_and_parents_have_no_data() -> None:
    r = cluster()
    nx = ask(r, "nope.default.svc.cluster.local")
    assert nx.rcode() == dns.rcode.NXDOMAIN
    (soa,) = nx.authority
    assert soa.rdtype == dns.rdatatype.SOA and str(soa.name) == "cluster.local."
    assert soa[0].minimum == 30
    for parent in ("default.svc.cluster.local", "svc.cluster.local", "cluster.local"):
        nodata = ask(r, parent)
        assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer and nodata.authority
    aaaa = ask(r, "web.default.svc.cluster.local", "AAAA")
    assert aaaa.rcode() == dns.rcode.NOERROR and not aaaa.answer
    # A deleted Service: gone, and so are the parents nothing else keeps.
    r.set_service("other/ext", None, [])
    assert ask(r, "other.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN


def test_outside_the_zone_without_upstream_is_refused_and_any_is_not_implemented() -> None:
    r = cluster()
    assert ask(r, "example.org").rcode() == dns.rcode.REFUSED
    assert ask(r, "web.default.svc.cluster.local", "ANY").rcode() == dns.rcode.NOTIMP


def test_big_answers_are_truncated_for_udp() -> None:
    r = ClusterRecords(ZONE)
    many = [ep(f"10.244.{i // 250}.{i % 250 + 1}") for i in range(100)]
    r.set_service("default/big", service("big", clusterIP="None"), [slice_("big", *many)])
    resp = ask(r, "big.default.svc.cluster.local")
    assert len(values(resp)) == 100
    small = dns.message.from_wire(to_wire(resp, 512))
    assert small.flags & dns.flags.TC and not small.answer
    assert len(values(dns.message.from_wire(to_wire(resp, 65535)))) == 100
