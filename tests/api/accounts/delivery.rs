//! Delivery: the outbox survives an SMTP outage, speaks STARTTLS and TLS with authentication, and two replicas
//! send each message once.

use serde_json::json;

use super::app_with_mail;
use super::smtp::Smtp;
use crate::db_test;
use crate::helpers::TestDb;

#[tokio::test]
async fn smtp_outage_delays_but_loses_nothing() {
    let mut smtp = Smtp::stopped();
    let app = app_with_mail(TestDb::Sqlite, &smtp, "open", |_| {}).await.unwrap();
    assert_eq!(app.register("eve", "eve@example.org").await.status(), 201);
    let resp = app
        .post_json("/api/password/forgot", &json!({ "email": "eve@example.org" }))
        .await;
    assert_eq!(resp.status(), 202, "the request does not wait for SMTP");

    // The worker tries, fails and keeps the message.
    let state = app.state.clone();
    let mut attempts = 0;
    for _ in 0..100 {
        let s = state.clone();
        attempts =
            s.db.run(|c| {
                use diesel::prelude::*;
                use tessera::db::schema::email_outbox;
                email_outbox::table
                    .select(email_outbox::attempts)
                    .first::<i64>(c)
                    .map_err(tessera::db::DbError::from)
            })
            .await
            .unwrap();
        if attempts >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(attempts >= 1, "the worker never tried");

    smtp.run().await;
    let mail = smtp.wait_for(1).await.remove(0);
    assert_eq!(mail.to, "eve@example.org");
    let resp = app
        .post_json(
            "/api/password/reset",
            &json!({ "token": mail.token(), "password": "after the outage" }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(smtp.messages().len(), 1, "sent once");
}

/// STARTTLS and implicit TLS against a server with a private CA, with SMTP authentication; a wrong password
/// keeps the message in the outbox.
#[tokio::test]
async fn mail_goes_over_starttls_and_tls_with_authentication() {
    for mode in ["starttls", "tls"] {
        let smtp = Smtp::start_tls(mode).await;
        let app = app_with_mail(TestDb::Sqlite, &smtp, "confirm", |_| {}).await.unwrap();
        assert_eq!(app.register("kai", "kai@example.org").await.status(), 202);
        let mail = smtp.wait_for(1).await.remove(0);
        assert_eq!(mail.to, "kai@example.org", "{mode}");

        let app = app_with_mail(TestDb::Sqlite, &smtp, "confirm", |c| {
            c.email.smtp_password = tessera::config::Secret::new("wrong");
        })
        .await
        .unwrap();
        assert_eq!(app.register("lou", "lou@example.org").await.status(), 202);
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert_eq!(smtp.messages().len(), 1, "{mode}: refused credentials send nothing");
        let state = app.state.clone();
        assert_eq!(
            state.db.run(tessera::db::outbox::pending).await.unwrap(),
            1,
            "{mode}: kept for a retry"
        );
    }
}

db_test!(two_replicas_send_each_message_once, async |db| {
    let smtp = Smtp::start().await;
    let a = app_with_mail(db, &smtp, "open", |_| {}).await.unwrap();
    let b = crate::helpers::spawn_on_url(
        &a.db_url,
        tempfile::tempdir().unwrap(),
        |c| smtp.configure(c),
        None,
        None,
    )
    .await;
    let state = a.state.clone();
    let now = state.clock.now();
    state
        .db
        .write(move |c| -> Result<(), tessera::db::DbError> {
            for i in 0..20 {
                let to = format!("user{i}@example.org");
                tessera::db::outbox::enqueue(c, &to, &format!("message {i}"), "text", "<p>html</p>", now)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    a.state.mail.wake.notify_one();
    b.state.mail.wake.notify_one();
    smtp.wait_for(20).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let mut subjects: Vec<String> = smtp.messages().into_iter().map(|m| m.subject).collect();
    assert_eq!(subjects.len(), 20, "each message exactly once");
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 20);
});
