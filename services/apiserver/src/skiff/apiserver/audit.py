"""The audit log (``--audit-policy-file``, ``--audit-log-path``): kube-apiserver's audit
Policy (audit.k8s.io/v1) decides, by the first rule that matches a request, at which level
it is recorded — ``None``, ``Metadata`` (who did what to which object, and the answer's
code), ``Request`` (and the request's body) or ``RequestResponse`` (and the answer's) — and
events are written as JSON lines of audit.k8s.io/v1 ``Event``, at the stages
``RequestReceived`` and ``ResponseComplete`` (less the policy's ``omitStages``)."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from skiff.api.timestamps import micro_time

from .authorization.attributes import RequestAttributes

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")


class AuditPolicyError(ValueError):
    """An audit Policy file that cannot be used."""


@dataclass(frozen=True, slots=True)
class Rule:
    level: str
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = ()
    """(group, resources, resourceNames) of each GroupResources entry."""
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: tuple[str, ...] = ()

    def matches(self, a: RequestAttributes) -> bool:
        if self.users and a.user.name not in self.users:
            return False
        if self.groups and not set(self.groups) & set(a.user.groups):
            return False
        if self.verbs and a.verb not in self.verbs:
            return False
        if a.resource_request:
            if self.non_resource_urls and not self.resources:
                return False
            if self.namespaces and a.namespace not in self.namespaces:
                return False
            if self.resources and not any(self._resource(g, a) for g in self.resources):
                return False
            return True
        if self.resources or self.namespaces:
            return False
        return not self.non_resource_urls or any(
            u == a.path or (u.endswith("*") and a.path.startswith(u[:-1]))
            for u in self.non_resource_urls
        )

    @staticmethod
    def _resource(
        entry: tuple[str, tuple[str, ...], tuple[str, ...]], a: RequestAttributes
    ) -> bool:
        group, resources, names = entry
        if group != a.api_group:
            return False
        if resources:
            combined = a.combined_resource
            if not any(
                r in (combined, "*")
                or (r == f"{a.resource}/*" and a.subresource)
                or (r == f"*/{a.subresource}" and a.subresource)
                for r in resources
            ):
                return False
        return not names or a.name in names


@dataclass(slots=True)
class Policy:
    rules: list[Rule] = field(default_factory=list)
    omit_stages: tuple[str, ...] = ()

    def level_for(self, a: RequestAttributes) -> tuple[str, tuple[str, ...]]:
        """(level, stages to leave out) of the first matching rule; ``None`` otherwise."""
        for rule in self.rules:
            if rule.matches(a):
                return rule.level, (*self.omit_stages, *rule.omit_stages)
        return "None", self.omit_stages


def load_policy(path: str | Path) -> Policy:
    doc = yaml.safe_load(Path(path).read_text()) or {}
    if doc.get("kind") != "Policy" or doc.get("apiVersion") != "audit.k8s.io/v1":
        raise AuditPolicyError(f"{path}: not an audit.k8s.io/v1 Policy")
    rules = []
    for i, r in enumerate(doc.get("rules") or []):
        level = r.get("level")
        if level not in LEVELS:
            raise AuditPolicyError(
                f'rules[{i}].level: Unsupported value: "{level}": supported values: '
                + ", ".join(f'"{lv}"' for lv in LEVELS)
            )
        for stage in r.get("omitStages") or []:
            if stage not in STAGES:
                raise AuditPolicyError(f'rules[{i}].omitStages: Unsupported value: "{stage}"')
        rules.append(
            Rule(
                level,
                tuple(r.get("users") or ()),
                tuple(r.get("userGroups") or ()),
                tuple(r.get("verbs") or ()),
                tuple(
                    (
                        str(g.get("group") or ""),
                        tuple(g.get("resources") or ()),
                        tuple(g.get("resourceNames") or ()),
                    )
                    for g in r.get("resources") or []
                ),
                tuple(r.get("namespaces") or ()),
                tuple(r.get("nonResourceURLs") or ()),
                tuple(r.get("omitStages") or ()),
            )
        )
    return Policy(rules, tuple(doc.get("omitStages") or ()))


class AuditLog:
    """Writes the events of the requests the policy records (one JSON line each)."""

    def __init__(self, policy: Policy, path: str | Path) -> None:
        self.policy = policy
        self._lock = threading.Lock()
        self._file: TextIO = open(path, "a", buffering=1)

    def begin(self, a: RequestAttributes, uri: str, source: str, agent: str) -> AuditEvent | None:
        """The request's event, written at ``RequestReceived`` (None: not recorded)."""
        level, omit = self.policy.level_for(a)
        if level == "None":
            return None
        event = AuditEvent(self, level, omit, a, uri, source, agent)
        event.emit("RequestReceived")
        return event

    def write(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")

    def close(self) -> None:
        self._file.close()


class AuditEvent:
    """One request's audit record, emitted at each stage it reaches."""

    def __init__(
        self,
        log: AuditLog,
        level: str,
        omit: tuple[str, ...],
        a: RequestAttributes,
        uri: str,
        source: str,
        agent: str,
    ) -> None:
        self.log = log
        self.level = level
        self.omit = omit
        self.received = micro_time()
        self.base: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": level,
            "auditID": str(uuid.uuid4()),
            "requestURI": uri,
            "verb": a.verb,
            "user": a.user.to_api(),
            "sourceIPs": [source] if source else [],
            "userAgent": agent,
        }
        if a.resource_request:
            ref: dict[str, Any] = {"resource": a.resource}
            for k, v in (
                ("namespace", a.namespace),
                ("name", a.name),
                ("apiGroup", a.api_group),
                ("apiVersion", a.api_version),
                ("subresource", a.subresource),
            ):
                if v:
                    ref[k] = v
            self.base["objectRef"] = ref
        self.annotations: dict[str, str] = {}

    def emit(self, stage: str, extra: dict[str, Any] | None = None) -> None:
        if stage in self.omit:
            return
        event = dict(self.base, stage=stage, requestReceivedTimestamp=self.received)
        event["stageTimestamp"] = micro_time()
        if extra:
            event.update(extra)
        if self.annotations:
            event["annotations"] = dict(self.annotations)
        self.log.write(event)

    def complete(self, code: int, request: Any, response_body: bytes | None) -> None:
        """Write ``ResponseComplete``: the answer's code and, by level, the request's
        decoded body and the answer's."""
        status: dict[str, Any] = {"metadata": {}, "code": code}
        extra: dict[str, Any] = {"responseStatus": status}
        response = _json(response_body)
        if code >= 400 and isinstance(response, dict):
            for k in ("status", "message", "reason"):
                if response.get(k):
                    status[k] = response[k]
        if self.level in ("Request", "RequestResponse") and request is not None:
            extra["requestObject"] = request
        if self.level == "RequestResponse" and response is not None:
            extra["responseObject"] = response
        self.emit("ResponseComplete", extra)


def _json(body: bytes | None) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None
