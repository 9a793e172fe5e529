//! /api/pkeys, /.well-known/jwks.json and discovery; key persistence and the rotation schedule.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::Value;
use tessera::clock::{Clock, ManualClock};

use crate::db_test;
use crate::helpers::{TestDb, spawn_app, spawn_app_full, spawn_on_url};

db_test!(pkeys_is_stokes_padded_form, async |db| {
    let app = spawn_app(db).await.unwrap();
    let resp = app.get("/api/pkeys").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let exp = body["exp"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(exp, &time::format_description::well_known::Rfc3339).is_ok() && !exp.contains('.'),
        "{exp}"
    );
    let key = &body["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["use"].as_str()),
        (Some("EC"), Some("P-256"), Some("sig"))
    );
    assert_eq!(key["alg"], "ES256");
    for member in ["x", "y"] {
        let v = key[member].as_str().unwrap();
        assert!(v.ends_with('='), "padded: {v}");
        assert_eq!(URL_SAFE.decode(v).unwrap().len(), 32, "full-length coordinate");
    }
});

#[tokio::test]
async fn jwks_is_rfc7517_with_bounded_cache() {
    let app = spawn_app(TestDb::Sqlite).await.unwrap();
    let resp = app.get("/.well-known/jwks.json").await;
    let cache = resp.headers()["cache-control"].to_str().unwrap().to_string();
    let max_age: i64 = cache.strip_prefix("public, max-age=").unwrap().parse().unwrap();
    assert!(max_age > 0 && max_age <= 3 * 3600, "{cache}");
    let body: Value = resp.json().await.unwrap();
    let key = &body["keys"][0];
    assert!(!key["x"].as_str().unwrap().contains('='));
    // kid is the RFC 7638 thumbprint.
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        key["x"].as_str().unwrap(),
        key["y"].as_str().unwrap()
    );
    use sha2::Digest;
    let thumb = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()));
    assert_eq!(key["kid"], thumb);

    let disc: Value = app.get("/.well-known/openid-configuration").await.json().await.unwrap();
    assert_eq!(disc["issuer"], "tessera");
    assert_eq!(
        disc["jwks_uri"],
        format!("http://127.0.0.1:{}/.well-known/jwks.json", app.port)
    );
    assert_eq!(
        disc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256", "RS256"])
    );
}

db_test!(keys_survive_a_restart, async |db| {
    let app = spawn_app(db).await.unwrap();
    let before: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
    let (token, _) = app.login_ok("sadmin", app.superuser_password.as_deref().unwrap()).await;
    let again = spawn_on_url(&app.db_url, tempfile::tempdir().unwrap(), |_| {}, None, None).await;
    let after: Value = again.get("/.well-known/jwks.json").await.json().await.unwrap();
    assert_eq!(before, after);
    // A token from before the restart is still good.
    let resp = again
        .client
        .get(again.url("/api/capabilities"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
});

/// Stoke's schedule with K = 600 s and T = 100 s: the successor is published at E-2T, signs from E-T, and
/// the old key is dropped at E.
#[tokio::test]
async fn rotation_follows_the_schedule() {
    let clock = ManualClock::new();
    let app = spawn_app_full(
        TestDb::Sqlite,
        |c| {
            c.tokens.key_duration = tessera::config::GoDuration::from_secs(600);
            c.tokens.token_duration = tessera::config::GoDuration::from_secs(100);
            c.cluster.key_check_interval = tessera::config::GoDuration::from_secs(3600);
            // One chain; `every_chain_rotates_on_the_same_schedule` has two.
            c.tokens.algorithms = vec!["ES256".into()];
        },
        None,
        Some(Arc::new(clock.clone())),
    )
    .await
    .unwrap();
    let keys = app.state.keys.clone();
    let start = clock.now();
    let first = keys.current().keys[0].key.kid.clone();
    let at = |secs: i64| {
        clock.advance(start + secs - clock.now());
        let keys = keys.clone();
        let now = clock.now();
        async move {
            tokio::task::spawn_blocking(move || keys.refresh(now).unwrap())
                .await
                .unwrap();
        }
    };
    at(399).await;
    assert_eq!(keys.current().keys.len(), 1, "nothing new before E-2T");
    at(400).await;
    let ring = keys.current();
    assert_eq!(ring.keys.len(), 2, "successor published at E-2T");
    let second = ring.keys[1].key.kid.clone();
    assert_eq!(ring.signer(clock.now()).unwrap().key.kid, first, "old key still signs");
    at(500).await;
    assert_eq!(
        keys.current().signer(clock.now()).unwrap().key.kid,
        second,
        "successor signs from E-T"
    );
    assert_eq!(keys.current().keys.len(), 2, "old key still verifies its tokens");
    at(600).await;
    let ring = keys.current();
    assert_eq!(
        ring.keys.iter().map(|k| k.key.kid.clone()).collect::<Vec<_>>(),
        vec![second]
    );
    let jwks: Value = serde_json::from_slice(&ring.jwks_body).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
}

/// Every chain of the ring (ES256 and RS256 by default) follows the same schedule; `/api/pkeys` only ever lists
/// the configured algorithm's keys, and each chain signs only its own algorithm.
#[tokio::test]
async fn every_chain_rotates_on_the_same_schedule() {
    use tessera::crypto::keys::Alg;
    let clock = ManualClock::new();
    let app = spawn_app_full(
        TestDb::Sqlite,
        |c| {
            c.tokens.key_duration = tessera::config::GoDuration::from_secs(600);
            c.tokens.token_duration = tessera::config::GoDuration::from_secs(100);
            c.cluster.key_check_interval = tessera::config::GoDuration::from_secs(3600);
        },
        None,
        Some(Arc::new(clock.clone())),
    )
    .await
    .unwrap();
    let keys = app.state.keys.clone();
    let start = clock.now();
    let at = |secs: i64| {
        clock.advance(start + secs - clock.now());
        let keys = keys.clone();
        let now = clock.now();
        async move {
            tokio::task::spawn_blocking(move || keys.refresh(now).unwrap())
                .await
                .unwrap();
        }
    };
    let signers = |now: i64| {
        let ring = keys.current();
        let stoke = ring.signer(now).map(|k| (k.key.alg.name(), k.key.kid.clone()));
        let rsa = ring
            .signer_for(Some(Alg::RS256), now)
            .map(|k| (k.key.alg.name(), k.key.kid.clone()));
        (stoke.unwrap(), rsa.unwrap())
    };
    let pkeys_algs = || {
        let body: Value = serde_json::from_slice(&keys.current().pkeys_body).unwrap();
        body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["alg"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let (first_es, first_rs) = signers(clock.now());
    assert_eq!((first_es.0, first_rs.0), ("ES256", "RS256"));
    assert_eq!(pkeys_algs(), ["ES256"]);
    at(399).await;
    assert_eq!(keys.current().keys.len(), 2, "nothing new before E-2T");
    at(400).await;
    assert_eq!(keys.current().keys.len(), 4, "a successor in each chain at E-2T");
    assert_eq!(
        signers(clock.now()),
        (first_es.clone(), first_rs.clone()),
        "the old keys still sign"
    );
    assert_eq!(pkeys_algs(), ["ES256", "ES256"]);
    at(500).await;
    let (es, rs) = signers(clock.now());
    assert!(
        es.1 != first_es.1 && rs.1 != first_rs.1,
        "both successors sign from E-T"
    );
    assert_eq!((es.0, rs.0), ("ES256", "RS256"));
    at(600).await;
    let ring = keys.current();
    let mut left: Vec<String> = ring.keys.iter().map(|k| k.key.kid.clone()).collect();
    left.sort();
    let mut expected = vec![es.1, rs.1];
    expected.sort();
    assert_eq!(left, expected, "the old keys leave at E");
}

fn stored_private_keys(app: &crate::helpers::TestApp) -> Vec<(String, String)> {
    use diesel::prelude::*;
    use tessera::db::schema::signing_keys;
    signing_keys::table
        .select((signing_keys::kid, signing_keys::private_key))
        .load(&mut *app.state.db.get().unwrap())
        .unwrap()
}

fn kids(pkeys: &Value) -> Vec<String> {
    pkeys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

const SECRET: &str = "correct horse battery staple";

// With `tokens.key_encryption_secret`, private keys are stored encrypted; a restart with the same secret
// keeps them, one with another secret or none refuses to start with a clear message.
db_test!(private_keys_are_encrypted_at_rest, async |db| {
    let with = |secret: &'static str| {
        move |c: &mut tessera::config::Config| c.tokens.key_encryption_secret = tessera::config::Secret::new(secret)
    };
    let app = crate::helpers::spawn_app_with(db, with(SECRET), None).await.unwrap();
    let before: Value = app.get("/api/pkeys").await.json().await.unwrap();
    let stored = stored_private_keys(&app);
    assert!(!stored.is_empty());
    assert!(stored.iter().all(|(_, k)| k.starts_with("enc:v2:")), "{stored:?}");

    let again = spawn_on_url(&app.db_url, tempfile::tempdir().unwrap(), with(SECRET), None, None).await;
    let after: Value = again.get("/api/pkeys").await.json().await.unwrap();
    assert_eq!(kids(&before), kids(&after));

    for (secret, expected) in [
        ("another secret, long enough", "does not decrypt"),
        // No secret: "is encrypted at rest" (PostgreSQL, MariaDB), or the KEK file is "missing" (SQLite).
        ("", "encrypted"),
    ] {
        let mut config = crate::helpers::test_config(&app.db_url);
        config.tokens.key_encryption_secret = tessera::config::Secret::new(secret);
        let err = tessera::startup::Application::build(config, None)
            .await
            .err()
            .expect("start refused");
        assert!(err.to_string().contains(expected), "{err}");
    }
});

/// Keys stored under the SQLite database's KEK file before a secret was configured are re-encrypted under the
/// secret at the next start, and kept.
#[tokio::test]
async fn keys_move_to_a_secret_added_later() {
    let app = spawn_app(TestDb::Sqlite).await.unwrap();
    let before = stored_private_keys(&app);
    assert!(before.iter().all(|(_, k)| k.starts_with("enc:v2:")));
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("kek");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let path = secret_file.display().to_string();
    let again = spawn_on_url(
        &app.db_url,
        dir,
        |c| c.tokens.key_encryption_secret_file = path,
        None,
        None,
    )
    .await;
    let after = stored_private_keys(&again);
    assert_eq!(
        before.iter().map(|(kid, _)| kid).collect::<Vec<_>>(),
        after.iter().map(|(kid, _)| kid).collect::<Vec<_>>()
    );
    assert!(after.iter().all(|(_, k)| k.starts_with("enc:v2:")), "{after:?}");
    assert_ne!(before, after, "re-encrypted under the secret");

    let mut config = crate::helpers::test_config(&app.db_url);
    config.tokens.key_encryption_secret = tessera::config::Secret::new("too short");
    let err = tessera::startup::Application::build(config, None)
        .await
        .err()
        .expect("start refused");
    assert!(err.to_string().contains("at least 16"), "{err}");
}

/// A stored key without its private half never signs, even when its row claims an open signing window and the
/// newest rotation step (a tampered or mis-imported row): logins keep using Tessera's own key.
#[tokio::test]
async fn a_verification_only_row_never_becomes_the_signer() {
    use diesel::prelude::*;
    use tessera::crypto::keys::{Alg, SigningKey};
    use tessera::db::keys::KeyRow;
    let app = spawn_app(TestDb::Sqlite).await.unwrap();
    let now = tessera::clock::SystemClock.now();
    let (key, _) = SigningKey::generate(Alg::ES256, 0).unwrap();
    let row = KeyRow {
        kid: key.kid.clone(),
        algorithm: "ES256".into(),
        public_jwk: tessera::services::keyring::jwk(&key, false).to_string(),
        private_key: String::new(),
        rotation_step: 1_000,
        publish_at: now - 60,
        // The latest signing window of the ring and its highest step: it would win the signer's choice.
        sign_from: now + 1,
        expires_at: now + 3600,
        created_at: now - 60,
    };
    diesel::insert_into(tessera::db::schema::signing_keys::table)
        .values(&row)
        .execute(&mut *app.state.db.get().unwrap())
        .unwrap();
    let keys = app.state.keys.clone();
    tokio::task::spawn_blocking(move || keys.refresh(now).unwrap())
        .await
        .unwrap();
    let ring = app.state.keys.current();
    assert!(ring.find(&key.kid).is_some(), "published, to verify");
    assert_ne!(ring.signer(now + 1).unwrap().key.kid, key.kid);
    let (token, _) = app.login_ok("sadmin", app.superuser_password.as_deref().unwrap()).await;
    assert_ne!(crate::helpers::header_of(&token)["kid"], key.kid.as_str());
}
