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
