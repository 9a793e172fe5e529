"""An OTLP receiver for tests/api/otlp.rs: the OpenTelemetry project's own protobuf definitions
(`opentelemetry-proto`) decode what Tessera exports, over OTLP/HTTP (protobuf bodies on /v1/traces and
/v1/metrics) and OTLP/gRPC (grpcio), both on loopback ports of the system's choosing.

Prints one JSON line with the two ports, then one JSON line per export received:
{"transport": "http" | "grpc", "signal": "traces" | "metrics", "body": <the request as protobuf JSON>}.
Exits when its standard input closes, so a test that dies takes the receiver with it.
"""

import json
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

LOCK = threading.Lock()


def emit(transport, signal, message):
    line = json.dumps({"transport": transport, "signal": signal, "body": MessageToDict(message)})
    with LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Http(BaseHTTPRequestHandler):
    ROUTES = {
        "/v1/traces": ("traces", trace_service_pb2.ExportTraceServiceRequest,
                       trace_service_pb2.ExportTraceServiceResponse),
        "/v1/metrics": ("metrics", metrics_service_pb2.ExportMetricsServiceRequest,
                        metrics_service_pb2.ExportMetricsServiceResponse),
    }

    def do_POST(self):
        route = self.ROUTES.get(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if route is None or self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_response(404 if route is None else 415)
            self.end_headers()
            return
        signal, request, response = route
        message = request()
        message.ParseFromString(body)
        emit("http", signal, message)
        answer = response().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


class Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        emit("grpc", "traces", request)
        return trace_service_pb2.ExportTraceServiceResponse()


class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def Export(self, request, context):
        emit("grpc", "metrics", request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


def main():
    http = ThreadingHTTPServer(("127.0.0.1", 0), Http)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with LOCK:
        sys.stdout.write(json.dumps({"http": http.server_address[1], "grpc": grpc_port}) + "\n")
        sys.stdout.flush()
    sys.stdin.read()
    server.stop(0)
    http.shutdown()


if __name__ == "__main__":
    main()
