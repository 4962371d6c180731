"""Which FlowSchema and priority level a request belongs to (kube's APF classification,
``k8s.io/apiserver/pkg/util/flowcontrol/rule.go``): the FlowSchemas in matching order
(precedence, then name), the first one with a rule whose subjects name the requester and
whose resource or non-resource rule names the request. kube-apiserver tells the client
with the ``X-Kubernetes-PF-FlowSchema-UID`` and ``X-Kubernetes-PF-PriorityLevel-UID``
headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from skiff.api.resources import REGISTRY

from ..authorization.attributes import RequestAttributes
from ..watchcache import WatchCache

FLOW_SCHEMA_UID_HEADER = "X-Kubernetes-PF-FlowSchema-UID"
PRIORITY_LEVEL_UID_HEADER = "X-Kubernetes-PF-PriorityLevel-UID"
FLOW_SCHEMAS = REGISTRY.by_path("flowcontrol.apiserver.k8s.io", "v1", "flowschemas")
PRIORITY_LEVELS = REGISTRY.by_path(
    "flowcontrol.apiserver.k8s.io", "v1", "prioritylevelconfigurations"
)
_SA_PREFIX = "system:serviceaccount:"

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Classification:
    """The FlowSchema a request matched and its priority level (uids; ``""`` for a level
    that does not exist as an object)."""

    flow_schema: str
    priority_level: str
    flow_schema_uid: str
    priority_level_uid: str
    distinguisher: str = ""
    """What tells the schema's flows apart: the user or the namespace (its method)."""

    def headers(self) -> dict[str, str]:
        return {
            PRIORITY_LEVEL_UID_HEADER: self.priority_level_uid,
            FLOW_SCHEMA_UID_HEADER: self.flow_schema_uid,
        }


def _has(values: Any, value: str) -> bool:
    return isinstance(values, list) and ("*" in values or value in values)


def _subject_matches(subject: Obj, user: str, groups: list[str]) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        name = (subject.get("user") or {}).get("name")
        return name in ("*", user)
    if kind == "Group":
        name = (subject.get("group") or {}).get("name")
        return name == "*" or name in groups
    if kind == "ServiceAccount" and user.startswith(_SA_PREFIX):
        sa = subject.get("serviceAccount") or {}
        namespace, _, name = user[len(_SA_PREFIX) :].partition(":")
        return sa.get("namespace") == namespace and sa.get("name") in ("*", name)
    return False


def _resource_matches(rule: Obj, attrs: RequestAttributes) -> bool:
    if not (_has(rule.get("verbs"), attrs.verb) and _has(rule.get("apiGroups"), attrs.api_group)):
        return False
    if not _has(rule.get("resources"), attrs.combined_resource):
        return False
    if not attrs.namespace:
        return bool(rule.get("clusterScope"))
    return _has(rule.get("namespaces"), attrs.namespace)


def _url_matches(patterns: Any, path: str) -> bool:
    for pattern in patterns if isinstance(patterns, list) else ():
        if pattern in ("*", path):
            return True
        if pattern.endswith("/*") and path.startswith(pattern[:-1]):
            return True
    return False


def _rule_matches(rule: Obj, attrs: RequestAttributes) -> bool:
    user = attrs.user
    if not any(
        _subject_matches(s, user.name, list(user.groups))
        for s in rule.get("subjects") or ()
        if isinstance(s, dict)
    ):
        return False
    if attrs.resource_request:
        return any(_resource_matches(r, attrs) for r in rule.get("resourceRules") or ())
    return any(
        _has(r.get("verbs"), attrs.verb) and _url_matches(r.get("nonResourceURLs"), attrs.path)
        for r in rule.get("nonResourceRules") or ()
    )


def in_matching_order(schemas: list[Obj]) -> list[Obj]:
    """kube's ``FlowSchemaSequence``: lowest precedence first, then by name."""
    return sorted(
        schemas,
        key=lambda o: (
            int((o.get("spec") or {}).get("matchingPrecedence") or 0),
            (o.get("metadata") or {}).get("name") or "",
        ),
    )


class Classifier:
    """Classifies requests against the FlowSchemas in the watch cache (sorted again only
    when they or the priority levels change)."""

    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache
        self._seen = (-1, -1)
        self._schemas: list[Obj] = []
        self._levels: dict[str, str] = {}

    def _current(self) -> list[Obj]:
        seen = (self.cache.of(FLOW_SCHEMAS).generation, self.cache.of(PRIORITY_LEVELS).generation)
        if seen != self._seen:
            self._schemas = in_matching_order(self.cache.list(FLOW_SCHEMAS))
            self._levels = {
                pl["metadata"]["name"]: pl["metadata"].get("uid", "")
                for pl in self.cache.list(PRIORITY_LEVELS)
            }
            self._seen = seen
        return self._schemas

    def classify(self, attrs: RequestAttributes) -> Classification | None:
        """The first FlowSchema matching the request (None: none does)."""
        for fs in self._current():
            spec = fs.get("spec") or {}
            if any(_rule_matches(r, attrs) for r in spec.get("rules") or () if isinstance(r, dict)):
                level = (spec.get("priorityLevelConfiguration") or {}).get("name") or ""
                method = (spec.get("distinguisherMethod") or {}).get("type")
                distinguisher = attrs.user.name if method == "ByUser" else ""
                if method == "ByNamespace":
                    distinguisher = attrs.namespace
                return Classification(
                    fs["metadata"]["name"],
                    level,
                    fs["metadata"].get("uid", ""),
                    self._levels.get(level, ""),
                    distinguisher,
                )
        return None
