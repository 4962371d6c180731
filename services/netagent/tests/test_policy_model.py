"""What NetworkPolicies allow each local pod (the API's semantics), and how that reads as
iptables chains."""

from __future__ import annotations

from typing import Any

from skiff.netagent.policy.chains import TOP, pod_chain, render, set_chain
from skiff.netagent.policy.model import Allow, Peer, Port, block_cidrs, compute, policy_types


def pod(
    name: str,
    ip: str,
    *,
    ns: str = "default",
    node: str = "n1",
    labels: dict[str, str] | None = None,
    ports: list[dict[str, Any]] | None = None,
    **status: Any,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}, "uid": f"u-{name}"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}]},
        "status": {"podIP": ip, "phase": "Running", **status},
    }


def ns(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def policy(name: str, spec: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


NAMESPACES = [ns("default"), ns("prod", team="a"), ns("dev", team="b")]
PODS = [
    pod(
        "web", "10.244.0.5", labels={"app": "web"}, ports=[{"name": "http", "containerPort": 8080}]
    ),
    pod("db", "10.244.0.6", labels={"app": "db"}),
    pod("client", "10.244.1.7", node="n2", labels={"app": "client"}),
    pod("prod-client", "10.244.1.8", ns="prod", node="n2", labels={"app": "client"}),
    pod("dev-client", "10.244.1.9", ns="dev", node="n2", labels={"app": "client"}),
]


def test_policy_types_default_as_the_api_does() -> None:
    assert policy_types(policy("p", {"podSelector": {}})) == ["Ingress"]
    assert policy_types(policy("p", {"egress": [{}]})) == ["Ingress", "Egress"]
    assert policy_types(policy("p", {"policyTypes": ["Egress"]})) == ["Egress"]


def test_unselected_pods_are_not_isolated_and_default_deny_isolates_all() -> None:
    plan = compute([], PODS, NAMESPACES, "n1")
    assert plan.pods == []
    deny = policy("deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    plan = compute([deny], PODS, NAMESPACES, "n1")
    assert [(p.name, p.ingress, p.egress) for p in plan.pods] == [
        ("db", [], []),
        ("web", [], []),
    ]  # only this node's pods, and nothing allowed
    chains = render(plan)
    web_in = chains[pod_chain("Ingress", "default", "web")]
    assert web_in[-1].endswith("-j DROP") and len(web_in) == 3  # clear mark, marked?, drop
    assert "-d 10.244.0.5/32" in " ".join(chains[TOP])


def test_pod_and_namespace_selectors_choose_peers() -> None:
    spec = {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]},
            {
                "from": [
                    {
                        "namespaceSelector": {"matchLabels": {"team": "a"}},
                        "podSelector": {"matchLabels": {"app": "client"}},
                    }
                ],
                "ports": [{"port": 8080}],
            },
            {"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]},
        ],
    }
    plan = compute([policy("web", spec)], PODS, NAMESPACES, "n1")
    (web,) = plan.pods
    assert web.egress is None
    assert [a.port for a in web.ingress or []] == [None, Port("TCP", 8080), None]
    sets = [plan.peer_sets[a.peers] for a in web.ingress or [] if a.peers]
    assert sets == [
        [Peer("10.244.1.7/32")],  # same namespace only
        [Peer("10.244.1.8/32")],  # both selectors: clients in team a's namespaces
        [Peer("10.244.1.9/32")],  # every pod of team b's namespaces
    ]


def test_ip_block_except_becomes_plain_cidrs() -> None:
    assert block_cidrs({"cidr": "10.0.0.0/24", "except": ["10.0.0.0/26"]}) == [
        "10.0.0.64/26",
        "10.0.0.128/25",
    ]
    assert block_cidrs({"cidr": "10.0.0.0/24", "except": ["10.0.0.0/16"]}) == []
    assert block_cidrs({"cidr": "10.0.0.7/24"}) == ["10.0.0.0/24"]


def test_named_ports_resolve_on_the_target_for_ingress_and_on_peers_for_egress() -> None:
    ingress = policy(
        "in",
        {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"ports": [{"port": "http"}, {"port": "nope"}]}],
        },
    )
    egress = policy(
        "out",
        {
            "podSelector": {"matchLabels": {"app": "db"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {}}], "ports": [{"port": "http"}]}],
        },
    )
    plan = compute([ingress, egress], PODS, NAMESPACES, "n1")
    db, web = plan.pods
    assert web.ingress == [Allow(None, Port("TCP", 8080))]  # "nope" matches nothing
    (out,) = db.egress or []
    assert plan.peer_sets[out.peers or ""] == [Peer("10.244.0.5/32", Port("TCP", 8080))]
    rules = render(plan)[set_chain(out.peers or "")]
    assert rules == [
        "-d 10.244.0.5/32 -p tcp -m tcp --dport 8080 -j MARK --set-xmark 0x10000/0x10000"
    ]


def test_ports_ranges_and_protocols() -> None:
    spec = {
        "podSelector": {"matchLabels": {"app": "db"}},
        "ingress": [
            {"ports": [{"protocol": "UDP", "port": 53, "endPort": 60}, {"protocol": "SCTP"}]}
        ],
    }
    plan = compute([policy("p", spec)], PODS, NAMESPACES, "n1")
    chain = render(plan)[pod_chain("Ingress", "default", "db")]
    assert "-p udp -m udp --dport 53:60 -j RETURN" in chain
    assert "-p sctp -j RETURN" in chain


def test_pods_without_their_own_address_are_neither_targets_nor_peers() -> None:
    pods = [
        pod("host", "192.168.1.1", labels={"app": "web"}),
        pod("done", "10.244.0.9", labels={"app": "web"}, phase="Succeeded"),
        pod("pending", "", labels={"app": "web"}),
    ]
    pods[0]["spec"]["hostNetwork"] = True
    plan = compute([policy("deny", {"podSelector": {}})], pods, NAMESPACES, "n1")
    assert plan.pods == []


def test_a_bad_rule_fails_closed_and_is_reported() -> None:
    spec = {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [
            {"from": [{"ipBlock": {"cidr": "not-a-cidr"}}]},
            {"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]},
        ],
    }
    plan = compute([policy("p", spec)], PODS, NAMESPACES, "n1")
    (web,) = plan.pods
    assert len(web.ingress or []) == 1  # the good rule; the bad one allows nothing
    assert plan.problems["default/p"].startswith("spec.ingress[0]:")
    bad_selector = policy(
        "q", {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}}
    )
    plan = compute([bad_selector], PODS, NAMESPACES, "n1")
    assert plan.pods == [] and "spec.podSelector" in plan.problems["default/q"]


def test_policies_add_up() -> None:
    a = policy("a", {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]})
    b = policy(
        "b",
        {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [{"port": 443}]}]},
    )
    plan = compute([a, b], PODS, NAMESPACES, "n1")
    ports = {p.name: [x.port.port for x in p.ingress or [] if x.port] for p in plan.pods}
    assert ports == {"db": [80], "web": [80, 443]}
