"""NetworkPolicy validation and defaults, with Kubernetes' messages and field paths."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.api.defaults import apply_defaults
from skiff.api.resources import REGISTRY
from skiff.apiserver.registry import strategy_for

INFO = REGISTRY.by_path("networking.k8s.io", "v1", "networkpolicies")
assert INFO is not None
STRATEGY = strategy_for(INFO)


def policy(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": {"podSelector": {}, **spec}}


def causes(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    found = STRATEGY.validate_update(obj, old) if old else STRATEGY.validate(obj)
    return [(c.field, c.message) for c in found]


def test_a_valid_policy_passes() -> None:
    assert (
        causes(
            policy(
                ingress=[
                    {
                        "from": [
                            {"podSelector": {"matchLabels": {"app": "a"}}},
                            {"namespaceSelector": {}, "podSelector": {}},
                            {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                        ],
                        "ports": [{"port": "http"}, {"port": 80, "endPort": 90, "protocol": "UDP"}],
                    }
                ],
                egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}],
                policyTypes=["Ingress", "Egress"],
            )
        )
        == []
    )


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        (
            {"ingress": [{"ports": [{"protocol": "ICMP"}]}]},
            (
                "spec.ingress[0].ports[0].protocol",
                'Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"',
            ),
        ),
        (
            {"ingress": [{"ports": [{"port": 0}]}]},
            (
                "spec.ingress[0].ports[0].port",
                "Invalid value: 0: must be between 1 and 65535, inclusive",
            ),
        ),
        (
            {"ingress": [{"ports": [{"port": 90, "endPort": 80}]}]},
            (
                "spec.ingress[0].ports[0].endPort",
                "Invalid value: 80: must be greater than or equal to `port`",
            ),
        ),
        (
            {"egress": [{"ports": [{"port": "http", "endPort": 80}]}]},
            (
                "spec.egress[0].ports[0].endPort",
                "Invalid value: 80: may not be specified when `port` is non-numeric",
            ),
        ),
        (
            {"ingress": [{"ports": [{"port": "Web--1"}]}]},
            (
                "spec.ingress[0].ports[0].port",
                'Invalid value: "Web--1": must contain only alpha-numeric characters (a-z, 0-9), '
                "and hyphens (-)",
            ),
        ),
        (
            {"ingress": [{"from": [{}]}]},
            ("spec.ingress[0].from[0]", "Required value: must specify a peer"),
        ),
        (
            {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]},
            ("spec.ingress[0].from[0]", "Forbidden: may not specify both ipBlock and another peer"),
        ),
        (
            {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]},
            (
                "spec.egress[0].to[0].ipBlock.cidr",
                'Invalid value: "10.0.0.0/33": must be a valid CIDR value, '
                "(e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ),
        ),
        (
            {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.0.0/8"]}}]}]},
            (
                "spec.egress[0].to[0].ipBlock.except[0]",
                'Invalid value: "10.0.0.0/8": must be a strict subset of `cidr`',
            ),
        ),
        (
            {"policyTypes": ["Ingress", "Sideways"]},
            (
                "spec.policyTypes[1]",
                'Unsupported value: "Sideways": supported values: "Ingress", "Egress"',
            ),
        ),
    ],
)
def test_bad_input_is_refused_with_kubernetes_messages(
    spec: dict[str, Any], want: tuple[str, str]
) -> None:
    assert want in causes(policy(**spec))


def test_bad_selectors_are_refused() -> None:
    bad = policy(podSelector={"matchExpressions": [{"key": "a", "operator": "Is"}]})
    ((path, message),) = causes(bad)
    assert path == "spec.podSelector" and '"Is" is not a valid label selector operator' in message


def test_an_update_may_keep_a_cidr_the_policy_already_held() -> None:
    old = policy(egress=[{"to": [{"ipBlock": {"cidr": "010.0.0.0/8x"}}]}])
    assert causes(old)  # new: refused
    assert causes(old, old) == []  # already stored (from an older, laxer server): kept


def test_defaults_policy_types_and_protocols() -> None:
    obj = policy(egress=[{"ports": [{"port": 53}]}])
    apply_defaults(INFO, obj, create=True)
    assert obj["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert obj["spec"]["egress"][0]["ports"][0]["protocol"] == "TCP"
    ingress_only = policy()
    apply_defaults(INFO, ingress_only, create=True)
    assert ingress_only["spec"]["policyTypes"] == ["Ingress"]
