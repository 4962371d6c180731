"""PodControl: pods created from an owner's template and deleted by uid, with their
events, alone and many at once under a controller's expectations (on FakeApi)."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.api.errors import NAMESPACE_TERMINATING_CAUSE, ApiError, Cause, Reason
from skiff.client.events import EventRecorder
from skiff.client.informer import key_of
from skiff.client.rest import Obj, Res
from skiff.controller.expectations import Expectations
from skiff.controller.fake import FakeApi
from skiff.controller.podcontrol import (
    PodControl,
    generate_name_prefix,
    pod_from_template,
)

NS = "ns"
TEMPLATE: Obj = {
    "metadata": {"labels": {"app": "web"}, "annotations": {"x": "y"}},
    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
}


class Api(FakeApi):
    """FakeApi that keeps each delete's options and fails on demand: creates in a
    terminating namespace, deletes of the pods named in ``fail_deletes``."""

    def __init__(self) -> None:
        super().__init__()
        self.terminating = False
        self.fail_deletes: set[str] = set()
        self.delete_options: list[tuple[str, dict[str, Any]]] = []

    async def create(self, res: Res, obj: Obj, namespace: str | None = None, **kw: Any) -> Obj:
        if self.terminating:
            raise ApiError(
                403,
                Reason.FORBIDDEN,
                f'pods "x" is forbidden: namespace {namespace} is being terminated',
                causes=[Cause("metadata.namespace", "terminating", NAMESPACE_TERMINATING_CAUSE)],
            )
        return await super().create(res, obj, namespace, **kw)

    async def delete(self, res: Res, name: str, namespace: str | None = None, **kw: Any) -> Obj:
        self.delete_options.append((name, kw))
        if name in self.fail_deletes:
            raise ApiError(500, Reason.INTERNAL_ERROR, "injected delete failure")
        return await super().delete(res, name, namespace, **kw)


def owner(name: str = "web") -> Obj:
    """A ReplicaSet as events are recorded against it (with kind and apiVersion)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}"},
    }


async def pod(api: FakeApi, name: str) -> Obj:
    return await api.create("pods", {"metadata": {"name": name}, "spec": {}}, NS)


async def events(control: PodControl, api: FakeApi) -> list[tuple[str, str, str]]:
    """(type, reason, message) of every event recorded so far."""
    await control.events.flush()
    return sorted((e["type"], e["reason"], e["message"]) for e in api.list_objects("events", NS))


def control_of(api: FakeApi) -> PodControl:
    return PodControl(api, EventRecorder(api, "test-controller"))  # type: ignore[arg-type]


# -- pods from templates -------------------------------------------------------------------


def test_pod_from_template() -> None:
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "u"}
    p = pod_from_template(TEMPLATE, "ns", generate_name_prefix("web"), ref)
    assert p["metadata"] == {
        "generateName": "web-",
        "namespace": "ns",
        "labels": {"app": "web"},
        "annotations": {"x": "y"},
        "ownerReferences": [ref],
    }
    p["spec"]["containers"][0]["image"] = "changed"
    p["metadata"]["labels"]["app"] = "changed"
    assert TEMPLATE["spec"]["containers"][0]["image"] == "busybox"  # no sharing with the cache
    assert TEMPLATE["metadata"]["labels"] == {"app": "web"}
    assert len(generate_name_prefix("x" * 80)) == 58


# -- one pod -------------------------------------------------------------------------------


async def test_create_pod_is_controlled_by_its_owner_and_named_after_it() -> None:
    api = Api()
    control = control_of(api)
    created = await control.create_pod(owner(), TEMPLATE)
    assert created is not None
    meta = created["metadata"]
    assert meta["namespace"] == NS
    assert meta["generateName"] == "web-" and meta["name"].startswith("web-")
    assert meta["labels"] == {"app": "web"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web",
            "uid": "uid-web",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert api.keys("pods") == [key_of(created)]
    assert await events(control, api) == [
        ("Normal", "SuccessfulCreate", f"Created pod: {meta['name']}")
    ]


async def test_create_pod_with_a_generate_name() -> None:
    api = Api()
    created = await control_of(api).create_pod(owner(), TEMPLATE, generate_name="web-3-")
    assert created is not None and created["metadata"]["generateName"] == "web-3-"


async def test_a_failed_create_is_a_failed_create_event_and_raised() -> None:
    api = Api()
    api.fail_creates = 1
    control = control_of(api)
    with pytest.raises(ApiError) as err:
        await control.create_pod(owner(), TEMPLATE)
    assert err.value.code == 500
    assert api.keys("pods") == []
    assert await events(control, api) == [
        ("Warning", "FailedCreate", "Error creating: injected create failure")
    ]


async def test_no_pod_and_no_event_in_a_terminating_namespace() -> None:
    api = Api()
    api.terminating = True
    control = control_of(api)
    assert await control.create_pod(owner(), TEMPLATE) is None
    assert await events(control, api) == []


async def test_delete_pod_by_uid() -> None:
    api = Api()
    control = control_of(api)
    p = await pod(api, "p")
    assert await control.delete_pod(owner(), p)
    assert api.keys("pods") == []
    assert api.delete_options == [
        ("p", {"grace_period_seconds": None, "preconditions": {"uid": p["metadata"]["uid"]}})
    ]
    assert await events(control, api) == [("Normal", "SuccessfulDelete", "Deleted pod: p")]


async def test_delete_pod_with_a_grace_period() -> None:
    api = Api()
    p = await pod(api, "p")
    assert await control_of(api).delete_pod(owner(), p, grace_period_seconds=0)
    assert api.delete_options[0][1]["grace_period_seconds"] == 0


async def test_a_pod_gone_already_is_not_deleted_and_no_event() -> None:
    api = Api()
    control = control_of(api)
    gone = await pod(api, "gone")
    await api.delete("pods", "gone", NS)
    namesake = await pod(api, "p")
    stale = {**namesake, "metadata": {**namesake["metadata"], "uid": "an-older-uid"}}
    assert not await control.delete_pod(owner(), gone)  # 404
    assert not await control.delete_pod(owner(), stale)  # 409: the uid precondition failed
    assert api.keys("pods") == [f"{NS}/p"]  # the namesake stays
    assert await events(control, api) == []


async def test_what_counts_as_gone_can_be_narrowed() -> None:
    api = Api()
    control = control_of(api)
    namesake = await pod(api, "p")
    stale = {**namesake, "metadata": {**namesake["metadata"], "uid": "an-older-uid"}}
    with pytest.raises(ApiError) as err:
        await control.delete_pod(owner(), stale, gone=(404,))
    assert err.value.code == 409
    assert await events(control, api) == [
        ("Warning", "FailedDelete", "Error deleting: Precondition failed: UID")
    ]


async def test_a_failed_delete_is_a_failed_delete_event_and_raised() -> None:
    api = Api()
    api.fail_deletes = {"p"}
    control = control_of(api)
    p = await pod(api, "p")
    with pytest.raises(ApiError):
        await control.delete_pod(owner(), p)
    assert await events(control, api) == [
        ("Warning", "FailedDelete", "Error deleting: injected delete failure")
    ]


async def test_events_worded_by_a_subclass() -> None:
    class Worded(PodControl):
        def message(self, verb: str, owner: Obj, pod_name: str, error: ApiError | None) -> str:
            return f"{verb} {pod_name} of {owner['metadata']['name']}: {error is None}"

    api = Api()
    control = Worded(api, EventRecorder(api, "test-controller"))  # type: ignore[arg-type]
    await control.delete_pod(owner(), await pod(api, "p"))
    control.record("Update", owner(), "q")
    assert await events(control, api) == [
        ("Normal", "SuccessfulDelete", "Delete p of web: True"),
        ("Normal", "SuccessfulUpdate", "Update q of web: True"),
    ]


# -- many pods under expectations ----------------------------------------------------------


async def test_create_pods_in_slow_start_batches_lowering_what_never_comes() -> None:
    expectations = Expectations()
    calls = 0

    async def create() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # the second batch (of 2) has a failure: no third batch of 4
            raise ApiError(500, Reason.INTERNAL_ERROR, "injected")

    successes, error = await control_of(Api()).create_pods(expectations, "ns/web", 7, create)
    assert (successes, calls) == (2, 3)
    assert isinstance(error, ApiError)
    # 7 expected, 5 will never show (one failed, four never tried): 2 still to observe.
    assert expectations.pending("ns/web") == (2, 0)


async def test_create_pods_all_created() -> None:
    api = Api()
    control = control_of(api)
    expectations = Expectations()

    async def create() -> None:
        await control.create_pod(owner(), TEMPLATE)

    assert await control.create_pods(expectations, "ns/web", 3, create) == (3, None)
    assert len(api.keys("pods")) == 3
    assert expectations.pending("ns/web") == (3, 0)  # until the informer shows them


async def test_delete_pods_observes_what_the_cache_will_never_show() -> None:
    api = Api()
    control = control_of(api)
    expectations = Expectations()
    deleted, failing = await pod(api, "deleted"), await pod(api, "failing")
    gone = await pod(api, "gone")
    await api.delete("pods", "gone", NS)
    api.fail_deletes = {"failing"}
    results = await control.delete_pods(owner(), [deleted, gone, failing], expectations, "ns/web")
    assert results[:2] == [None, None]
    assert isinstance(results[2], ApiError) and results[2].code == 500
    # Only the pod deleted by us is still to be seen going.
    assert expectations.pending("ns/web") == (0, 1)
    expectations.deletion_observed("ns/web", key_of(deleted))
    assert expectations.satisfied("ns/web")
    assert api.keys("pods") == [f"{NS}/failing"]


async def test_delete_pods_with_another_delete_and_no_expectations() -> None:
    api = Api()
    control = control_of(api)
    a, b = await pod(api, "a"), await pod(api, "b")
    seen: list[str] = []

    async def delete(p: Obj) -> bool:
        seen.append(p["metadata"]["name"])
        return await control.delete_pod(owner(), p, grace_period_seconds=0)

    assert await control.delete_pods(owner(), [a, b], delete=delete) == [None, None]
    assert sorted(seen) == ["a", "b"]
    assert [kw["grace_period_seconds"] for _, kw in api.delete_options] == [0, 0]
