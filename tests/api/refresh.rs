//! POST /api/refresh: rotation, reuse detection, limits, lifetimes, claims re-read, one winner.

use std::sync::Arc;

use diesel::prelude::*;
use serde_json::{Value, json};
use tessera::clock::{Clock, ManualClock};
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
    let mut conn = app.state.db.get().unwrap();
    let generations: Vec<i64> = refresh_families::table
        .select(refresh_families::refresh_count)
        .load(&mut *conn)
        .unwrap();
    assert_eq!(generations, vec![1], "one rotation, in the family's one row");
    let tokens: i64 = refresh_tokens::table.count().get_result(&mut *conn).unwrap();
    assert_eq!(tokens, 0, "no row per token");
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
    for garbage in [
        "",
        "short",
        "x".repeat(43).as_str(),
        &r1[..r1.len() - 1],
        &format!("{r1}="),
    ] {
        let resp = app.refresh(garbage).await;
        assert_eq!(resp.status(), 401, "{garbage:?}");
        assert_eq!(resp.text().await.unwrap(), "{}");
    }
    let resp = app.post_json("/api/refresh", &json!({"refresh": 12})).await;
    assert_eq!(resp.status(), 400);
    let resp = app.post_json("/api/refresh", &json!({})).await;
    assert_eq!(resp.status(), 400);
}

/// The family id of a refresh token of the current form.
fn family_id(refresh: &str) -> String {
    refresh.split('.').next().unwrap().to_string()
}

db_test!(tokens_within_the_grace_reach_the_current_pair, async |db| {
    let (app, clock) = with_clock(db, |_| {}).await;
    let (_, r0) = app.login_ok("tester", "tester").await;
    let mut chain = vec![r0];
    let mut current = (String::new(), String::new());
    for _ in 0..4 {
        current = pair(app.refresh(chain.last().unwrap()).await).await;
        chain.push(current.1.clone());
        clock.advance(1);
    }
    // Every token used within the grace, up to four generations back, gets the current pair: a tab that was
    // behind catches up, as it would have by replaying each successor in turn.
    for (back, old) in chain[..4].iter().rev().enumerate() {
        assert_eq!(pair(app.refresh(old).await).await, current, "{} back", back + 1);
    }
    assert_eq!(family_revoked(&app), vec![None]);
    // One more generation: r0 is now five back, beyond the kept grace: a reuse.
    let (_, r5) = pair(app.refresh(&current.1).await).await;
    assert_eq!(app.refresh(&chain[0]).await.status(), 401);
    assert_eq!(family_revoked(&app), vec![Some("reuse".to_string())]);
    assert_eq!(app.refresh(&r5).await.status(), 401);
});

db_test!(a_token_that_only_names_a_session_revokes_nothing, async |db| {
    let (app, clock) = with_clock(db, |_| {}).await;
    let (t0, r0) = app.login_ok("tester", "tester").await;
    let family = family_id(&r0);
    // The access token names the session (sid); anyone who saw it can write a token of an older generation.
    assert_eq!(claims_of(&t0)["sid"], family.as_str());
    let (_, r1) = pair(app.refresh(&r0).await).await;
    let (_, r2) = pair(app.refresh(&r1).await).await;
    clock.advance(60);
    let body = r0.rsplit('.').next().unwrap();
    let mut flipped = body.to_string();
    flipped.replace_range(..1, if body.starts_with('A') { "B" } else { "A" });
    for forged in [
        format!("{family}.0.{flipped}"),
        format!("{family}.1.{body}"),
        format!("{family}.5.{body}"),
    ] {
        assert_eq!(app.refresh(&forged).await.status(), 401, "{forged}");
        let resp = app.post_json("/api/logout", &json!({ "refresh": forged })).await;
        assert_eq!(resp.status(), 204);
    }
    assert_eq!(
        family_revoked(&app),
        vec![None],
        "neither a refresh nor a logout ended the session"
    );
    let (_, r3) = pair(app.refresh(&r2).await).await;
    // A genuine old token does end it.
    let resp = app.post_json("/api/logout", &json!({ "refresh": r0 })).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(family_revoked(&app), vec![Some("logout".to_string())]);
    assert_eq!(app.refresh(&r3).await.status(), 401);
});

db_test!(
    tokens_from_before_generations_refresh_once_into_the_new_form,
    async |db| {
        let (app, clock) = with_clock(db, |_| {}).await;
        // A session as the old layout stored it: a family row without digest, its token a `refresh_tokens` row.
        let (_, fresh) = app.login_ok("tester", "tester").await;
        let mut conn = app.state.db.get().unwrap();
        let user: i64 = refresh_families::table
            .select(refresh_families::user_id)
            .get_result(&mut *conn)
            .unwrap();
        diesel::delete(refresh_families::table).execute(&mut *conn).unwrap();
        assert_eq!(app.refresh(&fresh).await.status(), 401);
        let now = clock.now();
        let family = tessera::db::refresh::FamilyRow {
            id: "0123456789abcdef0123456789abcdef".into(),
            user_id: user,
            created_at: now,
            last_used_at: now,
            expires_at: now + 3600,
            refresh_count: 3,
            filter_claims: None,
            revoked_at: None,
            revoked_reason: None,
            client_id: None,
            scope: None,
            credential_kind: "password".into(),
            api_key_id: None,
            second_factor: None,
        };
        diesel::insert_into(refresh_families::table)
            .values(&family)
            .execute(&mut *conn)
            .unwrap();
        let legacy = "L".repeat(43);
        diesel::insert_into(refresh_tokens::table)
            .values((
                refresh_tokens::token_hash.eq(tessera::services::tokens::refresh_hash(&legacy)),
                refresh_tokens::family_id.eq(&family.id),
                refresh_tokens::created_at.eq(now),
            ))
            .execute(&mut *conn)
            .unwrap();
        drop(conn);

        let (t1, r1) = pair(app.refresh(&legacy).await).await;
        assert!(r1.starts_with(&format!("{}.4.", family.id)), "{r1}");
        assert_eq!(claims_of(&t1)["sid"], family.id.as_str());
        // Within the grace the old token gets the same pair; the new one refreshes on.
        clock.advance(5);
        assert_eq!(pair(app.refresh(&legacy).await).await, (t1, r1.clone()));
        let (_, r2) = pair(app.refresh(&r1).await).await;
        assert!(r2.starts_with(&format!("{}.5.", family.id)), "{r2}");
        // After the grace, the old token is a reuse, as before.
        clock.advance(10);
        assert_eq!(app.refresh(&legacy).await.status(), 401);
        assert_eq!(family_revoked(&app), vec![Some("reuse".to_string())]);
    }
);
