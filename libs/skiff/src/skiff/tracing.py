"""OpenTelemetry set-up and W3C trace-context helpers shared by every component.

Tracing is on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-specific
variable) is set. Otherwise the no-op tracer stays installed: nothing is
recorded or sent, nothing fails for lack of a collector, and a ``traceparent``
a client sends still passes through to the spans' children and to NATS.
Recording spans nobody collects would cost every request and every watch event.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_provider: TracerProvider | None = None


def exporting() -> bool:
    """Whether an OTLP endpoint is configured."""
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


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
    provider = TracerProvider(resource=resource)
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


def inject(carrier: MutableMapping[str, str], context: Context | None = None) -> None:
    """Write ``traceparent``/``tracestate`` of the current span into headers."""
    propagate.inject(carrier, context=context)


def extract(carrier: Mapping[str, str]) -> Context:
    """The context carried in headers (HTTP, gRPC metadata or NATS)."""
    return propagate.extract(carrier)
