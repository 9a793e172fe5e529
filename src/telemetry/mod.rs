//! Logging setup: tracing to stdout (pretty or JSON lines) and optionally to `logging.log_file` (JSON lines);
//! with Stoke's `telemetry` keys, also spans to an OTLP collector ([`otlp`]).

pub mod otlp;

use std::fs::OpenOptions;
use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LoggingConfig, TelemetryConfig};

type Boxed = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global subscriber for logging only. `RUST_LOG`, when set, overrides `logging.level`. Calling it
/// twice is harmless (the second call does nothing), which keeps tests simple.
pub fn init(cfg: &LoggingConfig) -> Result<(), String> {
    install(cfg, None)
}

/// [`init`] plus the OTLP exporters `telemetry` asks for (their spans through the same subscriber). Must run
/// inside the Tokio runtime the server runs on; [`otlp::Exporters::shutdown`] flushes them at the end.
pub fn init_with_export(logging: &LoggingConfig, telemetry: &TelemetryConfig) -> Result<otlp::Exporters, String> {
    let exporters = otlp::Exporters::start(telemetry)?;
    install(logging, exporters.layer())?;
    for export in &exporters.described {
        tracing::info!("exporting {export}");
    }
    Ok(exporters)
}

fn install(cfg: &LoggingConfig, export: Option<Boxed>) -> Result<(), String> {
    let level = match cfg.level.to_ascii_lowercase().as_str() {
        "fatal" | "panic" => "error".to_string(),
        "warning" => "warn".to_string(),
        other => other.to_string(),
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},actix_server=warn,r2d2=warn")));

    let stdout = cfg.write_to_stdout.then(|| {
        if cfg.pretty_stdout {
            // Colour only for a person at a terminal, not for a file or a log collector.
            use std::io::IsTerminal as _;
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(std::io::stdout().is_terminal())
                .boxed()
        } else {
            tracing_subscriber::fmt::layer().json().with_current_span(true).boxed()
        }
    });
    let file = if cfg.log_file.is_empty() {
        None
    } else {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.log_file)
            .map_err(|e| format!("logging.log_file: cannot open {}: {e}", cfg.log_file))?;
        Some(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(Mutex::new(f))
                .boxed(),
        )
    };
    // The level applies to the log lines; the OTLP layer has its own filter (the request spans and their
    // children, whatever the level).
    let logs: Boxed = Layer::and_then(stdout, file).with_filter(filter).boxed();
    let _ = tracing_subscriber::registry()
        .with(vec![Some(logs), export].into_iter().flatten().collect::<Vec<_>>())
        .try_init();
    Ok(())
}
