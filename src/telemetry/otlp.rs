//! OpenTelemetry export over OTLP (Stoke's `telemetry` keys): traces, one server span per request with child
//! spans for the password hash, the database and the directory, the caller's W3C `traceparent` adopted as
//! parent; and metrics, the request-duration histogram of the semantic conventions plus the counters and gauges
//! of `/metrics`. Both leave on background threads of the SDK (the batch span processor, the periodic metric
//! reader), so a slow or absent collector costs requests nothing: spans past the queue are dropped.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{ExporterBuildError, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;

use crate::config::{OtlpExport, OtlpProtocol, TelemetryConfig};
use crate::metrics::{Gauges, Metrics};

/// The target of the child spans, which only the OTLP layer takes (no log line shows them).
pub const TARGET: &str = "tessera::otel";

/// The request-duration histogram, when metrics are exported (set once, at start).
static REQUEST_DURATION: OnceLock<Histogram<f64>> = OnceLock::new();
/// Whether spans are exported (set once, at start): requests then get a span the SDK can name and parent.
static TRACING: OnceLock<()> = OnceLock::new();

/// The running exporters; [`Exporters::shutdown`] sends what is still queued.
#[derive(Default)]
pub struct Exporters {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    /// What is exported where, for the log once the subscriber is in place.
    pub described: Vec<String>,
}

impl Exporters {
    /// Starts the exporters `cfg` asks for. Must run inside the Tokio runtime the gRPC connections will live on.
    pub fn start(cfg: &TelemetryConfig) -> Result<Exporters, String> {
        let traces = cfg.traces().map_err(|(key, msg)| format!("{key}: {msg}"))?;
        let metrics = cfg.metrics().map_err(|(key, msg)| format!("{key}: {msg}"))?;
        let mut out = Exporters::default();
        if traces.is_none() && metrics.is_none() {
            return Ok(out);
        }
        let resource = resource();
        if let Some(export) = traces {
            let exporter = span_exporter(&export).map_err(|e| format!("telemetry.trace_export_url: {e}"))?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource.clone())
                .build();
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            let _ = TRACING.set(());
            out.described.push(describe("traces", &export));
            out.tracer = Some(provider);
        }
        if let Some(export) = metrics {
            let exporter = metric_exporter(&export).map_err(|e| format!("telemetry.metric_exporter_url: {e}"))?;
            let provider = SdkMeterProvider::builder()
                .with_reader(PeriodicReader::builder(exporter).build())
                .with_resource(resource)
                .build();
            let duration = provider
                .meter("tessera")
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP server requests.")
                .with_boundaries(crate::metrics::BUCKETS.to_vec())
                .build();
            let _ = REQUEST_DURATION.set(duration);
            out.described.push(describe("metrics", &export));
            out.meter = Some(provider);
        }
        Ok(out)
    }

    /// The tracing layer that turns the request spans and their children into OTLP spans.
    pub fn layer<S>(&self) -> Option<Box<dyn Layer<S> + Send + Sync>>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
    {
        let tracer = self.tracer.as_ref()?.tracer("tessera");
        let only_ours = filter_fn(|meta| {
            meta.is_span()
                && (meta.target() == TARGET || (meta.name() == "request" && meta.target().starts_with("tessera")))
        });
        Some(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                // What a span is, not where the code that made it runs.
                .with_location(false)
                .with_threads(false)
                .with_target(false)
                .with_tracked_inactivity(false)
                .with_filter(only_ours)
                .boxed(),
        )
    }

    /// Registers the counters and gauges of `/metrics` as observable instruments, read at each export: the
    /// outcomes in `metrics`, and what `gauges` reads from the running server.
    pub fn observe(&self, metrics: Arc<Metrics>, gauges: impl Fn() -> Gauges + Send + Sync + 'static) {
        let Some(provider) = &self.meter else { return };
        let meter = provider.meter("tessera");
        type Pick = fn(&Metrics) -> &crate::metrics::Outcomes;
        let outcomes: [(&'static str, &'static str, &'static str, Pick); 5] = [
            ("tessera.logins", "Logins by outcome.", "outcome", |m| &m.logins),
            ("tessera.refreshes", "Refreshes by outcome.", "outcome", |m| {
                &m.refreshes
            }),
            (
                "tessera.oauth.tokens",
                "OAuth token requests by grant, or refused.",
                "outcome",
                |m| &m.oauth_tokens,
            ),
            (
                "tessera.throttled",
                "Requests refused by a limit, by reason.",
                "reason",
                |m| &m.throttled,
            ),
            ("tessera.mfa.codes", "Second-factor codes by outcome.", "outcome", |m| {
                &m.mfa_codes
            }),
        ];
        for (name, help, label, pick) in outcomes {
            let metrics = metrics.clone();
            meter
                .u64_observable_counter(name)
                .with_description(help)
                .with_callback(move |observer| {
                    for (value, n) in pick(&metrics).snapshot() {
                        observer.observe(n, &[KeyValue::new(label, value)]);
                    }
                })
                .build();
        }
        type Read = fn(&Gauges) -> u64;
        let gauges: Arc<dyn Fn() -> Gauges + Send + Sync> = Arc::new(gauges);
        let counters: [(&'static str, &'static str, Read); 2] = [
            ("tessera.key_rotations", "Signing keys created by this process.", |g| {
                g.key_rotations
            }),
            ("tessera.password_hashes", "Password hashes computed.", |g| {
                g.password_hashes
            }),
        ];
        for (name, help, read) in counters {
            let gauges = gauges.clone();
            meter
                .u64_observable_counter(name)
                .with_description(help)
                .with_callback(move |observer| observer.observe(read(&gauges()), &[]))
                .build();
        }
        let levels: [(&'static str, &'static str, Read); 4] = [
            ("tessera.hash_queue.depth", "Password checks queued or running.", |g| {
                g.hash_queue_depth as u64
            }),
            ("tessera.signing_keys", "Keys in the published key ring.", |g| {
                g.signing_keys as u64
            }),
            (
                "tessera.db.connections.in_use",
                "Pooled database connections in use.",
                |g| u64::from(g.db_connections_in_use),
            ),
            (
                "tessera.db.connections.idle",
                "Pooled database connections idle.",
                |g| u64::from(g.db_connections_idle),
            ),
        ];
        for (name, help, read) in levels {
            let gauges = gauges.clone();
            meter
                .u64_observable_gauge(name)
                .with_description(help)
                .with_callback(move |observer| observer.observe(read(&gauges()), &[]))
                .build();
        }
    }

    /// Sends what is queued and stops the export threads (each waits at most a few seconds for its collector).
    pub fn shutdown(self) {
        if let Some(tracer) = self.tracer
            && let Err(e) = tracer.shutdown_with_timeout(Duration::from_secs(5))
        {
            tracing::warn!(error = %e, "trace export did not finish");
        }
        if let Some(meter) = self.meter
            && let Err(e) = meter.shutdown_with_timeout(Duration::from_secs(5))
        {
            tracing::warn!(error = %e, "metric export did not finish");
        }
    }
}

/// Whether requests get exported spans.
pub fn tracing_on() -> bool {
    TRACING.get().is_some()
}

/// Counts one request in the exported duration histogram (nothing when metrics are not exported).
pub fn record_request(method: &'static str, route: &str, status: u16, elapsed: Duration) {
    if let Some(histogram) = REQUEST_DURATION.get() {
        histogram.record(
            elapsed.as_secs_f64(),
            &[
                KeyValue::new("http.request.method", method),
                KeyValue::new("http.route", route.to_string()),
                KeyValue::new("http.response.status_code", i64::from(status)),
            ],
        );
    }
}

/// Names an exported request span by its route (`POST /api/login`) and records the status (5xx an error).
pub fn finish(span: &tracing::Span, method: &'static str, route: &str, status: u16) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if !tracing_on() {
        return;
    }
    let cx = span.context();
    let otel = cx.span();
    otel.update_name(format!("{method} {route}"));
    otel.set_attribute(KeyValue::new("http.route", route.to_string()));
    otel.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
    if status >= 500 {
        otel.set_status(opentelemetry::trace::Status::error(format!("status {status}")));
    }
}

/// Makes the caller's W3C trace context (`traceparent`, `tracestate`) the parent of `span`, when it sent a valid
/// one; a malformed header is ignored (a new trace starts), as the standard asks.
pub fn adopt_parent(span: &tracing::Span, headers: &actix_web::http::header::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    struct Headers<'a>(&'a actix_web::http::header::HeaderMap);
    impl opentelemetry::propagation::Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    let _ = span.set_parent(parent);
}

/// `span` (a child span for work worth seeing in a trace) to enter on another thread, or the current span when
/// `span` is disabled (traces not exported), so log lines there keep their request.
pub fn child(span: tracing::Span) -> tracing::Span {
    if span.is_disabled() {
        tracing::Span::current()
    } else {
        span
    }
}

fn resource() -> Resource {
    let builder = Resource::builder().with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    // OTEL_SERVICE_NAME, when set, names the service (the SDK reads it); else "tessera".
    if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
        builder.build()
    } else {
        builder.with_service_name("tessera").build()
    }
}

/// What one signal's export is, for the log.
fn describe(signal: &str, export: &OtlpExport) -> String {
    let protocol = match export.protocol {
        OtlpProtocol::Grpc => "gRPC",
        OtlpProtocol::Http => "HTTP",
    };
    let endpoint = export
        .endpoint
        .as_deref()
        .unwrap_or("OTEL_EXPORTER_OTLP_ENDPOINT or the OTLP default");
    format!("{signal} over OTLP/{protocol} to {endpoint}")
}

fn span_exporter(export: &OtlpExport) -> Result<opentelemetry_otlp::SpanExporter, ExporterBuildError> {
    let builder = opentelemetry_otlp::SpanExporter::builder();
    match export.protocol {
        OtlpProtocol::Grpc => grpc(builder.with_tonic(), export).build(),
        OtlpProtocol::Http => http(builder.with_http(), export).build(),
    }
}

fn metric_exporter(export: &OtlpExport) -> Result<opentelemetry_otlp::MetricExporter, ExporterBuildError> {
    let builder = opentelemetry_otlp::MetricExporter::builder();
    match export.protocol {
        OtlpProtocol::Grpc => grpc(builder.with_tonic(), export).build(),
        OtlpProtocol::Http => http(builder.with_http(), export).build(),
    }
}

/// A gRPC exporter of either signal: the endpoint, and TLS when it is `https://`.
fn grpc<B: WithExportConfig + WithTonicConfig>(builder: B, export: &OtlpExport) -> B {
    let builder = match &export.endpoint {
        Some(endpoint) => builder.with_endpoint(endpoint),
        None => builder,
    };
    if export.tls() {
        builder.with_tls_config(tls())
    } else {
        builder
    }
}

/// An HTTP exporter of either signal: protobuf bodies to the endpoint.
fn http<B: WithExportConfig>(builder: B, export: &OtlpExport) -> B {
    let builder = builder.with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
    match &export.endpoint {
        Some(endpoint) => builder.with_endpoint(endpoint),
        None => builder,
    }
}

/// TLS to a gRPC collector: the system's trusted roots.
fn tls() -> opentelemetry_otlp::tonic_types::transport::ClientTlsConfig {
    opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new().with_native_roots()
}
