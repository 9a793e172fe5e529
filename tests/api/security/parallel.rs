//! Limits that parallel requests cannot bypass: bursts of guesses against the login limits, hostile methods
//! against the metrics labels, forwarded headers from anyone against the discovery document.

use reqwest::Method;
use serde_json::{Value, json};
use tessera::config::RateLimit;

use super::counter;
use crate::admin::admin_app;
use crate::db_test;
use crate::helpers::{TestApp, TestDb, spawn_app_with};

/// Sends every body to `/api/login` at once; returns the statuses.
async fn burst(app: &TestApp, bodies: Vec<Value>) -> Vec<u16> {
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (client, url) = (app.client.clone(), app.url("/api/login"));
            tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

db_test!(parallel_guesses_for_one_name_queue_on_its_limit, async |db| {
    // The defaults (lock at 10 failures, 4 checks of a name at once per replica), and the database's
    // reservation alone (no in-flight cap to help it).
    for max_in_flight in [4, 1000] {
        let app = admin_app(db, |c| c.security.login_throttle.max_in_flight = max_in_flight)
            .await
            .unwrap();
        let lockout = app.state.config.security.login_throttle.lockout_after as f64;
        let before = counter(&app, "tessera_password_hashes_total").await;
        let guesses = (0..60)
            .map(|i| json!({"username": "user_c", "password": format!("guess-{i}")}))
            .collect();
        let statuses = burst(&app, guesses).await;
        let hashed = counter(&app, "tessera_password_hashes_total").await - before;
        assert!(
            hashed <= lockout,
            "{hashed} of 60 parallel guesses were checked (max_in_flight {max_in_flight})"
        );
        assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
        let checked = statuses.iter().filter(|s| **s == 401).count();
        assert!(
            checked >= 1 && checked as f64 == hashed,
            "{hashed} hashes, {statuses:?}"
        );
    }
});

db_test!(parallel_guesses_from_one_address_queue_on_its_bucket, async |db| {
    let app = admin_app(db, |c| {
        c.security.login_throttle.enabled = false;
        c.security.rate_limits.login_failures = RateLimit::new(5, 900);
    })
    .await
    .unwrap();
    let before = counter(&app, "tessera_password_hashes_total").await;
    let guesses = (0..60)
        .map(|i| json!({"username": format!("nobody{i}"), "password": "guess-1"}))
        .collect();
    let statuses = burst(&app, guesses).await;
    let hashed = counter(&app, "tessera_password_hashes_total").await - before;
    assert!(
        hashed <= 5.0,
        "{hashed} of 60 parallel guesses were checked: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count() as f64,
        60.0 - hashed,
        "{statuses:?}"
    );
});

db_test!(
    right_passwords_and_unchecked_attempts_give_their_reservations_back,
    async |db| {
        let app = admin_app(db, |c| {
            c.security.rate_limits.login_failures = RateLimit::new(3, 900);
            c.security.hash_queue_limit = 1;
            c.security.hash_concurrency = 1;
        })
        .await
        .unwrap();
        // Ten right logins in a row from one address with a bucket of three: each gives its token back.
        for _ in 0..10 {
            app.login_ok("user_c", crate::admin::PASSWORD).await;
        }
        // Attempts refused as busy (a full hash queue) checked nothing and count nothing.
        let bodies = (0..30)
            .map(|_| json!({"username": "user_u", "password": crate::admin::PASSWORD}))
            .collect();
        let statuses = burst(&app, bodies).await;
        assert!(statuses.iter().all(|s| [200, 429, 503].contains(s)), "{statuses:?}");
        app.login_ok("user_u", crate::admin::PASSWORD).await;
        app.login_ok("user_c", crate::admin::PASSWORD).await;
    }
);

#[tokio::test]
async fn metrics_labels_stay_bounded_whatever_the_methods() {
    let app = spawn_app_with(TestDb::Sqlite, |_| {}, None).await.unwrap();
    for i in 0..200 {
        let method: String = (0..8192).map(|j| char::from(b'A' + ((i * 7 + j) % 26) as u8)).collect();
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let _ = app.client.request(method, app.url("/api/pkeys")).send().await;
    }
    let _ = app
        .client
        .request(Method::from_bytes(b"PROPFIND").unwrap(), app.url("/nowhere/1"))
        .send()
        .await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.len() < 64 * 1024, "/metrics is {} bytes", text.len());
    assert!(text.contains(r#"method="OTHER""#), "{text}");
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    assert!(!text.contains("AAAAAAAA") && !text.contains("PROPFIND") && !text.contains("/nowhere"));
}

async fn jwks_uri(app: &TestApp, headers: &[(&str, &str)]) -> String {
    let mut req = app.client.get(app.url("/.well-known/openid-configuration"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let doc: Value = req.send().await.unwrap().json().await.unwrap();
    doc["jwks_uri"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn discovery_believes_forwarded_headers_only_from_trusted_proxies() {
    let hostile = [
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "host=evil.example;proto=https"),
    ];
    let app = spawn_app_with(TestDb::Sqlite, |_| {}, None).await.unwrap();
    let own = format!("http://127.0.0.1:{}/.well-known/jwks.json", app.port);
    assert_eq!(jwks_uri(&app, &hostile).await, own);
    assert!(!jwks_uri(&app, &[("Host", "bad host/../x")]).await.contains(".."));

    let proxied = spawn_app_with(
        TestDb::Sqlite,
        |c| c.security.trusted_proxies = vec!["127.0.0.1".into()],
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        jwks_uri(&proxied, &hostile).await,
        "https://evil.example/.well-known/jwks.json"
    );

    let public = spawn_app_with(
        TestDb::Sqlite,
        |c| {
            c.security.trusted_proxies = vec!["127.0.0.1".into()];
            c.server.public_url = "https://id.example.com/".into();
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        jwks_uri(&public, &hostile).await,
        "https://id.example.com/.well-known/jwks.json"
    );
}

db_test!(
    parallel_right_logins_from_one_address_give_every_token_back,
    async |db| {
        let app = admin_app(db, |c| c.security.rate_limits.login_failures = RateLimit::new(40, 900))
            .await
            .unwrap();
        let users = [
            "user_c",
            "user_C",
            "user_u",
            "user_U",
            "user_g",
            "user_G",
            "user_s",
            "user_m",
            "user_none",
            "user_sU",
        ];
        let bodies = || {
            (0..40)
                .map(|i| json!({"username": users[i % users.len()], "password": crate::admin::PASSWORD}))
                .collect::<Vec<_>>()
        };
        // Twice the bucket's size in all, 40 at a time: a token not given back would refuse the second burst.
        for round in 0..2 {
            let statuses = burst(&app, bodies()).await;
            assert!(statuses.iter().all(|s| *s == 200), "round {round}: {statuses:?}");
        }
    }
);
