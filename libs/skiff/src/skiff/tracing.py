"""OpenTelemetry set-up and W3C trace-context helpers shared by every component.

Tracing is on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-specific
variable) is set. Otherwise the no-op tracer stays installed: nothing is
recorded or sent, nothing fails for lack of a collector, and a ``traceparent``
a client sends still passes through to the spans' children and to NATS.
Recording spans nobody collects would cost every request and every watch event.

With an endpoint set, spans are recorded only while the endpoint's host name resolves
(checked every ``GATE_INTERVAL`` seconds in a background thread). In docker compose
every component points at ``jaeger:4317``, a name that exists only while the
``tracing`` profile runs Jaeger: without it nothing is recorded and no exporter
complains; start Jaeger later and traces begin within seconds.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from collections.abc import Mapping, MutableMapping, Sequence
from urllib.parse import urlsplit

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

GATE_INTERVAL = 10.0

_provider: TracerProvider | None = None


def endpoint() -> str:
    """The configured OTLP traces endpoint, or ``""``."""
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", ""
    )


def exporting() -> bool:
    """Whether an OTLP endpoint is configured."""
    return bool(endpoint())


class CollectorGate(Sampler):
    """Samples as ``ParentBased(ALWAYS_ON)`` while ``host`` resolves, drops otherwise.

    Dropped spans are non-recording: no attributes, no export, no exporter errors.
    """

    def __init__(self, host: str, interval: float = GATE_INTERVAL) -> None:
        self.host = host
        self.interval = interval
        self.present = False
        self._inner = ParentBased(ALWAYS_ON)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Resolve the host now; remember and return whether it resolved."""
        try:
            socket.getaddrinfo(self.host, None)
            self.present = True
        except OSError:
            self.present = False
        return self.present

    def start(self) -> None:
        """Check now and every ``interval`` seconds in a daemon thread.

        Not in the caller: a name no server knows can take a resolver timeout.
        """
        self._thread = threading.Thread(target=self._run, name="otlp-gate", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        self.check()
        while not self._stop.wait(self.interval):
            self.check()

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if not self.present:
            return SamplingResult(Decision.DROP)
        return self._inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"CollectorGate({self.host})"


def _gated(host: str) -> bool:
    """Whether a host is a name to watch (an address or localhost always exists)."""
    if not host or host == "localhost":
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def endpoint_host(url: str) -> str:
    """The host of an OTLP endpoint given as ``scheme://host:port`` or ``host:port``."""
    return urlsplit(url if "//" in url else f"//{url}").hostname or ""


def setup_tracing(service: str, *, processor: SpanProcessor | None = None) -> TracerProvider | None:
    """Install the global tracer provider (once per process) when spans will go somewhere."""
    global _provider
    if _provider is not None:
        if processor is not None:
            _provider.add_span_processor(processor)
        return _provider
    if processor is None and not exporting():
        return None
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    sampler: Sampler | None = None
    host = endpoint_host(endpoint())
    if processor is None and _gated(host) and not os.environ.get("OTEL_TRACES_SAMPLER"):
        gate = CollectorGate(host)
        gate.start()
        sampler = gate
    provider = TracerProvider(resource=resource, sampler=sampler)
    if processor is not None:
        provider.add_span_processor(processor)
    if exporting():
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def links_to(traceparent: str | None) -> list[Link]:
    """A link to the trace a ``traceparent`` names (none when absent or invalid).

    Work done later because of a write (scheduling a created pod, starting it) links to
    the write's trace instead of joining it: the write's trace has long ended.
    """
    if not traceparent:
        return []
    ctx = trace.get_current_span(extract({"traceparent": traceparent})).get_span_context()
    return [Link(ctx)] if ctx.is_valid else []


def inject(carrier: MutableMapping[str, str], context: Context | None = None) -> None:
    """Write ``traceparent``/``tracestate`` of the current span into headers."""
    propagate.inject(carrier, context=context)


def extract(carrier: Mapping[str, str]) -> Context:
    """The context carried in headers (HTTP, gRPC metadata or NATS)."""
    return propagate.extract(carrier)
