//! Loading configurations: defaults, YAML 1.1, environment overrides, every problem reported.

use super::load::*;

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

#[test]
fn empty_file_gives_defaults() {
    let loaded = load_from_str("", "t", no_env(), false).map_err(|e| e.to_string());
    let loaded = loaded.unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(loaded.config.server.port, 8080);
    assert!(loaded.warnings.is_empty());
}

#[test]
fn yaml11_booleans_and_env_overrides() {
    let text = "tokens:\n  include_issued_at: no\n  persist_keys: on\n";
    let env = vec![
        ("TESSERA__SERVER__PORT".to_string(), "9090".to_string()),
        ("TESSERA__TOKENS__KEY_DURATION".to_string(), "6h".to_string()),
        (
            "TESSERA__SERVER__ALLOWED_HOSTS".to_string(),
            "a.example, b.example".to_string(),
        ),
        ("OTHER".to_string(), "x".to_string()),
    ];
    let loaded = load_from_str(text, "t", env, false).map_err(|e| e.to_string());
    let c = loaded.unwrap_or_else(|e| unreachable!("{e}")).config;
    assert!(!c.tokens.include_issued_at);
    assert!(c.tokens.persist_keys);
    assert_eq!(c.server.port, 9090);
    assert_eq!(c.tokens.key_duration.as_secs(), 6 * 3600);
    assert_eq!(c.server.allowed_hosts, vec!["a.example", "b.example"]);
}

#[test]
fn every_bad_key_is_reported() {
    let text = "server:\n  port: lots\ntokens:\n  key_duration: 3x\n  token_duration: forever\n";
    let err = load_from_str(text, "cfg.yaml", no_env(), false).err();
    let keys: Vec<String> = err
        .map(|e| e.problems.into_iter().map(|p| p.key).collect())
        .unwrap_or_default();
    assert!(keys.contains(&"server.port".to_string()), "{keys:?}");
    assert!(keys.contains(&"tokens.key_duration".to_string()), "{keys:?}");
    assert!(keys.contains(&"tokens.token_duration".to_string()), "{keys:?}");
}

/// An unknown key (or a whole unknown section) that only the environment sets is reported as coming from it.
#[test]
fn unknown_env_keys_name_the_variable() {
    let env = vec![
        ("TESSERA__SERVER__PROTT".to_string(), "1".to_string()),
        ("TESSERA__NOSECTION__X".to_string(), "2".to_string()),
    ];
    let loaded = load_from_str("", "cfg.yaml", env, false).map_err(|e| e.to_string());
    let warnings = loaded.unwrap_or_else(|e| unreachable!("{e}")).warnings;
    let found: Vec<(String, String)> = warnings.into_iter().map(|w| (w.key, w.source)).collect();
    assert_eq!(
        found,
        vec![
            ("nosection".into(), "environment variable TESSERA__NOSECTION__X".into()),
            (
                "server.prott".into(),
                "environment variable TESSERA__SERVER__PROTT".into()
            ),
        ]
    );
}

#[test]
fn env_problems_name_the_variable() {
    let env = vec![("TESSERA__TOKENS__TOKEN_DURATION".to_string(), "soon".to_string())];
    let err = load_from_str("", "cfg.yaml", env, false).err();
    let sources: Vec<String> = err
        .map(|e| e.problems.into_iter().map(|p| p.source).collect())
        .unwrap_or_default();
    assert_eq!(sources, vec!["environment variable TESSERA__TOKENS__TOKEN_DURATION"]);
}

#[test]
fn unknown_keys_warn_with_closest_and_strict_refuses() {
    let text = "telemetry:\n  metric_export_url: x\n";
    let loaded = load_from_str(text, "t", no_env(), false).map_err(|e| e.to_string());
    let warnings = loaded.unwrap_or_else(|e| unreachable!("{e}")).warnings;
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].key, "telemetry.metric_export_url");
    assert!(
        warnings[0].message.contains("metric_exporter_url"),
        "{}",
        warnings[0].message
    );
    assert!(load_from_str(text, "t", no_env(), true).is_err());
}

#[test]
fn broken_yaml_is_one_clear_problem() {
    let err = load_from_str("server: [\n", "bad.yaml", no_env(), false).err();
    let problems = err.map(|e| e.problems).unwrap_or_default();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].to_string().starts_with("bad.yaml: not valid YAML"),
        "{}",
        problems[0]
    );
}

#[test]
fn bad_limits_and_proxies_are_reported() {
    let text = "security:\n  trusted_proxies: [10.0.0.0/8, not-an-address, 10.0.0.0/40]\n  rate_limits:\n    register:\n      burst: 5000\n      period: 1s\n";
    let err = load_from_str(text, "cfg.yaml", no_env(), false).err();
    let keys: Vec<String> = err
        .map(|e| e.problems.into_iter().map(|p| p.key).collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "security.rate_limits.register.period",
            "security.trusted_proxies",
            "security.trusted_proxies"
        ]
    );
}

#[test]
fn authorization_settings_are_checked() {
    let text = "security:\n  admin_rights_cache: 10s\ntokens:\n  user_info:\n    username: stk\n";
    let err = load_from_str(text, "cfg.yaml", no_env(), false).err();
    let keys: Vec<String> = err
        .map(|e| e.problems.into_iter().map(|p| p.key).collect())
        .unwrap_or_default();
    assert!(keys.contains(&"security.admin_rights_cache".to_string()), "{keys:?}");
    assert!(keys.contains(&"tokens.user_info.username".to_string()), "{keys:?}");
}

#[test]
fn a_public_server_with_a_plain_issuer_is_warned_about() {
    let warned = |text: &str| {
        let loaded = load_from_str(text, "cfg.yaml", no_env(), false).map_err(|e| e.to_string());
        let loaded = loaded.unwrap_or_else(|e| unreachable!("{e}"));
        loaded.warnings.iter().any(|w| w.key == "tokens.issuer")
    };
    assert!(warned("server:\n  address: 0.0.0.0\n"));
    assert!(!warned(
        "server:\n  address: 0.0.0.0\ntokens:\n  issuer: https://id.example.com\n"
    ));
    assert!(!warned("server:\n  address: 127.0.0.1\n"));
}

#[test]
fn the_config_file_is_found_in_order() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
    let (a, b) = (dir.path().join("tessera.yaml"), dir.path().join("stoke.yaml"));
    let places = [a.to_str().unwrap_or_default(), b.to_str().unwrap_or_default()];
    assert_eq!(super::locate(None, None, &places), None, "nothing there: the defaults");
    std::fs::write(&b, "").unwrap_or_default();
    assert_eq!(
        super::locate(None, None, &places),
        Some((b.clone(), "found")),
        "Stoke's place"
    );
    std::fs::write(&a, "").unwrap_or_default();
    assert_eq!(
        super::locate(None, None, &places),
        Some((a.clone(), "found")),
        "Tessera's first"
    );
    let named = std::path::PathBuf::from("/nowhere/x.yaml");
    assert_eq!(
        super::locate(None, Some("/nowhere/x.yaml"), &places),
        Some((named.clone(), "TESSERA_CONFIG")),
        "the environment names a file, even a missing one"
    );
    assert_eq!(
        super::locate(Some(&b), Some("/nowhere/x.yaml"), &places),
        Some((b.clone(), "--config"))
    );
}

/// Stoke's telemetry keys as the exporters read them: the provider names the transport, `*_insecure` drops TLS
/// whatever the scheme, an http URL without a path gets the signal's path, and what cannot be a collector is
/// refused naming its key.
#[test]
fn telemetry_keys_become_otlp_exports() {
    use super::{OtlpExport, OtlpProtocol, TelemetryConfig};
    let read = |provider: &str, url: &str, insecure: bool| {
        let t = TelemetryConfig {
            trace_provider: provider.into(),
            trace_export_url: url.into(),
            trace_insecure: insecure,
            metric_provider: provider.into(),
            metric_exporter_url: url.into(),
            metric_insecure: insecure,
            ..TelemetryConfig::default()
        };
        (t.traces(), t.metrics())
    };
    let export = |protocol, endpoint: &str| {
        Ok(Some(OtlpExport {
            protocol,
            endpoint: Some(endpoint.into()),
        }))
    };
    // Stoke's example: grpc to an https URL, insecure.
    let (traces, _) = read("grpc", "https://localhost:4317", true);
    assert_eq!(traces, export(OtlpProtocol::Grpc, "http://localhost:4317"));
    assert!(traces.is_ok_and(|t| t.is_some_and(|t| !t.tls())));
    let (traces, _) = read("GRPC", "https://collector.example:4317/", false);
    assert_eq!(traces, export(OtlpProtocol::Grpc, "https://collector.example:4317"));
    let (traces, metrics) = read("http", "http://127.0.0.1:4318", false);
    assert_eq!(traces, export(OtlpProtocol::Http, "http://127.0.0.1:4318/v1/traces"));
    assert_eq!(metrics, export(OtlpProtocol::Http, "http://127.0.0.1:4318/v1/metrics"));
    let (traces, _) = read("http", "https://otel.example/ingest/traces", false);
    assert_eq!(traces, export(OtlpProtocol::Http, "https://otel.example/ingest/traces"));
    let (traces, _) = read("grpc", "", false);
    assert_eq!(
        traces,
        Ok(Some(OtlpExport {
            protocol: OtlpProtocol::Grpc,
            endpoint: None
        }))
    );
    for off in ["", "none", " None "] {
        assert_eq!(read(off, "http://x:1", false), (Ok(None), Ok(None)));
    }
    let wrong = |provider: &str, url: &str| {
        let (traces, metrics) = read(provider, url, false);
        (traces.err().map(|e| e.0), metrics.err().map(|e| e.0))
    };
    assert_eq!(
        wrong("zipkin", "http://x:1"),
        (Some("telemetry.trace_provider"), Some("telemetry.metric_provider"))
    );
    for url in [
        "localhost:4317",
        "ftp://x:1",
        "http://",
        "http://user:pw@x:1",
        "http://x:1/v1/traces?a=b",
    ] {
        assert_eq!(
            wrong("http", url),
            (
                Some("telemetry.trace_export_url"),
                Some("telemetry.metric_exporter_url")
            ),
            "{url}"
        );
    }
    assert_eq!(
        wrong("grpc", "http://x:4317/v1/traces").0,
        Some("telemetry.trace_export_url")
    );
}

/// A telemetry key the exporters cannot use stops the start (and `validate`), naming the key.
#[test]
fn a_bad_telemetry_key_is_an_error() {
    let err = load_from_str("telemetry:\n  trace_provider: zipkin\n", "cfg.yaml", no_env(), false).err();
    let keys: Vec<String> = err
        .map(|e| e.problems.into_iter().map(|p| p.key).collect())
        .unwrap_or_default();
    assert_eq!(keys, vec!["telemetry.trace_provider"]);
}

/// A value of the wrong kind is described as an operator reads it, not in serde's words ("expected u16").
#[test]
fn wrong_values_are_worded_for_operators() {
    let text = "server:\n  port: lots\n  workers: -1\n  allowed_hosts: 5\ntokens:\n  persist_keys: maybe\nsecurity:\n  login_throttle: 3\n";
    let env = vec![(
        "TESSERA__DATABASE__MAX_CONNECTIONS".to_string(),
        "99999999999".to_string(),
    )];
    let err = load_from_str(text, "cfg.yaml", env, false).err();
    let found: Vec<String> = err
        .map(|e| {
            e.problems
                .into_iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect()
        })
        .unwrap_or_default();
    for line in [
        "server.port: \"lots\" is not a port number (0–65535)",
        "server.workers: -1 is not a whole number, 0 or more",
        "server.allowed_hosts: 5 is not a list",
        "tokens.persist_keys: \"maybe\" is not true or false (yes/no, on/off)",
        "security.login_throttle: 3 is not a section of keys",
        "database.max_connections: 99999999999 is not a whole number from 0 to 4294967295",
    ] {
        assert!(found.iter().any(|f| f == line), "{line} not in {found:#?}");
    }
    assert!(!found.iter().any(|f| f.contains("expected")), "{found:#?}");
}

/// A bare number in a duration means the same in the file and in the environment: seconds (milliseconds for
/// `server.timeout`, as in Stoke).
#[test]
fn bare_durations_read_the_same_from_file_and_environment() {
    let from_file = load_from_str(
        "tokens:\n  token_duration: 45\nserver:\n  timeout: 2500\n",
        "f",
        no_env(),
        false,
    )
    .map_err(|e| e.to_string())
    .unwrap_or_else(|e| unreachable!("{e}"))
    .config;
    let env = vec![
        ("TESSERA__TOKENS__TOKEN_DURATION".to_string(), "45".to_string()),
        ("TESSERA__SERVER__TIMEOUT".to_string(), "2500".to_string()),
    ];
    let from_env = load_from_str("", "f", env, false)
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| unreachable!("{e}"))
        .config;
    for c in [&from_file, &from_env] {
        assert_eq!(c.tokens.token_duration.as_secs(), 45);
        assert_eq!(c.server.timeout.0, std::time::Duration::from_millis(2500));
    }
}
