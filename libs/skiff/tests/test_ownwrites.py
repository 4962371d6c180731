"""OwnWrites: a key waits while the cache lacks a write made for it."""

from __future__ import annotations

from skiff.controller.ownwrites import OwnWrites, resource_version


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def obj(name: str, rv: int) -> dict:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": str(rv)}}


def test_pending_until_the_cache_shows_the_write_or_later() -> None:
    cache: dict[str, dict] = {"ns/a": obj("a", 5)}
    w = OwnWrites(clock=Clock())
    assert not w.pending("ns/svc", cache.get)  # nothing written
    w.wrote("ns/svc", obj("a", 7))
    assert w.pending("ns/svc", cache.get)  # the cache still has 5
    cache["ns/a"] = obj("a", 9)  # a later write (someone else's) counts too
    assert not w.pending("ns/svc", cache.get)
    assert not w.pending("ns/svc", cache.get)  # forgotten once seen


def test_deletions_and_several_objects_per_key() -> None:
    cache = {"ns/a": obj("a", 5), "ns/b": obj("b", 6)}
    w = OwnWrites(clock=Clock())
    w.wrote("ns/svc", obj("a", 8))
    w.wrote("ns/svc", cache["ns/b"], deleted=True)
    cache["ns/a"] = obj("a", 8)
    assert w.pending("ns/svc", cache.get)  # b is still cached
    w.observed_deletion("ns/svc", "ns/b")
    assert not w.pending("ns/svc", cache.get)
    w.wrote("ns/svc", cache["ns/a"], deleted=True)
    del cache["ns/a"]
    assert not w.pending("ns/svc", cache.get)  # gone from the cache: seen


def test_given_up_after_the_timeout_and_forget() -> None:
    clock = Clock()
    w = OwnWrites(timeout=30, clock=clock)
    w.wrote("k", obj("a", 9))
    assert w.pending("k", lambda _k: None)
    clock.t += 31  # the event was lost: trust the cache again
    assert not w.pending("k", lambda _k: None)
    w.wrote("k", obj("a", 9))
    w.forget("k")
    assert not w.pending("k", lambda _k: None)


def test_resource_version() -> None:
    assert resource_version(obj("a", 12)) == 12
    assert resource_version(None) == 0
    assert resource_version({"metadata": {"resourceVersion": "x"}}) == 0
