//! The documented example config and Stoke's own config must load.

use tessera::config::load;

#[test]
fn repository_config_yaml_loads_without_warnings() {
    let path = crate::helpers::repo_path("config.yaml");
    let loaded = load(Some(&path), Vec::new(), true).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // The documented values are the defaults.
    let defaults = serde_yaml_ng::to_value(tessera::config::Config::default()).unwrap();
    let documented = serde_yaml_ng::to_value(&loaded.config).unwrap();
    assert_eq!(documented, defaults, "config.yaml must document the defaults");
}

#[test]
fn stoke_example_config_loads_with_warnings_for_misspelt_keys() {
    let path = crate::helpers::repo_path("tests/fixtures/stoke-config.yaml");
    let loaded = load(Some(&path), Vec::new(), false).unwrap_or_else(|e| panic!("{e}"));
    let unknown: Vec<&str> = loaded
        .warnings
        .iter()
        .filter(|w| w.message.starts_with("unknown key"))
        .map(|w| w.key.as_str())
        .collect();
    assert_eq!(
        unknown,
        vec!["telemetry.metric_export_url", "users.skip_certificate_verification"]
    );
    let c = loaded.config;
    assert_eq!(c.server.timeout.0.as_millis(), 1000);
    assert!(!c.tokens.include_issued_at, "YAML 1.1 `no`");
    assert_eq!(c.tokens.jws_algorithm(), Ok("ES256"));
    // The flat LDAP keys become one provider.
    assert_eq!(c.users.providers.len(), 1);
    assert_eq!(c.users.providers[0].ldap.server_url, "ldap://localhost:10389");
    assert_eq!(
        c.users.providers[0].ldap.bind_user_password.expose(),
        "GoodNewsEveryone"
    );
    // Strict mode refuses the misspelt keys.
    assert!(load(Some(&path), Vec::new(), true).is_err());
}

#[test]
fn provider_dir_and_missing_dirs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("corp.yaml"),
        "type: ldap\nserver_url: ldaps://ldap.example:636\nuser_search_root: ou=people,dc=example\n",
    )
    .unwrap();
    let text = format!(
        "users:\n  provider_config_dir: {}\n  user_init_dir: /nonexistent/init\n",
        dir.path().display()
    );
    let loaded = tessera::config::load_from_str(&text, "t.yaml", Vec::new(), false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.config.users.providers.len(), 1);
    assert_eq!(loaded.config.users.providers[0].name, "corp");

    let text = "users:\n  provider_config_dir: /nonexistent/providers.d\n";
    let loaded = tessera::config::load_from_str(text, "t.yaml", Vec::new(), false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(loaded.warnings[0].key, "users.provider_config_dir");
}
