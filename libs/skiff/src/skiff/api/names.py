"""Names and label values with Kubernetes' rules and messages
(``k8s.io/apimachinery/pkg/util/validation``, Kubernetes 1.32): DNS-1123 labels and
subdomains, DNS-1035 labels, qualified names, label values, and the name rule each
resource's objects follow.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_WILDCARD_SUBDOMAIN_FMT = "\\*\\." + _DNS1123_SUBDOMAIN_FMT
_WILDCARD_SUBDOMAIN_MSG = (
    "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
    "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
    "alphanumeric character"
)
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character"
)
_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_FMT = "(" + _QNAME_FMT + ")?"
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character"
)

# Python's re is used with fullmatch: "$" would also match before a trailing newline.
_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_WILDCARD_SUBDOMAIN_RE = re.compile(_WILDCARD_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)
_QNAME_RE = re.compile(_QNAME_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    # Exactly Go's validation.RegexError, including its "',  or '" spacing.
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def byte_length(value: str) -> int:
    # Go measures strings in bytes.
    return len(value) if value.isascii() else len(value.encode())


def is_dns1123_label(value: str) -> list[str]:
    """Errors for a DNS-1123 label (``my-name``; at most 63 characters)."""
    errs = []
    if byte_length(value) > 63:
        errs.append(_max_len_error(63))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(value):
            errs.append("must not contain dots")
        else:
            errs.append(_regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    """Errors for a DNS-1123 subdomain (``example.com``; at most 253 characters)."""
    errs = []
    if byte_length(value) > 253:
        errs.append(_max_len_error(253))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_wildcard_dns1123_subdomain(value: str) -> list[str]:
    """Errors for a wildcard DNS-1123 subdomain (``*.example.com``)."""
    errs = []
    if byte_length(value) > 253:
        errs.append(_max_len_error(253))
    if not _WILDCARD_SUBDOMAIN_RE.fullmatch(value):
        errs.append(_regex_error(_WILDCARD_SUBDOMAIN_MSG, _WILDCARD_SUBDOMAIN_FMT, "*.example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    """Errors for a DNS-1035 label (starts with a letter; at most 63 characters)."""
    errs = []
    if byte_length(value) > 63:
        errs.append(_max_len_error(63))
    if not _DNS1035_LABEL_RE.fullmatch(value):
        errs.append(_regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """Errors for a qualified name: a label or annotation key (``example.com/MyName``)."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name "
            + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif byte_length(name) > 63:
        errs.append("name part " + _max_len_error(63))
    if not _QNAME_RE.fullmatch(name):
        errs.append(
            "name part " + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def is_valid_label_value(value: str) -> list[str]:
    """Errors for a label value (may be empty; at most 63 characters)."""
    errs = []
    if byte_length(value) > 63:
        errs.append(_max_len_error(63))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(
            _regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
        )
    return errs


def is_valid_port_name(value: str) -> list[str]:
    """Errors for a port name (an IANA_SVC_NAME: at most 15 characters, lower-case
    letters, digits and single inner hyphens, at least one letter)."""
    errs = []
    if len(value) > 15:
        errs.append("must be no more than 15 characters")
    if not re.fullmatch(r"[-a-z0-9]+", value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


_CONFIG_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"


def is_config_map_key(value: str) -> list[str]:
    """Errors for a ConfigMap or Secret key (``IsConfigMapKey``)."""
    errs = []
    if byte_length(value) > 253:
        errs.append(_max_len_error(253))
    if not _CONFIG_KEY_RE.fullmatch(value):
        errs.append(
            _regex_error(_CONFIG_KEY_MSG, "[-._a-zA-Z0-9]+", "key.name", "KEY_NAME", "key-name")
        )
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def is_valid_path_segment_name(value: str) -> list[str]:
    """Errors for a name used as one URL path segment (RBAC objects, events)."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def _mask_trailing_dash(name: str) -> str:
    # Mirrors apimachinery's maskTrailingDash, which drops two characters (sic).
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def _name_is(check: Callable[[str], list[str]]) -> Callable[[str, bool], list[str]]:
    def validate(name: str, prefix: bool) -> list[str]:
        return check(_mask_trailing_dash(name) if prefix else name)

    return validate


def _path_segment(name: str, prefix: bool) -> list[str]:
    if prefix:
        return [f"may not contain '{c}'" for c in ("/", "%") if c in name]
    return is_valid_path_segment_name(name)


def _cronjob_name(name: str, prefix: bool) -> list[str]:
    errs = _name_is(is_dns1123_subdomain)(name, prefix)
    # The controller appends an 11-character suffix and job names must fit a label.
    if not prefix and byte_length(name) > 52:
        errs.append("must be no more than 52 characters")
    return errs


NAME_RULES: dict[str, Callable[[str, bool], list[str]]] = {
    "subdomain": _name_is(is_dns1123_subdomain),
    "label": _name_is(is_dns1123_label),
    "dns1035": _name_is(is_dns1035_label),
    "path": _path_segment,
    "cronjob": _cronjob_name,
}
"""Name rule → ``fn(name, prefix) -> errors`` (``prefix`` for generateName)."""

_NAME_RULE_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("", "namespaces"): "label",  # ValidateNamespaceName
    ("", "services"): "dns1035",  # ValidateServiceName
    ("", "events"): "path",  # core/v1 events skip ObjectMeta validation entirely
    ("apiregistration.k8s.io", "apiservices"): "path",  # name checked against the spec
    ("apps", "statefulsets"): "label",  # ValidateStatefulSetName
    ("batch", "cronjobs"): "cronjob",  # ValidateCronJobCreate: <= 52 characters
    ("policy", "poddisruptionbudgets"): "path",  # its validation skips ObjectMeta's name rule
    ("rbac.authorization.k8s.io", "roles"): "path",  # ValidateRBACName
    ("rbac.authorization.k8s.io", "rolebindings"): "path",
    ("rbac.authorization.k8s.io", "clusterroles"): "path",
    ("rbac.authorization.k8s.io", "clusterrolebindings"): "path",
}


def name_rule_for(resource_plural: str, group: str) -> str:
    """The :data:`NAME_RULES` key Kubernetes applies to names of ``resource_plural.group``.

    Most resources use ``"subdomain"``; namespaces and statefulsets ``"label"``,
    services ``"dns1035"``, RBAC objects and core events ``"path"``, cronjobs
    ``"cronjob"`` (a subdomain of at most 52 characters).
    """
    return _NAME_RULE_EXCEPTIONS.get((group, resource_plural), "subdomain")


def validate_name(name: str, rule: str = "subdomain", prefix: bool = False) -> list[str]:
    """Error strings for ``name`` under a :data:`NAME_RULES` rule (``prefix`` for generateName)."""
    return NAME_RULES[rule](name, prefix)


def is_native(name: str) -> bool:
    """A resource name with no domain, or one of ``kubernetes.io``."""
    return "/" not in name or "kubernetes.io/" in name


def is_extended(name: str) -> bool:
    """``IsExtendedResourceName``: a domain-prefixed resource name outside
    ``kubernetes.io`` (what device plugins and nodes' extended resources may be named)."""
    if is_native(name) or name.startswith("requests."):
        return False
    return not is_qualified_name(f"requests.{name}")
