"""Printers of the ``discovery.k8s.io`` group: EndpointSlices."""

from __future__ import annotations

from skiff.apiserver.printers.common import (
    AGE_COL,
    NAME_COL,
    UNSET,
    Cells,
    Col,
    TablePrinter,
    age,
    name_of,
)

_ENDPOINT_SLICE = "io.k8s.api.discovery.v1.EndpointSlice"


def _list_with_more(items: list[str], count: int, limit: int = 3) -> str:
    ret = ",".join(items[:limit])
    if count > limit:
        return f"{ret} + {count - limit} more..."
    return ret or UNSET


def _print_endpoint_slice(obj: dict, now: float) -> Cells:
    ports = []
    port_list = obj.get("ports") or []
    for p in port_list[:3]:
        if p.get("port") is not None:
            ports.append(str(p["port"]))
        elif p.get("name") is not None:
            ports.append(p["name"])
        else:
            ports.append("*")
    addresses = [a for ep in obj.get("endpoints") or () for a in ep.get("addresses") or ()]
    return [
        name_of(obj),
        obj.get("addressType", ""),
        _list_with_more(ports, len(port_list)),
        _list_with_more(addresses, len(addresses)),
        age(obj, now),
    ]


PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("discovery.k8s.io", "EndpointSlice"): TablePrinter(
        (
            NAME_COL,
            Col("AddressType", "string", (_ENDPOINT_SLICE, "addressType")),
            Col("Ports", "string", (_ENDPOINT_SLICE, "ports")),
            Col("Endpoints", "string", (_ENDPOINT_SLICE, "endpoints")),
            AGE_COL,
        ),
        _print_endpoint_slice,
    ),
}
