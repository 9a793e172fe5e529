//! Online-guessing limits and token buckets: per login name (existing or not, indistinguishable), per client
//! address, shared by replicas through the database.

use std::sync::Arc;

use serde_json::{Value, json};
use tessera::clock::{Clock, ManualClock};
use tessera::config::RateLimit;

use crate::db_test;
use crate::helpers::{TestApp, TestDb, repo_path, spawn_app_full, spawn_app_with, spawn_on_url};

fn stoke_init() -> Option<std::path::PathBuf> {
    Some(repo_path("tests/fixtures/stoke-dbinit.yaml"))
}

/// Status, `Retry-After` and body of one login attempt.
async fn attempt(app: &TestApp, username: &str, password: &str) -> (u16, Option<u64>, String) {
    let resp = app.login(username, password).await;
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry, resp.text().await.unwrap())
}

/// Eleven wrong passwords for `username`, waiting out every delay as a patient attacker would.
async fn guess_eleven_times(app: &TestApp, clock: &ManualClock, username: &str) -> Vec<(u16, Option<u64>, String)> {
    let mut seen = Vec::new();
    let mut failures = 0;
    while failures < 11 {
        let result = attempt(app, username, "wrong-password").await;
        match result.0 {
            401 => failures += 1,
            429 => clock.advance(result.1.expect("429 without Retry-After") as i64),
            other => panic!("unexpected status {other}: {}", result.2),
        }
        seen.push(result);
        assert!(seen.len() < 40, "no lock after {} attempts", seen.len());
    }
    seen
}

db_test!(a_real_and_an_unknown_name_are_throttled_alike, async |db| {
    let clock = ManualClock::new();
    let app = spawn_app_full(
        db,
        |_| {},
        stoke_init(),
        Some(Arc::new(clock.clone()) as Arc<dyn Clock>),
    )
    .await
    .unwrap();
    let unknown = guess_eleven_times(&app, &clock, "no-such-user").await;
    let real = guess_eleven_times(&app, &clock, "tester").await;
    assert_eq!(real, unknown);

    // Five free failures, then growing delays (1, 2, 4, 8 s), then a 15-minute lock after the tenth (and again
    // after each further failure).
    let waits: Vec<u64> = real.iter().filter_map(|r| r.1).collect();
    assert_eq!(waits, [1, 2, 4, 8, 900]);
    assert_eq!(real.iter().filter(|r| r.0 == 401).count(), 11);
    let body: Value = serde_json::from_str(&real[6].2).unwrap();
    assert_eq!(body["error"], "too_many_attempts");

    // Locked: the right password is refused too, without telling it is right, until the lock ends.
    let (status, retry, _) = attempt(&app, "tester", "tester").await;
    assert_eq!(status, 429);
    let retry = retry.unwrap();
    assert!((800..=900).contains(&retry), "{retry}");
    // A different name is not affected.
    app.login_ok("stoke", "admin").await;
    clock.advance(retry as i64 - 1);
    assert_eq!(attempt(&app, "tester", "tester").await.0, 429);
    clock.advance(1);
    app.login_ok("tester", "tester").await;
    // The success cleared the failures: the next wrong password is a plain 401 again.
    assert_eq!(attempt(&app, "tester", "wrong").await.0, 401);
    assert_eq!(attempt(&app, "tester", "wrong").await.0, 401);
});

#[tokio::test]
async fn the_name_is_case_insensitive_and_trimmed() {
    let clock = ManualClock::new();
    let app = spawn_app_full(
        TestDb::Sqlite,
        |c| c.security.login_throttle.lockout_after = 3,
        stoke_init(),
        Some(Arc::new(clock.clone()) as Arc<dyn Clock>),
    )
    .await
    .unwrap();
    for name in ["Tester", " tester", "TESTER"] {
        assert_eq!(attempt(&app, name, "wrong").await.0, 401);
    }
    assert_eq!(attempt(&app, "tester", "tester").await.0, 429);
}

db_test!(an_address_that_fails_too_often_gets_429, async |db| {
    let app = spawn_app_with(
        db,
        |c| {
            c.security.login_throttle.enabled = false;
            c.security.rate_limits.login_failures = RateLimit::new(3, 60);
        },
        stoke_init(),
    )
    .await
    .unwrap();
    for name in ["a", "b", "c"] {
        assert_eq!(attempt(&app, name, "wrong").await.0, 401);
    }
    // Every login from the address now waits, the right password included.
    let (status, retry, body) = attempt(&app, "tester", "tester").await;
    assert_eq!(status, 429);
    // 20 s (a third of the 60 s period); 19 when the clock's second turned between the attempts.
    assert!(matches!(retry, Some(19..=20)), "{retry:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "too_many_attempts"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("tessera_throttled_requests_total{reason=\"login\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tessera_logins_total{outcome=\"throttled\"} 1"),
        "{metrics}"
    );
});

#[tokio::test]
async fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
    let limit = |c: &mut tessera::config::Config| {
        c.security.login_throttle.enabled = false;
        c.security.rate_limits.login_failures = RateLimit::new(2, 60);
    };
    let login_from = async |app: &TestApp, forwarded: &str| {
        app.client
            .post(app.url("/api/login"))
            .header("X-Forwarded-For", forwarded)
            .json(&json!({ "username": "x", "password": "wrong" }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };

    let proxied = spawn_app_with(
        TestDb::Sqlite,
        |c| {
            limit(c);
            c.security.trusted_proxies = vec!["127.0.0.0/8".into()];
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(login_from(&proxied, "198.51.100.1").await, 401);
    assert_eq!(login_from(&proxied, "203.0.113.5, 198.51.100.1").await, 401);
    assert_eq!(login_from(&proxied, "198.51.100.1").await, 429);
    // Another client behind the same proxy is not affected.
    assert_eq!(login_from(&proxied, "198.51.100.2").await, 401);

    // Without a trusted proxy the header is the client's own claim and is ignored: all of these are 127.0.0.1.
    let direct = spawn_app_with(TestDb::Sqlite, limit, None).await.unwrap();
    assert_eq!(login_from(&direct, "198.51.100.1").await, 401);
    assert_eq!(login_from(&direct, "198.51.100.2").await, 401);
    assert_eq!(login_from(&direct, "198.51.100.3").await, 429);
}

db_test!(replicas_share_the_limits, async |db| {
    let lock_fast = |c: &mut tessera::config::Config| c.security.login_throttle.lockout_after = 2;
    let a = spawn_app_with(db, lock_fast, stoke_init()).await.unwrap();
    let b = spawn_on_url(&a.db_url, tempfile::tempdir().unwrap(), lock_fast, None, None).await;
    assert_eq!(attempt(&a, "tester", "wrong").await.0, 401);
    assert_eq!(attempt(&b, "tester", "wrong").await.0, 401);
    assert_eq!(attempt(&a, "tester", "tester").await.0, 429);
    assert_eq!(attempt(&b, "tester", "tester").await.0, 429);
});

#[tokio::test]
async fn refreshes_per_address_are_a_token_bucket() {
    let app = spawn_app_with(
        TestDb::Sqlite,
        |c| c.security.rate_limits.refresh = RateLimit::new(2, 60),
        stoke_init(),
    )
    .await
    .unwrap();
    let (_, mut refresh) = app.login_ok("tester", "tester").await;
    for _ in 0..2 {
        let resp = app.refresh(&refresh).await;
        assert_eq!(resp.status(), 200);
        refresh = resp.json::<Value>().await.unwrap()["refresh"]
            .as_str()
            .unwrap()
            .to_string();
    }
    let resp = app.refresh(&refresh).await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((29..=30).contains(&retry), "{retry}");
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "too_many_requests");
}

#[tokio::test]
async fn limits_can_be_turned_off() {
    let app = spawn_app_with(
        TestDb::Sqlite,
        |c| {
            c.security.login_throttle.enabled = false;
            c.security.rate_limits.login_failures.burst = 0;
        },
        stoke_init(),
    )
    .await
    .unwrap();
    for _ in 0..12 {
        assert_eq!(attempt(&app, "tester", "wrong").await.0, 401);
    }
    app.login_ok("tester", "tester").await;
}

/// An admin sees the locked names (a user's by username, a name nobody has by its digest alone) and lifts a
/// user's lock; read-only admins may look, not lift; a superuser's lock is a superuser's to lift.
#[tokio::test]
async fn admins_list_and_lift_locks() {
    use crate::admin::{PASSWORD, admin_app, call, token};
    use reqwest::Method;
    let app = admin_app(TestDb::Sqlite, |c| {
        c.security.login_throttle.delay_after = 100;
        c.security.login_throttle.lockout_after = 2;
    })
    .await
    .unwrap();
    let (writer, reader) = (token(&app, "user_U").await, token(&app, "user_u").await);
    for name in ["USER_none", "user_none", "ghost", "user_S2", "user_S2"] {
        assert_eq!(app.login(name, "wrong").await.status(), 401, "{name}");
    }
    assert_eq!(app.login("user_none", PASSWORD).await.status(), 429);
    let listed: Value = call(&app, Some(&reader), Method::GET, "/api/admin/locks", None)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["username"].clone())
        .collect();
    assert!(
        names.contains(&json!("user_none")) && names.contains(&json!("user_S2")),
        "{listed}"
    );
    assert!(
        !listed.to_string().contains("ghost"),
        "a name nobody has is shown only by its digest: {listed}"
    );
    let lift = |who: &str, name: &str| {
        call(
            &app,
            Some(who),
            Method::DELETE,
            &format!("/api/admin/locks/{name}"),
            None,
        )
    };
    assert_eq!(lift(&reader, "user_none").await.status(), 403);
    let denied: Value = lift(&writer, "user_S2").await.json().await.unwrap();
    assert_eq!(denied["error"], "superuser_required");
    assert_eq!(lift(&writer, "User_None").await.status(), 204);
    assert_eq!(lift(&writer, "user_none").await.status(), 404, "no longer locked");
    assert_eq!(app.login("user_none", PASSWORD).await.status(), 200);
    let su = token(&app, "user_S").await;
    let audit = call(&app, Some(&su), Method::GET, "/api/admin/audit?itemsPerPage=255", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(audit.contains("lock.lift"), "{audit}");
}
