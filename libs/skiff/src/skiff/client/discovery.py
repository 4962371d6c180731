"""What the server serves, from its aggregated discovery (``/api`` and ``/apis`` as
``APIGroupDiscoveryList``): the built-in resources and the custom resources of the
CustomResourceDefinitions installed now, as controllers that act on every resource need
them (the namespace controller, the garbage collector)."""

from __future__ import annotations

from typing import Any, Protocol

from skiff.api.resources import REGISTRY, ResourceInfo


class Discovering(Protocol):
    """What discovery needs of a client (``ApiClient``, ``FakeApi``)."""

    async def discovery(self, path: str) -> dict[str, Any]: ...


def _infos(doc: dict[str, Any]) -> list[ResourceInfo]:
    out = []
    for group in doc.get("items") or []:
        name = (group.get("metadata") or {}).get("name") or ""
        for version in group.get("versions") or []:
            v = version.get("version") or ""
            for r in version.get("resources") or []:
                plural = r.get("resource") or ""
                builtin = REGISTRY.by_path(name, v, plural)
                if builtin is not None and not builtin.custom:
                    out.append(builtin)
                    continue
                kind = (r.get("responseKind") or {}).get("kind") or ""
                out.append(
                    ResourceInfo(
                        name,
                        v,
                        kind,
                        plural,
                        r.get("scope") == "Namespaced",
                        "",
                        short_names=tuple(r.get("shortNames") or ()),
                        categories=tuple(r.get("categories") or ()),
                        subresources=tuple(
                            s.get("subresource", "") for s in r.get("subresources") or ()
                        ),
                        verbs=tuple(r.get("verbs") or ()),
                        custom=True,
                    )
                )
    return out


async def served_resources(client: Discovering) -> list[ResourceInfo]:
    """Every resource served now, one per group and plural (the group's preferred
    version, which discovery lists first)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for path in ("/api", "/apis"):
        for info in _infos(await client.discovery(path)):
            if (info.group, info.plural) not in seen:
                seen.add((info.group, info.plural))
                out.append(info)
    return out


async def custom_resources(client: Discovering) -> list[ResourceInfo]:
    """The custom resources served now."""
    return [i for i in await served_resources(client) if i.custom]
