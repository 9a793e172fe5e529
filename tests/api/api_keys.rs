//! API keys (Keyosk's model) and credential-scoped claim groups: a user makes a key, a script logs in with
//! Basic `user:key` and a resource server (PyJWT) verifies the token through the JWKS; keys carry only what
//! their owner holds now, within their filter, never a group limited to other credentials; revoked, expired,
//! misnamed or malformed keys are `401 {}` or a 400 and change nothing; the per-user limit holds against a
//! parallel burst; admins manage keys within the letter rules.

use std::sync::Arc;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use tessera::clock::{Clock, ManualClock};

use crate::admin::{PASSWORD, admin_app, call, id_of, token};
use crate::db_test;
use crate::helpers::{TestApp, TestDb, claims_of, run_json_script, spawn_app_full, spawn_app_with};
use crate::security::expect;

/// `ann` is in `Supers` (stk=S, password logins only), `Crew` (ship=acc, every credential) and `Bots`
/// (bot=yes, API keys only); `bob` is in `Crew`.
fn scoped_dbinit(dir: &std::path::Path) -> std::path::PathBuf {
    let cfg = crate::helpers::test_config("sqlite://unused");
    let phc = tessera::crypto::password::Hasher::new(&cfg.security.password_hash)
        .unwrap()
        .hash(PASSWORD)
        .unwrap();
    let text = format!(
        "claims:\n  - claim: \"Super,,stk,S\"\n  - claim: \"Ship,,ship,acc\"\n  - claim: \"Bot,,bot,yes\"\n\
         groups:\n  - {{ name: Supers, claims: [Super], credentials: [password] }}\n  - {{ name: Crew, claims: [Ship] }}\n  \
         - {{ name: Bots, claims: [Bot], credentials: [api_key] }}\n\
         users:\n  - {{ username: ann, email: ann@example.com, password_hash: \"{phc}\", groups: [Supers, Crew, Bots] }}\n  \
         - {{ username: bob, password_hash: \"{phc}\", groups: [Crew] }}\n"
    );
    let path = dir.join("scoped.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn scoped_app(db: TestDb, tweak: impl FnOnce(&mut tessera::config::Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(db, tweak, Some(scoped_dbinit(dir.path())))
        .await
        .unwrap();
    drop(dir);
    app
}

/// Creates a key through `/api/me/api-keys` with `token`; returns the answer.
async fn new_key(app: &TestApp, token: &str, body: Value) -> Value {
    let resp = call(app, Some(token), Method::POST, "/api/me/api-keys", Some(body)).await;
    assert_eq!(
        resp.headers().get("cache-control").map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    expect(resp, 201, "").await
}

/// `POST /api/login` with `Authorization: Basic` and no body.
async fn basic_login(app: &TestApp, user: &str, secret: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/login"))
        .basic_auth(user, Some(secret))
        .send()
        .await
        .unwrap()
}

/// A raw `Authorization` header on a body-less login.
async fn raw_login(app: &TestApp, authorization: reqwest::header::HeaderValue) -> reqwest::Response {
    app.client
        .post(app.url("/api/login"))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap()
}

/// The Python script of `tests/interop/api_key_script.py`: its JSON line.
async fn script_login(app: &TestApp, user: &str, key: &str) -> Value {
    let input = json!({
        "login": app.url("/api/login"),
        "jwks": app.url("/.well-known/jwks.json"),
        "username": user,
        "key": key,
        "issuer": "tessera",
    });
    run_json_script("/usr/bin/python3".into(), "api_key_script.py", input).await
}

async fn refresh_pair(app: &TestApp, refresh: &str) -> (u16, Value) {
    let resp = app.refresh(refresh).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

db_test!(keyosk_flow_end_to_end, async |db| {
    let app = scoped_app(db, |_| {}).await;
    let (password_token, _) = app.login_ok("ann", PASSWORD).await;
    let claims = claims_of(&password_token);
    assert_eq!(
        (claims["stk"].as_str(), claims["ship"].as_str()),
        (Some("S"), Some("acc"))
    );
    assert!(
        claims.get("bot").is_none(),
        "an api_key-only group reached a password login: {claims}"
    );
    assert_eq!(claims["amr"], json!(["pwd"]));

    // A user makes a key; it is shown once and listed without its secret.
    let made = new_key(&app, &password_token, json!({"name": "ci"})).await;
    let key = made["key"].as_str().unwrap().to_string();
    let id = made["id"].as_str().unwrap().to_string();
    assert!(key.starts_with(&format!("tsk_{id}_")), "{made}");
    assert_eq!(made["prefix"], format!("tsk_{id}"));
    assert!(made["expires_at"].is_null());
    let listed = expect(
        call(&app, Some(&password_token), Method::GET, "/api/me/api-keys", None).await,
        200,
        "",
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        listed[0].get("key").is_none() && listed[0]["last_used_at"].is_null(),
        "{listed}"
    );
    assert!(!listed.to_string().contains(&key[25..]), "a listing shows the secret");

    // A script logs in with Basic user:key; PyJWT verifies the token through the JWKS.
    let out = script_login(&app, "ann", &key).await;
    assert_eq!(out["status"], 200, "{out}");
    let claims = &out["claims"];
    assert_eq!(claims["amr"], json!(["api_key"]));
    assert_eq!(
        (claims["ship"].as_str(), claims["bot"].as_str()),
        (Some("acc"), Some("yes"))
    );
    assert!(
        claims.get("stk").is_none(),
        "a password-only group reached an API key: {claims}"
    );
    let listed = expect(
        call(&app, Some(&password_token), Method::GET, "/api/me/api-keys", None).await,
        200,
        "",
    )
    .await;
    assert!(listed[0]["last_used_at"].is_string(), "{listed}");

    // The key's session refreshes as an API-key session; its token has no admin rights and makes no keys.
    let (status, pair) = refresh_pair(&app, out["refresh"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let refreshed = claims_of(pair["token"].as_str().unwrap());
    assert!(
        refreshed.get("stk").is_none() && refreshed["amr"] == json!(["api_key"]),
        "{refreshed}"
    );
    let key_token = pair["token"].as_str().unwrap().to_string();
    expect(
        call(&app, Some(&key_token), Method::GET, "/api/admin/users", None).await,
        403,
        "forbidden",
    )
    .await;
    let more = call(
        &app,
        Some(&key_token),
        Method::POST,
        "/api/me/api-keys",
        Some(json!({"name": "x"})),
    )
    .await;
    expect(more, 403, "api_key_session").await;

    // Claims are read at each refresh: lifting the group's limit gives the key's session stk=S, restoring it
    // takes it away again.
    let supers = id_of(&app, &password_token, "claim-groups", "name", "Supers").await;
    let path = format!("/api/admin/claim-groups/{supers}");
    let group = expect(
        call(&app, Some(&password_token), Method::GET, &path, None).await,
        200,
        "",
    )
    .await;
    assert_eq!(group["credentials"], json!(["password"]));
    let lifted = call(
        &app,
        Some(&password_token),
        Method::PATCH,
        &path,
        Some(json!({"credentials": null})),
    )
    .await;
    assert!(expect(lifted, 200, "").await.get("credentials").is_none());
    let (status, pair) = refresh_pair(&app, pair["refresh"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(claims_of(pair["token"].as_str().unwrap())["stk"], "S");
    let limited = call(
        &app,
        Some(&password_token),
        Method::PATCH,
        &path,
        Some(json!({"credentials": ["password"]})),
    );
    expect(limited.await, 200, "").await;
    let (status, pair) = refresh_pair(&app, pair["refresh"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(claims_of(pair["token"].as_str().unwrap()).get("stk").is_none());

    // The key in the JSON body works as well.
    app.login_ok("ann", &key).await;

    // Revoked: the next login is 401 {} and the key's sessions end.
    let revoke = call(
        &app,
        Some(&password_token),
        Method::DELETE,
        &format!("/api/me/api-keys/{id}"),
        None,
    )
    .await;
    assert_eq!(revoke.status(), 204);
    let out = script_login(&app, "ann", &key).await;
    assert_eq!(
        (out["status"].as_i64(), out["body"].as_str()),
        (Some(401), Some("{}")),
        "{out}"
    );
    assert_eq!(refresh_pair(&app, pair["refresh"].as_str().unwrap()).await.0, 401);
    let again = call(
        &app,
        Some(&password_token),
        Method::DELETE,
        &format!("/api/me/api-keys/{id}"),
        None,
    )
    .await;
    expect(again, 404, "not_found").await;

    // The audit trail has the creation and the revocation, never the key.
    let audit = expect(
        call(
            &app,
            Some(&password_token),
            Method::GET,
            "/api/admin/audit?itemsPerPage=255",
            None,
        )
        .await,
        200,
        "",
    )
    .await;
    let text = audit.to_string();
    assert!(
        text.contains("api_key.create") && text.contains("api_key.revoke"),
        "{text}"
    );
    assert!(!text.contains(&key[25..]), "the audit trail holds a key");
});

db_test!(bad_keys_and_malformed_basic_change_nothing, async |db| {
    let app = scoped_app(db, |_| {}).await;
    let (token, _) = app.login_ok("ann", PASSWORD).await;
    let key = new_key(&app, &token, json!({"name": "k"})).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    // `tsk_` and 16 hex digits, then `_` and the secret (whose base64url may hold `_` too).
    let (head, secret) = (&key[..20], &key[21..]);
    // The same id with another secret of the right form.
    let flipped = format!("{head}_{}", secret.chars().rev().collect::<String>());
    let other_secret = format!("{head}_{}", "A".repeat(43));
    for (user, presented) in [
        ("ann", flipped.as_str()),
        ("ann", other_secret.as_str()),
        ("bob", key.as_str()),
        ("nobody", key.as_str()),
        ("ann", &key[..key.len() - 1]),
        ("ann", "tsk_0123456789abcdef_short"),
    ] {
        let resp = basic_login(&app, user, presented).await;
        assert_eq!(resp.status(), 401, "{user}:{presented}");
        assert_eq!(resp.text().await.unwrap(), "{}");
    }
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let header = |s: String| reqwest::header::HeaderValue::from_str(&s).unwrap();
    for bad in [
        header("Basic !!!notbase64".into()),
        header(format!("Basic {}", b64(b"no-colon-here"))),
        header(format!("Basic {}", b64(b"ann:\xff\xfe"))),
        reqwest::header::HeaderValue::from_bytes(b"Basic \xe9t\xe9").unwrap(),
    ] {
        let resp = raw_login(&app, bad.clone()).await;
        expect(resp, 400, "invalid_authorization").await;
    }
    // Basic and a body naming other credentials: refused; the same credentials: fine.
    let both = |password: &str| {
        app.client
            .post(app.url("/api/login"))
            .basic_auth("ann", Some(&key))
            .json(&json!({"username": "ann", "password": password}))
            .send()
    };
    expect(both(PASSWORD).await.unwrap(), 400, "conflicting_credentials").await;
    assert_eq!(both(&key).await.unwrap().status(), 200);
    // Basic with a password is a password login.
    let resp = basic_login(&app, "ann", PASSWORD).await;
    assert_eq!(
        claims_of(expect(resp, 200, "").await["token"].as_str().unwrap())["amr"],
        json!(["pwd"])
    );
    // None of the failures touched the key; the successes did.
    let listed = expect(
        call(&app, Some(&token), Method::GET, "/api/me/api-keys", None).await,
        200,
        "",
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // The failures of a key given with its owner's name are audited under that name.
    let audit = call(
        &app,
        Some(&token),
        Method::GET,
        "/api/admin/audit?itemsPerPage=255",
        None,
    )
    .await;
    let audit = expect(audit, 200, "").await;
    let failed = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login.failed" && e["actor"] == "ann")
        .count();
    assert!(failed >= 2, "{audit}");

    // Bad creation input: 400, nothing stored.
    for body in [
        json!({"name": ""}),
        json!({"name": "x", "expires_at": "tomorrow"}),
        json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
        json!({"name": "x", "claim_filter": [""]}),
        json!({"name": "x", "surprise": 1}),
    ] {
        let resp = call(&app, Some(&token), Method::POST, "/api/me/api-keys", Some(body.clone())).await;
        assert_eq!(resp.status(), 400, "{body}");
    }
    let listed = expect(
        call(&app, Some(&token), Method::GET, "/api/me/api-keys", None).await,
        200,
        "",
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    expect(call(&app, None, Method::GET, "/api/me/api-keys", None).await, 401, "").await;
});

#[tokio::test]
async fn an_expired_key_stops_and_so_do_its_sessions() {
    let clock = ManualClock::new();
    let dir = tempfile::tempdir().unwrap();
    let dbinit = scoped_dbinit(dir.path());
    let app = spawn_app_full(TestDb::Sqlite, |_| {}, Some(dbinit), Some(Arc::new(clock.clone())))
        .await
        .unwrap();
    let (token, _) = app.login_ok("ann", PASSWORD).await;
    let until = tessera::api_types::rfc3339(clock.now() + 600);
    let made = new_key(
        &app,
        &token,
        json!({"name": "short", "expires_at": until, "claim_filter": ["bot"]}),
    )
    .await;
    assert_eq!(made["expires_at"], until);
    let key = made["key"].as_str().unwrap();
    let body = expect(basic_login(&app, "ann", key).await, 200, "").await;
    let claims = claims_of(body["token"].as_str().unwrap());
    // The key's filter keeps bot, not ship.
    assert_eq!(
        (claims["bot"].as_str(), claims.get("ship")),
        (Some("yes"), None),
        "{claims}"
    );
    clock.advance(601);
    assert_eq!(basic_login(&app, "ann", key).await.status(), 401);
    assert_eq!(app.refresh(body["refresh"].as_str().unwrap()).await.status(), 401);
}

#[tokio::test]
async fn failed_key_logins_are_throttled_like_passwords() {
    let app = scoped_app(TestDb::Sqlite, |c| {
        c.security.login_throttle.delay_after = 100;
        c.security.login_throttle.lockout_after = 3;
    })
    .await;
    let (token, _) = app.login_ok("ann", PASSWORD).await;
    let key = new_key(&app, &token, json!({"name": "k"})).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let wrong = format!("{}_{}", &key[..20], "B".repeat(43));
    for _ in 0..3 {
        assert_eq!(basic_login(&app, "ann", &wrong).await.status(), 401);
    }
    let locked = basic_login(&app, "ann", &key).await;
    assert_eq!(locked.status(), 429, "the right key during a lock");
    assert!(locked.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn amr_as_a_string_keeps_every_claim_a_string() {
    let app = scoped_app(TestDb::Sqlite, |c| {
        c.tokens.amr_claim = tessera::config::AmrClaim::String
    })
    .await;
    let (token, _) = app.login_ok("ann", PASSWORD).await;
    let key = new_key(&app, &token, json!({"name": "k"})).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let body = expect(basic_login(&app, "ann", &key).await, 200, "").await;
    let claims = claims_of(body["token"].as_str().unwrap());
    assert_eq!(claims["amr"], "api_key");
    for (k, v) in claims.as_object().unwrap() {
        if !["exp", "iat", "nbf", "aud"].contains(&k.as_str()) {
            assert!(v.is_string(), "{k} is not a string");
        }
    }
}

db_test!(the_key_limit_holds_against_a_parallel_burst, async |db| {
    let app = scoped_app(db, |c| c.security.max_api_keys_per_user = 3).await;
    let (token, _) = app.login_ok("bob", PASSWORD).await;
    let burst: Vec<_> = (0..10)
        .map(|i| {
            let request = call(
                &app,
                Some(&token),
                Method::POST,
                "/api/me/api-keys",
                Some(json!({"name": format!("k{i}")})),
            );
            tokio::spawn(async move {
                let resp = request.await;
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap();
                (status, body["error"].as_str().unwrap_or("").to_string())
            })
        })
        .collect();
    let mut codes = Vec::new();
    for task in burst {
        codes.push(task.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|(s, _)| *s == 201).count(), 3, "{codes:?}");
    assert!(
        codes.iter().all(|c| c.0 == 201 || *c == (409, "too_many_keys".into())),
        "{codes:?}"
    );
    let listed = expect(
        call(&app, Some(&token), Method::GET, "/api/me/api-keys", None).await,
        200,
        "",
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 3);
});

db_test!(admins_manage_keys_within_the_letter_rules, async |db| {
    let app = admin_app(db, |_| {}).await.unwrap();
    let writer = token(&app, "user_U").await;
    let reader = token(&app, "user_u").await;
    let none = id_of(&app, &writer, "users", "username", "user_none").await;
    let superuser = id_of(&app, &writer, "users", "username", "user_S2").await;
    let keys = |user: i64| format!("/api/admin/users/{user}/api-keys");

    let made = call(
        &app,
        Some(&writer),
        Method::POST,
        &keys(none),
        Some(json!({"name": "device"})),
    )
    .await;
    let made = expect(made, 201, "").await;
    let key = made["key"].as_str().unwrap();
    assert_eq!(basic_login(&app, "user_none", key).await.status(), 200);
    let listed = expect(call(&app, Some(&reader), Method::GET, &keys(none), None).await, 200, "").await;
    assert_eq!(listed[0]["id"], made["id"]);
    let denied = call(
        &app,
        Some(&reader),
        Method::POST,
        &keys(none),
        Some(json!({"name": "x"})),
    )
    .await;
    expect(denied, 403, "forbidden").await;
    // A superuser's keys are a superuser's business.
    let denied = call(
        &app,
        Some(&writer),
        Method::POST,
        &keys(superuser),
        Some(json!({"name": "x"})),
    )
    .await;
    expect(denied, 403, "superuser_required").await;
    let su = token(&app, "user_S").await;
    let theirs = expect(
        call(
            &app,
            Some(&su),
            Method::POST,
            &keys(superuser),
            Some(json!({"name": "s"})),
        )
        .await,
        201,
        "",
    )
    .await;
    let path = format!("{}/{}", keys(superuser), theirs["id"].as_str().unwrap());
    expect(
        call(&app, Some(&writer), Method::DELETE, &path, None).await,
        403,
        "superuser_required",
    )
    .await;
    // Another user's key id under this user is not found.
    let crossed = format!("{}/{}", keys(superuser), made["id"].as_str().unwrap());
    expect(
        call(&app, Some(&su), Method::DELETE, &crossed, None).await,
        404,
        "not_found",
    )
    .await;
    expect(
        call(&app, Some(&writer), Method::GET, &keys(987_654_321), None).await,
        404,
        "not_found",
    )
    .await;

    let path = format!("{}/{}", keys(none), made["id"].as_str().unwrap());
    assert_eq!(
        call(&app, Some(&writer), Method::DELETE, &path, None).await.status(),
        204
    );
    assert_eq!(basic_login(&app, "user_none", key).await.status(), 401);

    // Deleting the user deletes their keys.
    let made = call(
        &app,
        Some(&writer),
        Method::POST,
        &keys(none),
        Some(json!({"name": "again"})),
    )
    .await;
    let key = expect(made, 201, "").await["key"].as_str().unwrap().to_string();
    let gone = call(
        &app,
        Some(&writer),
        Method::DELETE,
        &format!("/api/admin/users/{none}"),
        None,
    )
    .await;
    assert_eq!(gone.status(), 204);
    assert_eq!(basic_login(&app, "user_none", &key).await.status(), 401);
});

#[tokio::test]
async fn the_oauth_password_grant_takes_a_key_within_both_filters() {
    let app = crate::oauth::oauth_app(TestDb::Sqlite, |_| {}).await.unwrap();
    let c = crate::oauth::register(
        &app,
        json!({"name": "cli", "type": "public", "grant_types": ["password", "refresh_token"], "scopes": ["profile"],
               "claim_filter": ["stk", "ship"]}),
    )
    .await;
    let client = c["client_id"].as_str().unwrap();
    let (token, _) = app.login_ok("user_G", PASSWORD).await;
    let key = new_key(&app, &token, json!({"name": "k", "claim_filter": ["stk"]})).await;
    let key = key["key"].as_str().unwrap();
    let form = [
        ("grant_type", "password"),
        ("client_id", client),
        ("username", "user_G"),
        ("password", key),
    ];
    let resp = crate::oauth::post_form(&app, "/oauth/token", &form, None).await;
    let body = expect(resp, 200, "").await;
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(
        (claims["stk"].as_str(), claims["amr"].clone()),
        (Some("G"), json!(["api_key"])),
        "{claims}"
    );
    let refresh = body["refresh_token"].as_str().unwrap();
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", client),
        ("refresh_token", refresh),
    ];
    let body = expect(
        crate::oauth::post_form(&app, "/oauth/token", &form, None).await,
        200,
        "",
    )
    .await;
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["amr"],
        json!(["api_key"])
    );
}

#[tokio::test]
async fn a_group_limit_is_checked_and_guarded_by_its_letters() {
    let app = admin_app(TestDb::Sqlite, |_| {}).await.unwrap();
    let groups = token(&app, "user_G").await;
    let su = token(&app, "user_S").await;
    let supers = id_of(&app, &su, "claim-groups", "name", "L_S").await;
    let crew = id_of(&app, &su, "claim-groups", "name", "Crew").await;
    let patch = |who: &str, id: i64, body: Value| {
        call(
            &app,
            Some(who),
            Method::PATCH,
            &format!("/api/admin/claim-groups/{id}"),
            Some(body),
        )
    };
    // Unknown kinds and an empty list are refused; kinds are stored in one order, once each.
    for bad in [
        json!({"credentials": ["pasword"]}),
        json!({"credentials": []}),
        json!({"credentials": "password"}),
    ] {
        assert_eq!(patch(&groups, crew, bad.clone()).await.status(), 400, "{bad}");
    }
    let set = expect(
        patch(
            &groups,
            crew,
            json!({"credentials": ["api_key", "password", "api_key"]}),
        )
        .await,
        200,
        "",
    )
    .await;
    assert_eq!(set["credentials"], json!(["password", "api_key"]));
    // Who gets the superusers' letters is a superuser's decision, either way.
    let denied = patch(&groups, supers, json!({"credentials": ["password"]})).await;
    expect(denied, 403, "superuser_required").await;
    expect(patch(&su, supers, json!({"credentials": ["password"]})).await, 200, "").await;
    expect(
        patch(&groups, supers, json!({"credentials": null})).await,
        403,
        "superuser_required",
    )
    .await;
    // Other fields stay open to G; the limit is kept when not given.
    let renamed = expect(patch(&su, supers, json!({"description": "the supers"})).await, 200, "").await;
    assert_eq!(renamed["credentials"], json!(["password"]));
}

#[test]
fn dbinit_refuses_an_unknown_credential_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "groups:\n  - { name: G, credentials: [passwords] }\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("--dbinit")
        .arg(&path)
        .arg("migrate")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("unknown credential kind \"passwords\""), "{text}");
}

/// The admin API authorizes against the letters the session's kind of credential gets now: a key token that
/// still says `stk=S` loses its rights as soon as the group is limited to passwords (fails with the rights
/// check reading every group).
#[tokio::test]
async fn a_key_session_loses_admin_rights_when_its_group_is_limited() {
    let app = scoped_app(TestDb::Sqlite, |c| {
        c.security.admin_rights_cache = tessera::config::GoDuration::from_secs(0);
    })
    .await;
    let (password_token, _) = app.login_ok("ann", PASSWORD).await;
    let supers = id_of(&app, &password_token, "claim-groups", "name", "Supers").await;
    let path = format!("/api/admin/claim-groups/{supers}");
    let set = |limit: Value| {
        call(
            &app,
            Some(&password_token),
            Method::PATCH,
            &path,
            Some(json!({"credentials": limit})),
        )
    };
    expect(set(Value::Null).await, 200, "").await;
    let key = new_key(&app, &password_token, json!({"name": "k"})).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let body = expect(basic_login(&app, "ann", &key).await, 200, "").await;
    let key_token = body["token"].as_str().unwrap().to_string();
    assert_eq!(claims_of(&key_token)["stk"], "S");
    expect(
        call(&app, Some(&key_token), Method::GET, "/api/admin/users", None).await,
        200,
        "",
    )
    .await;
    expect(set(json!(["password"])).await, 200, "").await;
    let denied = call(&app, Some(&key_token), Method::GET, "/api/admin/users", None).await;
    expect(denied, 403, "forbidden").await;
    // The password session keeps them.
    expect(
        call(&app, Some(&password_token), Method::GET, "/api/admin/users", None).await,
        200,
        "",
    )
    .await;
}

/// A token whose session ended (logout) is still a valid JWT until it expires, but it can neither see nor make
/// API keys, nor touch the second factor: those endpoints read the session, not the token alone.
#[tokio::test]
async fn an_ended_session_manages_no_keys_and_no_factor() {
    let app = scoped_app(TestDb::Sqlite, |_| {}).await;
    let (token, refresh) = app.login_ok("bob", PASSWORD).await;
    let out = app.post_json("/api/logout", &json!({ "refresh": refresh })).await;
    assert!(out.status().is_success(), "logout: {}", out.status());
    expect(
        call(&app, Some(&token), Method::GET, "/api/me/api-keys", None).await,
        401,
        "",
    )
    .await;
    let made = call(
        &app,
        Some(&token),
        Method::POST,
        "/api/me/api-keys",
        Some(json!({"name": "late"})),
    )
    .await;
    expect(made, 401, "").await;
    expect(
        call(&app, Some(&token), Method::POST, "/api/mfa/totp", Some(json!({}))).await,
        401,
        "",
    )
    .await;
    // And a caller without letters sees no one else's keys.
    let (plain, _) = app.login_ok("bob", PASSWORD).await;
    let ann = call(&app, Some(&plain), Method::GET, "/api/admin/users?q=ann", None).await;
    assert_eq!(ann.status(), 403);
}
