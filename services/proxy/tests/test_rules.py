"""Rule generation in kube-proxy's layout, without the kernel: chain names, the spread
over endpoints, masquerading, refusals, traffic policies and session affinity. The kernel's
side (real iptables in a network namespace) is ``tests/e2e/test_proxy.py``."""

from __future__ import annotations

from typing import Any

from skiff.proxy.endpoints import categorize, endpoints_by_port
from skiff.proxy.iptables import rules as r
from skiff.proxy.serviceport import service_ports

CIDR = "10.244.0.0/16"


def svc(name: str = "web", **spec: Any) -> dict[str, Any]:
    base = {
        "clusterIP": "10.96.0.50",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
    }
    return {"metadata": {"name": name, "namespace": "default"}, "spec": base | spec}


def eps(*endpoints: tuple[str, str, dict[str, bool]], port: int = 8080) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-x", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [ip], "nodeName": node, "conditions": cond}
            for ip, node, cond in endpoints
        ],
    }


READY = {"ready": True, "serving": True, "terminating": False}
DRAINING = {"ready": False, "serving": True, "terminating": True}
GONE = {"ready": False, "serving": False, "terminating": True}


def rules_for(service: dict[str, Any], *slices: dict[str, Any], node: str = "n1") -> r.ServiceRules:
    (sp,) = service_ports(service)
    by_port = endpoints_by_port(slices, node)
    return r.service_rules(sp, categorize(sp, by_port.get(("http", "TCP"), [])), CIDR)


def test_chain_names_are_kube_proxy_s() -> None:
    (sp,) = service_ports(
        {
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]},
        }
    )
    # The chain every kube-proxy node has for the apiserver's Service.
    assert r.svc_chain(sp) == "KUBE-SVC-NPX46M4PTMTKRN6Y"


def test_cluster_ip_spreads_evenly_and_masquerades_outside_traffic() -> None:
    out = rules_for(
        svc(),
        eps(("10.244.0.5", "n1", READY), ("10.244.1.7", "n2", READY), ("10.244.2.9", "n3", READY)),
    )
    (sp,) = service_ports(svc())
    chain = r.svc_chain(sp)
    assert out.nat_services == [
        '-d 10.96.0.50/32 -m comment --comment "default/web:http cluster IP" '
        f"-p tcp -m tcp --dport 80 -j {chain}"
    ]
    rules = out.chains[chain]
    assert rules[0].startswith(f"! -s {CIDR} -d 10.96.0.50/32") and rules[0].endswith(
        "-j KUBE-MARK-MASQ"
    )
    assert "--probability 0.3333333333" in rules[1]
    assert "--probability 0.5000000000" in rules[2]
    assert "statistic" not in rules[3]
    seps = [c for c in out.chains if c.startswith("KUBE-SEP-")]
    assert len(seps) == 3
    first = out.chains[seps[0]]
    assert first[0].startswith("-s 10.244.") and first[0].endswith("-j KUBE-MARK-MASQ")  # hairpin
    assert "-j DNAT --to-destination 10.244." in first[1]
    assert not out.filter_services


def test_no_endpoints_is_refused_at_once() -> None:
    out = rules_for(svc(type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}]))
    assert out.chains == {} and out.nat_services == [] and out.nat_nodeports == []
    assert out.filter_services == [
        '-d 10.96.0.50/32 -m comment --comment "default/web:http has no endpoints" '
        "-p tcp -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable"
    ]
    assert "--dst-type LOCAL -p tcp -m tcp --dport 30080 -j REJECT" in out.filter_external[0]


def test_terminating_endpoints_serve_only_when_no_ready_one_is_left() -> None:
    out = rules_for(svc(), eps(("10.244.0.5", "n1", READY), ("10.244.0.6", "n1", DRAINING)))
    assert sum(c.startswith("KUBE-SEP-") for c in out.chains) == 1
    out = rules_for(svc(), eps(("10.244.0.6", "n1", DRAINING), ("10.244.0.7", "n1", GONE)))
    dnat = [rule for c, rs in out.chains.items() for rule in rs if "DNAT" in rule]
    assert len(dnat) == 1 and "10.244.0.6:8080" in dnat[0]


def test_node_port_and_external_ips_go_through_the_ext_chain() -> None:
    service = svc(
        type="NodePort",
        ports=[{"name": "http", "port": 80, "nodePort": 30080}],
        externalIPs=["192.0.2.10"],
    )
    out = rules_for(service, eps(("10.244.1.7", "n2", READY)))
    (sp,) = service_ports(service)
    ext = r.ext_chain(sp)
    assert out.nat_nodeports == [
        f'-m comment --comment "default/web:http" -p tcp -m tcp --dport 30080 -j {ext}'
    ]
    assert any(x.startswith("-d 192.0.2.10/32") and x.endswith(ext) for x in out.nat_services)
    assert out.chains[ext] == [
        '-m comment --comment "masquerade traffic for default/web:http external destinations" '
        "-j KUBE-MARK-MASQ",
        f"-j {r.svc_chain(sp)}",
    ]


def test_external_traffic_policy_local_keeps_the_client_and_uses_local_endpoints() -> None:
    service = svc(
        type="NodePort",
        externalTrafficPolicy="Local",
        healthCheckNodePort=32000,
        ports=[{"name": "http", "port": 80, "nodePort": 30080}],
    )
    (sp,) = service_ports(service)
    out = rules_for(service, eps(("10.244.0.5", "n1", READY), ("10.244.1.7", "n2", READY)))
    ext, svl = out.chains[r.ext_chain(sp)], out.chains[r.svl_chain(sp)]
    assert ext[-1] == f"-j {r.svl_chain(sp)}"
    assert not any(rule == "-j KUBE-MARK-MASQ" or "masquerade traffic for" in rule for rule in ext)
    assert len(svl) == 1 and "10.244.0.5:8080" in svl[0]
    assert "--dport 32000 -j ACCEPT" in out.filter_nodeports[0]
    # No local endpoint: external traffic is dropped here (the client's balancer moves on);
    # cluster traffic still reaches the other node's endpoint.
    out = rules_for(service, eps(("10.244.1.7", "n2", READY)))
    assert out.filter_external[0].endswith("--dport 30080 -j DROP")
    assert "has no local endpoints" in out.filter_external[0]
    assert r.svc_chain(sp) in out.chains


def test_internal_traffic_policy_local() -> None:
    service = svc(internalTrafficPolicy="Local")
    (sp,) = service_ports(service)
    out = rules_for(service, eps(("10.244.0.5", "n1", READY), ("10.244.1.7", "n2", READY)))
    assert out.nat_services[0].endswith(f"-j {r.svl_chain(sp)}")
    assert r.svc_chain(sp) not in out.chains
    out = rules_for(service, eps(("10.244.1.7", "n2", READY)))
    assert "has no local endpoints" in out.filter_services[0]


def test_session_affinity_checks_recent_before_spreading() -> None:
    service = svc(
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}
    )
    (sp,) = service_ports(service)
    out = rules_for(service, eps(("10.244.0.5", "n1", READY), ("10.244.1.7", "n2", READY)))
    rules = out.chains[r.svc_chain(sp)]
    assert "--rcheck --seconds 60 --reap" in rules[1] and "--rcheck" in rules[2]
    assert "statistic" in rules[3]
    dnat = [
        x for c, rs in out.chains.items() if c.startswith("KUBE-SEP-") for x in rs if "DNAT" in x
    ]
    assert all("-m recent --name KUBE-SEP-" in x and "--set" in x for x in dnat)


def test_headless_external_name_and_ipv6_only_get_nothing() -> None:
    assert service_ports(svc(clusterIP="None", clusterIPs=["None"])) == []
    assert service_ports(svc(type="ExternalName", externalName="example.org")) == []
    assert service_ports(svc(clusterIP="fd00::1", clusterIPs=["fd00::1"])) == []


def test_rules_are_stable_between_runs() -> None:
    a = rules_for(svc(), eps(("10.244.1.7", "n2", READY), ("10.244.0.5", "n1", READY)))
    b = rules_for(svc(), eps(("10.244.0.5", "n1", READY), ("10.244.1.7", "n2", READY)))
    assert a == b
