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

/// Every secret has a `<key>_file` form: the file's text (without its trailing newline) becomes the secret;
/// both forms at once, or a file that cannot be read, is a problem naming the `_file` key.
#[test]
fn secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (pg, smtp, bind, oidc) = (
        file("pg", "pg-pw\n"),
        file("smtp", "smtp-pw\n"),
        file("bind", "bind-pw"),
        file("oidc", "oidc-pw\r\n"),
    );
    let text = format!(
        "database:\n  postgres:\n    password_file: {pg}\n  mysql:\n    password_file: {pg}\n\
         email:\n  smtp_password_file: {smtp}\n\
         users:\n  bind_user_password_file: {bind}\n  providers:\n\
         \x20   - {{name: corp, type: ldap, server_url: \"ldap://127.0.0.1:1\", bind_user_password_file: {bind}}}\n\
         \x20   - {{name: up, type: oidc, discovery_url: \"https://op.example/.well-known/openid-configuration\", client_id: c, \
         redirect_uri: \"https://id.example/oidc/up\", client_secret_file: {oidc}}}\n"
    );
    let c = tessera::config::load_from_str(&text, "t.yaml", Vec::new(), false)
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    assert_eq!(c.database.postgres.password.expose(), "pg-pw");
    assert_eq!(c.database.mysql.password.expose(), "pg-pw");
    assert_eq!(c.email.smtp_password.expose(), "smtp-pw");
    assert_eq!(c.users.ldap.bind_user_password.expose(), "bind-pw");
    assert_eq!(c.users.providers[0].ldap.bind_user_password.expose(), "bind-pw");
    assert_eq!(c.users.providers[1].oidc.client_secret.expose(), "oidc-pw");
    // The whole database URL, which may carry a password, from a file too.
    let url = file("url", "postgres://tessera:secret@db.example/tessera\n");
    let c = tessera::config::load_from_str(&format!("database:\n  url_file: {url}\n"), "t.yaml", Vec::new(), false)
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    assert_eq!(c.database.url.expose(), "postgres://tessera:secret@db.example/tessera");

    let both = format!("email:\n  smtp_password: x\n  smtp_password_file: {smtp}\n");
    let err = tessera::config::load_from_str(&both, "t.yaml", Vec::new(), false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("email.smtp_password_file") && err.contains("not both"),
        "{err}"
    );
    let missing = "database:\n  postgres:\n    password_file: /nonexistent/pg\n";
    let err = tessera::config::load_from_str(missing, "t.yaml", Vec::new(), false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("database.postgres.password_file") && err.contains("/nonexistent/pg"),
        "{err}"
    );
}
