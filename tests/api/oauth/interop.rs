//! Third-party OAuth 2.0 clients against the real server: Python authlib, requests-oauthlib and PyJWT, from
//! the pinned `tests/interop/requirements.txt` (scripts/test installs them into a venv).

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::{oauth_app, register};
use crate::admin::PASSWORD;
use crate::db_test;
use crate::helpers::{TestApp, repo_path};

fn credentials(c: &Value) -> Value {
    json!({ "client_id": c["client_id"], "client_secret": c["client_secret"] })
}

async fn run_clients(app: &TestApp, oidc: bool) {
    let confidential = register(
        app,
        json!({
            "name": "lok-backend",
            "type": "confidential",
            "grant_types": ["client_credentials", "password", "refresh_token"],
            "scopes": ["read", "write"],
            // With OpenID, the tokens PyJWT checks are RS256 ones, from the ring's second chain.
            "signing_alg": if oidc { "RS256" } else { "ES256" },
        }),
    )
    .await;
    let public = register(
        app,
        json!({ "name": "lok-cli", "type": "public", "grant_types": ["password", "refresh_token"] }),
    )
    .await;
    let introspector = register(
        app,
        json!({ "name": "api", "type": "confidential", "grant_types": ["client_credentials"], "introspect": true }),
    )
    .await;
    let input = json!({
        "base": app.address,
        "confidential": credentials(&confidential),
        "public": credentials(&public),
        "introspector": credentials(&introspector),
        "username": "user_none",
        "password": PASSWORD,
        "oidc": oidc,
    });
    let mut python = Command::new(crate::helpers::venv_python());
    // oauthlib refuses http:// token URLs otherwise; the server is on loopback.
    python
        .arg(repo_path("tests/interop/oauth_clients.py"))
        .env("OAUTHLIB_INSECURE_TRANSPORT", "1");
    run_script(python, &input, "all OAuth client checks passed").await;
}

/// Runs a client script with `input` on stdin; it must succeed and print `done`.
async fn run_script(mut command: Command, input: &Value, done: &str) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?} (scripts/test installs it): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the OAuth clients failed:
{text}"
    );
    assert!(text.contains(done), "{text}");
}

db_test!(authlib_and_requests_oauthlib_get_tokens, async |db| {
    let app = oauth_app(db, |_| {}).await.unwrap();
    run_clients(&app, false).await;
});

// OpenID Discovery requires RS256 among the signing algorithms: the default ring (ES256 and RS256) has it.
db_test!(authlib_validates_the_openid_metadata, async |db| {
    let app = oauth_app(db, |_| {}).await.unwrap();
    run_clients(&app, true).await;
});

// node openid-client and oauth4webapi: discovery needs the issuer to be the server's own URL, port included.
db_test!(openid_client_and_oauth4webapi_use_the_server, async |db| {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let issuer = format!("http://127.0.0.1:{port}");
    let app = super::oauth_app(db, |c| {
        c.server.port = port;
        c.tokens.issuer = issuer.clone();
    })
    .await
    .unwrap();
    let grants = json!(["client_credentials", "password", "refresh_token"]);
    let confidential = register(
        &app,
        json!({ "name": "node", "type": "confidential", "grant_types": grants, "scopes": ["read", "write"] }),
    )
    .await;
    let introspector = register(
        &app,
        json!({ "name": "api", "type": "confidential", "grant_types": ["client_credentials"], "introspect": true }),
    )
    .await;
    let rfc9068 = register(
        &app,
        json!({
            "name": "profiled",
            "type": "confidential",
            "grant_types": grants,
            "jwt_profile": "rfc9068",
            "audience": "https://api.example",
            "signing_alg": "RS256",
        }),
    )
    .await;
    let mut profiled = credentials(&rfc9068);
    profiled["audience"] = json!("https://api.example");
    let input = json!({
        "issuer": issuer,
        "confidential": credentials(&confidential),
        "introspector": credentials(&introspector),
        "rfc9068": profiled,
        "username": "user_none",
        "password": PASSWORD,
    });
    let mut node = Command::new("node");
    node.arg(repo_path("tests/interop/oauth_clients.mjs"))
        .current_dir(repo_path("tests/interop"));
    run_script(node, &input, "all node OAuth client checks passed").await;
});
