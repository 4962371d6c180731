"""Printers of the ``networking.k8s.io`` group: Ingresses, IngressClasses and
NetworkPolicies."""

from __future__ import annotations

from skiff.apiserver.printers.common import (
    AGE_COL,
    NAME_COL,
    NONE,
    Cells,
    Col,
    TablePrinter,
    age,
    format_label_selector,
    load_balancer_addresses,
    name_of,
)

_NETWORK_POLICY = "io.k8s.api.networking.v1.NetworkPolicy"
_INGRESS_CLASS = "io.k8s.api.networking.v1.IngressClassSpec"
_LOAD_BALANCER_WIDTH = 16
_MAX_HOSTS = 3


def _format_hosts(rules: list[dict]) -> str:
    """``formatHosts``: up to three hosts, ``*`` when no rule names one."""
    hosts = [r["host"] for r in rules[:_MAX_HOSTS] if r.get("host")]
    if not hosts:
        return "*"
    shown = ",".join(hosts)
    if len(rules) > _MAX_HOSTS:
        return f"{shown} + {len(rules) - _MAX_HOSTS} more..."
    return shown


def _print_ingress(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    address = ",".join(load_balancer_addresses((obj.get("status") or {}).get("loadBalancer")))
    if len(address) > _LOAD_BALANCER_WIDTH:
        address = address[: _LOAD_BALANCER_WIDTH - 3] + "..."
    return [
        name_of(obj),
        spec.get("ingressClassName") or NONE,
        _format_hosts(spec.get("rules") or []),
        address,
        "80, 443" if spec.get("tls") else "80",
        age(obj, now),
    ]


def _print_ingress_class(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    params = spec.get("parameters")
    shown = NONE
    if params:
        kind = params.get("kind", "")
        if params.get("apiGroup") is not None:
            kind = f"{kind}.{params['apiGroup']}"
        shown = f"{kind}/{params.get('name', '')}"
    return [name_of(obj), spec.get("controller", ""), shown, age(obj, now)]


def _print_network_policy(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    return [name_of(obj), format_label_selector(spec.get("podSelector")), age(obj, now)]


PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("networking.k8s.io", "Ingress"): TablePrinter(
        (
            NAME_COL,
            Col(
                "Class",
                "string",
                "The name of the IngressClass resource that should be used for ingress",
            ),
            Col(
                "Hosts",
                "string",
                "Hosts that incoming requests are matched against before the ingress rule",
            ),
            Col(
                "Address",
                "string",
                "Address is a list containing ingress points for the load-balancer",
            ),
            Col("Ports", "string", "Ports of TLS configurations that open"),
            AGE_COL,
        ),
        _print_ingress,
    ),
    ("networking.k8s.io", "IngressClass"): TablePrinter(
        (
            NAME_COL,
            Col("Controller", "string", (_INGRESS_CLASS, "controller")),
            Col("Parameters", "string", (_INGRESS_CLASS, "parameters")),
            AGE_COL,
        ),
        _print_ingress_class,
    ),
    ("networking.k8s.io", "NetworkPolicy"): TablePrinter(
        (
            NAME_COL,
            Col("Pod-Selector", "string", (_NETWORK_POLICY, "spec.podSelector")),
            AGE_COL,
        ),
        _print_network_policy,
    ),
}
