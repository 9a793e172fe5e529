//! GET /metrics: Prometheus text with request, login and refresh counters; optional authentication.

use crate::helpers::{TestDb, repo_path, spawn_app_with};

#[tokio::test]
async fn counts_requests_logins_and_refreshes() {
    let app = spawn_app_with(
        TestDb::Sqlite,
        |_| {},
        Some(repo_path("tests/fixtures/stoke-dbinit.yaml")),
    )
    .await
    .unwrap();
    let (_, refresh) = app.login_ok("tester", "tester").await;
    assert_eq!(app.login("tester", "wrong").await.status(), 401);
    assert_eq!(app.refresh(&refresh).await.status(), 200);
    assert_eq!(app.get("/api/admin/users/123").await.status(), 401);
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    for line in [
        r#"tessera_http_requests_total{method="POST",route="/api/login",status="200"} 1"#,
        r#"tessera_http_requests_total{method="POST",route="/api/login",status="401"} 1"#,
        r#"tessera_http_requests_total{method="GET",route="/api/admin/users/{id}",status="401"} 1"#,
        r#"tessera_logins_total{outcome="success"} 1"#,
        r#"tessera_logins_total{outcome="failure"} 1"#,
        r#"tessera_refreshes_total{outcome="ok"} 1"#,
        r#"tessera_http_request_duration_seconds_count{method="POST",route="/api/refresh"} 1"#,
        "tessera_hash_queue_depth 0",
        "tessera_signing_keys 2",
        "tessera_key_rotations_total 2",
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
    // The standard process series (of this test process, which runs the server) and the version.
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    assert!(value("process_cpu_seconds_total") > 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value("process_start_time_seconds");
    assert!(started <= now + 1.0 && started > now - 3600.0, "{started} vs {now}");
    let build = format!("tessera_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    assert!(text.contains(&build), "{text}");
    assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
}

#[tokio::test]
async fn authentication_and_disabling() {
    let app = spawn_app_with(
        TestDb::Sqlite,
        |c| c.telemetry.require_prometheus_authentication = true,
        Some(repo_path("tests/fixtures/stoke-dbinit.yaml")),
    )
    .await
    .unwrap();
    assert_eq!(app.get("/metrics").await.status(), 401);
    let (tester, _) = app.login_ok("tester", "tester").await;
    let get = |t: String| app.client.get(app.url("/metrics")).bearer_auth(t).send();
    assert_eq!(get(tester).await.unwrap().status(), 403);
    let (admin, _) = app.login_ok("stoke", "admin").await;
    assert_eq!(get(admin).await.unwrap().status(), 200);

    let off = spawn_app_with(TestDb::Sqlite, |c| c.telemetry.disable_monitoring = true, None)
        .await
        .unwrap();
    assert_eq!(off.get("/metrics").await.status(), 404);
}
