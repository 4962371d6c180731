"""skiff.api.conditions: get, set (transition time kept unless the status changes), remove."""

from __future__ import annotations

from typing import Any

from skiff.api.conditions import get_condition, remove_condition, set_condition


def cond(type_: str, status: str, reason: str, at: str, message: str = "m") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": at,
        "lastUpdateTime": at,
    }


def test_get_condition() -> None:
    status = {"conditions": [cond("A", "True", "R", "t1"), cond("B", "False", "S", "t1")]}
    assert get_condition(status, "B") == cond("B", "False", "S", "t1")
    assert get_condition(status, "C") is None
    assert get_condition({}, "A") is None
    assert get_condition(None, "A") is None
    assert get_condition({"conditions": None}, "A") is None


def test_set_adds_then_changes_nothing_when_status_reason_and_message_are_the_same() -> None:
    status: dict[str, Any] = {}
    assert set_condition(status, cond("A", "True", "R", "t1"))
    assert status == {"conditions": [cond("A", "True", "R", "t1")]}
    # Same status, reason and message: nothing changes, not even the update time.
    assert not set_condition(status, cond("A", "True", "R", "t2"))
    assert status["conditions"] == [cond("A", "True", "R", "t1")]


def test_transition_time_changes_only_with_the_status() -> None:
    status = {"conditions": [cond("A", "True", "R", "t1"), cond("B", "True", "S", "t1")]}
    # A new reason (or message) with the same status: updated, transition time kept.
    assert set_condition(status, cond("A", "True", "R2", "t2"))
    a = get_condition(status, "A")
    assert a is not None
    assert (a["reason"], a["lastUpdateTime"], a["lastTransitionTime"]) == ("R2", "t2", "t1")
    assert set_condition(status, cond("A", "True", "R2", "t3", message="other"))
    a = get_condition(status, "A")
    assert a is not None and (a["message"], a["lastTransitionTime"]) == ("other", "t1")
    # A new status: a transition now.
    assert set_condition(status, cond("A", "False", "R3", "t4"))
    a = get_condition(status, "A")
    assert a is not None and (a["status"], a["lastTransitionTime"]) == ("False", "t4")
    # Replaced in place; the other condition untouched.
    assert [c["type"] for c in status["conditions"]] == ["A", "B"]
    assert status["conditions"][1] == cond("B", "True", "S", "t1")


def test_set_does_not_keep_the_callers_dict() -> None:
    status: dict[str, Any] = {"conditions": None}
    new = cond("A", "True", "R", "t1")
    set_condition(status, new)
    new["status"] = "False"
    assert status["conditions"][0]["status"] == "True"


def test_remove_condition() -> None:
    status = {"conditions": [cond("A", "True", "R", "t1"), cond("B", "True", "S", "t1")]}
    assert remove_condition(status, "A")
    assert [c["type"] for c in status["conditions"]] == ["B"]
    assert not remove_condition(status, "A")
    assert remove_condition(status, "B")
    assert "conditions" not in status  # none left: the field goes
    assert not remove_condition(status, "B")
