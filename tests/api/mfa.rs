//! The second factor: a user enrols TOTP and logs in with codes an independent implementation (pyotp)
//! computes from the `otpauth://` URI; a code works once, also across two replicas racing it; a recovery code
//! works once; wrong codes lock the factor on their own counter; `security.mfa.require_for` makes
//! administrators enrol before they log in; admins see and reset a user's factor within the letter rules.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use tessera::clock::{Clock, ManualClock};

use crate::admin::{PASSWORD, call};
use crate::db_test;
use crate::helpers::{TestApp, TestDb, claims_of, run_json_script, spawn_app_full, spawn_on_url, venv_python};
use crate::security::expect;

/// `mia` (no letters), `root` (stk=S) and `ula` (stk=U).
fn dbinit(dir: &std::path::Path) -> std::path::PathBuf {
    let cfg = crate::helpers::test_config("sqlite://unused");
    let phc = tessera::crypto::password::Hasher::new(&cfg.security.password_hash)
        .unwrap()
        .hash(PASSWORD)
        .unwrap();
    let text = format!(
        "claims:\n  - claim: \"Super,,stk,S\"\n  - claim: \"Users,,stk,U\"\n  - claim: \"Crew,,crew,yes\"\n\
         groups:\n  - {{ name: Supers, claims: [Super] }}\n  - {{ name: Admins, claims: [Users] }}\n  - {{ name: Crew, claims: [Crew] }}\n\
         users:\n  - {{ username: mia, password_hash: \"{phc}\", groups: [Crew] }}\n  \
         - {{ username: root, password_hash: \"{phc}\", groups: [Supers] }}\n  \
         - {{ username: ula, password_hash: \"{phc}\", groups: [Admins] }}\n"
    );
    let path = dir.join("mfa.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn mfa_app(db: TestDb, clock: &ManualClock, tweak: impl FnOnce(&mut tessera::config::Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_full(db, tweak, Some(dbinit(dir.path())), Some(Arc::new(clock.clone())))
        .await
        .unwrap();
    drop(dir);
    app
}

/// Codes at `times`, from pyotp, after it checked that the URI carries `secret` and the usual parameters.
async fn codes(enrolment: &Value, times: &[i64]) -> Vec<String> {
    let input = json!({"secret": enrolment["secret"], "uri": enrolment["otpauth_uri"], "times": times});
    let out = run_json_script(venv_python(), "totp_codes.py", input).await;
    serde_json::from_value(out).unwrap()
}

async fn code_now(enrolment: &Value, clock: &ManualClock) -> String {
    codes(enrolment, &[clock.now()]).await.remove(0)
}

/// Enrols `token`'s user; returns the enrolment and the recovery codes. The clock moves to the next step.
async fn enrol(app: &TestApp, token: &str, clock: &ManualClock) -> (Value, Vec<String>) {
    let started = expect(
        call(app, Some(token), Method::POST, "/api/mfa/totp", Some(json!({}))).await,
        200,
        "",
    )
    .await;
    assert!(started["qr_svg"].as_str().unwrap().contains("<svg"), "{started}");
    let code = code_now(&started, clock).await;
    let confirmed = call(
        app,
        Some(token),
        Method::POST,
        "/api/mfa/totp/confirm",
        Some(json!({"code": code})),
    );
    let confirmed = expect(confirmed.await, 200, "").await;
    let recovery: Vec<String> = serde_json::from_value(confirmed["recovery_codes"].clone()).unwrap();
    clock.advance(30);
    (started, recovery)
}

async fn login_body(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/api/login", &body).await
}

/// A password login answered `mfa_required`: its token.
async fn mfa_token(app: &TestApp, user: &str) -> String {
    let resp = login_body(app, json!({"username": user, "password": PASSWORD})).await;
    let body = expect(resp, 401, "mfa_required").await;
    body["mfa_token"].as_str().unwrap().to_string()
}

async fn second_step(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/api/login/mfa", &body).await
}

db_test!(enrol_and_log_in_with_codes_from_pyotp, async |db| {
    let clock = ManualClock::new();
    let app = mfa_app(db, &clock, |_| {}).await;
    let (token, _) = app.login_ok("mia", PASSWORD).await;
    expect(
        call(
            &app,
            Some(&token),
            Method::POST,
            "/api/mfa/totp/confirm",
            Some(json!({"code": "123456"})),
        )
        .await,
        409,
        "no_pending_enrolment",
    )
    .await;
    // A started enrolment is replaced by the next one; the first wrong code does not confirm it.
    call(&app, Some(&token), Method::POST, "/api/mfa/totp", Some(json!({}))).await;
    let started = expect(
        call(&app, Some(&token), Method::POST, "/api/mfa/totp", None).await,
        200,
        "",
    )
    .await;
    let uri = started["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/tessera:mia?secret=") && uri.contains("period=30"),
        "{uri}"
    );
    assert_eq!(started["secret"].as_str().unwrap().len(), 32, "160 bits in base32");
    let wrong = call(
        &app,
        Some(&token),
        Method::POST,
        "/api/mfa/totp/confirm",
        Some(json!({"code": "000000"})),
    );
    expect(wrong.await, 401, "invalid_code").await;
    clock.advance(1);
    let code = code_now(&started, &clock).await;
    let confirmed = call(
        &app,
        Some(&token),
        Method::POST,
        "/api/mfa/totp/confirm",
        Some(json!({"code": code})),
    );
    let recovery = expect(confirmed.await, 200, "").await["recovery_codes"].clone();
    let recovery: Vec<String> = serde_json::from_value(recovery).unwrap();
    assert_eq!(recovery.len(), 10);
    assert!(
        recovery.iter().all(|c| c.len() == 19 && c.matches('-').count() == 3),
        "{recovery:?}"
    );
    expect(
        call(&app, Some(&token), Method::POST, "/api/mfa/totp", None).await,
        409,
        "mfa_already_enrolled",
    )
    .await;
    clock.advance(30);
    // At rest the secret is encrypted under the key-encryption key (the KEK file beside a SQLite database).
    if db == TestDb::Sqlite {
        use diesel::prelude::*;
        use tessera::db::schema::totp_factors;
        let stored: String = totp_factors::table
            .select(totp_factors::secret)
            .first(&mut *app.state.db.get().unwrap())
            .unwrap();
        assert!(
            stored.starts_with("enc:") && !stored.contains(started["secret"].as_str().unwrap()),
            "{stored}"
        );
    }

    // The password alone is not enough; the second step with a code is.
    let step = mfa_token(&app, "mia").await;
    let code = code_now(&started, &clock).await;
    let resp = second_step(&app, json!({"mfa_token": step, "code": code})).await;
    let body = expect(resp, 200, "").await;
    let claims = claims_of(body["token"].as_str().unwrap());
    assert_eq!(
        (claims["amr"].clone(), claims["crew"].as_str()),
        (json!(["pwd", "otp"]), Some("yes"))
    );
    // The token is spent; the code is spent.
    expect(
        second_step(&app, json!({"mfa_token": step, "code": code})).await,
        401,
        "invalid_mfa_token",
    )
    .await;
    let again = mfa_token(&app, "mia").await;
    expect(
        second_step(&app, json!({"mfa_token": again, "code": code})).await,
        401,
        "invalid_code",
    )
    .await;
    clock.advance(30);

    // The code with the password in one request; the session keeps its amr through refreshes.
    let code = code_now(&started, &clock).await;
    let resp = login_body(&app, json!({"username": "mia", "password": PASSWORD, "otp": code})).await;
    let body = expect(resp, 200, "").await;
    let refreshed = expect(app.refresh(body["refresh"].as_str().unwrap()).await, 200, "").await;
    assert_eq!(
        claims_of(refreshed["token"].as_str().unwrap())["amr"],
        json!(["pwd", "otp"])
    );
    clock.advance(30);

    // A recovery code works once, typed in any case.
    let step = mfa_token(&app, "mia").await;
    let resp = second_step(
        &app,
        json!({"mfa_token": step, "recovery_code": recovery[0].to_lowercase()}),
    )
    .await;
    let body = expect(resp, 200, "").await;
    assert_eq!(claims_of(body["token"].as_str().unwrap())["amr"], json!(["pwd", "mfa"]));
    clock.advance(2);
    let step = mfa_token(&app, "mia").await;
    expect(
        second_step(&app, json!({"mfa_token": step, "recovery_code": recovery[0]})).await,
        401,
        "invalid_code",
    )
    .await;

    // New recovery codes need a proof; the old ones stop.
    clock.advance(2);
    let fresh = call(
        &app,
        Some(&token),
        Method::POST,
        "/api/mfa/recovery-codes",
        Some(json!({"password": PASSWORD})),
    );
    let fresh = expect(fresh.await, 200, "").await;
    assert_eq!(fresh["recovery_codes"].as_array().unwrap().len(), 10);
    let step = mfa_token(&app, "mia").await;
    expect(
        second_step(&app, json!({"mfa_token": step, "recovery_code": recovery[1]})).await,
        401,
        "invalid_code",
    )
    .await;

    // Disabling needs the password (or a code); then the password alone logs in again.
    clock.advance(2);
    let bad = call(
        &app,
        Some(&token),
        Method::DELETE,
        "/api/mfa/totp",
        Some(json!({"password": "nope"})),
    );
    expect(bad.await, 400, "wrong_password").await;
    let done = call(
        &app,
        Some(&token),
        Method::DELETE,
        "/api/mfa/totp",
        Some(json!({"password": PASSWORD})),
    );
    assert_eq!(done.await.status(), 204);
    let (plain, _) = app.login_ok("mia", PASSWORD).await;
    assert_eq!(claims_of(&plain)["amr"], json!(["pwd"]));
});

#[tokio::test]
async fn wrong_codes_lock_the_factor_not_the_password() {
    let clock = ManualClock::new();
    let app = mfa_app(TestDb::Sqlite, &clock, |_| {}).await;
    let (token, _) = app.login_ok("mia", PASSWORD).await;
    let (enrolment, _) = enrol(&app, &token, &clock).await;
    let attempt = |code: &str| login_body(&app, json!({"username": "mia", "password": PASSWORD, "otp": code}));
    // Each wrong code locks the factor for a second: a second guess at once waits, even a right one.
    expect(attempt("111111").await, 401, "invalid_code").await;
    let right = code_now(&enrolment, &clock).await;
    let locked = attempt(&right).await;
    assert_eq!(locked.headers()["retry-after"], "1");
    expect(locked, 429, "mfa_locked").await;
    // Five wrong codes in a row lock it for five minutes.
    for bad in ["222222", "33333a", "4444", "555555"] {
        clock.advance(1);
        expect(attempt(bad).await, 401, "invalid_code").await;
    }
    clock.advance(1);
    let right = code_now(&enrolment, &clock).await;
    let locked = attempt(&right).await;
    let wait: u64 = locked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((290..=300).contains(&wait), "{wait}");
    expect(locked, 429, "mfa_locked").await;
    // The password's own limits are untouched: the first step still answers.
    mfa_token(&app, "mia").await;
    clock.advance(301);
    let right = code_now(&enrolment, &clock).await;
    expect(attempt(&right).await, 200, "").await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("tessera_mfa_codes_total{outcome=\"wrong\"} 5"),
        "{metrics}"
    );
}

db_test!(two_replicas_racing_one_code_accept_it_once, async |db| {
    let clock = ManualClock::new();
    let a = mfa_app(db, &clock, |_| {}).await;
    let b = spawn_on_url(
        &a.db_url,
        tempfile::tempdir().unwrap(),
        |_| {},
        None,
        Some(Arc::new(clock.clone())),
    )
    .await;
    let (token, _) = a.login_ok("mia", PASSWORD).await;
    let (enrolment, recovery) = enrol(&a, &token, &clock).await;
    for round in 0..3 {
        let code = code_now(&enrolment, &clock).await;
        let body = json!({"username": "mia", "password": PASSWORD, "otp": code});
        let (ra, rb) = tokio::join!(login_body(&a, body.clone()), login_body(&b, body));
        let statuses = [ra.status().as_u16(), rb.status().as_u16()];
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "round {round}: {statuses:?}"
        );
        clock.advance(30);
    }
    // One recovery code raced through both replicas: one login.
    let (ta, tb) = (mfa_token(&a, "mia").await, mfa_token(&b, "mia").await);
    let (ra, rb) = tokio::join!(
        second_step(&a, json!({"mfa_token": ta, "recovery_code": recovery[0]})),
        second_step(&b, json!({"mfa_token": tb, "recovery_code": recovery[0]})),
    );
    let statuses = [ra.status().as_u16(), rb.status().as_u16()];
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
});

#[tokio::test]
async fn bad_second_steps_are_clear_4xx() {
    let clock = ManualClock::new();
    let app = mfa_app(TestDb::Sqlite, &clock, |_| {}).await;
    let (token, _) = app.login_ok("mia", PASSWORD).await;
    let (enrolment, recovery) = enrol(&app, &token, &clock).await;
    let step = mfa_token(&app, "mia").await;
    for body in [
        json!({"mfa_token": step, "code": "123456", "recovery_code": recovery[0]}),
        json!({"mfa_token": step}),
        json!({"mfa_token": step, "code": "123456", "surprise": true}),
    ] {
        assert_eq!(second_step(&app, body.clone()).await.status(), 400, "{body}");
    }
    expect(
        second_step(&app, json!({"mfa_token": "made-up", "code": "123456"})).await,
        401,
        "invalid_mfa_token",
    )
    .await;
    // A token allows five tries, then it is spent (the factor's lock is waited out between them).
    let step = mfa_token(&app, "mia").await;
    for _ in 0..5 {
        clock.advance(2);
        expect(
            second_step(&app, json!({"mfa_token": step, "code": "999999"})).await,
            401,
            "invalid_code",
        )
        .await;
    }
    clock.advance(301);
    let right = code_now(&enrolment, &clock).await;
    expect(
        second_step(&app, json!({"mfa_token": step, "code": right})).await,
        401,
        "invalid_mfa_token",
    )
    .await;
    // An expired token.
    let step = mfa_token(&app, "mia").await;
    clock.advance(301);
    let right = code_now(&enrolment, &clock).await;
    expect(
        second_step(&app, json!({"mfa_token": step, "code": right})).await,
        401,
        "invalid_mfa_token",
    )
    .await;
    // The OAuth password grant says what is missing, and takes the code as `otp`.
    let (root, _) = app.login_ok("root", PASSWORD).await;
    let client = call(
        &app,
        Some(&root),
        Method::POST,
        "/api/admin/clients",
        Some(json!({"name": "cli", "type": "public", "grant_types": ["password"], "scopes": ["profile"]})),
    )
    .await;
    let client = expect(client, 200, "").await;
    let id = client["client_id"].as_str().unwrap();
    let form = [
        ("grant_type", "password"),
        ("client_id", id),
        ("username", "mia"),
        ("password", PASSWORD),
    ];
    let resp = crate::oauth::post_form(&app, "/oauth/token", &form, None).await;
    let body = crate::oauth::oauth_error(resp, 400, "invalid_grant").await;
    assert_eq!(body["error_description"], "mfa_required");
    clock.advance(30);
    let code = code_now(&enrolment, &clock).await;
    let mut with_code = form.to_vec();
    with_code.push(("otp", &code));
    let resp = crate::oauth::post_form(&app, "/oauth/token", &with_code, None).await;
    let body = expect(resp, 200, "").await;
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "otp"])
    );
}

#[tokio::test]
async fn administrators_must_enrol_when_required() {
    let clock = ManualClock::new();
    let app = mfa_app(TestDb::Sqlite, &clock, |c| {
        c.security.mfa.require_for = vec!["S".into()]
    })
    .await;
    // Users without the letter are not concerned.
    app.login_ok("mia", PASSWORD).await;
    let refused = login_body(&app, json!({"username": "root", "password": PASSWORD})).await;
    let body = expect(refused, 403, "mfa_enrollment_required").await;
    let enrolment_token = body["enrollment_token"].as_str().unwrap().to_string();
    // The enrolment token opens the enrolment endpoints and nothing else.
    expect(
        call(&app, Some(&enrolment_token), Method::GET, "/api/me", None).await,
        401,
        "",
    )
    .await;
    expect(
        call(&app, Some(&enrolment_token), Method::GET, "/api/admin/users", None).await,
        401,
        "",
    )
    .await;
    let disable = call(
        &app,
        Some(&enrolment_token),
        Method::DELETE,
        "/api/mfa/totp",
        Some(json!({"password": PASSWORD})),
    );
    expect(disable.await, 401, "").await;
    let (enrolment, _) = enrol(&app, &enrolment_token, &clock).await;
    let step = mfa_token(&app, "root").await;
    let code = code_now(&enrolment, &clock).await;
    let body = expect(
        second_step(&app, json!({"mfa_token": step, "code": code})).await,
        200,
        "",
    )
    .await;
    let claims = claims_of(body["token"].as_str().unwrap());
    assert_eq!(
        (claims["stk"].as_str(), claims["amr"].clone()),
        (Some("S"), json!(["pwd", "otp"]))
    );
}

#[tokio::test]
async fn admins_see_and_reset_a_factor_within_the_letter_rules() {
    let clock = ManualClock::new();
    let app = mfa_app(TestDb::Sqlite, &clock, |_| {}).await;
    let (mia, mia_refresh) = app.login_ok("mia", PASSWORD).await;
    enrol(&app, &mia, &clock).await;
    let (root, _) = app.login_ok("root", PASSWORD).await;
    enrol(&app, &root, &clock).await;
    let (ula, _) = app.login_ok("ula", PASSWORD).await;
    let mia_id = crate::admin::id_of(&app, &ula, "users", "username", "mia").await;
    let root_id = crate::admin::id_of(&app, &ula, "users", "username", "root").await;
    let path = |id: i64| format!("/api/admin/users/{id}/mfa");
    // A user without letters neither sees nor resets anyone's factor, their own included.
    expect(
        call(&app, Some(&mia), Method::GET, &path(root_id), None).await,
        403,
        "forbidden",
    )
    .await;
    expect(
        call(&app, Some(&mia), Method::DELETE, &path(mia_id), None).await,
        403,
        "forbidden",
    )
    .await;
    let status = expect(call(&app, Some(&ula), Method::GET, &path(mia_id), None).await, 200, "").await;
    assert_eq!(
        (status["totp"].as_bool(), status["recovery_codes_left"].as_i64()),
        (Some(true), Some(10)),
        "{status}"
    );
    // A superuser's factor is a superuser's business.
    expect(
        call(&app, Some(&ula), Method::DELETE, &path(root_id), None).await,
        403,
        "superuser_required",
    )
    .await;
    // A user who lost their phone: the admin resets the factor, the user's sessions end, the password logs in.
    assert_eq!(
        call(&app, Some(&ula), Method::DELETE, &path(mia_id), None)
            .await
            .status(),
        204
    );
    expect(
        call(&app, Some(&ula), Method::DELETE, &path(mia_id), None).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(app.refresh(&mia_refresh).await.status(), 401);
    let (again, _) = app.login_ok("mia", PASSWORD).await;
    assert_eq!(claims_of(&again)["amr"], json!(["pwd"]));
    let audit = expect(
        call(
            &app,
            Some(&root),
            Method::GET,
            "/api/admin/audit?itemsPerPage=255",
            None,
        )
        .await,
        200,
        "",
    )
    .await;
    assert!(audit.to_string().contains("mfa.reset"), "{audit}");

    // API keys need no second factor, and their sessions cannot change one.
    let key = call(
        &app,
        Some(&root),
        Method::POST,
        "/api/me/api-keys",
        Some(json!({"name": "k"})),
    )
    .await;
    let key = expect(key, 201, "").await["key"].as_str().unwrap().to_string();
    let body = expect(
        login_body(&app, json!({"username": "root", "password": key})).await,
        200,
        "",
    )
    .await;
    let key_token = body["token"].as_str().unwrap().to_string();
    assert_eq!(claims_of(&key_token)["amr"], json!(["api_key"]));
    let refused = call(
        &app,
        Some(&key_token),
        Method::DELETE,
        "/api/mfa/totp",
        Some(json!({"password": PASSWORD})),
    );
    expect(refused.await, 403, "api_key_session").await;
}

/// A group whose limit lists `mfa` gives its claims only to logins that had a second factor, at the login and
/// at every refresh.
#[tokio::test]
async fn a_group_can_require_a_second_factor() {
    let clock = ManualClock::new();
    let app = mfa_app(TestDb::Sqlite, &clock, |_| {}).await;
    let (root, _) = app.login_ok("root", PASSWORD).await;
    let supers = crate::admin::id_of(&app, &root, "claim-groups", "name", "Supers").await;
    let path = format!("/api/admin/claim-groups/{supers}");
    let set = call(
        &app,
        Some(&root),
        Method::PATCH,
        &path,
        Some(json!({"credentials": ["mfa", "password"]})),
    );
    assert_eq!(
        expect(set.await, 200, "").await["credentials"],
        json!(["password", "mfa"])
    );
    let (plain, _) = app.login_ok("root", PASSWORD).await;
    assert!(
        claims_of(&plain).get("stk").is_none(),
        "a password alone got an mfa-only group"
    );
    let (enrolment, _) = enrol(&app, &root, &clock).await;
    let code = code_now(&enrolment, &clock).await;
    let body = expect(
        login_body(&app, json!({"username": "root", "password": PASSWORD, "otp": code})).await,
        200,
        "",
    )
    .await;
    assert_eq!(claims_of(body["token"].as_str().unwrap())["stk"], "S");
    let refreshed = expect(app.refresh(body["refresh"].as_str().unwrap()).await, 200, "").await;
    assert_eq!(claims_of(refreshed["token"].as_str().unwrap())["stk"], "S");
}
