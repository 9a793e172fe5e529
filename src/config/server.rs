//! The `server`, `logging`, `telemetry` and `cluster` sections.

use serde::{Deserialize, Serialize};

use super::{GoDuration, Millis};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Address to listen on. Absent: 127.0.0.1. Empty (as in Stoke's example): every interface.
    pub address: String,
    pub port: u16,
    /// Whole-request budget (headers, body, work); a bare integer is milliseconds, as in Stoke. 0: none.
    pub timeout: Millis,
    pub tls_private_key: String,
    pub tls_public_cert: String,
    pub disable_admin: bool,
    /// Origins allowed by CORS; `*` allows any.
    pub allowed_hosts: Vec<String>,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Largest accepted JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_timeout: GoDuration,
    /// Stoke's URL prefix for running behind a proxy; Tessera serves at the root and only reports it.
    pub base_path: String,
    /// The public base URL (e.g. `https://auth.example.com`) for discovery documents; empty: from the request.
    pub public_url: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            address: "127.0.0.1".into(),
            port: 8080,
            timeout: Millis(std::time::Duration::from_secs(10)),
            tls_private_key: String::new(),
            tls_public_cert: String::new(),
            disable_admin: false,
            allowed_hosts: Vec::new(),
            workers: 0,
            max_body_bytes: 64 * 1024,
            shutdown_timeout: GoDuration::from_secs(30),
            base_path: String::new(),
            public_url: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LoggingConfig {
    /// trace, debug, info, warn or error.
    pub level: String,
    /// Also write JSON lines to this file (created if missing).
    pub log_file: String,
    /// Human-readable stdout; otherwise JSON lines.
    pub pretty_stdout: bool,
    pub write_to_stdout: bool,
    /// One `info` line per request (method, route, status, latency, request id).
    pub access_log: bool,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
            log_file: String::new(),
            pretty_stdout: true,
            write_to_stdout: true,
            access_log: true,
        }
    }
}

impl LoggingConfig {
    /// Whether stdout carries JSON lines (so whatever else goes there must be JSON too).
    pub fn json_stdout(&self) -> bool {
        self.write_to_stdout && !self.pretty_stdout
    }
}

/// Stoke's OpenTelemetry keys: traces and metrics pushed over OTLP (gRPC or HTTP with protobuf bodies) when a
/// provider is set, besides the Prometheus text at `/metrics`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// `grpc`, `http`, or `none`/empty (no trace export).
    pub trace_provider: String,
    /// The collector: for `grpc` its `http(s)://host:port`, for `http` its base URL (`/v1/traces` is added to a
    /// URL without a path) or the full URL. Empty: `OTEL_EXPORTER_OTLP_*_ENDPOINT`, else the OTLP default.
    pub trace_export_url: String,
    /// No TLS, even to an `https://` URL (as Stoke's exporter does).
    pub trace_insecure: bool,
    pub metric_provider: String,
    pub metric_exporter_url: String,
    pub metric_insecure: bool,
    /// Disables `/metrics`.
    pub disable_monitoring: bool,
    /// Requires a token with `stk` m or S to read `/metrics`.
    pub require_prometheus_authentication: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            trace_provider: "none".into(),
            trace_export_url: String::new(),
            trace_insecure: false,
            metric_provider: "none".into(),
            metric_exporter_url: String::new(),
            metric_insecure: false,
            disable_monitoring: false,
            require_prometheus_authentication: false,
        }
    }
}

/// The OTLP transport of a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    /// HTTP with protobuf bodies (`application/x-protobuf`).
    Http,
}

/// Where and how one signal (traces or metrics) is exported: what [`TelemetryConfig::traces`] and
/// [`TelemetryConfig::metrics`] make of Stoke's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpExport {
    pub protocol: OtlpProtocol,
    /// `None`: the exporter's own (the `OTEL_EXPORTER_OTLP_*` variables, else `localhost:4317`/`4318`).
    pub endpoint: Option<String>,
}

impl OtlpExport {
    /// Whether the connection is made over TLS.
    pub fn tls(&self) -> bool {
        self.endpoint.as_deref().is_some_and(|e| e.starts_with("https://"))
    }
}

impl TelemetryConfig {
    /// The trace export, if `trace_provider` asks for one; `Err` names the key that is wrong, and why.
    pub fn traces(&self) -> Result<Option<OtlpExport>, (&'static str, String)> {
        let keys = ("telemetry.trace_provider", "telemetry.trace_export_url");
        otlp_export(
            keys,
            &self.trace_provider,
            &self.trace_export_url,
            self.trace_insecure,
            "/v1/traces",
        )
    }

    /// The metric export, if `metric_provider` asks for one.
    pub fn metrics(&self) -> Result<Option<OtlpExport>, (&'static str, String)> {
        let keys = ("telemetry.metric_provider", "telemetry.metric_exporter_url");
        otlp_export(
            keys,
            &self.metric_provider,
            &self.metric_exporter_url,
            self.metric_insecure,
            "/v1/metrics",
        )
    }
}

/// One signal's keys (named by `keys`: the provider's, the URL's) read as Stoke meant them: the provider names
/// the transport; an `http` URL without a path gets the signal's standard path; `insecure` drops TLS whatever the
/// scheme says.
fn otlp_export(
    (provider_key, url_key): (&'static str, &'static str),
    provider: &str,
    url: &str,
    insecure: bool,
    signal_path: &str,
) -> Result<Option<OtlpExport>, (&'static str, String)> {
    let bad_url = |msg: String| (url_key, msg);
    let protocol = match provider.trim().to_ascii_lowercase().as_str() {
        "" | "none" => return Ok(None),
        "grpc" => OtlpProtocol::Grpc,
        "http" => OtlpProtocol::Http,
        other => return Err((provider_key, format!("{other:?} is not one of grpc, http, none"))),
    };
    let url = url.trim();
    if url.is_empty() {
        return Ok(Some(OtlpExport {
            protocol,
            endpoint: None,
        }));
    }
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(scheme, _)| matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https"))
        .ok_or_else(|| bad_url(format!("{url:?} is not an http:// or https:// URL")))?;
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
        return Err(bad_url(format!(
            "{url:?} is not a collector URL (scheme, host, port and, for http, a path)"
        )));
    }
    let scheme = if insecure {
        "http".to_string()
    } else {
        scheme.to_ascii_lowercase()
    };
    let path = match protocol {
        OtlpProtocol::Grpc if path.is_empty() || path == "/" => "",
        OtlpProtocol::Grpc => return Err(bad_url(format!("{url:?}: a gRPC collector URL has no path"))),
        OtlpProtocol::Http if path.is_empty() || path == "/" => signal_path,
        OtlpProtocol::Http => path,
    };
    Ok(Some(OtlpExport {
        protocol,
        endpoint: Some(format!("{scheme}://{authority}{path}")),
    }))
}

/// Settings for several replicas. Tessera replicas share one key ring through their common database, so
/// Stoke's peer federation keys (`enabled`, `discovery`, `static_peers`, `refresh_sec`, `instance_id`) are
/// accepted for compatibility and not needed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    pub enabled: bool,
    pub discovery: String,
    pub static_peers: Vec<String>,
    pub refresh_sec: u64,
    pub instance_id: String,
    /// How often each replica re-reads the shared key ring (and takes its turn to rotate).
    pub key_check_interval: GoDuration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            discovery: "static".into(),
            static_peers: Vec::new(),
            refresh_sec: 30,
            instance_id: String::new(),
            key_check_interval: GoDuration::from_secs(10),
        }
    }
}
