//! Bad input and abuse of the account endpoints: closed registration, header injection through addresses,
//! taken names, weak passwords, outbox rows claimed by two senders.

use serde_json::json;

use super::smtp::Smtp;
use super::{PASSWORD, app_with_mail, error_code};
use crate::db_test;
use crate::helpers::{TestDb, spawn_app, spawn_app_with};

#[tokio::test]
async fn closed_registration_and_disabled_anonymous_tokens_are_refused() {
    let app = spawn_app(TestDb::Sqlite).await.unwrap();
    let resp = app.register("ann", "ann@example.org").await;
    assert_eq!(error_code(resp).await, (403, "registration_closed".into()));
    let resp = app.post_json("/api/anonymous", &json!({})).await;
    assert_eq!(error_code(resp).await, (403, "anonymous_disabled".into()));
    let resp = app.post_json("/api/confirm", &json!({ "token": "a".repeat(43) })).await;
    assert_eq!(error_code(resp).await, (400, "invalid_token".into()));
    let resp = app
        .post_json(
            "/api/password/reset",
            &json!({ "token": "short", "password": PASSWORD }),
        )
        .await;
    assert_eq!(error_code(resp).await, (400, "invalid_token".into()));
}

#[tokio::test]
async fn addresses_with_line_breaks_or_two_ats_are_refused() {
    let smtp = Smtp::start().await;
    // Every refused request is charged to the client's buckets (tests/api/accounts/limits.rs); not the point here.
    let app = app_with_mail(TestDb::Sqlite, &smtp, "open", |c| {
        c.security.rate_limits.register.burst = 0;
        c.security.rate_limits.forgot_password.burst = 0;
    })
    .await
    .unwrap();
    for bad in [
        "ann@example.org\r\nBcc: everyone@example.org",
        "ann@example.org\nBcc: everyone@example.org",
        "ann\r@example.org",
        "ann@evil.example@example.org",
        "ann@@example.org",
        "<ann@example.org>",
        "ann example@example.org",
    ] {
        let resp = app.register("ann", bad).await;
        assert_eq!(
            error_code(resp).await,
            (400, "invalid_email".into()),
            "register {bad:?}"
        );
        let resp = app.post_json("/api/password/forgot", &json!({ "email": bad })).await;
        assert_eq!(error_code(resp).await, (400, "invalid_email".into()), "forgot {bad:?}");
    }
    assert_eq!(app.register("ann", "ann@example.org").await.status(), 201);
    let (access, _) = app.login_ok("ann", PASSWORD).await;
    let resp = app
        .with_bearer(
            reqwest::Method::POST,
            "/api/me/email",
            &access,
            Some(json!({ "email": "x@y.example\r\nBcc: z@example.org", "password": PASSWORD })),
        )
        .await;
    assert_eq!(error_code(resp).await, (400, "invalid_email".into()));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(smtp.messages().is_empty(), "nothing may be sent for refused input");
}

#[tokio::test]
async fn registration_input_is_checked() {
    let app = spawn_app_with(TestDb::Sqlite, |c| c.registration.mode = "open".into(), None)
        .await
        .unwrap();
    let reg = async |body: serde_json::Value| error_code(app.post_json("/api/register", &body).await).await;
    let base = |u: &str, e: &str, p: &str| json!({ "username": u, "email": e, "password": p });
    assert_eq!(
        reg(base("ann", "ann@example.org", "short")).await,
        (400, "weak_password".into())
    );
    assert_eq!(
        reg(base("ann", "ann@example.org", &"x".repeat(2000))).await,
        (400, "password_too_long".into())
    );
    // A username that looks like an address could shadow someone's email at login.
    assert_eq!(
        reg(base("bob@example.org", "ann@example.org", PASSWORD)).await,
        (400, "invalid_username".into())
    );
    assert_eq!(
        reg(base("", "ann@example.org", PASSWORD)).await,
        (400, "invalid_username".into())
    );
    assert_eq!(
        reg(base("a\u{0}b", "ann@example.org", PASSWORD)).await,
        (400, "invalid_username".into())
    );
    assert_eq!(reg(json!({ "username": "ann" })).await, (400, "invalid_field".into()));
    let mut extra = base("ann", "ann@example.org", PASSWORD);
    extra["stk"] = json!("S");
    assert_eq!(reg(extra).await, (400, "invalid_field".into()));

    assert_eq!(app.register("ann", "ann@example.org").await.status(), 201);
    assert_eq!(
        error_code(app.register("ann", "other@example.org").await).await,
        (409, "username_taken".into())
    );
    assert_eq!(
        error_code(app.register("other", "ann@example.org").await).await,
        (409, "email_taken".into())
    );
    // The superuser's name is taken like any other.
    assert_eq!(
        error_code(app.register("sadmin", "s@example.org").await).await,
        (409, "username_taken".into())
    );
}

#[tokio::test]
async fn confirm_mode_answers_the_same_for_a_taken_address() {
    let smtp = Smtp::start().await;
    let app = app_with_mail(TestDb::Sqlite, &smtp, "confirm", |_| {}).await.unwrap();
    assert_eq!(app.register("ann", "ann@example.org").await.status(), 202);
    let link = smtp.wait_for(1).await[0].token();
    app.post_json("/api/confirm", &json!({ "token": link })).await;

    let resp = app.register("mallory", "ann@example.org").await;
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.text().await.unwrap(), r#"{"status":"confirmation_sent"}"#);
    let mails = smtp.wait_for(2).await;
    assert_eq!(mails[1].to, "ann@example.org");
    assert_eq!(mails[1].subject, "You already have an account");
    assert!(!mails[1].body.contains("token="));
    assert_eq!(app.login("mallory", PASSWORD).await.status(), 401);

    // Two pending registrations of one username: the first confirmed wins, the other link gets 409.
    assert_eq!(app.register("zed", "zed1@example.org").await.status(), 202);
    assert_eq!(app.register("zed", "zed2@example.org").await.status(), 202);
    let mails = smtp.wait_for(4).await;
    let ok = app
        .post_json("/api/confirm", &json!({ "token": mails[2].token() }))
        .await;
    assert_eq!(ok.status(), 200);
    let late = app
        .post_json("/api/confirm", &json!({ "token": mails[3].token() }))
        .await;
    assert_eq!(error_code(late).await, (409, "username_taken".into()));
}

db_test!(an_outbox_row_has_one_sender, async |db| {
    let app = spawn_app(db).await.unwrap();
    let state = app.state.clone();
    let outcome = state
        .db
        .write(|c| -> Result<_, tessera::db::DbError> {
            use tessera::db::outbox;
            let id = outbox::enqueue(c, "a@example.org", "s", "t", "<p>h</p>", 1000)?;
            let due = outbox::due(c, 1000, 10)?;
            let first = outbox::claim(c, id, 1000, 1060)?.is_some();
            // A second replica at the same moment, and later within the lease, loses.
            let second = outbox::claim(c, id, 1000, 1060)?.is_some();
            let within = outbox::claim(c, id, 1059, 1119)?.is_some();
            let due_while_claimed = outbox::due(c, 1030, 10)?.len();
            // After the lease ran out (the sender died), another may take it.
            let after = outbox::claim(c, id, 1061, 1121)?.is_some();
            outbox::failed(c, id, 2000, "refused", None)?;
            let before_retry = outbox::due(c, 1999, 10)?.len();
            let at_retry = outbox::due(c, 2000, 10)?.len();
            outbox::failed(c, id, 0, "gave up", Some(2001))?;
            let given_up = outbox::due(c, 9999, 10)?.len();
            Ok((
                due,
                first,
                second,
                within,
                due_while_claimed,
                after,
                before_retry,
                at_retry,
                given_up,
            ))
        })
        .await
        .unwrap();
    let (due, first, second, within, due_while_claimed, after, before_retry, at_retry, given_up) = outcome;
    assert_eq!(due.len(), 1);
    assert!(first && !second && !within && after);
    assert_eq!((due_while_claimed, before_retry, at_retry, given_up), (0, 0, 1, 0));
});

#[test]
fn unsafe_account_settings_are_refused_at_load() {
    let problems = |yaml: &str| -> Vec<String> {
        match tessera::config::load_from_str(yaml, "cfg.yaml", Vec::new(), false) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.into_iter().map(|p| p.key).collect(),
        }
    };
    assert!(problems("registration:\n  mode: open\n").is_empty());
    assert_eq!(problems("registration:\n  mode: confirm\n"), ["registration.mode"]);
    assert_eq!(
        problems("email:\n  smtp_host: mail.example.org\n  from: a@example.org\n"),
        ["email.public_url"]
    );
    assert_eq!(
        problems("registration:\n  require_anonymous_token: yes\n"),
        ["registration.require_anonymous_token"]
    );
    assert_eq!(
        problems("registration:\n  anonymous_claims:\n    stk: S\n"),
        ["registration.anonymous_claims"]
    );
    assert_eq!(problems("email:\n  send_lease: 15s\n"), ["email.send_lease"]);
    assert_eq!(
        problems("email:\n  templates_dir: /nonexistent/templates\n"),
        ["email.templates_dir"]
    );
}

#[tokio::test]
async fn expired_anonymous_tokens_open_nothing() {
    let clock = tessera::clock::ManualClock::new();
    let app = crate::helpers::spawn_app_full(
        TestDb::Sqlite,
        |c| {
            c.registration.mode = "open".into();
            c.registration.anonymous_tokens = true;
            c.registration.require_anonymous_token = true;
        },
        None,
        Some(std::sync::Arc::new(clock.clone())),
    )
    .await
    .unwrap();
    let anon: serde_json::Value = app.post_json("/api/anonymous", &json!({})).await.json().await.unwrap();
    clock.advance(15 * 60 + 10);
    let body = json!({ "username": "ann", "email": "ann@example.org", "password": PASSWORD, "anonymous_token": anon["token"] });
    let resp = app.post_json("/api/register", &body).await;
    assert_eq!(error_code(resp).await, (403, "invalid_anonymous_token".into()));
}

#[tokio::test]
async fn me_works_with_a_fixed_token_subject() {
    let app = spawn_app_with(
        TestDb::Sqlite,
        |c| {
            c.registration.mode = "open".into();
            c.tokens.subject = "tessera-users".into();
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(app.register("ann", "ann@example.org").await.status(), 201);
    let (access, _) = app.login_ok("ann", PASSWORD).await;
    let resp = app.with_bearer(reqwest::Method::GET, "/api/me", &access, None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["username"], "ann");
}
