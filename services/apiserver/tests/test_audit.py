"""The audit policy's rule matching (the first rule that matches decides the level)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from skiff.apiserver.audit import AuditPolicyError, load_policy
from skiff.apiserver.authentication.user import UserInfo
from skiff.apiserver.authorization.attributes import RequestAttributes

JANE = UserInfo("jane", groups=("dev", "system:authenticated"))
POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: [system:kube-proxy]
- level: RequestResponse
  userGroups: [dev]
  verbs: [delete]
  namespaces: [prod]
- level: Metadata
  resources: [{group: "", resources: [secrets, "pods/*"]}, {group: apps, resourceNames: [web]}]
- level: Request
  nonResourceURLs: ["/metrics*"]
  omitStages: [ResponseStarted]
"""


def attrs(verb: str, resource: str = "", **kw: str) -> RequestAttributes:
    user = kw.pop("user", None)
    return RequestAttributes(
        UserInfo(user) if user else JANE, verb, bool(resource), resource=resource, **kw
    )


def test_first_matching_rule(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    p = load_policy(tmp_path / "p.yaml")
    assert p.level_for(attrs("get", "pods", user="system:kube-proxy"))[0] == "None"
    assert p.level_for(attrs("delete", "pods", namespace="prod"))[0] == "RequestResponse"
    assert p.level_for(attrs("delete", "pods", namespace="dev"))[0] == "None"
    assert p.level_for(attrs("get", "secrets", namespace="x"))[0] == "Metadata"
    assert p.level_for(attrs("get", "pods", subresource="log"))[0] == "Metadata"
    assert p.level_for(attrs("get", "pods"))[0] == "None"
    web = attrs("patch", "deployments", api_group="apps", name="web")
    assert p.level_for(web)[0] == "Metadata"
    assert p.level_for(attrs("patch", "deployments", api_group="apps", name="api"))[0] == "None"
    level, omit = p.level_for(RequestAttributes(JANE, "get", False, path="/metrics/slis"))
    assert level == "Request" and omit == ("RequestReceived", "ResponseStarted")


def test_bad_policies(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Loud}]\n")
    with pytest.raises(
        AuditPolicyError, match=re.escape('rules[0].level: Unsupported value: "Loud"')
    ):
        load_policy(bad)
    bad.write_text("kind: Other\n")
    with pytest.raises(AuditPolicyError, match=re.escape("not an audit.k8s.io/v1 Policy")):
        load_policy(bad)
