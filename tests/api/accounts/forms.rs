//! TokTok's encrypted forms (`registration.rsa_encryption`): RSA-OAEP-256 login and register bodies, one key
//! shared by replicas.

use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{PASSWORD, error_code};
use crate::db_test;
use crate::helpers::{TestApp, spawn_app_with, spawn_on_url};

fn enable(c: &mut tessera::config::Config) {
    c.registration.mode = "open".into();
    c.registration.rsa_encryption = true;
}

async fn encrypt_for(app: &TestApp, body: &Value) -> (String, Value) {
    let key: Value = app.get("/api/public_key").await.json().await.unwrap();
    assert_eq!(key["alg"], "RSA-OAEP-256");
    let pem = key["public_key"].as_str().unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let public = PublicEncryptingKey::from_der(&STANDARD.decode(b64).unwrap()).unwrap();
    let public = OaepPublicEncryptingKey::new(public).unwrap();
    let plain = serde_json::to_vec(body).unwrap();
    let mut out = vec![0u8; public.ciphertext_size()];
    let cipher = public.encrypt(&OAEP_SHA256_MGF1SHA256, &plain, &mut out, None).unwrap();
    (
        key["kid"].as_str().unwrap().to_string(),
        json!({ "encrypted": STANDARD.encode(cipher) }),
    )
}

db_test!(encrypted_login_and_register_bodies, async |db| {
    let app = spawn_app_with(db, enable, None).await.unwrap();
    let (kid, register) = encrypt_for(
        &app,
        &json!({ "username": "ann", "email": "ann@example.org", "password": PASSWORD }),
    )
    .await;
    assert_eq!(app.post_json("/api/register", &register).await.status(), 201);
    let (_, login) = encrypt_for(&app, &json!({ "username": "ann", "password": PASSWORD })).await;
    let resp = app.post_json("/api/login", &login).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["username"], "ann");
    // Plain bodies still work; a body that claims encryption and does not decrypt is refused.
    app.login_ok("ann", PASSWORD).await;
    let resp = app
        .post_json("/api/login", &json!({ "encrypted": STANDARD.encode([7u8; 256]) }))
        .await;
    assert_eq!(error_code(resp).await, (400, "invalid_encrypted_body".into()));
    let resp = app
        .post_json("/api/login", &json!({ "encrypted": "not base64!" }))
        .await;
    assert_eq!(error_code(resp).await, (400, "invalid_encrypted_body".into()));

    // A replica on the same database has the same key: what one encrypted for, the other opens.
    let replica = spawn_on_url(&app.db_url, tempfile::tempdir().unwrap(), enable, None, None).await;
    let (replica_kid, _) = encrypt_for(&replica, &json!({})).await;
    assert_eq!(replica_kid, kid);
    assert_eq!(replica.post_json("/api/login", &login).await.status(), 200);
});

#[tokio::test]
async fn without_the_setting_there_is_no_key() {
    let app = spawn_app_with(crate::helpers::TestDb::Sqlite, |_| {}, None)
        .await
        .unwrap();
    let resp = app.get("/api/public_key").await;
    assert_eq!(error_code(resp).await, (403, "encryption_disabled".into()));
}
