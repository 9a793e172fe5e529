//! POST /api/refresh: rotation, reuse detection, limits, lifetimes, claims re-read, one winner.

use std::sync::Arc;

use diesel::prelude::*;
use serde_json::{Value, json};
use tessera::clock::ManualClock;
use tessera::db::schema::{refresh_families, refresh_tokens, user_claim_groups, users};

use crate::db_test;
use crate::helpers::{TestApp, TestDb, claims_of, repo_path, spawn_app_full, spawn_app_with};

fn stoke_init() -> Option<std::path::PathBuf> {
    Some(repo_path("tests/fixtures/stoke-dbinit.yaml"))
}

async fn with_clock(db: TestDb, tweak: impl FnOnce(&mut tessera::config::Config)) -> (TestApp, ManualClock) {
    let clock = ManualClock::new();
    let app = spawn_app_full(db, tweak, stoke_init(), Some(Arc::new(clock.clone())))
        .await
        .unwrap();
    (app, clock)
}

async fn pair(resp: reqwest::Response) -> (String, String) {
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    (
        body["token"].as_str().unwrap().to_string(),
        body["refresh"].as_str().unwrap().to_string(),
    )
}

fn family_revoked(app: &TestApp) -> Vec<Option<String>> {
    refresh_families::table
        .select(refresh_families::revoked_reason)
        .load(&mut *app.state.db.get().unwrap())
        .unwrap()
}

db_test!(rotation_grace_and_reuse_detection, async |db| {
    let (app, clock) = with_clock(db, |_| {}).await;
    let (_, r0) = app.login_ok("tester", "tester").await;
    let resp = app.refresh(&r0).await;
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let (t1, r1) = pair(resp).await;
    assert_ne!(r1, r0);
    assert_eq!(claims_of(&t1)["test"], "acc");

    // A racing tab replays r0 within the grace: same successor, nobody logged out.
    clock.advance(5);
    let (t1b, r1b) = pair(app.refresh(&r0).await).await;
    assert_eq!((t1b, r1b.clone()), (t1.clone(), r1.clone()));

    // After the grace, a replay of r0 is theft: 401 and the whole family is revoked.
    clock.advance(10);
    let replay = app.refresh(&r0).await;
    assert_eq!(replay.status(), 401);
    assert_eq!(replay.text().await.unwrap(), "{}");
    assert_eq!(family_revoked(&app), vec![Some("reuse".to_string())]);
    let audited: i64 = tessera::db::schema::audit_log::table
        .filter(tessera::db::schema::audit_log::action.eq("refresh.reuse_detected"))
        .count()
        .get_result(&mut *app.state.db.get().unwrap())
        .unwrap();
    assert_eq!(audited, 1, "reuse is audited");
    assert_eq!(
        app.refresh(&r1).await.status(),
        401,
        "the successor dies with its family"
    );
});

db_test!(claims_are_reread_and_deleted_users_cannot_refresh, async |db| {
    let app = spawn_app_with(db, |_| {}, stoke_init()).await.unwrap();
    let (_, r0) = app.login_ok("tester", "tester").await;
    let tester: i64 = users::table
        .filter(users::username.eq("tester"))
        .select(users::id)
        .first(&mut *app.state.db.get().unwrap())
        .unwrap();
    diesel::delete(user_claim_groups::table.filter(user_claim_groups::user_id.eq(tester)))
        .execute(&mut *app.state.db.get().unwrap())
        .unwrap();
    let (t1, r1) = pair(app.refresh(&r0).await).await;
    assert!(
        claims_of(&t1).get("test").is_none(),
        "removed from the group, the claim is gone"
    );
    diesel::delete(users::table.find(tester))
        .execute(&mut *app.state.db.get().unwrap())
        .unwrap();
    assert_eq!(app.refresh(&r1).await.status(), 401);
});

db_test!(refresh_limit_and_lifetimes, async |db| {
    let (app, clock) = with_clock(db, |c| {
        c.tokens.token_refresh_limit = 2;
        c.tokens.token_refresh_count_key = "rc".into();
        c.tokens.refresh_idle_timeout = tessera::config::GoDuration::from_secs(600);
        c.tokens.refresh_max_age = tessera::config::GoDuration::from_secs(1000);
    })
    .await;
    let (_, r0) = app.login_ok("tester", "tester").await;
    let (t1, r1) = pair(app.refresh(&r0).await).await;
    assert_eq!(claims_of(&t1)["rc"], "1");
    let (_, r2) = pair(app.refresh(&r1).await).await;
    assert_eq!(app.refresh(&r2).await.status(), 401, "limit of 2 reached");

    // Idle timeout: 600 s without a refresh ends the session.
    let (_, r) = app.login_ok("tester", "tester").await;
    clock.advance(601);
    assert_eq!(app.refresh(&r).await.status(), 401);

    // Absolute age: refreshed often, still ends after 1000 s.
    let (_, mut r) = app.login_ok("tester", "tester").await;
    for _ in 0..2 {
        clock.advance(400);
        r = pair(app.refresh(&r).await).await.1;
    }
    clock.advance(400);
    assert_eq!(app.refresh(&r).await.status(), 401);
});

db_test!(concurrent_refreshes_have_one_winner, async |db| {
    let app = spawn_app_with(db, |c| c.database.max_connections = 8, stoke_init())
        .await
        .unwrap();
    let (_, r0) = app.login_ok("tester", "tester").await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (client, url, r0) = (app.client.clone(), app.url("/api/refresh"), r0.clone());
            tokio::spawn(async move { client.post(url).json(&json!({"refresh": r0})).send().await.unwrap() })
        })
        .collect();
    let mut successors = std::collections::HashSet::new();
    for task in tasks {
        let (_, r) = pair(task.await.unwrap()).await;
        successors.insert(r);
    }
    assert_eq!(successors.len(), 1, "every racer gets the same successor");
    let tokens: i64 = refresh_tokens::table
        .count()
        .get_result(&mut *app.state.db.get().unwrap())
        .unwrap();
    assert_eq!(tokens, 2, "one original, one successor");
});

#[tokio::test]
async fn bearer_and_garbage_tokens() {
    let (app, clock) = with_clock(TestDb::Sqlite, |_| {}).await;
    let (t0, r0) = app.login_ok("tester", "tester").await;
    let refresh_with = |bearer: String, refresh: String| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/refresh"))
                .bearer_auth(bearer)
                .json(&json!({ "refresh": refresh }))
                .send()
                .await
                .unwrap()
        }
    };
    // A forged bearer is refused even with a good refresh token.
    let mut forged = t0.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    assert_eq!(refresh_with(forged, r0.clone()).await.status(), 401);
    // An expired but genuine bearer is fine.
    clock.advance(3600);
    let (_, r1) = pair(refresh_with(t0, r0).await).await;
    for garbage in ["", "short", "x".repeat(43).as_str(), &r1[..42], &format!("{r1}=")] {
        let resp = app.refresh(garbage).await;
        assert_eq!(resp.status(), 401, "{garbage:?}");
        assert_eq!(resp.text().await.unwrap(), "{}");
    }
    let resp = app.post_json("/api/refresh", &json!({"refresh": 12})).await;
    assert_eq!(resp.status(), 400);
    let resp = app.post_json("/api/refresh", &json!({})).await;
    assert_eq!(resp.status(), 400);
}
