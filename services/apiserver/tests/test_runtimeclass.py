"""RuntimeClass validation and printer, with Kubernetes' messages and field paths."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from skiff.api.resources import REGISTRY
from skiff.apiserver.printers import table_for
from skiff.apiserver.registry import strategy_for

INFO = REGISTRY.by_path("node.k8s.io", "v1", "runtimeclasses")
assert INFO is not None


def causes(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    obj = {"metadata": {"name": "rc"}, **obj}
    strategy = strategy_for(INFO)
    found = strategy.validate_update(obj, old) if old else strategy.validate(obj)
    return [(c.field, c.message) for c in found]


def test_a_valid_class_passes() -> None:
    toleration = {"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}
    scheduling = {"nodeSelector": {"sandbox": "gvisor"}, "tolerations": [toleration]}
    obj = {"handler": "runsc", "overhead": {"podFixed": {"cpu": "250m"}}, "scheduling": scheduling}
    assert causes(obj) == []


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        ({"handler": ""}, ("handler", 'Invalid value: "": a lowercase RFC 1123 label')),
        ({"handler": "run.sc"}, ("handler", "must not contain dots")),
        ({"handler": "runc", "overhead": {"podFixed": {"cpu": "-1"}}},
         ("overhead.limits[cpu]", 'Invalid value: "-1": must be greater than or equal to 0')),
        ({"handler": "runc", "scheduling": {"nodeSelector": {"a": "b c"}}},
         ("scheduling.nodeSelector", 'Invalid value: "b c": a valid label must be')),
        ({"handler": "runc", "scheduling": {"tolerations": [{"operator": "Equal"}]}},
         ("scheduling.tolerations[0].operator", "operator must be Exists when `key` is empty")),
        ({"handler": "runc", "scheduling": {"tolerations": [{"key": "k", "effect": "Never"}]}},
         ("scheduling.tolerations[0].effect", 'Unsupported value: "Never": supported values: '
                                              '"NoExecute", "NoSchedule", "PreferNoSchedule"')),
    ],
)  # fmt: skip
def test_bad_classes(obj: dict[str, Any], want: tuple[str, str]) -> None:
    found = causes(obj)
    assert any(f == want[0] and want[1] in m for f, m in found), found


def test_the_handler_is_immutable() -> None:
    assert causes({"handler": "kata"}, {"metadata": {"name": "rc"}, "handler": "runc"}) == [
        ("handler", 'Invalid value: "kata": field is immutable')]  # fmt: skip


def test_printer() -> None:
    obj = {"metadata": {"name": "gvisor", "creationTimestamp": "2026-01-01T00:00:00Z"},
           "handler": "runsc"}  # fmt: skip
    table = table_for(INFO, [obj], now=datetime(2026, 1, 1, 1, tzinfo=UTC))
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Handler", "Age"]
    assert table["rows"][0]["cells"] == ["gvisor", "runsc", "60m"]
