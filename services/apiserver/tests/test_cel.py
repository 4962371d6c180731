"""``x-kubernetes-validations`` (CEL) rules against Kubernetes 1.32's behaviour and words: CRD
validation of the rules themselves, and their evaluation on custom resources."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skiff.apiserver.apiextensions import cel
from skiff.apiserver.apiextensions import validation as v
from skiff.apiserver.apiextensions.crschema import CompiledSchema

Errors = list[tuple[str, str]]

INT, STR, NUM = {"type": "integer"}, {"type": "string"}, {"type": "number"}
SPEC_FIELDS: dict[str, Any] = {
    "replicas": INT,
    "minReplicas": INT,
    "ratio": NUM,
    "name": STR,
    "port": {"x-kubernetes-int-or-string": True},
    "memory": STR,
    "when": {"type": "string", "format": "date-time"},
    "timeout": {"type": "string", "format": "duration"},
    "tags": {"type": "array", "items": STR},
    "labels": {"type": "object", "additionalProperties": STR},
    "ports": {
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "items": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": STR, "port": INT},
        },
    },
    "steps": {
        "type": "array",
        "items": {"type": "object", "properties": {"name": STR, "after": STR}},
    },
    "dash-name": STR,
    "namespace": STR,
    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "template": {
        "type": "object",
        "x-kubernetes-embedded-resource": True,
        "x-kubernetes-preserve-unknown-fields": True,
    },
}


def schema(rules: list[dict[str, Any]] | None = None, at: str = "spec") -> dict[str, Any]:
    """A resource schema with ``rules`` on ``spec`` (``at="root"``: on the resource, or the
    name of a spec field: on that field; ``ports.items``: on the list-map's items)."""
    spec: dict[str, Any] = {"type": "object", "properties": copy.deepcopy(SPEC_FIELDS)}
    root = {"type": "object", "properties": {"spec": spec}}
    node = {"root": root, "spec": spec}.get(at)
    if node is None:
        node = spec["properties"]
        for part in at.split("."):
            node = node[part]
    if rules:
        node["x-kubernetes-validations"] = rules
    return root


def cr(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": spec,
    }


def errors(s: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None = None) -> Errors:
    compiled = CompiledSchema(s)
    causes = compiled.validate(obj) if old is None else compiled.validate_update(obj, old)
    return [(c.field, c.message) for c in causes]


def rule(text: str, **extra: Any) -> dict[str, Any]:
    return {"rule": text, **extra}


# --- evaluation ---

FAILED = 'Invalid value: "object": failed rule: '

EVALUATION = [
    pytest.param(
        [rule("self.minReplicas <= self.replicas")],
        "spec",
        cr(replicas=1, minReplicas=2),
        [("spec", FAILED + "self.minReplicas <= self.replicas")],
        id="spec-rule",
    ),
    pytest.param(
        [rule("self.minReplicas <= self.replicas")],
        "spec",
        cr(replicas=3, minReplicas=2),
        [],
        id="spec-rule-holds",
    ),
    pytest.param(
        [rule("self.spec.replicas < 5", message="  too many  ")],
        "root",
        cr(replicas=7),
        [("<nil>", 'Invalid value: "object": too many')],
        id="root-rule-message",
    ),
    pytest.param(
        [
            rule(
                "self.metadata.name == 'w' && self.kind == 'Widget' && "
                "self.apiVersion == 'example.com/v1'"
            )
        ],
        "root",
        cr(),
        [],
        id="root-type-and-object-meta",
    ),
    pytest.param(
        [rule("self.size() <= 3")],
        "name",
        cr(name="long"),
        [("spec.name", 'Invalid value: "string": failed rule: self.size() <= 3')],
        id="string-node",
    ),
    pytest.param(
        [rule("self.startsWith('t-')")],
        "tags.items",
        cr(tags=["t-a", "b", "t-c", "d"]),
        [
            ("spec.tags[1]", "Invalid value: \"string\": failed rule: self.startsWith('t-')"),
            ("spec.tags[3]", "Invalid value: \"string\": failed rule: self.startsWith('t-')"),
        ],
        id="list-items",
    ),
    pytest.param(
        [rule("self.port > 0", message="port must be positive")],
        "ports.items",
        cr(ports=[{"name": "a", "port": 1}, {"name": "b", "port": 0}]),
        [("spec.ports[1]", 'Invalid value: "object": port must be positive')],
        id="map-list-items",
    ),
    pytest.param(
        [rule("self != ''")],
        "labels.additionalProperties",
        cr(labels={"a": "x", "b.c/d": ""}),
        [("spec.labels[b.c/d]", "Invalid value: \"string\": failed rule: self != ''")],
        id="map-values",
    ),
    pytest.param(
        [rule("self.all(k, k.size() < 3)", message="keys too long")],
        "labels",
        cr(labels={"abc": "x"}),
        [("spec.labels", 'Invalid value: "object": keys too long')],
        id="map-keys",
    ),
    pytest.param(
        [rule("self.replicas < 5", fieldPath=".replicas")],
        "spec",
        cr(replicas=9),
        [("spec.replicas", FAILED + "self.replicas < 5")],
        id="field-path",
    ),
    pytest.param(
        [rule("self.labels.x == 'y'", fieldPath=".labels['x']")],
        "spec",
        cr(labels={"x": "n"}),
        [("spec.labels[x]", FAILED + "self.labels.x == 'y'")],
        id="field-path-map-key",
    ),
    pytest.param(
        [rule("self.replicas < 5", reason="FieldValueForbidden", message="no")],
        "spec",
        cr(replicas=9),
        [("spec", "Forbidden: no")],
        id="reason-forbidden",
    ),
    pytest.param(
        [
            rule(
                "has(self.name)",
                reason="FieldValueRequired",
                fieldPath=".name",
                message="name is required",
            )
        ],
        "spec",
        cr(),
        [("spec.name", "Required value: name is required")],
        id="reason-required",
    ),
    pytest.param(
        [rule("self.tags.size() == 0", reason="FieldValueDuplicate")],
        "spec",
        cr(tags=["a"]),
        [("spec", 'Duplicate value: "object"')],
        id="reason-duplicate",
    ),
    pytest.param(
        [
            rule(
                "self.replicas < 5",
                message="fallback",
                messageExpression="'replicas is ' + string(self.replicas)",
            )
        ],
        "spec",
        cr(replicas=9),
        [("spec", 'Invalid value: "object": replicas is 9')],
        id="message-expression",
    ),
    pytest.param(
        [rule("self.replicas < 5", message="fallback", messageExpression="self.name")],
        "spec",
        cr(replicas=9),
        [("spec", 'Invalid value: "object": fallback')],
        id="message-expression-error-falls-back",
    ),
    pytest.param(
        [rule("self.replicas < 5", messageExpression="'  '")],
        "spec",
        cr(replicas=9),
        [("spec", FAILED + "self.replicas < 5")],
        id="message-expression-empty-falls-back",
    ),
    pytest.param(
        [rule("self.minReplicas <= self.replicas")],
        "spec",
        cr(replicas=1),
        [
            (
                "spec",
                'Invalid value: "object": no such key: minReplicas evaluating rule: '
                "self.minReplicas <= self.replicas",
            )
        ],
        id="no-such-key",
    ),
    pytest.param(
        [rule("self.replicas / self.minReplicas > 1", message="ratio")],
        "spec",
        cr(replicas=1, minReplicas=0),
        [("spec", 'Invalid value: "object": division by zero evaluating rule: ratio')],
        id="division-by-zero",
    ),
    pytest.param(
        [rule("self > 1")],
        "port",
        cr(port="http"),
        [
            (
                "spec.port",
                "Invalid value: \"\": 'no such overload': call arguments did not match a "
                "supported operator, function or macro signature for rule: self > 1",
            )
        ],
        id="int-or-string-no-such-overload",
    ),
    pytest.param(
        [rule("type(self) == string ? self.matches('^[a-z]+$') : self > 0")],
        "port",
        cr(port=8080),
        [],
        id="int-or-string-typed",
    ),
    pytest.param(
        [rule("self.tags[3] == 'x'")],
        "spec",
        cr(tags=["a"]),
        [
            (
                "spec",
                'Invalid value: "object": index out of bounds: 3 evaluating rule: '
                "self.tags[3] == 'x'",
            )
        ],
        id="index-out-of-bounds",
    ),
    pytest.param(
        [rule("self.ratio > 1")],
        "spec",
        cr(ratio=2),
        [],
        id="number-as-double",
    ),
    pytest.param(
        [rule("self.when < timestamp('2025-01-01T00:00:00Z') && self.timeout <= duration('1h')")],
        "spec",
        cr(when="2024-05-01T10:00:00Z", timeout="30m"),
        [],
        id="date-time-and-duration",
    ),
    pytest.param(
        [rule("self.dash__dash__name == 'x' && self.__namespace__ == 'ns'")],
        "spec",
        cr(**{"dash-name": "x", "namespace": "ns"}),
        [],
        id="escaped-names",
    ),
    pytest.param(
        [rule("self.kind == 'Pod' && self.metadata.name == 'p'")],
        "template",
        cr(template={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}),
        [],
        id="embedded-resource",
    ),
    pytest.param(
        [
            rule(
                "self.steps.all(s, !has(s.after) || self.steps.exists(o, o.name == s.after))",
                message="unknown step",
            )
        ],
        "spec",
        cr(steps=[{"name": "a"}, {"name": "b", "after": "a"}, {"name": "c", "after": "z"}]),
        [("spec", 'Invalid value: "object": unknown step')],
        id="nested-comprehensions",
    ),
]


@pytest.mark.parametrize(("rules", "at", "obj", "want"), EVALUATION)
def test_evaluation(
    rules: list[dict[str, Any]], at: str, obj: dict[str, Any], want: Errors
) -> None:
    assert errors(schema(rules, at), obj) == want


LIBRARY = [
    # Kubernetes' quantity library
    "quantity(self.memory).isGreaterThan(quantity('1Gi'))",
    "quantity(self.memory).compareTo(quantity('2Gi')) == 0",
    "quantity(self.memory) == quantity('2048Mi')",
    "quantity(self.memory).add(quantity('1Gi')).isLessThan(quantity('4Gi'))",
    "quantity(self.memory).sub(1).asApproximateFloat() < 2147483648.0",
    "quantity('1.5').isInteger() == false && quantity('3k').asInteger() == 3000",
    "sign(quantity('-1')) == -1 && isQuantity('10m') && !isQuantity('10x')",
    # URLs, regex, lists
    "url('https://example.com:8443/a%20b?x=1&x=2').getHostname() == 'example.com'",
    "url('https://example.com:8443/p').getPort() == '8443' && isURL('/relative')",
    "url('https://h/p?x=1&x=2').getQuery()['x'] == ['1', '2'] && !isURL('no scheme')",
    "'abc123def'.find('[0-9]+') == '123' && 'a1b2'.findAll('[0-9]') == ['1', '2']",
    "[1, 2, 3].isSorted() && [3, 1].sum() == 4 && [3, 1].min() == 1 && [3, 1].max() == 3",
    "['a', 'b', 'a'].indexOf('a') == 0 && ['a', 'b', 'a'].lastIndexOf('a') == 2",
    "[1.5, 2.5].sum() == 4.0 && [duration('1s'), duration('2s')].sum() == duration('3s')",
    # cel-go's strings extension (version 2) and sets
    "self.name.lowerAscii() == 'mixed' && self.name.upperAscii() == 'MIXED'",
    "'a,b,c'.split(',') == ['a', 'b', 'c'] && ['a', 'b'].join('-') == 'a-b'",
    "' x '.trim() == 'x' && 'hello'.substring(1, 3) == 'el' && 'hello'.charAt(1) == 'e'",
    "'hello'.indexOf('l') == 2 && 'hello'.lastIndexOf('l') == 3",
    "'aaa'.replace('a', 'b', 2) == 'bba' && 'a-b'.replace('-', '') == 'ab'",
    "'%s has %d replicas (%.1f)'.format(['w', 3, 1.25]) == 'w has 3 replicas (1.2)'",
    "strings.quote('a\"b') == '\"a\\\\\"b\"'",
    "sets.contains([1, 2, 3], [1, 3]) && sets.equivalent([1, 2], [2, 1]) && "
    "sets.intersects([1], [1, 5])",
    # optionals, IPs and CIDRs
    "self.?labels.?missing.orValue('none') == 'none'",
    "ip('10.0.0.1').family() == 4 && ip('::1').isLoopback() && isIP('fe80::1') && !isIP('x')",
    "cidr('10.0.0.0/8').containsIP('10.1.2.3') && cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16')"
    " && !cidr('10.0.0.0/8').containsIP(ip('::1'))",
    "cidr('10.1.2.3/8').masked() == cidr('10.0.0.0/8')",
    "cidr('10.1.2.3/8').ip() == ip('10.1.2.3')",
    "cidr('192.168.0.0/16').prefixLength() == 16 && isCIDR('::/0')",
]


@pytest.mark.parametrize("text", LIBRARY)
def test_library(text: str) -> None:
    obj = cr(memory="2Gi", name="MiXeD", labels={"a": "b"})
    assert errors(schema([rule(text)]), obj) == []


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "quantity(self.name) == quantity('1')",
            "quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ),
        (
            "url(self.name).getHost() == ''",
            'URL parse error during conversion from string: parse "x y": invalid URI for request',
        ),
        ("[0].min() == 0 && [].min() == 0", "min called on empty list"),
        ("self.name.substring(5) == ''", "index out of range: 5"),
    ],
)
def test_library_errors(text: str, error: str) -> None:
    want = f'Invalid value: "object": {error} evaluating rule: {text}'
    assert errors(schema([rule(text)]), cr(name="x y")) == [("spec", want)]


def test_stored_rule_that_does_not_compile() -> None:
    """A rule CRD validation would refuse (stored by an older server) fails every object."""
    s = schema([rule("quantity('1Ei').mul(2) == 0"), rule("self.replicas < 5")])
    assert errors(s, cr(replicas=1)) == [
        (
            "spec",
            'Invalid value: "object": rule compile error: compilation failed: ERROR: <input>:1:'
            "20: undeclared reference to 'mul' (in container '')\n"
            " | quantity('1Ei').mul(2) == 0\n | ...................^",
        )
    ]


def test_all_of_rules() -> None:
    s = schema()
    s["properties"]["spec"]["allOf"] = [{"x-kubernetes-validations": [rule("self.replicas < 5")]}]
    assert errors(s, cr(replicas=9)) == [("spec", FAILED + "self.replicas < 5")]


def test_embedded_resource_shows_only_type_and_object_meta() -> None:
    assert crd_errors([rule("self.metadata.uid == ''")], "template") == [
        (
            f"{ROOT}.properties[spec].properties[template].x-kubernetes-validations[0].rule",
            f"Invalid value: {shown('self.metadata.uid == ' + chr(39) * 2)}: compilation failed: "
            "ERROR: <input>:1:14: undefined field 'uid'\n | self.metadata.uid == ''\n"
            " | .............^",
        )
    ]


# --- updates: transition rules and ratcheting ---

IMMUTABLE = rule("self == oldSelf", message="name is immutable")


def test_transition_rules_run_on_update_only() -> None:
    s = schema([IMMUTABLE], "name")
    assert errors(s, cr(name="a")) == []
    assert errors(s, cr(name="b"), cr(name="a")) == [
        ("spec.name", 'Invalid value: "string": name is immutable')
    ]
    assert errors(s, cr(name="a"), cr(name="a")) == []
    assert errors(s, cr(name="b"), cr()) == []  # nothing to compare with


def test_optional_old_self() -> None:
    rules = [rule("oldSelf.hasValue() ? self >= oldSelf.value() : self < 5", optionalOldSelf=True)]
    s = schema(rules, "replicas")
    failed = [("spec.replicas", 'Invalid value: "integer": failed rule: ' + rules[0]["rule"])]
    assert errors(s, cr(replicas=7)) == failed
    assert errors(s, cr(replicas=7), cr()) == failed
    assert errors(s, cr(replicas=7), cr(replicas=6)) == []
    assert errors(s, cr(replicas=5), cr(replicas=6)) == failed


def test_list_map_items_correlate_by_key() -> None:
    s = schema([rule("self.port >= oldSelf.port", message="port may only grow")], "ports.items")
    old = cr(ports=[{"name": "a", "port": 5}, {"name": "b", "port": 5}])
    new = cr(ports=[{"name": "b", "port": 6}, {"name": "c", "port": 1}, {"name": "a", "port": 4}])
    assert errors(s, new, old) == [("spec.ports[2]", 'Invalid value: "object": port may only grow')]


def test_unchanged_values_ratchet_rules_without_old_self() -> None:
    s = schema([rule("self.startsWith('t-')")], "tags.items")
    bad = [("spec.tags[1]", "Invalid value: \"string\": failed rule: self.startsWith('t-')")]
    assert errors(s, cr(tags=["t-a", "b"]), cr(tags=["t-a", "b"])) == []
    assert errors(s, cr(tags=["t-a", "b"]), cr(tags=["t-b", "b"])) == bad  # the list changed
    s = schema([rule("self.replicas < 5"), rule("self.replicas == oldSelf.replicas")], "spec")
    assert errors(s, cr(replicas=9, name="x"), cr(replicas=9)) == [
        ("spec", FAILED + "self.replicas < 5")
    ]
    assert errors(s, cr(replicas=9), cr(replicas=9)) == []


def test_schema_errors_block_rules() -> None:
    s = schema([rule("self.replicas < 5")])
    assert errors(s, cr(replicas="many")) == [
        (
            "spec.replicas",
            'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
        ),
        (
            "<nil>",
            'Invalid value: "null": some validation rules were not checked because the '
            "object was invalid; correct the existing errors to complete validation",
        ),
    ]


COST_EXCEEDED = (
    "Invalid value: \"object\": 'operation cancelled: actual cost limit exceeded': no further "
    "validation rules will be run due to call cost exceeds limit for rule: "
)


def test_cost_limit() -> None:
    text = "self.tags.all(a, self.tags.all(b, self.tags.all(c, a + b + c != '')))"
    s = schema([rule(text), rule("self.replicas < 5")])
    assert errors(s, cr(tags=["x"] * 20, replicas=9)) == [("spec", FAILED + "self.replicas < 5")]
    # estimated past kube's per-call limit: not run; the rules after it are not run either
    assert errors(s, cr(tags=["x"] * 200, replicas=9)) == [("spec", COST_EXCEEDED + text)]
    # within the estimate, but past cel-cpp's 10,000 iterations
    assert errors(s, cr(tags=["x"] * 25, replicas=9)) == [("spec", COST_EXCEEDED + text)]


def test_cost_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cel.celcost, "RUNTIME_BUDGET", 10)  # 4 per rule
    s = schema([rule("self.replicas < 5")] * 5)
    failed = ("spec", FAILED + "self.replicas < 5")
    out_of_budget = (
        "spec",
        'Invalid value: "object": validation failed due to running out of cost budget, '
        "no further validation rules will be run",
    )
    assert errors(s, cr(replicas=9)) == [failed, failed, out_of_budget]


def test_preserved_unknown_fields_compare_whole() -> None:
    s = schema([rule("self == oldSelf", message="immutable")], "free")
    assert errors(s, cr(free={"a": [1, {"b": 2}]}), cr(free={"a": [1, {"b": 2}]})) == []
    assert errors(s, cr(free={"a": [1, {"b": 3}]}), cr(free={"a": [1, {"b": 2}]})) == [
        ("spec.free", 'Invalid value: "object": immutable')
    ]


# --- CRD validation of the rules ---

ROOT = "spec.validation.openAPIV3Schema"
RULES = f"{ROOT}.properties[spec].x-kubernetes-validations"


def crd(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "listKind": "WidgetList",
            },
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": s}}
            ],
        },
        "status": {"storedVersions": ["v1"]},
    }


def crd_errors(rules: list[dict[str, Any]], at: str = "spec") -> Errors:
    return [(c.field, c.message) for c in v.validate_crd(crd(schema(rules, at)))]


def shown(text: str, **extra: str) -> str:
    fields = {"Message": "", "MessageExpression": "", "FieldPath": "", **extra}
    return (
        f'apiextensions.ValidationRule{{Rule:"{text}", Message:"{fields["Message"]}", '
        f'MessageExpression:"{fields["MessageExpression"]}", '
        "Reason:(*apiextensions.FieldValueErrorReason)(nil), "
        f'FieldPath:"{fields["FieldPath"]}", OptionalOldSelf:(*bool)(nil)}}'
    )


def test_valid_rules_compile() -> None:
    rules = [
        rule("self.minReplicas <= self.replicas"),
        rule("self.ratio > 1"),  # cross-type numeric comparisons (1.28+)
        rule("self.labels.all(k, self.labels[k] != '')"),
        rule("self.ports.all(p, p.port > 0)", messageExpression="'bad port in ' + self.name"),
        rule("self.replicas >= oldSelf.replicas"),
    ]
    assert crd_errors(rules) == []
    assert crd_errors([rule("self.port >= oldSelf.port")], "ports.items") == []


@pytest.mark.parametrize(
    ("rules", "at", "want"),
    [
        pytest.param(
            [rule("self.replicsa > 0")],
            "spec",
            [
                (
                    f"{RULES}[0].rule",
                    f"Invalid value: {shown('self.replicsa > 0')}: compilation failed: ERROR: "
                    "<input>:1:5: undefined field 'replicsa'\n | self.replicsa > 0\n | ....^",
                )
            ],
            id="undefined-field",
        ),
        pytest.param(
            [rule("self.replicas == 'a'")],
            "spec",
            [
                (
                    f"{RULES}[0].rule",
                    f"Invalid value: {shown('self.replicas == ' + chr(39) + 'a' + chr(39))}: "
                    "compilation failed: ERROR: <input>:1:15: found no matching overload for "
                    "'_==_' applied to '(int, string)'\n | self.replicas == 'a'\n"
                    " | ..............^",
                )
            ],
            id="type-mismatch",
        ),
        pytest.param(
            [rule("self.name")],
            "spec",
            [
                (
                    f"{RULES}[0].rule",
                    f"Invalid value: {shown('self.name')}: cel expression must evaluate to a bool",
                )
            ],
            id="not-bool",
        ),
        pytest.param(
            [rule("true", messageExpression="self.replicas")],
            "spec",
            [
                (
                    f"{RULES}[0].messageExpression",
                    f"Invalid value: {shown('true', MessageExpression='self.replicas')}: "
                    "messageExpression must evaluate to a string",
                )
            ],
            id="message-expression-not-string",
        ),
        pytest.param(
            [rule("self.name == oldSelf.name")],
            "steps.items",
            [
                (
                    f"{ROOT}.properties[spec].properties[steps].items.x-kubernetes-validations[0]"
                    ".rule",
                    'Invalid value: "self.name == oldSelf.name": oldSelf cannot be used on the '
                    f"uncorrelatable portion of the schema within {ROOT}.properties[spec]"
                    ".properties[steps]",
                )
            ],
            id="old-self-in-atomic-list",
        ),
        pytest.param(
            [rule("self.replicas > 0", optionalOldSelf=True)],
            "spec",
            [
                (
                    f"{RULES}[0].optionalOldSelf",
                    "Invalid value: true: may not be set if oldSelf is not used in rule",
                )
            ],
            id="optional-old-self-unused",
        ),
        pytest.param(
            [rule("self.metadata.labels.size() > 0")],
            "root",
            [
                (
                    f"{ROOT}.x-kubernetes-validations[0].rule",
                    f"Invalid value: {shown('self.metadata.labels.size() > 0')}: "
                    "compilation failed: ERROR: <input>:1:14: undefined field 'labels'\n"
                    " | self.metadata.labels.size() > 0\n | .............^",
                )
            ],
            id="object-meta-hidden",
        ),
    ],
)
def test_rule_errors(rules: list[dict[str, Any]], at: str, want: Errors) -> None:
    assert crd_errors(rules, at) == want


def test_message_expression_compile_error() -> None:
    [(field, message)] = crd_errors([rule("true", messageExpression="self.nope")])
    assert field == f"{RULES}[0].messageExpression"
    assert message == (
        f"Invalid value: {shown('true', MessageExpression='self.nope')}: messageExpression "
        "compilation failed: ERROR: <input>:1:5: undefined field 'nope'\n | self.nope\n"
        " | ....^"
    )


def test_syntax_error_prefix() -> None:
    [(field, message)] = crd_errors([rule("self.replicas >")])
    assert field == f"{RULES}[0].rule"
    assert message.startswith(
        f"Invalid value: {shown('self.replicas >')}: compilation failed: ERROR: <input>:1:16: "
        "Syntax error: "
    )


def test_schema_errors_come_first_and_skip_compilation() -> None:
    s = schema([rule("self.nope")])
    s["properties"]["spec"]["properties"]["tags"]["x-kubernetes-list-type"] = "bag"
    [(field, _)] = [(c.field, c.message) for c in v.validate_crd(crd(s))]
    assert field == f"{ROOT}.properties[spec].properties[tags].x-kubernetes-list-type"
