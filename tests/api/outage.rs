//! The database goes away under load and comes back: requests that need it answer 503 with `Retry-After` (never
//! hang, never 500), keys keep being served from memory, `/readyz` says so, and service resumes by itself.
//! Runs on the test script's own PostgreSQL cluster (`TESSERA_TEST_OUTAGE_PG_URL`), which it may stop.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::spawn_on_url;

fn ctl(action: &str) {
    let cmd = std::env::var("TESSERA_TEST_OUTAGE_PG_CTL").unwrap();
    let mut parts = cmd.split_whitespace();
    let status = Command::new(parts.next().unwrap())
        .args(parts)
        .arg(action)
        .status()
        .unwrap();
    assert!(status.success(), "{cmd} {action} failed");
}

#[tokio::test]
async fn database_outage_and_recovery() {
    let Ok(base) = std::env::var("TESSERA_TEST_OUTAGE_PG_URL") else {
        eprintln!("skipped: TESSERA_TEST_OUTAGE_PG_URL is not set");
        return;
    };
    // A fresh database on the outage cluster.
    let name = format!("tessera_t_{:016x}", rand::random::<u64>());
    let url = tokio::task::spawn_blocking({
        let (base, name) = (base.clone(), name.clone());
        move || {
            use diesel::Connection;
            use diesel::connection::SimpleConnection;
            let mut conn = diesel::pg::PgConnection::establish(&base).unwrap();
            conn.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
            format!("{}/{name}", base.rsplit_once('/').unwrap().0)
        }
    })
    .await
    .unwrap();
    let app = spawn_on_url(
        &url,
        tempfile::tempdir().unwrap(),
        |c| c.database.connect_timeout = tessera::config::GoDuration(Duration::from_millis(500)),
        None,
        None,
    )
    .await;
    let password = app.superuser_password.clone().unwrap();
    let (_, refresh) = app.login_ok("sadmin", &password).await;

    ctl("stop");
    let during = while_down(&app, &password, &refresh).await;
    ctl("start");
    let back = Instant::now();
    if let Err(e) = during {
        panic!("{e}");
    }

    // Recovery without restarting Tessera.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if app.get("/readyz").await.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = back.elapsed();
    app.login_ok("sadmin", &password).await;
    // The figure issue #7 asks for (printed with --nocapture): from the database answering again (pg_ctl start
    // returned) to /readyz 200, and to a completed login.
    eprintln!(
        "recovered: /readyz 200 after {ready:?}, a login done after {:?}",
        back.elapsed()
    );
}

/// The checks made while the database is down; errors are returned, not panicked, so the cluster is always
/// started again.
async fn while_down(app: &crate::helpers::TestApp, password: &str, refresh: &str) -> Result<(), String> {
    for path in ["/api/login", "/api/refresh"] {
        let body = if path == "/api/login" {
            serde_json::json!({"username": "sadmin", "password": password})
        } else {
            serde_json::json!({"refresh": refresh})
        };
        let started = Instant::now();
        let resp = app.post_json(path, &body).await;
        let elapsed = started.elapsed();
        if resp.status() != 503 || !resp.headers().contains_key("retry-after") {
            return Err(format!("{path}: {} {:?}", resp.status(), resp.headers()));
        }
        if elapsed > Duration::from_secs(5) {
            return Err(format!("{path} took {elapsed:?}"));
        }
        let body: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
        if body["error"] != "database_unavailable" {
            return Err(format!("{path}: {body}"));
        }
    }
    let ready = app.get("/readyz").await.status();
    let jwks = app.get("/.well-known/jwks.json").await.status();
    let pkeys = app.get("/api/pkeys").await.status();
    if (ready.as_u16(), jwks.as_u16(), pkeys.as_u16()) != (503, 200, 200) {
        return Err(format!(
            "readyz {ready}, jwks {jwks}, pkeys {pkeys} (want 503, 200, 200)"
        ));
    }
    Ok(())
}
