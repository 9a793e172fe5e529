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

/// Stoke's OpenTelemetry keys. Tessera accepts them so Stoke configs load; it exports Prometheus text at
/// `/metrics` and does not push traces or metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    pub trace_provider: String,
    pub trace_export_url: String,
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
