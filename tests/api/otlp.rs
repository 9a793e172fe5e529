//! Stoke's `telemetry` keys against a real OTLP receiver (tests/interop/otlp_receiver.py: the OpenTelemetry
//! project's own protobuf definitions, over HTTP and gRPC): the real `tessera serve` exports one server span per
//! request, named by route and status, in the caller's W3C trace, with child spans for the password hash and the
//! database; and the request-duration histogram and login counters.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::venv_python;
use crate::process::start_with_tester;

/// The receiver process, its two ports, and the exports it decoded (one JSON value each).
struct Collector {
    child: Child,
    http: u16,
    grpc: u16,
    exports: Receiver<Value>,
    seen: Vec<Value>,
}

impl Collector {
    fn start() -> Collector {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/otlp_receiver.py");
        let mut child = Command::new(venv_python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the OTLP receiver starts (scripts/test installs opentelemetry-proto and grpcio)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ports: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        let (tx, exports) = channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str(&line).unwrap());
            }
        });
        Collector {
            child,
            http: ports["http"].as_u64().unwrap() as u16,
            grpc: ports["grpc"].as_u64().unwrap() as u16,
            exports,
            seen: Vec::new(),
        }
    }

    /// Waits (up to 20 s) until what arrived satisfies `done`; returns everything that arrived.
    fn until(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) -> &[Value] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(&self.seen) {
            assert!(Instant::now() < deadline, "no {what} arrived: {:#?}", self.seen);
            if let Ok(export) = self.exports.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(export);
            }
        }
        &self.seen
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        // Its standard input closing ends the receiver; the kill is for one that hangs.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every span of the trace exports that came over `transport`, flattened.
fn spans<'a>(exports: &'a [Value], transport: &str) -> Vec<&'a Value> {
    exports
        .iter()
        .filter(|e| e["signal"] == "traces" && e["transport"] == transport)
        .flat_map(|e| e["body"]["resourceSpans"].as_array().into_iter().flatten())
        .flat_map(|r| r["scopeSpans"].as_array().into_iter().flatten())
        .flat_map(|s| s["spans"].as_array().into_iter().flatten())
        .collect()
}

/// Every metric of the metric exports that came over `transport`, flattened.
fn metrics<'a>(exports: &'a [Value], transport: &str) -> Vec<&'a Value> {
    exports
        .iter()
        .filter(|e| e["signal"] == "metrics" && e["transport"] == transport)
        .flat_map(|e| e["body"]["resourceMetrics"].as_array().into_iter().flatten())
        .flat_map(|r| r["scopeMetrics"].as_array().into_iter().flatten())
        .flat_map(|s| s["metrics"].as_array().into_iter().flatten())
        .collect()
}

/// An attribute of a span or a data point, as its protobuf JSON value (`{"stringValue": …}`, `{"intValue": …}`).
fn attribute<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    item["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

/// Protobuf JSON carries trace and span ids as base64; the W3C header as hex.
fn hex_id(base64: &Value) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64.as_str().unwrap_or_default())
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn span_named<'a>(spans: &[&'a Value], name: &str) -> Option<&'a Value> {
    spans.iter().copied().find(|s| s["name"] == name)
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// Traces over OTLP/HTTP (a base URL: `/v1/traces` is added) and metrics over OTLP/gRPC to an `https://` URL with
/// `metric_insecure` (Stoke's own example: plain gRPC whatever the scheme says). A login that carries a W3C
/// `traceparent` becomes a server span of the caller's trace, named by its route, with the status, and with the
/// password hash and the database calls as its children; the request-duration histogram and the login counter
/// arrive with their attributes.
#[tokio::test]
async fn spans_and_metrics_reach_a_collector() {
    let mut collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let (traces, metrics_url) = (
        format!("http://127.0.0.1:{}", collector.http),
        format!("https://127.0.0.1:{}", collector.grpc),
    );
    let server = start_with_tester(
        dir.path(),
        1,
        &[
            ("TESSERA__TELEMETRY__TRACE_PROVIDER", "http"),
            ("TESSERA__TELEMETRY__TRACE_EXPORT_URL", &traces),
            ("TESSERA__TELEMETRY__METRIC_PROVIDER", "grpc"),
            ("TESSERA__TELEMETRY__METRIC_EXPORTER_URL", &metrics_url),
            ("TESSERA__TELEMETRY__METRIC_INSECURE", "true"),
            ("TESSERA__SECURITY__PASSWORD_HASH__MEMORY_KIB", "256"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
        ],
    );
    let client = reqwest::Client::new();
    let login = client
        .post(server.url("/api/login"))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&json!({ "username": "tester", "password": "tester" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "{}", server.tail());
    let refused = client
        .post(server.url("/api/login"))
        .json(&json!({ "username": "tester", "password": "wrong" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let exports = collector.until("login span with its children", |e| {
        let spans = spans(e, "http");
        spans.iter().filter(|s| s["name"] == "POST /api/login").count() >= 2
            && span_named(&spans, "password hash").is_some()
    });
    let spans = spans(exports, "http");
    let request = spans
        .iter()
        .copied()
        .find(|s| s["name"] == "POST /api/login" && hex_id(&s["traceId"]) == TRACE_ID)
        .unwrap_or_else(|| panic!("no span in the caller's trace: {spans:#?}"));
    assert_eq!(hex_id(&request["parentSpanId"]), CALLER_SPAN);
    assert_eq!(request["kind"], "SPAN_KIND_SERVER");
    assert_eq!(
        attribute(request, "http.route"),
        Some(&json!({ "stringValue": "/api/login" }))
    );
    assert_eq!(
        attribute(request, "http.request.method"),
        Some(&json!({ "stringValue": "POST" }))
    );
    assert_eq!(
        attribute(request, "http.response.status_code"),
        Some(&json!({ "intValue": "200" }))
    );
    let children: Vec<&str> = spans
        .iter()
        .filter(|s| s["parentSpanId"] == request["spanId"] && s["traceId"] == request["traceId"])
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(children.contains(&"password hash"), "{children:?}");
    assert!(children.iter().any(|c| c.starts_with("db")), "{children:?}");
    // The refused login started a trace of its own (it sent no traceparent).
    let other = spans
        .iter()
        .find(|s| s["name"] == "POST /api/login" && hex_id(&s["traceId"]) != TRACE_ID)
        .unwrap();
    assert_eq!(
        attribute(other, "http.response.status_code"),
        Some(&json!({ "intValue": "401" }))
    );
    assert!(other.get("parentSpanId").is_none_or(|p| p == ""), "{other}");
    // Nothing of the password is in any span.
    assert!(
        !serde_json::to_string(&spans).unwrap().contains("tester\""),
        "{spans:#?}"
    );

    let exports = collector.until("request histogram and login counter", |e| {
        let m = metrics(e, "grpc");
        m.iter().any(|m| m["name"] == "http.server.request.duration") && m.iter().any(|m| m["name"] == "tessera.logins")
    });
    let metrics = metrics(exports, "grpc");
    let duration = metrics
        .iter()
        .find(|m| m["name"] == "http.server.request.duration")
        .unwrap();
    assert_eq!(duration["unit"], "s");
    let points = duration["histogram"]["dataPoints"].as_array().unwrap();
    assert!(
        points.iter().any(
            |p| attribute(p, "http.route") == Some(&json!({ "stringValue": "/api/login" }))
                && attribute(p, "http.response.status_code") == Some(&json!({ "intValue": "401" }))
        ),
        "{points:#?}"
    );
    let logins = metrics.iter().rev().find(|m| m["name"] == "tessera.logins").unwrap();
    let outcomes: Vec<&Value> = logins["sum"]["dataPoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| attribute(p, "outcome"))
        .collect();
    assert!(outcomes.contains(&&json!({ "stringValue": "success" })), "{logins:#}");
    let resource =
        &exports.iter().find(|e| e["signal"] == "metrics").unwrap()["body"]["resourceMetrics"][0]["resource"];
    assert_eq!(
        attribute(resource, "service.name"),
        Some(&json!({ "stringValue": "tessera" }))
    );
}

/// Traces over OTLP/gRPC to an `http://` URL and metrics over OTLP/HTTP to a full URL; a malformed `traceparent`
/// starts a new trace rather than failing the request; and what is still queued at SIGTERM is sent before the
/// process exits.
#[tokio::test]
async fn grpc_traces_and_a_flush_at_shutdown() {
    let mut collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let (traces, metrics_url) = (
        format!("http://127.0.0.1:{}", collector.grpc),
        format!("http://127.0.0.1:{}/v1/metrics", collector.http),
    );
    let mut server = start_with_tester(
        dir.path(),
        1,
        &[
            ("TESSERA__TELEMETRY__TRACE_PROVIDER", "grpc"),
            ("TESSERA__TELEMETRY__TRACE_EXPORT_URL", &traces),
            ("TESSERA__TELEMETRY__METRIC_PROVIDER", "http"),
            ("TESSERA__TELEMETRY__METRIC_EXPORTER_URL", &metrics_url),
            // Nothing leaves on a timer here: only the flush at shutdown can send it.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "600000"),
        ],
    );
    assert!(
        server.tail().contains("exporting traces over OTLP/gRPC"),
        "{}",
        server.tail()
    );
    let client = reqwest::Client::new();
    for traceparent in [
        "00-zz-not-a-trace-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    ] {
        let resp = client
            .get(server.url("/healthz"))
            .header("traceparent", traceparent)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        collector.seen.is_empty() && collector.exports.try_recv().is_err(),
        "sent before shutdown"
    );
    server.signal("TERM");
    let status = server.wait();
    assert!(status.success(), "{}", server.tail());

    let exports = collector.until("the spans and metrics flushed at shutdown", |e| {
        spans(e, "grpc").iter().filter(|s| s["name"] == "GET /healthz").count() >= 2
            && metrics(e, "http")
                .iter()
                .any(|m| m["name"] == "http.server.request.duration")
    });
    for span in spans(exports, "grpc").iter().filter(|s| s["name"] == "GET /healthz") {
        let trace = hex_id(&span["traceId"]);
        assert!(trace.len() == 32 && trace != "0".repeat(32), "{span}");
        assert!(span.get("parentSpanId").is_none_or(|p| p == ""), "{span}");
    }
}
