"""Names and label values with Kubernetes' rules and messages."""

from __future__ import annotations

from skiff.api import names as v
from skiff.api.resources import RESOURCES

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def test_dns1123_subdomain() -> None:
    assert v.is_dns1123_subdomain("example.com") == []
    assert v.is_dns1123_subdomain("a" * 253) == []
    assert v.is_dns1123_subdomain("Bad_Name") == [SUBDOMAIN_MSG]
    assert v.is_dns1123_subdomain("a" * 254) == ["must be no more than 253 characters"]
    assert v.is_dns1123_subdomain("abc\n") == [SUBDOMAIN_MSG]
    assert v.is_dns1123_subdomain("-abc") == [SUBDOMAIN_MSG]


def test_dns1123_label() -> None:
    assert v.is_dns1123_label("my-name") == []
    assert v.is_dns1123_label("a.b") == ["must not contain dots"]
    assert v.is_dns1123_label("a" * 64) == ["must be no more than 63 characters"]
    (msg,) = v.is_dns1123_label("UPPER")
    assert msg.startswith("a lowercase RFC 1123 label must consist of")
    assert "(e.g. 'my-name',  or '123-abc', regex used for validation is" in msg


def test_dns1035_label() -> None:
    assert v.is_dns1035_label("web") == []
    (msg,) = v.is_dns1035_label("1web")
    assert msg == (
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
        "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
        "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    )


def test_qualified_name() -> None:
    for ok in ("app", "app.kubernetes.io/name", "MyName", "my_name", "a"):
        assert v.is_qualified_name(ok) == [], ok
    assert v.is_qualified_name("/name") == ["prefix part must be non-empty"]
    assert v.is_qualified_name("example.com/") == [
        "name part must be non-empty",
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
        "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
        "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    ]
    assert v.is_qualified_name("Example.com/x") == ["prefix part " + SUBDOMAIN_MSG]
    assert v.is_qualified_name("a/b/c")[0].startswith("a qualified name must consist of")
    assert v.is_qualified_name("x" * 64) == ["name part must be no more than 63 characters"]


def test_label_value() -> None:
    assert v.is_valid_label_value("") == []
    assert v.is_valid_label_value("v1.2_3-a") == []
    assert v.is_valid_label_value("x" * 64) == ["must be no more than 63 characters"]
    (msg,) = v.is_valid_label_value("-bad")
    assert msg.startswith("a valid label must be an empty string or consist of")


def test_path_segment_name() -> None:
    assert v.is_valid_path_segment_name("system:controller:foo") == []
    assert v.is_valid_path_segment_name("..") == ["may not be '..'"]
    assert v.is_valid_path_segment_name("a/b%c") == ["may not contain '/'", "may not contain '%'"]


def test_name_rule_for() -> None:
    assert v.name_rule_for("namespaces", "") == "label"
    assert v.name_rule_for("services", "") == "dns1035"
    assert v.name_rule_for("nodes", "") == "subdomain"
    assert v.name_rule_for("pods", "") == "subdomain"
    assert v.name_rule_for("deployments", "apps") == "subdomain"
    assert v.name_rule_for("statefulsets", "apps") == "label"
    assert v.name_rule_for("cronjobs", "batch") == "cronjob"
    for plural in ("roles", "rolebindings", "clusterroles", "clusterrolebindings"):
        assert v.name_rule_for(plural, "rbac.authorization.k8s.io") == "path"
    for r in RESOURCES:
        assert v.name_rule_for(r.plural, r.group) in v.NAME_RULES


def test_validate_name_rules() -> None:
    assert v.validate_name("system:admin", "path") == []
    assert v.validate_name("system:admin", "subdomain") == [SUBDOMAIN_MSG]
    assert v.validate_name("my-svc", "dns1035") == []
    assert v.validate_name("c" * 53, "cronjob") == ["must be no more than 52 characters"]
    # generateName prefixes may end with a dash.
    assert v.validate_name("web-", "subdomain", prefix=True) == []
    assert v.validate_name("web-", "subdomain") == [SUBDOMAIN_MSG]


# --- ObjectMeta ---
