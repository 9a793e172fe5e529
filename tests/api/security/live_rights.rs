//! Admin rights end when the user's rights end: a deleted, demoted or session-revoked admin loses admin access
//! within 5 s on every replica, although its access token is still valid (other resource servers accept it
//! until `exp`; the admin API reads the session and the letters from the database).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use super::expect;
use crate::admin::{PASSWORD, admin_app, call, id_of, token};
use crate::db_test;
use crate::helpers::{TestApp, spawn_on_url};

/// Polls `path` with `token` on `app` until it answers `status`; fails after 5 s.
async fn within_5s(app: &TestApp, token: &str, method: Method, path: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = call(app, Some(token), method.clone(), path, None)
            .await
            .status()
            .as_u16();
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{method} {path} still answers {got}, not {status}, after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

db_test!(admins_lose_access_when_deleted_demoted_or_revoked, async |db| {
    let app = admin_app(db, |_| {}).await.unwrap();
    let replica = spawn_on_url(&app.db_url, tempfile::tempdir().unwrap(), |_| {}, None, None).await;
    let s = token(&app, "user_S").await;
    let (u, g, c) = (
        token(&app, "user_U").await,
        token(&app, "user_G").await,
        token(&app, "user_C").await,
    );
    let su = token(&app, "user_sU").await;
    // Every token works on both replicas, and both cache what they read.
    for node in [&app, &replica] {
        for t in [&u, &g, &c, &su] {
            expect(
                call(node, Some(t), Method::GET, "/api/admin/totals", None).await,
                200,
                "",
            )
            .await;
        }
    }

    // Deleted: its token would still create users.
    let id = id_of(&app, &s, "users", "username", "user_U").await;
    expect(
        call(&app, Some(&s), Method::DELETE, &format!("/api/admin/users/{id}"), None).await,
        204,
        "",
    )
    .await;
    let create =
        json!({"fname": "", "lname": "", "username": "ghost", "email": "ghost@example.com", "password": PASSWORD});
    let resp = call(
        &app,
        Some(&u),
        Method::POST,
        "/api/admin/localuser",
        Some(create.clone()),
    )
    .await;
    expect(resp, 401, "unauthenticated").await;
    within_5s(&replica, &u, Method::GET, "/api/admin/totals", 401).await;
    let resp = call(&replica, Some(&u), Method::POST, "/api/admin/localuser", Some(create)).await;
    expect(resp, 401, "unauthenticated").await;

    // Demoted: removed from its letter's group, it keeps its session but not the letter.
    let id = id_of(&app, &s, "users", "username", "user_G").await;
    let path = format!("/api/admin/users/{id}");
    expect(
        call(
            &replica,
            Some(&s),
            Method::PATCH,
            &path,
            Some(json!({"claim_groups": []})),
        )
        .await,
        200,
        "",
    )
    .await;
    within_5s(&app, &g, Method::GET, "/api/admin/claim-groups", 403).await;
    within_5s(&replica, &g, Method::GET, "/api/admin/claim-groups", 403).await;

    // Sessions revoked by an admin.
    let id = id_of(&app, &s, "users", "username", "user_C").await;
    let path = format!("/api/admin/users/{id}/sessions");
    expect(call(&app, Some(&s), Method::DELETE, &path, None).await, 204, "").await;
    within_5s(&app, &c, Method::GET, "/api/admin/claims", 401).await;
    within_5s(&replica, &c, Method::GET, "/api/admin/claims", 401).await;

    // Sessions ended by the user's own password change.
    let resp = app
        .client
        .post(app.url("/api/password/change"))
        .bearer_auth(&su)
        .json(&json!({"old_password": PASSWORD, "new_password": "another-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    within_5s(&app, &su, Method::GET, "/api/admin/users", 401).await;
    within_5s(&replica, &su, Method::GET, "/api/admin/users", 401).await;

    // The token itself is still a valid token: only the admin API (Tessera's own resource server) says no.
    let me = app.client.get(app.url("/api/me")).bearer_auth(&g).send().await.unwrap();
    assert_eq!(me.status(), 200);
});
