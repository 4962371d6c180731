"""An OTLP/gRPC trace receiver for tests, with the part of Jaeger's query API they read.

Used in process by ``test_tracing`` and, as an image, in place of Jaeger by
``test_compose`` where Docker Hub is unreachable: the components' real OTLP exporters
send to it exactly as to Jaeger, and ``GET /api/services`` and
``GET /api/services/{service}/operations`` answer as Jaeger's query service does.
"""

from __future__ import annotations

import argparse
import json
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every span received, as ``(service.name, span)``."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def Export(self, request, context):  # type: ignore[no-untyped-def]
        with self.lock:
            for rs in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in rs.resource.attributes
                        if a.key == "service.name"
                    ),
                    "",
                )
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self.spans.append((service, span))
        return trace_service_pb2.ExportTraceServiceResponse()

    def services(self) -> list[str]:
        with self.lock:
            return sorted({svc for svc, _ in self.spans})

    def operations(self, service: str) -> list[str]:
        with self.lock:
            return sorted({s.name for svc, s in self.spans if svc == service})


def grpc_server(collector: Collector, address: str) -> tuple[grpc.Server, int]:
    """Start an OTLP/gRPC server on ``address`` (``host:port``; port 0 picks one)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port(address)
    server.start()
    return server, port


def query_server(collector: Collector, host: str, port: int) -> ThreadingHTTPServer:
    """Jaeger's ``/api/services`` and ``/api/services/{service}/operations``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts == ["api", "services"]:
                data = collector.services()
            elif len(parts) == 4 and parts[:2] == ["api", "services"] and parts[3] == "operations":
                data = collector.operations(parts[2])
            else:
                self.send_error(404)
                return
            body = json.dumps({"data": data, "total": len(data)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--otlp-port", type=int, default=4317)
    p.add_argument("--query-port", type=int, default=16686)
    a = p.parse_args()
    collector = Collector()
    server, _ = grpc_server(collector, f"0.0.0.0:{a.otlp_port}")  # stops when collected
    query_server(collector, "0.0.0.0", a.query_port).serve_forever()
    server.stop(None)


if __name__ == "__main__":
    main()
