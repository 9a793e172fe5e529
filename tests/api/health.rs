use crate::db_test;

db_test!(healthz_and_readyz_answer, async |db| {
    let app = crate::helpers::spawn_app(db).await.unwrap();
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<serde_json::Value>().await.unwrap()["status"], "ready");
});

#[tokio::test]
async fn unknown_route_is_a_json_404() {
    let app = crate::helpers::spawn_app(crate::helpers::TestDb::Sqlite).await.unwrap();
    let resp = app.get("/no/such/thing").await;
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
}

/// `server.timeout` bounds the whole request: a login whose hash outlasts it is a 503 `timeout`.
#[tokio::test]
async fn a_request_over_the_timeout_is_503() {
    // A hash that costs far more than the 200 ms budget (128 MiB, 4 passes), while the budget stays far above
    // the time to read the request on a loaded machine.
    let slow = tessera::config::PasswordHashConfig {
        memory_kib: 128 * 1024,
        iterations: 4,
        parallelism: 1,
    };
    let phc = tessera::crypto::password::Hasher::new(&slow)
        .unwrap()
        .hash("slow-password")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("init.yaml");
    std::fs::write(
        &init,
        format!("users:\n  - username: slow\n    password_hash: \"{phc}\"\n"),
    )
    .unwrap();
    let app = crate::helpers::spawn_app_with(
        crate::helpers::TestDb::Sqlite,
        |c| c.server.timeout = tessera::config::Millis(std::time::Duration::from_millis(200)),
        Some(init),
    )
    .await
    .unwrap();
    let resp = app.login("slow", "slow-password").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "2");
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["error"], "timeout");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("tessera_http_requests_total{method=\"POST\",route=\"timeout\",status=\"503\"} 1"),
        "{metrics}"
    );
}

/// `HEAD` works on the probes; a known path with a method it does not serve is 405 with `Allow`, an unknown
/// path 404.
#[tokio::test]
async fn head_on_probes_and_405_with_allow() {
    let app = crate::helpers::spawn_app(crate::helpers::TestDb::Sqlite).await.unwrap();
    for path in ["/healthz", "/readyz"] {
        let resp = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    for (method, path, allow) in [
        (reqwest::Method::DELETE, "/healthz", "GET, HEAD"),
        (reqwest::Method::GET, "/api/login", "POST"),
        (reqwest::Method::PUT, "/api/admin/users/42", "DELETE, GET, PATCH"),
    ] {
        let resp = app.client.request(method.clone(), app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "method_not_allowed");
    }
    let resp = app.client.get(app.url("/api/nothing/here")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = app.client.put(app.url("/api/admin/users/")).send().await.unwrap();
    assert_eq!(resp.status(), 404, "an empty segment is no id");
}
