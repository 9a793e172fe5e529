//! The files of `deploy/` cannot rot: the systemd unit passes `systemd-analyze verify` and keeps its exposure
//! score low, and the compose layout configures a Tessera that loads without a problem or a warning, behind a
//! proxy it trusts and that balances on its readiness.

use std::process::Command;

use serde_yaml_ng::Value;

use crate::helpers::repo_path;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// The environment a list of `KEY=VALUE` strings sets.
fn pairs(lines: impl IntoIterator<Item = String>) -> Vec<(String, String)> {
    lines
        .into_iter()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

/// Loads the repository's config.yaml with `env` over it, and fails on any problem or warning.
fn loads_cleanly(env: Vec<(String, String)>, what: &str) {
    let text = std::fs::read_to_string(repo_path("config.yaml")).unwrap();
    match tessera::config::load_from_str(&text, "config.yaml", env, true) {
        Ok(loaded) => assert!(loaded.warnings.is_empty(), "{what}: {:?}", loaded.warnings),
        Err(e) => panic!("{what}: {e}"),
    }
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(repo_path("deploy/tessera.service")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/tessera", BIN)).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (scripts/test installs systemd)");
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && complaints.trim().is_empty(), "{complaints}");
    // The exposure score, 0 (locked down) to 100; the unit scores 14 ("1.4 OK").
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        security.status.success(),
        "{}",
        String::from_utf8_lossy(&security.stdout)
    );

    // What the unit sets in the environment configures a valid Tessera (the credential as a real file).
    let secret = dir.path().join("key_encryption_secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef").unwrap();
    let env = pairs(
        unit.lines()
            .filter_map(|l| l.strip_prefix("Environment="))
            .map(|l| l.replace("%d/key_encryption_secret", &secret.display().to_string())),
    );
    assert!(
        env.iter()
            .any(|(k, _)| k == "TESSERA__TOKENS__KEY_ENCRYPTION_SECRET_FILE"),
        "{env:?}"
    );
    assert!(
        env.iter()
            .any(|(k, v)| k == "TESSERA_CONFIG" && v == "/etc/tessera/config.yaml")
    );
    loads_cleanly(
        env.into_iter().filter(|(k, _)| k.starts_with("TESSERA__")).collect(),
        "tessera.service",
    );
}

#[test]
fn the_compose_layout_configures_a_valid_tessera_behind_its_proxy() {
    let text = std::fs::read_to_string(repo_path("deploy/compose.yaml")).unwrap();
    let compose: Value = serde_yaml_ng::from_str(&text).unwrap();
    let services = &compose["services"];
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("key_encryption_secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef").unwrap();
    // Compose's interpolation, as `docker compose config` would do it with the README's .env.
    let interpolate = |v: &str| {
        v.replace("${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}", "pw")
            .replace("${TESSERA_DOMAIN:-localhost}", "localhost")
            .replace("/run/secrets/key_encryption_secret", &secret.display().to_string())
    };
    let mut env = Vec::new();
    for (key, value) in compose["x-tessera"]["environment"].as_mapping().unwrap() {
        let value = match value {
            Value::String(s) => interpolate(s),
            other => serde_yaml_ng::to_string(other).unwrap().trim().to_string(),
        };
        env.push((key.as_str().unwrap().to_string(), value));
    }
    assert!(!env.iter().any(|(_, v)| v.contains("${")), "{env:?}");
    loads_cleanly(env.clone(), "compose.yaml");
    let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());

    // Both replicas are the same Tessera, on the network the proxy is on, and locked down.
    let tessera = &compose["x-tessera"];
    assert_eq!(tessera["read_only"], Value::Bool(true));
    assert_eq!(tessera["cap_drop"][0], "ALL");
    for replica in ["tessera-1", "tessera-2"] {
        assert_eq!(services[replica]["networks"][0], "backend", "{replica}");
    }
    // The database it connects to is the one compose creates.
    let postgres = &services["postgres"]["environment"];
    assert_eq!(
        var("TESSERA__DATABASE__POSTGRES__USER"),
        postgres["POSTGRES_USER"].as_str()
    );
    assert_eq!(
        var("TESSERA__DATABASE__POSTGRES__DATABASE"),
        postgres["POSTGRES_DB"].as_str()
    );
    assert_eq!(var("TESSERA__DATABASE__POSTGRES__HOST"), Some("postgres"));
    // Only the proxy's X-Forwarded-For is believed, and that is the proxy's fixed address.
    let proxy_ip = services["proxy"]["networks"]["backend"]["ipv4_address"].as_str();
    assert_eq!(var("TESSERA__SECURITY__TRUSTED_PROXIES"), proxy_ip);
    let subnet = compose["networks"]["backend"]["ipam"]["config"][0]["subnet"]
        .as_str()
        .unwrap();
    assert!(
        proxy_ip.is_some_and(|ip| ip.starts_with(subnet.trim_end_matches("0/24"))),
        "{subnet}"
    );

    // Caddy balances over both replicas on Tessera's port and takes one out when its /readyz fails.
    let caddy = std::fs::read_to_string(repo_path("deploy/Caddyfile")).unwrap();
    let upstreams = caddy
        .lines()
        .find_map(|l| l.trim().strip_prefix("reverse_proxy "))
        .unwrap();
    let port = tessera::config::Config::default().server.port;
    assert_eq!(
        upstreams.trim_end_matches(" {"),
        format!("tessera-1:{port} tessera-2:{port}")
    );
    assert!(caddy.lines().any(|l| l.trim() == "health_uri /readyz"), "{caddy}");
    assert!(
        services["proxy"]["volumes"][0]
            .as_str()
            .is_some_and(|v| v.starts_with("./Caddyfile:"))
    );
}
