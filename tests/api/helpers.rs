//! `spawn_app()`: the real server, in-process, on port 0, with its own fresh database.

// Helpers serve every test module; not each uses all of them.
#![allow(dead_code)]

use std::path::PathBuf;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use std::sync::Arc;

use tessera::clock::Clock;
use tessera::config::{Config, PasswordHashConfig, Secret};
use tessera::startup::Application;
use tessera::state::AppState;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestDb {
    Sqlite,
    Postgres,
    Mysql,
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub superuser_password: Option<String>,
    pub state: actix_web::web::Data<AppState>,
    pub db_url: String,
    pub dir: tempfile::TempDir,
    server: actix_web::dev::ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sent at once; the server's thread finishes the stop.
        drop(self.server.stop(false));
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request failed")
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request failed")
    }
}

/// A configuration for tests: small argon2 parameters (tests only), a database of the given kind.
pub fn test_config(db_url: &str) -> Config {
    let mut config = Config::default();
    config.server.address = "127.0.0.1".into();
    config.server.port = 0;
    config.server.workers = 2;
    config.database.url = Secret::new(db_url);
    config.logging.write_to_stdout = false;
    config.security.password_hash = PasswordHashConfig {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    // Load tests refresh from one address far faster than a client would; tests/api/throttle.rs turns it on.
    config.security.rate_limits.refresh.burst = 0;
    config
}

/// A fresh, empty database of the given kind; `None` when that backend is not configured for this run.
pub fn fresh_database(db: TestDb, dir: &std::path::Path) -> Option<String> {
    let name = format!("tessera_t_{:016x}", rand::random::<u64>());
    match db {
        TestDb::Sqlite => Some(format!("sqlite://{}", dir.join("tessera.db").display())),
        TestDb::Postgres => {
            let base = std::env::var("TESSERA_TEST_POSTGRES_URL").ok()?;
            let mut conn = diesel::pg::PgConnection::establish(&base)
                .unwrap_or_else(|e| panic!("TESSERA_TEST_POSTGRES_URL is set but unreachable: {e}"));
            conn.batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("create database");
            Some(replace_db_name(&base, &name))
        }
        TestDb::Mysql => {
            let base = std::env::var("TESSERA_TEST_MYSQL_URL").ok()?;
            create_mysql_database(&base, &name);
            Some(replace_db_name(&base, &name))
        }
    }
}

#[cfg(feature = "mysql")]
fn create_mysql_database(base: &str, name: &str) {
    let mut conn = diesel::mysql::MysqlConnection::establish(base)
        .unwrap_or_else(|e| panic!("TESSERA_TEST_MYSQL_URL is set but unreachable: {e}"));
    conn.batch_execute(&format!(
        "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    ))
    .expect("create database");
}

#[cfg(not(feature = "mysql"))]
fn create_mysql_database(_base: &str, _name: &str) {
    panic!("TESSERA_TEST_MYSQL_URL is set but the tests were built without --features mysql");
}

/// `scheme://user@host:port/olddb?x` → `scheme://user@host:port/newdb?x`.
fn replace_db_name(url: &str, name: &str) -> String {
    let (head, query) = url.split_once('?').map(|(h, q)| (h, Some(q))).unwrap_or((url, None));
    let scheme_end = head.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Boots the server on `db` with the test configuration, changed by `tweak`. `None`: backend not configured.
pub async fn spawn_app_with(db: TestDb, tweak: impl FnOnce(&mut Config), dbinit: Option<PathBuf>) -> Option<TestApp> {
    spawn_app_full(db, tweak, dbinit, None).await
}

/// Like [`spawn_app_with`], with a clock the test controls.
pub async fn spawn_app_full(
    db: TestDb,
    tweak: impl FnOnce(&mut Config),
    dbinit: Option<PathBuf>,
    clock: Option<Arc<dyn Clock>>,
) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_path = dir.path().to_path_buf();
    let db_url = tokio::task::spawn_blocking(move || fresh_database(db, &dir_path))
        .await
        .expect("fresh database")?;
    Some(spawn_on_url(&db_url, dir, tweak, dbinit, clock).await)
}

/// Boots another server on an existing database (a replica, or a restart).
pub async fn spawn_on_url(
    db_url: &str,
    dir: tempfile::TempDir,
    tweak: impl FnOnce(&mut Config),
    dbinit: Option<PathBuf>,
    clock: Option<Arc<dyn Clock>>,
) -> TestApp {
    let mut config = test_config(db_url);
    tweak(&mut config);
    let app = match clock {
        Some(clock) => Application::build_with_clock(config, dbinit, clock).await,
        None => Application::build(config, dbinit).await,
    };
    let app = app.expect("application failed to build");
    let port = app.port();
    let superuser_password = app.superuser_password.clone();
    let state = app.state();
    let server = app.handle();
    // The key ring's other algorithms (RS256 by default) are made in the background right after start-up;
    // tests see the whole ring, as a client does a moment after start.
    for _ in 0..500 {
        if state.keys.is_whole() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // On a thread of its own, so the stop sent when the TestApp drops is carried out even though the test's
    // runtime ends with the test: otherwise every server (and its pool) outlived its test, and the suite ran
    // PostgreSQL out of connections.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        if let Ok(runtime) = runtime {
            let _ = runtime.block_on(app.run_until_stopped());
        }
    });
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::new(),
        superuser_password,
        state,
        db_url: db_url.to_string(),
        dir,
        server,
    }
}

pub async fn spawn_app(db: TestDb) -> Option<TestApp> {
    spawn_app_with(db, |_| {}, None).await
}

/// Runs one test body on one backend, or says it was skipped.
pub async fn run_on(db: TestDb, body: impl AsyncFnOnce(TestDb)) {
    let configured = match db {
        TestDb::Sqlite => true,
        TestDb::Postgres => std::env::var("TESSERA_TEST_POSTGRES_URL").is_ok(),
        TestDb::Mysql => std::env::var("TESSERA_TEST_MYSQL_URL").is_ok(),
    };
    if configured {
        body(db).await;
    } else {
        eprintln!("skipped: {db:?} is not configured for this run");
    }
}

/// Declares one test per backend: `db_test!(name, async |db| { … })`.
#[macro_export]
macro_rules! db_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                $crate::helpers::run_on($crate::helpers::TestDb::Sqlite, $body).await
            }
            #[tokio::test]
            async fn postgres() {
                $crate::helpers::run_on($crate::helpers::TestDb::Postgres, $body).await
            }
            #[tokio::test]
            async fn mysql() {
                $crate::helpers::run_on($crate::helpers::TestDb::Mysql, $body).await
            }
        }
    };
}

/// The repository's root, for fixtures and the example files.
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

impl TestApp {
    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/login",
            &serde_json::json!({ "username": username, "password": password }),
        )
        .await
    }

    /// Logs in and returns (token, refresh), failing the test on anything but 200.
    pub async fn login_ok(&self, username: &str, password: &str) -> (String, String) {
        let resp = self.login(username, password).await;
        assert_eq!(resp.status(), 200, "login of {username} failed");
        let body: serde_json::Value = resp.json().await.unwrap();
        (
            body["token"].as_str().unwrap().to_string(),
            body["refresh"].as_str().unwrap().to_string(),
        )
    }

    pub async fn refresh(&self, refresh: &str) -> reqwest::Response {
        self.post_json("/api/refresh", &serde_json::json!({ "refresh": refresh }))
            .await
    }
}

/// The claims of a JWT, read without verification (tests check signatures separately).
pub fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The header of a JWT.
pub fn header_of(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let header = token.split('.').next().expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON header")
}

/// The Python of the test script's venv (`TESSERA_TEST_OAUTH_PYTHON`, else its default place): PyJWT, pyotp and
/// the OAuth clients are installed there.
pub fn venv_python() -> String {
    std::env::var("TESSERA_TEST_OAUTH_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/tessera/oauth-venv/bin/python")
    })
}

/// Runs a script of `tests/interop` with `python`, `input` as JSON on stdin; fails the test unless it exits 0,
/// and returns the JSON it prints.
pub async fn run_json_script(python: String, script: &str, input: serde_json::Value) -> serde_json::Value {
    let script = repo_path(&format!("tests/interop/{script}"));
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(&python)
            .arg(&script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python} (the test script installs it): {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}
