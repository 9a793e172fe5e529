//! Self-service accounts against a real SMTP server: registration with confirmation, password reset and change,
//! email change, logout, anonymous tokens, the outbox surviving an SMTP outage.

mod abuse;
mod delivery;
mod forms;
mod limits;
mod smtp;

use std::sync::Arc;

use serde_json::{Value, json};
use tessera::clock::{Clock, ManualClock};
use tessera::config::Config;

use crate::db_test;
use crate::helpers::{TestApp, TestDb, claims_of, spawn_app_full, spawn_app_with};
use smtp::Smtp;

pub const PASSWORD: &str = "correct horse battery";

pub async fn app_with_mail(db: TestDb, smtp: &Smtp, mode: &str, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    app_with_clock(db, smtp, mode, tweak, None).await
}

pub async fn app_with_clock(
    db: TestDb,
    smtp: &Smtp,
    mode: &str,
    tweak: impl FnOnce(&mut Config),
    clock: Option<Arc<dyn Clock>>,
) -> Option<TestApp> {
    let mode = mode.to_string();
    spawn_app_full(
        db,
        |c| {
            smtp.configure(c);
            c.registration.mode = mode;
            tweak(c);
        },
        None,
        clock,
    )
    .await
}

impl TestApp {
    pub async fn register(&self, username: &str, email: &str) -> reqwest::Response {
        self.post_json(
            "/api/register",
            &json!({ "username": username, "email": email, "password": PASSWORD, "fname": "Ann", "lname": "Lee" }),
        )
        .await
    }

    pub async fn with_bearer(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.client.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }
}

pub async fn error_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (status, body["error"].as_str().unwrap_or("").to_string())
}

db_test!(register_confirm_login, async |db| {
    let smtp = Smtp::start().await;
    let app = app_with_mail(db, &smtp, "confirm", |_| {}).await.unwrap();
    let resp = app.register("ann", "ann@example.org").await;
    assert_eq!(resp.status(), 202);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"status": "confirmation_sent"})
    );
    // Not an account until the address confirms.
    assert_eq!(app.login("ann", PASSWORD).await.status(), 401);

    let mail = smtp.wait_for(1).await.remove(0);
    assert_eq!(mail.to, "ann@example.org");
    assert_eq!(mail.subject, "Confirm your account");
    assert!(
        mail.link().starts_with("https://id.example.org/confirm?token="),
        "{}",
        mail.link()
    );
    assert!(mail.body.contains("24 hours"));
    let token = mail.token();
    assert_eq!(token.len(), 43);

    let resp = app.post_json("/api/confirm", &json!({ "token": token })).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"status": "registered", "username": "ann"})
    );
    let (access, _) = app.login_ok("ann", PASSWORD).await;
    assert_eq!(claims_of(&access)["e"], "ann@example.org");
    let me: Value = app
        .with_bearer(reqwest::Method::GET, "/api/me", &access, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "ann");
    assert_eq!(me["fname"], "Ann");
    assert_eq!(me["source"], "LOCAL");

    // A link works once.
    let resp = app.post_json("/api/confirm", &json!({ "token": token })).await;
    assert_eq!(error_code(resp).await, (400, "invalid_token".into()));
    // The outbox is empty once the server accepted the message.
    let state = app.state.clone();
    let pending = state.db.run(tessera::db::outbox::pending).await.unwrap();
    assert_eq!(pending, 0);
});

db_test!(forgot_reset_revokes_sessions, async |db| {
    let smtp = Smtp::start().await;
    let app = app_with_mail(db, &smtp, "open", |_| {}).await.unwrap();
    assert_eq!(app.register("bob", "bob@example.org").await.status(), 201);
    let (_, refresh) = app.login_ok("bob", PASSWORD).await;

    let resp = app
        .post_json("/api/password/forgot", &json!({ "email": "bob@example.org" }))
        .await;
    assert_eq!(resp.status(), 202);
    let mail = smtp.wait_for(1).await.remove(0);
    assert_eq!(mail.to, "bob@example.org");
    assert!(mail.link().starts_with("https://id.example.org/reset-password?token="));
    assert!(mail.body.contains("30 minutes"));

    let new_password = "a brand new secret";
    let resp = app
        .post_json(
            "/api/password/reset",
            &json!({ "token": mail.token(), "password": new_password }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.refresh(&refresh).await.status(), 401, "old session must be revoked");
    assert_eq!(app.login("bob", PASSWORD).await.status(), 401);
    app.login_ok("bob", new_password).await;
    app.login_ok("bob@example.org", new_password).await;

    // Used once.
    let resp = app
        .post_json(
            "/api/password/reset",
            &json!({ "token": mail.token(), "password": "yet another secret" }),
        )
        .await;
    assert_eq!(error_code(resp).await, (400, "invalid_token".into()));
});

#[tokio::test]
async fn email_change_applies_only_when_the_new_address_confirms() {
    let smtp = Smtp::start().await;
    let app = app_with_mail(TestDb::Sqlite, &smtp, "open", |_| {}).await.unwrap();
    assert_eq!(app.register("cat", "cat@example.org").await.status(), 201);
    let (access, _) = app.login_ok("cat", PASSWORD).await;
    let post = |body: Value| app.with_bearer(reqwest::Method::POST, "/api/me/email", &access, Some(body));

    let resp = post(json!({ "email": "cat@new.example.org", "password": "wrong password" })).await;
    assert_eq!(error_code(resp).await, (400, "wrong_password".into()));
    let resp = post(json!({ "email": "cat@example.org", "password": PASSWORD })).await;
    assert_eq!(error_code(resp).await, (400, "same_email".into()));
    let resp = post(json!({ "email": "cat@new.example.org", "password": PASSWORD })).await;
    assert_eq!(resp.status(), 202);

    let me: Value = app
        .with_bearer(reqwest::Method::GET, "/api/me", &access, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "cat@example.org", "the old address stays until confirmed");
    assert_eq!(me["pending_email"], "cat@new.example.org");

    let mail = smtp.wait_for(1).await.remove(0);
    assert_eq!(mail.to, "cat@new.example.org");
    assert_eq!(mail.subject, "Confirm your new email address");
    let resp = app.post_json("/api/confirm", &json!({ "token": mail.token() })).await;
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"status": "email_changed", "username": "cat"})
    );
    let me: Value = app
        .with_bearer(reqwest::Method::GET, "/api/me", &access, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "cat@new.example.org");
    assert_eq!(me["pending_email"], Value::Null);
    app.login_ok("cat@new.example.org", PASSWORD).await;
    assert_eq!(app.login("cat@example.org", PASSWORD).await.status(), 401);

    // Moving to an address another account holds: the same answer, and a notice to that address only.
    assert_eq!(app.register("dan", "dan@example.org").await.status(), 201);
    let resp = post(json!({ "email": "dan@example.org", "password": PASSWORD })).await;
    assert_eq!(resp.status(), 202);
    let mails = smtp.wait_for(2).await;
    assert_eq!(mails[1].to, "dan@example.org");
    assert_eq!(mails[1].subject, "You already have an account");
    assert!(!mails[1].body.contains("token="));
}

#[tokio::test]
async fn unknown_address_gets_the_same_answer_and_no_mail() {
    let smtp = Smtp::start().await;
    let app = app_with_mail(TestDb::Sqlite, &smtp, "open", |_| {}).await.unwrap();
    assert_eq!(app.register("fay", "fay@example.org").await.status(), 201);
    let forgot = async |email: &str| {
        let resp = app.post_json("/api/password/forgot", &json!({ "email": email })).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        (
            status,
            headers.get("content-type").cloned(),
            resp.bytes().await.unwrap(),
        )
    };
    let unknown = forgot("nobody@example.org").await;
    let known = forgot("fay@example.org").await;
    assert_eq!(unknown, known);
    assert_eq!(known.0, 202);
    assert_eq!(&known.2[..], br#"{"status":"reset_requested"}"#);
    let mails = smtp.wait_for(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mails_after = smtp.messages();
    assert_eq!(mails_after.len(), 1, "{mails:?}");
    assert_eq!(mails_after[0].to, "fay@example.org");
}

#[tokio::test]
async fn reset_links_are_single_use_superseded_and_expire() {
    let smtp = Smtp::start().await;
    let clock = ManualClock::new();
    let app = app_with_clock(TestDb::Sqlite, &smtp, "open", |_| {}, Some(Arc::new(clock.clone())))
        .await
        .unwrap();
    assert_eq!(app.register("gus", "gus@example.org").await.status(), 201);
    let forgot = async || {
        let resp = app
            .post_json("/api/password/forgot", &json!({ "email": "gus@example.org" }))
            .await;
        assert_eq!(resp.status(), 202);
    };
    let reset = async |token: &str, password: &str| {
        app.post_json("/api/password/reset", &json!({ "token": token, "password": password }))
            .await
    };
    forgot().await;
    let first = smtp.wait_for(1).await[0].token();
    forgot().await;
    let second = smtp.wait_for(2).await[1].token();
    assert_ne!(first, second);
    assert_eq!(
        error_code(reset(&first, "superseded link").await).await,
        (400, "invalid_token".into())
    );
    assert_eq!(reset(&second, "the newest link").await.status(), 200);
    assert_eq!(
        error_code(reset(&second, "used twice now").await).await,
        (400, "invalid_token".into())
    );

    forgot().await;
    let third = smtp.wait_for(3).await[2].token();
    clock.advance(30 * 60 + 1);
    assert_eq!(
        error_code(reset(&third, "expired link!").await).await,
        (400, "invalid_token".into())
    );
    app.login_ok("gus", "the newest link").await;

    // A password change also ends every reset link.
    forgot().await;
    let fourth = smtp.wait_for(4).await[3].token();
    let (access, _) = app.login_ok("gus", "the newest link").await;
    let resp = app
        .with_bearer(
            reqwest::Method::POST,
            "/api/password/change",
            &access,
            Some(json!({ "old_password": "the newest link", "new_password": "changed by hand" })),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        error_code(reset(&fourth, "after the change").await).await,
        (400, "invalid_token".into())
    );
}

#[tokio::test]
async fn links_ignore_host_and_forwarded_headers() {
    let smtp = Smtp::start().await;
    let app = app_with_mail(TestDb::Sqlite, &smtp, "confirm", |_| {}).await.unwrap();
    let resp = app
        .client
        .post(app.url("/api/register"))
        .header("Host", "evil.example")
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Proto", "http")
        .header("Forwarded", "host=evil.example;proto=http")
        .json(&json!({ "username": "hal", "email": "hal@example.org", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let mail = smtp.wait_for(1).await.remove(0);
    assert!(mail.link().starts_with("https://id.example.org/confirm?token="));
    assert!(!mail.body.contains("evil"));
    app.post_json("/api/confirm", &json!({ "token": mail.token() })).await;
    let resp = app
        .client
        .post(app.url("/api/password/forgot"))
        .header("X-Forwarded-Host", "evil.example")
        .json(&json!({ "email": "hal@example.org" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let mail = smtp.wait_for(2).await.remove(1);
    assert!(mail.link().starts_with("https://id.example.org/reset-password?token="));
    assert!(!mail.body.contains("evil"));
}

#[tokio::test]
async fn password_change_and_logout_end_sessions() {
    let app = spawn_app_with(TestDb::Sqlite, |c| c.registration.mode = "open".into(), None)
        .await
        .unwrap();
    assert_eq!(app.register("ivy", "ivy@example.org").await.status(), 201);
    let (access, refresh) = app.login_ok("ivy", PASSWORD).await;
    let change = async |old: &str, new: &str| {
        app.with_bearer(
            reqwest::Method::POST,
            "/api/password/change",
            &access,
            Some(json!({ "old_password": old, "new_password": new })),
        )
        .await
    };
    assert_eq!(
        error_code(change("not it at all", "whatever new").await).await,
        (400, "wrong_password".into())
    );
    assert_eq!(
        error_code(change(PASSWORD, "short").await).await,
        (400, "weak_password".into())
    );
    assert_eq!(change(PASSWORD, "the next password").await.status(), 200);
    assert_eq!(app.refresh(&refresh).await.status(), 401);
    app.login_ok("ivy", "the next password").await;

    // Logout ends one session; `all` ends every one; unknown tokens are fine.
    let (_, one) = app.login_ok("ivy", "the next password").await;
    let (_, two) = app.login_ok("ivy", "the next password").await;
    let (_, three) = app.login_ok("ivy", "the next password").await;
    let resp = app.post_json("/api/logout", &json!({ "refresh": one })).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(app.refresh(&one).await.status(), 401);
    let resp = app.refresh(&two).await;
    assert_eq!(resp.status(), 200);
    let two: Value = resp.json().await.unwrap();
    let resp = app
        .post_json("/api/logout", &json!({ "refresh": two["refresh"], "all": true }))
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(app.refresh(&three).await.status(), 401);
    let resp = app.post_json("/api/logout", &json!({ "refresh": "not-a-token" })).await;
    assert_eq!(resp.status(), 204);

    // Profile: names change, the username does not; unknown fields are refused.
    let (access, _) = app.login_ok("ivy", "the next password").await;
    let resp = app
        .with_bearer(
            reqwest::Method::PATCH,
            "/api/me",
            &access,
            Some(json!({ "fname": "Ivy" })),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["fname"], "Ivy");
    let resp = app
        .with_bearer(
            reqwest::Method::PATCH,
            "/api/me",
            &access,
            Some(json!({ "username": "root" })),
        )
        .await;
    assert_eq!(error_code(resp).await, (400, "invalid_field".into()));
    assert_eq!(app.get("/api/me").await.status(), 401);

    // Without email configured, the flows that need it say so.
    let resp = app
        .post_json("/api/password/forgot", &json!({ "email": "ivy@example.org" }))
        .await;
    assert_eq!(error_code(resp).await, (403, "email_disabled".into()));
}

#[tokio::test]
async fn anonymous_tokens_open_registration_and_are_linked() {
    let app = spawn_app_with(
        TestDb::Sqlite,
        |c| {
            c.registration.mode = "open".into();
            c.registration.anonymous_tokens = true;
            c.registration.require_anonymous_token = true;
            c.registration.anonymous_claims.insert("role".into(), "guest".into());
        },
        None,
    )
    .await
    .unwrap();
    let resp = app.register("jay", "jay@example.org").await;
    assert_eq!(error_code(resp).await, (403, "anonymous_token_required".into()));

    let resp = app.post_json("/api/anonymous", &json!({})).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 900);
    let anon = body["token"].as_str().unwrap().to_string();
    let claims = claims_of(&anon);
    assert_eq!(claims["anon"], "true");
    assert_eq!(claims["role"], "guest");
    let sub = claims["sub"].as_str().unwrap().to_string();
    assert!(sub.starts_with("anon:"));
    // It stands for nobody.
    let resp = app.with_bearer(reqwest::Method::GET, "/api/me", &anon, None).await;
    assert_eq!(resp.status(), 401);
    let resp = app
        .with_bearer(reqwest::Method::GET, "/api/admin/users", &anon, None)
        .await;
    assert_eq!(resp.status(), 401);

    let body = json!({ "username": "jay", "email": "jay@example.org", "password": PASSWORD });
    let resp = app
        .with_bearer(reqwest::Method::POST, "/api/register", &anon, Some(body))
        .await;
    assert_eq!(resp.status(), 201);
    let profile: Value = resp.json().await.unwrap();
    assert_eq!(profile["anonymous_id"], sub.as_str());

    // One registration per anonymous token; forged ones are refused.
    let body = json!({ "username": "kim", "email": "kim@example.org", "password": PASSWORD, "anonymous_token": anon });
    let resp = app.post_json("/api/register", &body).await;
    assert_eq!(error_code(resp).await, (409, "anonymous_token_used".into()));
    let body =
        json!({ "username": "kim", "email": "kim@example.org", "password": PASSWORD, "anonymous_token": "x.y.z" });
    let resp = app.post_json("/api/register", &body).await;
    assert_eq!(error_code(resp).await, (403, "invalid_anonymous_token".into()));
    // A user's own token is not an anonymous one.
    let (access, _) = app.login_ok("jay", PASSWORD).await;
    let body =
        json!({ "username": "kim", "email": "kim@example.org", "password": PASSWORD, "anonymous_token": access });
    let resp = app.post_json("/api/register", &body).await;
    assert_eq!(error_code(resp).await, (403, "invalid_anonymous_token".into()));
}

// A reset link mailed before migration `2026-12-02-000012_link_digests_base64url` (its row under the token's
// SHA-256 hex) still works after it: the migration converts the row, in SQL, on each backend.
db_test!(a_link_mailed_before_the_digest_migration_still_works, async |db| {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use sha2::Digest;
    use tessera::db::schema::account_tokens;

    let smtp = Smtp::start().await;
    let app = app_with_mail(db, &smtp, "open", |_| {}).await.unwrap();
    assert_eq!(app.register("hal", "hal@example.org").await.status(), 201);
    let resp = app
        .post_json("/api/password/forgot", &json!({ "email": "hal@example.org" }))
        .await;
    assert_eq!(resp.status(), 202);
    let token = smtp.wait_for(1).await.remove(0).token();
    let digest = sha2::Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let stored = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    };
    let mut conn = app.state.db.get().unwrap();
    let rows = || -> Vec<String> {
        account_tokens::table
            .select(account_tokens::token_hash)
            .load(&mut *app.state.db.get().unwrap())
            .unwrap()
    };
    assert_eq!(rows(), vec![stored.clone()], "a new link is stored under base64url");
    // As the code before the migration stored it.
    diesel::update(account_tokens::table.find(&stored))
        .set(account_tokens::token_hash.eq(&hex))
        .execute(&mut *conn)
        .unwrap();
    let folder = match app.state.db.backend() {
        tessera::config::Backend::Sqlite => "sqlite",
        tessera::config::Backend::Postgres => "postgres",
        tessera::config::Backend::Mysql => "mysql",
    };
    let up = std::fs::read_to_string(crate::helpers::repo_path(&format!(
        "migrations/{folder}/2026-12-02-000012_link_digests_base64url/up.sql"
    )))
    .unwrap();
    conn.batch_execute(&up).unwrap();
    drop(conn);
    assert_eq!(rows(), vec![stored], "the migration converts a hex row");
    let resp = app
        .post_json(
            "/api/password/reset",
            &json!({ "token": token, "password": "a brand new secret" }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    app.login_ok("hal", "a brand new secret").await;
});
