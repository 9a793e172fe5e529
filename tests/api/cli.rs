//! The `tessera` binary itself: validate, hash-password, migrate, serve.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

pub fn tessera(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env_remove("RUST_LOG").env_remove("TESSERA_CONFIG");
    for (k, _) in std::env::vars() {
        if k.starts_with("TESSERA__") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn validate_stoke_config_exits_zero_with_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path())
        .args(["validate", "-config"])
        .arg(crate::helpers::repo_path("tests/fixtures/stoke-config.yaml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("metric_export_url") && stderr.contains("metric_exporter_url"),
        "{stderr}"
    );
    assert!(stderr.contains("skip_certificate_verification"), "{stderr}");
    assert!(stdout.contains("bind_user_password: '[redacted]'"), "{stdout}");
    assert!(
        !stdout.contains("GoodNewsEveryone") && !stdout.contains("pass\n"),
        "secret printed"
    );
}

#[test]
fn validate_lists_every_problem_and_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "tokens:\n  algorithm: HS256\n  key_duration: 3x\ndatabase:\n  type: oracle\n",
    )
    .unwrap();
    let out = tessera(dir.path())
        .arg("validate")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for key in ["tokens.algorithm", "tokens.key_duration", "database.type"] {
        assert!(
            stderr.contains(&format!("bad.yaml: {key}:")),
            "{key} missing in {stderr}"
        );
    }
}

#[test]
fn broken_yaml_and_missing_file_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, "server:\n  port: [8080\n").unwrap();
    let out = tessera(dir.path())
        .arg("validate")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.yaml: not valid YAML"));
    let out = tessera(dir.path())
        .args(["validate", "--config", "nope.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.yaml: cannot read config file"));
}

#[test]
fn validate_strict_refuses_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path())
        .args(["validate", "--strict", "--config"])
        .arg(crate::helpers::repo_path("tests/fixtures/stoke-config.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn hash_password_output_works_in_a_dbinit_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tessera(dir.path())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"correct horse\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.lines().find(|l| l.starts_with("password_hash:")).unwrap();

    // Paste it into a dbinit file, apply it with `migrate`, and check the stored hash verifies.
    let dbinit = dir.path().join("init.yaml");
    std::fs::write(&dbinit, format!("users:\n  - username: horse\n    {line}\n")).unwrap();
    let out = tessera(dir.path())
        .arg("migrate")
        .arg("--dbinit")
        .arg(&dbinit)
        .env("TESSERA__LOGGING__WRITE_TO_STDOUT", "false")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stored: String = {
        use diesel::prelude::*;
        use tessera::db::schema::users;
        let mut conn =
            diesel::sqlite::SqliteConnection::establish(dir.path().join("tessera.db").to_str().unwrap()).unwrap();
        users::table
            .filter(users::username.eq("horse"))
            .select(users::password_hash)
            .first::<Option<String>>(&mut conn)
            .unwrap()
            .unwrap()
    };
    let hasher = tessera::crypto::password::Hasher::new(&Default::default()).unwrap();
    let verdict = hasher.verify("correct horse", tessera::crypto::password::Stored::Phc(&stored));
    assert_eq!(verdict, tessera::crypto::password::Verdict::Right);

    // `migrate` made every algorithm's key ahead, so `serve` starts with the whole ring.
    let mut algs: Vec<String> = {
        use diesel::prelude::*;
        use tessera::db::schema::signing_keys;
        let mut conn =
            diesel::sqlite::SqliteConnection::establish(dir.path().join("tessera.db").to_str().unwrap()).unwrap();
        signing_keys::table
            .select(signing_keys::algorithm)
            .load(&mut conn)
            .unwrap()
    };
    algs.sort();
    assert_eq!(algs, ["ES256", "RS256"]);
}

#[test]
fn hash_password_stoke_format() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tessera(dir.path())
        .args(["hash-password", "--stoke"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap()
            .to_string()
    };
    let (hash, salt) = (field("password_hash"), field("password_salt"));
    assert_eq!(hash.len(), 88);
    assert_eq!(salt.len(), 44);
    let hasher = tessera::crypto::password::Hasher::new(&Default::default()).unwrap();
    let stored = tessera::crypto::password::Stored::Stoke {
        hash: &hash,
        salt: &salt,
    };
    assert_eq!(
        hasher.verify("pw", stored),
        tessera::crypto::password::Verdict::RightNeedsRehash
    );
}

#[test]
fn unreachable_database_and_bad_dbinit_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path())
        .arg("migrate")
        .env("TESSERA__DATABASE__URL", "postgres://nobody@127.0.0.1:1/none")
        .env("TESSERA__DATABASE__CONNECT_TIMEOUT", "300ms")
        .env("TESSERA__LOGGING__WRITE_TO_STDOUT", "false")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("database.url"), "{stderr}");

    let dbinit = dir.path().join("init.yaml");
    std::fs::write(&dbinit, "users:\n  - username: x\n    groups: [Ghosts]\n").unwrap();
    let out = tessera(dir.path())
        .arg("migrate")
        .arg("-dbinit")
        .arg(&dbinit)
        .env("TESSERA__LOGGING__WRITE_TO_STDOUT", "false")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("init.yaml") && stderr.contains("\"Ghosts\""),
        "{stderr}"
    );
}

/// With no config file at all: SQLite `tessera.db`, a superuser printed once, `/healthz`, and a graceful
/// exit 0 on SIGTERM.
#[test]
fn serve_with_no_config_and_stop_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tessera(dir.path())
        .env("TESSERA__SERVER__PORT", "0")
        .env("TESSERA__LOGGING__PRETTY_STDOUT", "false")
        .env("TESSERA__SECURITY__PASSWORD_HASH__MEMORY_KIB", "256")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (port, lines) = listening_port(&mut child).expect("server did not start");
    let passwords: Vec<String> = lines.iter().filter_map(|l| bootstrap_password(l)).collect();
    assert_eq!(
        passwords.len(),
        1,
        "the superuser password is printed once, as a JSON line: {lines:?}"
    );
    // Every line of a JSON log is JSON, the password's too; the listening line says where and what.
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{lines:?}"
    );
    let listening: serde_json::Value = lines
        .iter()
        .find(|l| l.contains("tessera listening"))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap();
    let f = &listening["fields"];
    assert_eq!(f["url"], format!("http://127.0.0.1:{port}/"));
    assert_eq!(f["console"], format!("http://127.0.0.1:{port}/admin/"));
    assert_eq!(f["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(f["config"], "none: defaults");
    assert!(f["database"].as_str().unwrap().starts_with("sqlite "), "{f}");
    let key_line = lines.iter().find(|l| l.contains("signing key created")).unwrap();
    let sign_from: serde_json::Value = serde_json::from_str(key_line).unwrap();
    assert!(
        sign_from["fields"]["sign_from"].as_str().unwrap().ends_with('Z'),
        "RFC 3339: {key_line}"
    );
    assert!(dir.path().join("tessera.db").exists());
    let body = reqwest::blocking_get(&format!("http://127.0.0.1:{port}/healthz"));
    assert_eq!(body, "{\"status\":\"ok\"}");
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Reads a `serve` child's stdout (JSON logs) until its "tessera listening" line: the port, and the lines before.
/// `None` after 30 s without one.
/// The bootstrap superuser's password from its JSON line on stdout.
pub fn bootstrap_password(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    (v["target"] == "tessera::bootstrap").then(|| v["fields"]["password"].as_str().map(str::to_string))?
}

pub fn listening_port(child: &mut std::process::Child) -> Option<(u16, Vec<String>)> {
    let stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let listening = line.contains("tessera listening");
        lines.push(line);
        if listening {
            let v: serde_json::Value = serde_json::from_str(lines.last()?).ok()?;
            return Some((u16::try_from(v["fields"]["port"].as_u64()?).ok()?, lines));
        }
    }
    None
}

mod reqwest {
    /// A tiny blocking GET for the CLI tests (which run outside any async runtime).
    pub fn blocking_get(url: &str) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { ::reqwest::get(url).await.unwrap().text().await.unwrap() })
    }
}

/// `validate` reads the dbinit files `serve` would apply and refuses a bad one, naming the file and the problem;
/// a good one passes.
#[test]
fn validate_checks_the_dbinit_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "groups:\n  - { name: G, claims: [Nope] }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("good.yaml"),
        "groups:\n  - { name: G, credentials: [password] }\n",
    )
    .unwrap();
    let out = tessera(dir.path())
        .args(["--dbinit", "bad.yaml", "validate"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("error: dbinit file bad.yaml") && stderr.contains("\"Nope\""),
        "{stderr}"
    );
    assert!(!stderr.contains("configuration is valid"), "{stderr}");
    let out = tessera(dir.path())
        .args(["--dbinit", "good.yaml", "validate"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tessera(dir.path())
        .args(["--dbinit", "missing.yaml", "validate"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a dbinit file that serve cannot read passed validate"
    );
}

/// `validate` reads the email templates `serve` would use: a template without its subject line fails it, naming
/// the file.
#[test]
fn validate_checks_the_email_templates() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(templates.join("password_reset.txt"), "no subject line\n").unwrap();
    std::fs::write(dir.path().join("config.yaml"), "email:\n  templates_dir: templates\n").unwrap();
    let out = tessera(dir.path())
        .args(["--config", "config.yaml", "validate"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("error: email:") && stderr.contains("password_reset.txt"),
        "{stderr}"
    );
    std::fs::write(
        templates.join("password_reset.txt"),
        "Subject: Reset\n\nHello {{username}}: {{link}}\n",
    )
    .unwrap();
    let out = tessera(dir.path())
        .args(["--config", "config.yaml", "validate"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `--dbinit` is offered where it does something (serve, migrate, validate; before or after the command) and
/// refused where it would be silently ignored.
#[test]
fn dbinit_is_offered_only_where_it_does_something() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["hash-password", "import-stoke"] {
        let help = tessera(dir.path()).args([command, "--help"]).output().unwrap();
        assert!(!String::from_utf8_lossy(&help.stdout).contains("--dbinit"), "{command}");
    }
    for command in ["serve", "migrate", "validate"] {
        let help = tessera(dir.path()).args([command, "--help"]).output().unwrap();
        assert!(String::from_utf8_lossy(&help.stdout).contains("--dbinit"), "{command}");
    }
    let out = tessera(dir.path())
        .args(["--dbinit", "init.yaml", "import-stoke", "--from", "stoke.db"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dbinit does nothing here"));
    assert!(!dir.path().join("tessera.db").exists(), "nothing was touched");
    // After the command, as before it, for validate.
    std::fs::write(dir.path().join("init.yaml"), "users:\n  - { username: ann }\n").unwrap();
    for args in [
        ["validate", "--dbinit", "init.yaml"],
        ["--dbinit", "init.yaml", "validate"],
    ] {
        let out = tessera(dir.path()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = tessera(dir.path())
        .args(["validate", "--dbinit", "missing.yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
