//! POST /api/login: Stoke's users and shapes, claims, and every kind of bad input.

use diesel::prelude::*;
use serde_json::{Value, json};
use tessera::db::schema::users;

use crate::db_test;
use crate::helpers::{TestDb, claims_of, repo_path, spawn_app, spawn_app_with};

fn stoke_init() -> Option<std::path::PathBuf> {
    Some(repo_path("tests/fixtures/stoke-dbinit.yaml"))
}

db_test!(stoke_users_log_in_and_hashes_are_upgraded, async |db| {
    let app = spawn_app_with(db, |_| {}, stoke_init()).await.unwrap();
    let resp = app.login("tester", "tester").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["username"], "tester");
    let claims = claims_of(body["token"].as_str().unwrap());
    assert_eq!(claims["test"], "acc");
    assert_eq!(claims["u"], "tester");
    assert_eq!(claims["n"], "Travis Ester");
    assert_eq!(claims["e"], "tester@hppr.dev");
    assert_eq!(claims["iss"], "tessera");
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    assert!(claims["jti"].is_string());
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    // Every custom claim is a string (Stoke's Go client rejects anything else); `amr` is an array unless
    // `tokens.amr_claim: string` (see `api_keys::amr_as_a_string_keeps_every_claim_a_string`).
    for (k, v) in claims.as_object().unwrap() {
        if !["exp", "iat", "nbf", "aud", "amr"].contains(&k.as_str()) {
            assert!(v.is_string(), "{k} is not a string");
        }
    }

    let (token, _) = app.login_ok("stoke", "admin").await;
    assert_eq!(claims_of(&token)["stk"], "S");

    // Stoke's hash became a PHC string; the same password still works.
    let (hash, salt): (Option<String>, Option<String>) = users::table
        .filter(users::username.eq("tester"))
        .select((users::password_hash, users::password_salt))
        .first(&mut *app.state.db.get().unwrap())
        .unwrap();
    assert!(hash.unwrap().starts_with("$argon2id$"));
    assert_eq!(salt, None);
    app.login_ok("tester", "tester").await;
    // Login by email.
    app.login_ok("tester@hppr.dev", "tester").await;
});

db_test!(bad_credentials_are_401_with_empty_body, async |db| {
    let app = spawn_app_with(db, |_| {}, stoke_init()).await.unwrap();
    for (user, pass) in [("tester", "wrong"), ("nobody", "tester"), ("", "x"), ("tester", "")] {
        let resp = app.login(user, pass).await;
        assert_eq!(resp.status(), 401, "{user}/{pass}");
        assert_eq!(resp.text().await.unwrap(), "{}");
    }
});

db_test!(required_and_filter_claims, async |db| {
    let app = spawn_app_with(db, |_| {}, stoke_init()).await.unwrap();
    let login = |body: Value| {
        let app = &app;
        async move { app.post_json("/api/login", &body).await }
    };
    let ok = login(json!({"username": "stoke", "password": "admin", "required_claims": [{"stk": "S"}]})).await;
    assert_eq!(ok.status(), 200);
    let any_value = login(json!({"username": "stoke", "password": "admin", "required_claims": [{"stk": ""}]})).await;
    assert_eq!(any_value.status(), 200);
    let second_map = login(json!({"username": "tester", "password": "tester",
        "required_claims": [{"stk": "S"}, {"test": "acc"}]}))
    .await;
    assert_eq!(second_map.status(), 200);
    let unmet = login(json!({"username": "tester", "password": "tester", "required_claims": [{"stk": "S"}]})).await;
    assert_eq!(unmet.status(), 401);
    assert_eq!(unmet.text().await.unwrap(), "{}");

    let filtered = login(json!({"username": "stoke", "password": "admin", "filter_claims": ["nothing"]})).await;
    let body: Value = filtered.json().await.unwrap();
    let claims = claims_of(body["token"].as_str().unwrap());
    assert!(claims.get("stk").is_none());
    assert_eq!(claims["u"], "stoke", "user_info stays");
});

#[tokio::test]
async fn bad_input_is_a_clear_4xx() {
    let app = spawn_app_with(TestDb::Sqlite, |_| {}, stoke_init()).await.unwrap();
    let post_raw = |body: &'static str, content_type: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/login"))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let cases = [
        (post_raw("{not json", "application/json").await, 400, "invalid_json"),
        (
            post_raw("{\"username\":\"tester\"}", "application/json").await,
            400,
            "invalid_field",
        ),
        (
            post_raw("{\"username\":1,\"password\":\"x\"}", "application/json").await,
            400,
            "invalid_field",
        ),
        (post_raw("[]", "application/json").await, 400, "invalid_field"),
        (
            post_raw("username=tester", "application/x-www-form-urlencoded").await,
            415,
            "unsupported_media_type",
        ),
    ];
    for (resp, status, code) in cases {
        assert_eq!(resp.status(), status);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], code, "{body}");
        assert!(body["message"].is_string());
    }
    let huge = "x".repeat(100 * 1024);
    let resp = app
        .post_json("/api/login", &json!({"username": "tester", "password": huge}))
        .await;
    assert_eq!(resp.status(), 413);
    let long = "x".repeat(1025);
    let resp = app
        .post_json("/api/login", &json!({"username": "tester", "password": long}))
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "password_too_long");
    let resp = app
        .post_json(
            "/api/login",
            &json!({"username": "tester", "password": "tester", "provider": "nope"}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "unknown_provider");
}

#[tokio::test]
async fn capabilities_need_an_admin_letter() {
    let app = spawn_app_with(TestDb::Sqlite, |_| {}, stoke_init()).await.unwrap();
    let get = |token: Option<String>| {
        let app = &app;
        async move {
            let mut req = app.client.get(app.url("/api/capabilities"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.unwrap()
        }
    };
    assert_eq!(get(None).await.status(), 401);
    assert_eq!(get(Some("garbage".into())).await.status(), 401);
    let (tester, _) = app.login_ok("tester", "tester").await;
    assert_eq!(get(Some(tester)).await.status(), 403);
    let (admin, _) = app.login_ok("stoke", "admin").await;
    let resp = get(Some(admin)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"capabilities": ["admin", "monitoring"]})
    );
}

#[tokio::test]
async fn available_providers_lists_configured_ldap() {
    let app = spawn_app_with(
        TestDb::Sqlite,
        |c| {
            c.users.providers.push(tessera::config::ProviderConfig {
                name: "corp".into(),
                kind: "ldap".into(),
                ldap: Default::default(),
                oidc: Default::default(),
            })
        },
        None,
    )
    .await
    .unwrap();
    let body: Value = app.get("/api/available_providers").await.json().await.unwrap();
    assert_eq!(
        body,
        json!({"providers": [{"name": "corp", "provider_type": "LDAP", "type_spec": "LDAP:corp"}]})
    );
    let empty: Value = spawn_app(TestDb::Sqlite)
        .await
        .unwrap()
        .get("/api/available_providers")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(empty, json!({"providers": []}));
}
