//! The account endpoints within `security.rate_limits`, and a password reset lifting a guessing lock.

use serde_json::{Value, json};
use tessera::config::RateLimit;

use super::smtp::Smtp;
use super::{PASSWORD, app_with_mail, error_code};
use crate::helpers::{TestApp, TestDb};

async fn from(app: &TestApp, client: &str, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("X-Forwarded-For", client)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn register_and_anonymous_are_token_buckets_per_client() {
    let smtp = Smtp::start().await;
    let app = app_with_mail(TestDb::Sqlite, &smtp, "open", |c| {
        c.security.trusted_proxies = vec!["127.0.0.1".into()];
        c.security.rate_limits.register = RateLimit::new(2, 3600);
        c.security.rate_limits.anonymous = RateLimit::new(1, 60);
        c.registration.anonymous_tokens = true;
    })
    .await
    .unwrap();
    let register =
        |name: &str| json!({ "username": name, "email": format!("{name}@example.org"), "password": PASSWORD });
    assert_eq!(
        from(&app, "198.51.100.1", "/api/register", register("ann"))
            .await
            .status(),
        201
    );
    // Refused input counts too: a bucket is charged before any work.
    assert_eq!(
        from(
            &app,
            "198.51.100.1",
            "/api/register",
            json!({ "username": "x", "email": "x@", "password": PASSWORD })
        )
        .await
        .status(),
        400
    );
    let resp = from(&app, "198.51.100.1", "/api/register", register("bea")).await;
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1799..=1800).contains(&retry), "{retry}");
    assert_eq!(error_code(resp).await, (429, "too_many_requests".into()));
    assert_eq!(
        from(&app, "198.51.100.2", "/api/register", register("bea"))
            .await
            .status(),
        201
    );

    assert_eq!(
        from(&app, "198.51.100.1", "/api/anonymous", json!({})).await.status(),
        200
    );
    assert_eq!(
        from(&app, "198.51.100.1", "/api/anonymous", json!({})).await.status(),
        429
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("tessera_throttled_requests_total{reason=\"register\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tessera_throttled_requests_total{reason=\"anonymous\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn forgot_password_is_limited_per_client_and_per_address_alike_for_unknown_ones() {
    let smtp = Smtp::start().await;
    let app = app_with_mail(TestDb::Sqlite, &smtp, "open", |c| {
        c.security.trusted_proxies = vec!["127.0.0.1".into()];
        c.security.rate_limits.forgot_password = RateLimit::new(2, 900);
    })
    .await
    .unwrap();
    assert_eq!(app.register("cy", "cy@example.org").await.status(), 201);
    for email in ["cy@example.org", "nobody@example.org"] {
        // Two clients, one address: the address's bucket stops the third request whichever client sends it.
        assert_eq!(
            from(&app, "198.51.100.1", "/api/password/forgot", json!({ "email": email }))
                .await
                .status(),
            202
        );
        assert_eq!(
            from(&app, "198.51.100.2", "/api/password/forgot", json!({ "email": email }))
                .await
                .status(),
            202
        );
        let resp = from(&app, "198.51.100.3", "/api/password/forgot", json!({ "email": email })).await;
        assert_eq!(error_code(resp).await, (429, "too_many_requests".into()), "{email}");
    }
    // Only the two requests for the real address sent mail.
    assert_eq!(smtp.wait_for(2).await.len(), 2);
}

/// Guessing can lock a name, but the owner can always get back in through a reset link by email.
#[tokio::test]
async fn a_password_reset_lifts_the_guessing_lock() {
    let smtp = Smtp::start().await;
    let app = app_with_mail(TestDb::Sqlite, &smtp, "open", |c| {
        c.security.login_throttle.lockout_after = 3;
    })
    .await
    .unwrap();
    assert_eq!(app.register("dee", "dee@example.org").await.status(), 201);
    for name in [
        "dee",
        "dee",
        "dee",
        "dee@example.org",
        "dee@example.org",
        "dee@example.org",
    ] {
        let _ = app.login(name, "guess").await;
    }
    assert_eq!(app.login("dee", PASSWORD).await.status(), 429);
    assert_eq!(app.login("dee@example.org", PASSWORD).await.status(), 429);

    let resp = app
        .post_json("/api/password/forgot", &json!({ "email": "dee@example.org" }))
        .await;
    assert_eq!(resp.status(), 202);
    let token = smtp.wait_for(1).await.remove(0).token();
    let new_password = "a password only dee knows";
    let resp = app
        .post_json(
            "/api/password/reset",
            &json!({ "token": token, "password": new_password }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    app.login_ok("dee", new_password).await;
    app.login_ok("dee@example.org", new_password).await;
}

/// A stolen access token is no faster a way to guess the password: the current password of a password or
/// email change counts against the name's login limit, and a locked name is refused there too.
#[tokio::test]
async fn wrong_current_passwords_count_against_the_login_limit() {
    let smtp = Smtp::start().await;
    let app = app_with_mail(TestDb::Sqlite, &smtp, "open", |c| {
        c.security.login_throttle.lockout_after = 3;
    })
    .await
    .unwrap();
    assert_eq!(app.register("kim", "kim@example.org").await.status(), 201);
    let (access, _) = app.login_ok("kim", PASSWORD).await;
    let change = async |old: &str| {
        app.with_bearer(
            reqwest::Method::POST,
            "/api/password/change",
            &access,
            Some(json!({ "old_password": old, "new_password": "a brand new password" })),
        )
        .await
    };
    let email = async |password: &str| {
        app.with_bearer(
            reqwest::Method::POST,
            "/api/me/email",
            &access,
            Some(json!({ "email": "kim@example.net", "password": password })),
        )
        .await
    };
    assert_eq!(
        error_code(change("guess one").await).await,
        (400, "wrong_password".into())
    );
    assert_eq!(
        error_code(email("guess two").await).await,
        (400, "wrong_password".into())
    );
    // A password too long to hash is a wrong guess too.
    let long = "x".repeat(5000);
    assert_eq!(error_code(change(&long).await).await, (400, "wrong_password".into()));
    // Locked: the right password is refused on every path, with the time to wait.
    let resp = change(PASSWORD).await;
    assert!(resp.headers().get("retry-after").is_some());
    assert_eq!(error_code(resp).await, (429, "too_many_attempts".into()));
    assert_eq!(
        error_code(email(PASSWORD).await).await,
        (429, "too_many_attempts".into())
    );
    assert_eq!(app.login("kim", PASSWORD).await.status(), 429);
}
