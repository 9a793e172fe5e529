//! Tessera's OAuth 2.0 face: the clients of `/api/admin/clients`, `/oauth/token`, `/oauth/revoke`,
//! `/oauth/introspect` and the metadata; `interop` drives them with third-party clients.

mod algorithms;
mod clients;
mod interop;
mod introspect;
mod token;

use reqwest::Method;
use serde_json::{Value, json};

use crate::admin::{admin_app, call, token};
use crate::helpers::{TestApp, TestDb};

/// The admin app of `crate::admin` (users `user_X` holding letter X), with `tokens.issuer` a loopback URL as
/// standard clients require.
pub async fn oauth_app(db: TestDb, tweak: impl FnOnce(&mut tessera::config::Config)) -> Option<TestApp> {
    admin_app(db, |c| {
        c.tokens.issuer = "http://127.0.0.1".into();
        tweak(c);
    })
    .await
}

/// Registers a client as the superuser; returns the whole answer (`client_id`, `client_secret`, …).
pub async fn register(app: &TestApp, body: Value) -> Value {
    let su = token(app, "user_S").await;
    let resp = call(app, Some(&su), Method::POST, "/api/admin/clients", Some(body)).await;
    assert_eq!(resp.status(), 200, "client registration failed");
    resp.json().await.unwrap()
}

/// A confidential client with every grant and the scopes `read write`.
pub async fn confidential(app: &TestApp) -> (String, String) {
    let c = register(
        app,
        json!({
            "name": "backend",
            "type": "confidential",
            "grant_types": ["client_credentials", "password", "refresh_token"],
            "scopes": ["read", "write"],
        }),
    )
    .await;
    (
        c["client_id"].as_str().unwrap().to_string(),
        c["client_secret"].as_str().unwrap().to_string(),
    )
}

/// A form POST to `path`, with HTTP Basic when `basic` is given.
pub async fn post_form(
    app: &TestApp,
    path: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut req = app.client.post(app.url(path)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    req.send().await.unwrap()
}

/// Asserts an RFC 6749 error answer and returns its body.
pub async fn oauth_error(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status(), status, "expected {status} {code}");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    body
}
