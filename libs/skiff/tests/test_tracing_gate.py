"""The collector gate: spans are recorded only while the collector's name resolves."""

from __future__ import annotations

import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import Decision

from skiff.tracing import CollectorGate, _gated, endpoint_host


def test_endpoint_host_forms() -> None:
    assert endpoint_host("http://jaeger:4317") == "jaeger"
    assert endpoint_host("jaeger:4317") == "jaeger"
    assert endpoint_host("https://otel.example:443/v1/traces") == "otel.example"
    assert endpoint_host("http://[::1]:4317") == "::1"
    assert endpoint_host("") == ""


def test_addresses_and_localhost_are_not_gated() -> None:
    assert not _gated("127.0.0.1")
    assert not _gated("::1")
    assert not _gated("localhost")
    assert not _gated("")
    assert _gated("jaeger")


def test_drops_while_the_name_does_not_resolve() -> None:
    gate = CollectorGate("no-such-collector.invalid")
    assert not gate.check()
    assert gate.should_sample(None, 1, "x").decision is Decision.DROP
    span = TracerProvider(sampler=gate).get_tracer("t").start_span("x")
    assert not span.is_recording()


def test_records_once_the_name_resolves() -> None:
    gate = CollectorGate("localhost")
    assert gate.check()
    assert gate.should_sample(None, 1, "x").decision is Decision.RECORD_AND_SAMPLE
    span = TracerProvider(sampler=gate).get_tracer("t").start_span("x")
    assert span.is_recording()


def test_background_thread_notices_the_change() -> None:
    gate = CollectorGate("localhost", interval=0.05)
    gate.start()
    try:
        deadline = time.monotonic() + 5
        while not gate.present and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gate.present
        gate.host = "no-such-collector.invalid"
        deadline = time.monotonic() + 5
        while gate.present and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not gate.present
    finally:
        gate.stop()
