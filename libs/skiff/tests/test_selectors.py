"""Label and field selectors: grammar, matching and Kubernetes error messages."""

from __future__ import annotations

import pytest

from skiff.api.errors import ApiError, Reason
from skiff.api.fields import FieldSelector, field_value, parse_field_selector
from skiff.api.selectors import (
    DOES_NOT_EXIST,
    EQUALS,
    EXISTS,
    LabelSelector,
    Requirement,
    parse_label_selector,
    selector_from_dict,
    selector_from_map,
)

# --- label selector parsing ---


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("a=b", "a=b"),
        ("a==b", "a==b"),
        ("a!=b", "a!=b"),
        ("a in (x,y)", "a in (x,y)"),
        ("a notin (y, x)", "a notin (x,y)"),
        ("a", "a"),
        ("!a", "!a"),
        ("a>1", "a>1"),
        ("a<3", "a<3"),
        ("  b = 2 ,  a in ( z , y )  ", "a in (y,z),b=2"),
        ("example.com/tier=web", "example.com/tier=web"),
        ("a=", "a="),
        ("a in ()", "a in ()"),
        ("a in (,x)", "a in (,x)"),
        ("in=notin", "in=notin"),
        ("x,!y,z==1", "x,!y,z==1"),
    ],
)
def test_parse_canonical_string(text: str, canonical: str) -> None:
    sel = parse_label_selector(text)
    assert sel.to_string() == canonical
    assert str(sel) == canonical
    # The canonical form parses back to the same selector.
    assert parse_label_selector(canonical) == sel


def test_parse_requirements() -> None:
    sel = parse_label_selector("env in (prod,dev),!legacy,app")
    assert sel.requirements == (
        Requirement("app", EXISTS, ()),
        Requirement("env", "in", ("dev", "prod")),
        Requirement("legacy", DOES_NOT_EXIST, ()),
    )


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_selector_matches_everything(text: str | None) -> None:
    sel = parse_label_selector(text)
    assert sel.empty
    assert sel.matches({}) and sel.matches(None) and sel.matches({"a": "b"})
    assert sel.to_string() == ""


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("a=b", {"a": "b"}, True),
        ("a=b", {"a": "c"}, False),
        ("a=b", {}, False),
        ("a==b", {"a": "b", "c": "d"}, True),
        ("a!=b", {"a": "c"}, True),
        ("a!=b", {}, True),  # != is satisfied by a missing label
        ("a!=b", {"a": "b"}, False),
        ("a=", {"a": ""}, True),
        ("a=", {}, False),
        ("a in (x,y)", {"a": "y"}, True),
        ("a in (x,y)", {"a": "z"}, False),
        ("a in (x,y)", {}, False),
        ("a notin (x,y)", {"a": "z"}, True),
        ("a notin (x,y)", {}, True),
        ("a notin (x,y)", {"a": "x"}, False),
        ("a", {"a": ""}, True),
        ("a", {"b": "a"}, False),
        ("!a", {"b": "1"}, True),
        ("!a", {"a": ""}, False),
        ("a>5", {"a": "6"}, True),
        ("a>5", {"a": "5"}, False),
        ("a<5", {"a": "-1"}, True),
        ("a<5", {"a": "+4"}, True),
        ("a<5", {"a": "x"}, False),  # a non-integer label never satisfies gt/lt
        ("a<5", {}, False),
        ("a=b,c in (d),!e", {"a": "b", "c": "d"}, True),
        ("a=b,c in (d),!e", {"a": "b", "c": "d", "e": "f"}, False),
    ],
)
def test_label_matching(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


def test_matches_none_labels() -> None:
    assert parse_label_selector("!a").matches(None)
    assert not parse_label_selector("a").matches(None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a=b,", "found '', expected: identifier after ','"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
        ("a in b", "unable to parse requirement: found 'b' expected: '('"),
        ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a=(", "unable to parse requirement: found '(', expected: identifier"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        (
            "a>x",
            'unable to parse requirement: values[0]: Invalid value: "x": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        ("-a=b", 'unable to parse requirement: <nil>: Invalid value: "-a": name part must'),
        ("A/b=c", 'unable to parse requirement: <nil>: Invalid value: "A/b": prefix part a '),
        ("/b=c", "prefix part must be non-empty"),
        ("a/b/c=d", "a qualified name must consist of alphanumeric characters"),
        ("a=-x", 'unable to parse requirement: values[0][a]: Invalid value: "-x": a valid label'),
        ("a=" + "x" * 64, "must be no more than 63 characters"),
        ("x" * 64, "name part must be no more than 63 characters"),
        # Gt/Lt values are label values too, so negative numbers are rejected (as in Go).
        ("a<-3", 'values[0][a]: Invalid value: "-3"'),
    ],
)
def test_label_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_label_selector(text)
    assert info.value.code == 400
    assert info.value.reason == Reason.BAD_REQUEST
    assert message in info.value.message


def test_value_error_message_is_kubernetes_wording() -> None:
    with pytest.raises(ApiError) as info:
        parse_label_selector("a=b!")
    assert info.value.message == "found '!', expected: ',' or 'end of string'"
    with pytest.raises(ApiError) as info:
        parse_label_selector("a=b_")
    assert info.value.message == (
        'unable to parse requirement: values[0][a]: Invalid value: "b_": a valid label must be an'
        " empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and"
        " end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex"
        " used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    )


def test_requires_exact_match() -> None:
    sel = parse_label_selector("app=web,tier in (a),env in (x,y),k!=v")
    assert sel.requires_exact_match("app") == "web"
    assert sel.requires_exact_match("tier") == "a"
    assert sel.requires_exact_match("env") is None
    assert sel.requires_exact_match("k") is None
    assert sel.requires_exact_match("missing") is None


# --- structured selectors ---


def test_selector_from_dict_nil_and_empty() -> None:
    nothing = selector_from_dict(None)
    assert not nothing.matches({}) and not nothing.matches({"a": "b"})
    assert not nothing.empty and nothing.matches_nothing
    everything = selector_from_dict({})
    assert everything.empty and everything.matches({"a": "b"}) and everything.matches(None)
    assert selector_from_dict({"matchLabels": {}, "matchExpressions": []}).empty


def test_selector_from_dict() -> None:
    sel = selector_from_dict(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "tier", "operator": "NotIn", "values": ["db"]},
                {"key": "team", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }
    )
    assert sel.to_string() == "app=web,env in (prod,staging),!legacy,team,tier notin (db)"
    assert sel.matches({"app": "web", "env": "prod", "team": "x"})
    assert not sel.matches({"app": "web", "env": "prod", "team": "x", "legacy": "1"})
    assert not sel.matches({"app": "web", "env": "dev", "team": "x"})
    assert not sel.matches({"app": "web", "env": "prod", "team": "x", "tier": "db"})
    assert sel == parse_label_selector(sel.to_string().replace("app=web", "app=web"))


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ({"matchExpressions": [{"key": "a", "operator": "Gt"}]}, '"Gt" is not a valid label'),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            "values set must be empty for exists and does not exist",
        ),
        ({"matchLabels": {"a b": "c"}}, 'key: Invalid value: "a b"'),
        ({"matchLabels": {"a": "c d"}}, 'values[0][a]: Invalid value: "c d"'),
    ],
)
def test_selector_from_dict_errors(selector: dict, message: str) -> None:
    with pytest.raises(ApiError) as info:
        selector_from_dict(selector)
    assert info.value.code == 400
    assert message in info.value.message


def test_selector_from_map() -> None:
    sel = selector_from_map({"b": "2", "a": "1"})
    assert sel.to_string() == "a=1,b=2"
    assert sel.requirements[0] == Requirement("a", EQUALS, ("1",))
    assert sel.matches({"a": "1", "b": "2", "c": "3"})
    assert not sel.matches({"a": "1"})
    assert selector_from_map(None).empty and selector_from_map({}).matches({"x": "y"})


def test_everything_and_nothing() -> None:
    assert LabelSelector.everything().matches(None)
    assert not LabelSelector.nothing().matches({})
    assert repr(LabelSelector.nothing()) == "LabelSelector.nothing()"
    assert len({parse_label_selector("a=b"), parse_label_selector(" a = b ")}) == 1


# --- field selectors ---


def test_parse_field_selector() -> None:
    sel = parse_field_selector("status.phase==Running,metadata.name=web,spec.nodeName!=")
    # Terms are sorted; "==" normalises to "=".
    assert sel.requirements == [
        ("metadata.name", "=", "web"),
        ("spec.nodeName", "!=", ""),
        ("status.phase", "=", "Running"),
    ]
    assert sel.fields() == {"metadata.name", "spec.nodeName", "status.phase"}
    assert sel.single_value("metadata.name") == "web"
    assert sel.single_value("spec.nodeName") is None
    assert sel.single_value("metadata.namespace") is None
    assert sel.to_string() == "metadata.name=web,spec.nodeName!=,status.phase=Running"


def test_field_selector_escaping() -> None:
    sel = parse_field_selector(r"metadata.name=a\,b\=c\\d,spec.x=y")
    assert sel.requirements == [("metadata.name", "=", "a,b=c\\d"), ("spec.x", "=", "y")]
    assert sel.to_string() == r"metadata.name=a\,b\=c\\d,spec.x=y"
    assert parse_field_selector(sel.to_string()) == sel
    assert sel.matches({"metadata": {"name": "a,b=c\\d"}, "spec": {"x": "y"}})


@pytest.mark.parametrize("text", ["", None, ",", ",,"])
def test_empty_field_selector(text: str | None) -> None:
    sel = parse_field_selector(text)
    assert sel.empty and sel.matches({}) and sel.fields() == set()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
        ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
        ("a=b=c", "invalid field selector: unescaped character in value: ="),
        ("a==b=c", "invalid field selector: unescaped character in value: ="),
    ],
)
def test_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_field_selector(text)
    assert info.value.code == 400
    assert info.value.message == message


def test_field_selector_no_whitespace_trimming() -> None:
    # Like Kubernetes: the server then rejects "metadata.name " as an unsupported field.
    sel = parse_field_selector("metadata.name = x")
    assert sel.requirements == [("metadata.name ", "=", " x")]


POD = {
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "node-a", "hostNetwork": True, "restartPolicy": "Always"},
    "status": {"phase": "Running", "podIP": "10.0.0.1"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metadata.name=web-1", True),
        ("metadata.name!=web-1", False),
        ("metadata.name=web-1,metadata.namespace=default", True),
        ("metadata.name=web-1,metadata.namespace=other", False),
        ("spec.nodeName=node-a,status.phase!=Failed", True),
        ("spec.nodeName=", False),
        ("spec.schedulerName=", True),  # a missing field reads as ""
        ("spec.schedulerName!=", False),
        ("spec.hostNetwork=true", True),
        ("spec.hostNetwork!=false", True),
        ("status.nominatedNodeName=", True),
        ("metadata.missing.deep=", True),
        ("spec.nodeName.deeper=", True),  # path through a string
    ],
)
def test_field_matching(text: str, expected: bool) -> None:
    assert parse_field_selector(text).matches(POD) is expected


def test_field_values_of_other_types() -> None:
    assert parse_field_selector("spec.hostNetwork=false").matches({"spec": {}})
    assert parse_field_selector("spec.unschedulable=false").matches({"spec": {}})
    assert parse_field_selector("status.replicas=3").matches({"status": {"replicas": 3}})
    assert parse_field_selector("status.successful=0").matches({"status": {}})
    assert field_value({"spec": {"x": 1.0}}, "spec.x") == "1"
    assert field_value({"spec": {"x": {"y": 1}}}, "spec.x") == ""


def test_event_fields() -> None:
    event = {
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "Pod", "name": "web-1"},
        "source": {"component": "kubelet", "host": "node-a"},
        "reason": "Started",
        "type": "Normal",
    }
    sel = parse_field_selector("involvedObject.kind=Pod,involvedObject.name=web-1,type=Normal")
    assert sel.matches(event)
    assert parse_field_selector("source=kubelet").matches(event)
    assert parse_field_selector("source=ctrl").matches({"reportingComponent": "ctrl"})


def test_field_selector_constructed_directly() -> None:
    sel = FieldSelector([("status.phase", "=", "Pending")])
    assert sel.matches({"status": {"phase": "Pending"}})
    assert not sel.matches({})
    assert repr(sel) == "FieldSelector('status.phase=Pending')"
