"""Discovery documents: /api, /apis, per group-version lists, aggregated discovery; the
group versions of remote APIServices (:mod:`.aggregator`) merged in by their priorities,
their resources from what their servers last answered."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from skiff.api.resources import REGISTRY, ResourceInfo, order_groups

from .aggregator.apiservices import Remote

KUBE_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-skiff",
    "gitCommit": "skiff",
    "gitTreeState": "clean",
    "buildDate": "2026-11-25T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_SUB_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "binding": ["create"],
    "eviction": ["create"],
    "finalize": ["update"],
    "log": ["get"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
    "proxy": ["create", "delete", "get", "patch", "update"],
    "ephemeralcontainers": ["get", "patch", "update"],
    "token": ["create"],
}
_SUB_KIND = {
    "scale": ("autoscaling", "v1", "Scale"),
    "binding": ("", "v1", "Binding"),
    "eviction": ("policy", "v1", "Eviction"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
    "log": ("", "v1", "Pod"),
}


def _resource_entry(r: ResourceInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        out["shortNames"] = list(r.short_names)
    if r.categories:
        out["categories"] = list(r.categories)
    return out


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    rs = REGISTRY.in_group_version(group, version)
    if not rs:
        return None
    entries = []
    for r in rs:
        entries.append(_resource_entry(r))
        for sub in r.subresources:
            e: dict[str, Any] = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": _SUB_VERBS.get(sub, ["get"]),
            }
            if sub in _SUB_KIND:
                g, v, k = _SUB_KIND[sub]
                e["kind"] = k
                if g:
                    e["group"], e["version"] = g, v
            entries.append(e)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }


def _groups(remotes: Sequence[Remote]) -> dict[str, list[str]]:
    entries = REGISTRY.group_versions()
    entries += [(r.group, r.version, r.group_priority, r.version_priority) for r in remotes]
    return order_groups(entries)


def api_group_list(remotes: Sequence[Remote] = ()) -> dict[str, Any]:
    groups = []
    for g, versions in _groups(remotes).items():
        if not g:
            continue
        vs = [{"groupVersion": f"{g}/{v}", "version": v} for v in versions]
        groups.append({"name": g, "versions": vs, "preferredVersion": vs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str, remotes: Sequence[Remote] = ()) -> dict[str, Any] | None:
    for g in api_group_list(remotes)["groups"]:
        if g["name"] == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **g}
    return None


def _aggregated_resource(r: ResourceInfo) -> dict[str, Any]:
    e: dict[str, Any] = {
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        e["shortNames"] = list(r.short_names)
    if r.categories:
        e["categories"] = list(r.categories)
    subs = []
    for sub in r.subresources:
        sg, sv, sk = _SUB_KIND.get(sub, (r.group, r.version, r.kind))
        subs.append(
            {
                "subresource": sub,
                "responseKind": {"group": sg, "version": sv, "kind": sk},
                "verbs": _SUB_VERBS.get(sub, ["get"]),
            }
        )
    if subs:
        e["subresources"] = subs
    return e


def _remote_resources(remote: Remote, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A remote server's APIResourceList as aggregated discovery entries (kube's
    ``convertAPIResourceListToAPIVersionDiscovery`` when a server has no v2)."""
    out: dict[str, dict[str, Any]] = {}
    subs: list[tuple[str, str, dict[str, Any]]] = []
    for r in doc.get("resources") or ():
        if not isinstance(r, dict) or not r.get("name"):
            continue
        name = str(r["name"])
        kind = {
            "group": r.get("group", remote.group),
            "version": r.get("version", remote.version),
            "kind": r.get("kind", ""),
        }
        if "/" in name:
            parent, _, sub = name.partition("/")
            subs.append(
                (parent, sub, {"subresource": sub, "responseKind": kind, "verbs": r.get("verbs")})
            )
            continue
        e: dict[str, Any] = {
            "resource": name,
            "responseKind": kind,
            "scope": "Namespaced" if r.get("namespaced") else "Cluster",
            "singularResource": r.get("singularName") or "",
            "verbs": list(r.get("verbs") or ()),
        }
        for key in ("shortNames", "categories"):
            if r.get(key):
                e[key] = list(r[key])
        out[name] = e
    for parent, _sub, entry in subs:
        if parent in out:
            out[parent].setdefault("subresources", []).append(entry)
    return list(out.values())


def aggregated(
    core: bool,
    api_version: str,
    remotes: Sequence[Remote] = (),
    documents: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``APIGroupDiscoveryList`` for /api (core) or /apis, as kubectl negotiates it; a
    remote group version lists what its server last answered (``Current``), or nothing
    (``Stale``) when it has not answered."""
    by_gv = {(r.group, r.version): r for r in remotes}
    items = []
    for g, versions in _groups(remotes).items():
        if core != (g == ""):
            continue
        vlist = []
        for v in versions:
            remote = by_gv.get((g, v))
            if remote is None:
                resources = [_aggregated_resource(r) for r in REGISTRY.in_group_version(g, v)]
                vlist.append({"version": v, "resources": resources, "freshness": "Current"})
                continue
            doc = (documents or {}).get(remote.name)
            resources = _remote_resources(remote, doc) if doc is not None else []
            fresh = "Current" if doc is not None else "Stale"
            vlist.append({"version": v, "resources": resources, "freshness": fresh})
        items.append({"metadata": {"name": g, "creationTimestamp": None}, "versions": vlist})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{api_version}",
        "metadata": {},
        "items": items,
    }
