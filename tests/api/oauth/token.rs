//! `POST /oauth/token`: the grants, client authentication and every refusal, in RFC 6749's words.

use reqwest::Method;
use serde_json::{Value, json};

use super::{confidential, oauth_app, oauth_error, post_form, register};
use crate::admin::{PASSWORD, call, id_of, token};
use crate::db_test;
use crate::helpers::claims_of;

db_test!(client_credentials_tokens_are_the_clients_own, async |db| {
    let app = oauth_app(db, |_| {}).await.unwrap();
    let su = token(&app, "user_S").await;
    let group = id_of(&app, &su, "claim-groups", "name", "L_S").await;
    let c = register(
        &app,
        json!({
            "name": "robot",
            "type": "confidential",
            "grant_types": ["client_credentials"],
            "scopes": ["read", "write"],
            "audience": "https://api.example",
            "claim_groups": [group],
            "access_token_ttl": 120,
        }),
    )
    .await;
    let (id, secret) = (c["client_id"].as_str().unwrap(), c["client_secret"].as_str().unwrap());
    let resp = post_form(
        &app,
        "/oauth/token",
        &[("grant_type", "client_credentials"), ("scope", "read")],
        Some((id, secret)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 120);
    assert_eq!(body["scope"], "read");
    assert!(body.get("refresh_token").is_none());
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], format!("client:{id}"));
    assert_eq!(claims["client_id"], id);
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["aud"], "https://api.example");
    assert_eq!(claims["iss"], "http://127.0.0.1");
    assert_eq!(claims["stk"], "S", "the client's own groups");
    assert!(claims.get("sid").is_none());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (claims["exp"].as_i64().unwrap() - now - 120).abs() <= 5,
        "the client's lifetime"
    );

    // Its stk=S is no admin right: the admin API reads rights from users, and a client is none.
    let t = body["access_token"].as_str().unwrap();
    let admin = call(&app, Some(t), Method::GET, "/api/admin/users", None).await;
    assert_eq!(admin.status(), 401, "a client token reached the admin API");

    // The same with client_secret_post; no scope asked: every scope of the client.
    let resp = post_form(
        &app,
        "/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ],
        None,
    )
    .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["scope"], "read write");
});

db_test!(the_password_grant_is_a_login_through_the_client, async |db| {
    let app = oauth_app(db, |_| {}).await.unwrap();
    let c = register(
        &app,
        json!({
            "name": "cli",
            "type": "public",
            "grant_types": ["password", "refresh_token"],
            "scopes": ["profile"],
            "claim_filter": ["stk"],
            "refresh_token_ttl": 3600,
        }),
    )
    .await;
    let id = c["client_id"].as_str().unwrap();
    assert!(c.get("client_secret").is_none_or(Value::is_null));
    let form = [
        ("grant_type", "password"),
        ("client_id", id),
        ("username", "user_G"),
        ("password", PASSWORD),
    ];
    let resp = post_form(&app, "/oauth/token", &form, None).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body["refresh_token"].is_string());
    assert_eq!(body["scope"], "profile");
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["client_id"], id);
    assert_eq!(claims["stk"], "G");
    assert!(claims["sid"].is_string(), "a session");
    assert!(
        claims.get("username").is_none(),
        "the claim filter keeps only stk: {claims}"
    );

    // A wrong password is invalid_grant and counts like a login's.
    let wrong = [
        ("grant_type", "password"),
        ("client_id", id),
        ("username", "user_G"),
        ("password", "nope"),
    ];
    oauth_error(
        post_form(&app, "/oauth/token", &wrong, None).await,
        400,
        "invalid_grant",
    )
    .await;
    // A client without the grant: unauthorized_client.
    let (other, secret) = {
        let c = register(
            &app,
            json!({ "name": "cc", "type": "confidential", "grant_types": ["client_credentials"] }),
        )
        .await;
        (
            c["client_id"].as_str().unwrap().to_string(),
            c["client_secret"].as_str().unwrap().to_string(),
        )
    };
    let form = [
        ("grant_type", "password"),
        ("username", "user_G"),
        ("password", PASSWORD),
    ];
    oauth_error(
        post_form(&app, "/oauth/token", &form, Some((&other, &secret))).await,
        400,
        "unauthorized_client",
    )
    .await;
    let form = [("grant_type", "refresh_token"), ("refresh_token", "x")];
    oauth_error(
        post_form(&app, "/oauth/token", &form, Some((&other, &secret))).await,
        400,
        "unauthorized_client",
    )
    .await;
});

db_test!(bad_token_requests_get_the_rfc_error_and_change_nothing, async |db| {
    let app = oauth_app(db, |_| {}).await.unwrap();
    let (id, secret) = confidential(&app).await;
    let public = register(
        &app,
        json!({ "name": "spa", "type": "public", "grant_types": ["password"] }),
    )
    .await;
    let public_id = public["client_id"].as_str().unwrap().to_string();
    let cc = [("grant_type", "client_credentials")];
    let basic = Some((id.as_str(), secret.as_str()));

    // JSON instead of a form: invalid_request, not 415.
    let json_body = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .json(&json!({ "grant_type": "client_credentials" }))
        .send()
        .await
        .unwrap();
    oauth_error(json_body, 400, "invalid_request").await;
    // A repeated parameter.
    let repeated = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=read&scope=write")
        .send()
        .await
        .unwrap();
    oauth_error(repeated, 400, "invalid_request").await;
    // No grant type, an unknown one.
    oauth_error(
        post_form(&app, "/oauth/token", &[("scope", "read")], basic).await,
        400,
        "invalid_request",
    )
    .await;
    oauth_error(
        post_form(&app, "/oauth/token", &[("grant_type", "authorization_code")], basic).await,
        400,
        "unsupported_grant_type",
    )
    .await;
    oauth_error(
        post_form(
            &app,
            "/oauth/token",
            &[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")],
            basic,
        )
        .await,
        400,
        "unsupported_grant_type",
    )
    .await;
    // A scope the client does not have.
    oauth_error(
        post_form(
            &app,
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("scope", "read admin")],
            basic,
        )
        .await,
        400,
        "invalid_scope",
    )
    .await;
    // Wrong secret with Basic: 401 with WWW-Authenticate; with the form: 401.
    let wrong = post_form(&app, "/oauth/token", &cc, Some((&id, "not-the-secret"))).await;
    assert!(wrong.headers().contains_key("www-authenticate"));
    oauth_error(wrong, 401, "invalid_client").await;
    let wrong = post_form(
        &app,
        "/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", "x"),
        ],
        None,
    )
    .await;
    oauth_error(wrong, 401, "invalid_client").await;
    // A confidential client with no secret; an unknown client; no client at all.
    oauth_error(
        post_form(
            &app,
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("client_id", &id)],
            None,
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        post_form(&app, "/oauth/token", &cc, Some(("nobody", "x"))).await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(post_form(&app, "/oauth/token", &cc, None).await, 401, "invalid_client").await;
    // A public client sending a secret.
    let form = [
        ("grant_type", "password"),
        ("client_id", public_id.as_str()),
        ("client_secret", "guess"),
        ("username", "user_G"),
        ("password", PASSWORD),
    ];
    oauth_error(
        post_form(&app, "/oauth/token", &form, None).await,
        401,
        "invalid_client",
    )
    .await;
    // Basic and the form naming different clients or secrets.
    let differing = [("grant_type", "client_credentials"), ("client_id", public_id.as_str())];
    oauth_error(
        post_form(&app, "/oauth/token", &differing, basic).await,
        400,
        "invalid_request",
    )
    .await;
    let differing = [("grant_type", "client_credentials"), ("client_secret", "other")];
    oauth_error(
        post_form(&app, "/oauth/token", &differing, basic).await,
        400,
        "invalid_request",
    )
    .await;
    // The same in both (oauthlib's clients do this): fine.
    let same = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    assert_eq!(post_form(&app, "/oauth/token", &same, basic).await.status(), 200);
    // A malformed Basic header.
    let malformed = app
        .client
        .post(app.url("/oauth/token"))
        .header("authorization", "Basic !!!notbase64")
        .form(&cc)
        .send()
        .await
        .unwrap();
    oauth_error(malformed, 401, "invalid_client").await;
    // Oversize values and a password grant without a password.
    let long = "x".repeat(9000);
    oauth_error(
        post_form(
            &app,
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("scope", &long)],
            basic,
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    let form = [("grant_type", "password"), ("username", "user_G")];
    oauth_error(
        post_form(&app, "/oauth/token", &form, basic).await,
        400,
        "invalid_request",
    )
    .await;
    // The client still works: nothing changed.
    assert_eq!(post_form(&app, "/oauth/token", &cc, basic).await.status(), 200);
});

db_test!(
    failed_client_authentication_is_limited_per_client_and_address,
    async |db| {
        let app = oauth_app(db, |c| c.oauth.max_client_failures = 3).await.unwrap();
        let (id, secret) = confidential(&app).await;
        let cc = [("grant_type", "client_credentials")];
        for _ in 0..3 {
            oauth_error(
                post_form(&app, "/oauth/token", &cc, Some((&id, "wrong"))).await,
                401,
                "invalid_client",
            )
            .await;
        }
        let limited = post_form(&app, "/oauth/token", &cc, Some((&id, &secret))).await;
        assert!(limited.headers().contains_key("retry-after"));
        oauth_error(limited, 429, "too_many_attempts").await;
    }
);

db_test!(refresh_tokens_stay_with_the_client_that_got_them, async |db| {
    let app = oauth_app(db, |_| {}).await.unwrap();
    let (a_id, a_secret) = confidential(&app).await;
    let (b_id, b_secret) = confidential(&app).await;
    let a = Some((a_id.as_str(), a_secret.as_str()));
    let b = Some((b_id.as_str(), b_secret.as_str()));
    let login = [
        ("grant_type", "password"),
        ("username", "user_none"),
        ("password", PASSWORD),
        ("scope", "read write"),
    ];
    let body: Value = post_form(&app, "/oauth/token", &login, a).await.json().await.unwrap();
    let refresh = body["refresh_token"].as_str().unwrap().to_string();

    // Another client, and Stoke's /api/refresh, cannot use it.
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
    oauth_error(post_form(&app, "/oauth/token", &form, b).await, 400, "invalid_grant").await;
    assert_eq!(app.refresh(&refresh).await.status(), 401);
    // Nor can a client use a Stoke session's token.
    let (_, stoke_refresh) = app.login_ok("user_none", PASSWORD).await;
    let form_stoke = [
        ("grant_type", "refresh_token"),
        ("refresh_token", stoke_refresh.as_str()),
    ];
    oauth_error(
        post_form(&app, "/oauth/token", &form_stoke, a).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        app.refresh(&stoke_refresh).await.status(),
        200,
        "the Stoke session still works"
    );

    // Its own client narrows the scope, cannot widen it, and the session keeps its scope.
    let wider = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("scope", "read admin"),
    ];
    oauth_error(post_form(&app, "/oauth/token", &wider, a).await, 400, "invalid_scope").await;
    let narrow = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("scope", "read"),
    ];
    let resp = post_form(&app, "/oauth/token", &narrow, a).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["scope"], "read");
    assert_eq!(claims_of(body["access_token"].as_str().unwrap())["scope"], "read");
    let next = body["refresh_token"].as_str().unwrap().to_string();
    let form = [("grant_type", "refresh_token"), ("refresh_token", next.as_str())];
    let body: Value = post_form(&app, "/oauth/token", &form, a).await.json().await.unwrap();
    assert_eq!(body["scope"], "read write");
    // Rotation, one winner, the grace and reuse revocation are the families' own (tests/api/refresh.rs).
});

db_test!(
    a_parallel_burst_of_wrong_secrets_gets_no_more_tries_than_the_limit,
    async |db| {
        let app = oauth_app(db, |c| c.oauth.max_client_failures = 3).await.unwrap();
        let (id, _) = confidential(&app).await;
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..24 {
            let request = app
                .client
                .post(app.url("/oauth/token"))
                .basic_auth(&id, Some("wrong"))
                .form(&[("grant_type", "client_credentials")]);
            burst.spawn(async move { request.send().await.unwrap().status().as_u16() });
        }
        let statuses = burst.join_all().await;
        let tried = statuses.iter().filter(|s| **s == 401).count();
        assert!(tried <= 3, "{tried} attempts checked a secret: {statuses:?}");
        assert_eq!(
            statuses.iter().filter(|s| **s == 429).count(),
            24 - tried,
            "{statuses:?}"
        );
    }
);

// A client with more workers in flight than the failure limit is never refused: right secrets are not counted,
// not even while they are being checked.
db_test!(a_parallel_burst_of_right_secrets_is_never_limited, async |db| {
    let app = oauth_app(db, |c| c.oauth.max_client_failures = 3).await.unwrap();
    let (id, secret) = confidential(&app).await;
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let request = app
            .client
            .post(app.url("/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")]);
        burst.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let statuses = burst.join_all().await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
});
