//! Self-registered usernames are a small documented set: they end up in emails sent to any address and on
//! admin screens. Admin-created users are not held to it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::accounts::{PASSWORD, error_code};
use crate::db_test;
use crate::helpers::{TestApp, TestDb, spawn_app_with};

fn open(c: &mut tessera::config::Config) {
    c.registration.mode = "open".into();
    c.security.rate_limits.register.burst = 0;
}

async fn register(app: &TestApp, username: &str) -> reqwest::Response {
    app.post_json(
        "/api/register",
        &json!({ "username": username, "email": "ann@example.org", "password": PASSWORD }),
    )
    .await
}

#[tokio::test]
async fn names_that_could_carry_markup_headers_or_look_alikes_are_refused() {
    let app = spawn_app_with(TestDb::Sqlite, open, None).await.unwrap();
    let long = "a".repeat(65);
    for bad in [
        "ann\r\nBcc: victim@example.org",
        "ann\nlee",
        "ann\rlee",
        "<script>alert(1)</script>",
        "<b>ann</b>",
        "ann lee",
        " ann",
        "ann\t",
        "\u{430}dmin", // Cyrillic а: looks like "admin"
        "jos\u{e9}",   // é
        "ann\u{200b}", // zero-width space
        "ann\u{202e}", // right-to-left override
        "ann@example.org",
        ".ann",
        "-ann",
        "_ann",
        "a/b",
        "a%0d%0ab",
        "",
        long.as_str(),
    ] {
        let resp = register(&app, bad).await;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_username")),
            "{bad:?}"
        );
        assert!(
            body["message"].as_str().unwrap().contains("ASCII letters, digits"),
            "{body}"
        );
    }
    // Nothing was created for any of them.
    let users: i64 = {
        use diesel::prelude::*;
        tessera::db::schema::users::table
            .filter(tessera::db::schema::users::email.eq("ann@example.org"))
            .count()
            .get_result(&mut *app.state.db.get().unwrap())
            .unwrap()
    };
    assert_eq!(users, 0);
}

db_test!(the_documented_set_registers_and_logs_in, async |db| {
    let app = spawn_app_with(db, open, None).await.unwrap();
    let longest = format!("A{}", "b".repeat(63));
    for (i, name) in ["ann", "Ann.Lee_2-x", "0day", longest.as_str()].into_iter().enumerate() {
        let resp = app
            .post_json(
                "/api/register",
                &json!({ "username": name, "email": format!("u{i}@example.org"), "password": PASSWORD }),
            )
            .await;
        assert_eq!(resp.status(), 201, "{name:?}");
        app.login_ok(name, PASSWORD).await;
    }
});

/// The rule is for self-registration only: an admin may still create a user with a name of the directory's
/// kind (spaces, accents).
#[tokio::test]
async fn admin_created_users_keep_their_names() {
    let app = crate::admin::admin_app(TestDb::Sqlite, open).await.unwrap();
    let (admin, _) = app.login_ok("user_U", crate::admin::PASSWORD).await;
    let created = crate::admin::call(
        &app,
        Some(&admin),
        Method::POST,
        "/api/admin/localuser",
        Some(json!({"fname": "José", "lname": "Lee", "username": "José Lee", "email": "jose@example.org", "password": PASSWORD})),
    )
    .await;
    assert_eq!(created.status(), 200);
    assert_eq!(
        error_code(register(&app, "José Lee").await).await,
        (400, "invalid_username".into())
    );
}
