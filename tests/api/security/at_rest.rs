//! Private keys at rest: the KEK file of a SQLite database, enc:v2 rows, upgrades of plain and v1 rows, and
//! the starts that must be refused (a wrong secret, a lost KEK file).

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use diesel::prelude::*;
use serde_json::Value;
use tessera::config::{Config, Secret};
use tessera::crypto::seal::{KeyEncryption, Opened, Row};
use tessera::db::schema::{form_keys, signing_keys};

use crate::helpers::{TestApp, TestDb, repo_path, spawn_app_with, spawn_on_url, test_config};

const SECRET: &str = "correct horse battery staple";
const FORM_KEY_ID: &str = "rsa-oaep-256";

/// Encrypted forms on, so the form key exists too.
fn forms(c: &mut Config) {
    c.registration.mode = "open".into();
    c.registration.rsa_encryption = true;
}

fn with_secret(c: &mut Config) {
    forms(c);
    c.tokens.key_encryption_secret = Secret::new(SECRET);
}

fn stoke_init() -> Option<PathBuf> {
    Some(repo_path("tests/fixtures/stoke-dbinit.yaml"))
}

fn kek_path(app: &TestApp) -> PathBuf {
    let file = app.db_url.strip_prefix("sqlite://").unwrap();
    PathBuf::from(format!("{file}.kek"))
}

/// (kid, private_key) of every signing key, and the form key's stored form.
fn stored(app: &TestApp) -> (Vec<(String, String)>, String) {
    let mut conn = app.state.db.get().unwrap();
    let keys = signing_keys::table
        .select((signing_keys::kid, signing_keys::private_key))
        .order(signing_keys::kid)
        .load(&mut *conn)
        .unwrap();
    let form = form_keys::table
        .find(FORM_KEY_ID)
        .select(form_keys::private_key)
        .get_result(&mut *conn)
        .unwrap();
    (keys, form)
}

fn set_stored(app: &TestApp, keys: &[(String, String)], form: &str) {
    let mut conn = app.state.db.get().unwrap();
    for (kid, private_key) in keys {
        diesel::update(signing_keys::table.find(kid))
            .set(signing_keys::private_key.eq(private_key))
            .execute(&mut *conn)
            .unwrap();
    }
    diesel::update(form_keys::table.find(FORM_KEY_ID))
        .set(form_keys::private_key.eq(form))
        .execute(&mut *conn)
        .unwrap();
}

fn all_v2(stored: &(Vec<(String, String)>, String)) -> bool {
    !stored.0.is_empty() && stored.0.iter().all(|(_, k)| k.starts_with("enc:v2:")) && stored.1.starts_with("enc:v2:")
}

/// The DER of every stored key, opened with `enc`.
fn opened(enc: &KeyEncryption, stored: &(Vec<(String, String)>, String)) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let der = |row, s: &str| match enc.open(row, s) {
        Opened::Current(der) => der,
        other => panic!("{other:?}"),
    };
    let keys = stored
        .0
        .iter()
        .map(|(kid, s)| (kid.clone(), der(Row::SigningKey(kid), s)))
        .collect();
    (keys, der(Row::FormKey(FORM_KEY_ID), &stored.1))
}

/// What Tessera stored before v2: AES-256-GCM under SHA-256(context ‖ secret), the kid as associated data.
fn v1_wrap(secret: &str, kid: &str, der: &[u8]) -> String {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"tessera/signing-key-at-rest/v1\0");
    h.update(secret.as_bytes());
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &h.finalize()).unwrap());
    let nonce: [u8; 12] = rand::random();
    let mut buf = der.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(kid.as_bytes()), &mut buf)
        .unwrap();
    format!("enc:v1:{}", STANDARD.encode([&nonce[..], &buf].concat()))
}

async fn start_error(config: Config) -> String {
    match tessera::startup::Application::build(config, None).await {
        Ok(_) => panic!("start was not refused"),
        Err(e) => e.to_string(),
    }
}

/// A token signed before a restart still verifies at the restarted server.
async fn still_verifies(app: &TestApp, token: &str) {
    let me = app.with_bearer(reqwest::Method::GET, "/api/me", token, None).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["username"], "tester");
}

#[tokio::test]
async fn a_fresh_sqlite_start_makes_a_private_kek_file_and_encrypts_every_key() {
    let app = spawn_app_with(TestDb::Sqlite, forms, stoke_init()).await.unwrap();
    let kek = kek_path(&app);
    let text = std::fs::read_to_string(&kek).unwrap();
    assert_eq!(
        STANDARD.decode(text.trim()).unwrap().len(),
        32,
        "32 random bytes in base64"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&kek).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let before = stored(&app);
    assert!(all_v2(&before), "{before:?}");
    // The file's key opens them (and it is a valid tokens.key_encryption_secret_file).
    opened(&KeyEncryption::new(text.trim()).unwrap(), &before);

    let (token, _) = app.login_ok("tester", "tester").await;
    let pem: Value = app.get("/api/public_key").await.json().await.unwrap();
    let again = spawn_on_url(&app.db_url, tempfile::tempdir().unwrap(), forms, None, None).await;
    assert_eq!(
        std::fs::read_to_string(&kek).unwrap(),
        text,
        "the file is read, never rewritten"
    );
    assert_eq!(stored(&again), before, "no key was re-made or re-written");
    still_verifies(&again, &token).await;
    let pem_again: Value = again.get("/api/public_key").await.json().await.unwrap();
    assert_eq!(pem, pem_again);
}

#[tokio::test]
async fn keys_stored_in_the_clear_are_encrypted_at_the_next_start() {
    let app = spawn_app_with(TestDb::Sqlite, forms, stoke_init()).await.unwrap();
    let (token, _) = app.login_ok("tester", "tester").await;
    // Turn the database into one from before the KEK file: plain base64 PKCS#8 rows, no file.
    let kek = kek_path(&app);
    let enc = KeyEncryption::new(std::fs::read_to_string(&kek).unwrap().trim()).unwrap();
    let (keys, form) = opened(&enc, &stored(&app));
    let plain: Vec<(String, String)> = keys
        .iter()
        .map(|(kid, der)| (kid.clone(), STANDARD.encode(der)))
        .collect();
    set_stored(&app, &plain, &STANDARD.encode(&form));
    std::fs::remove_file(&kek).unwrap();

    let again = spawn_on_url(&app.db_url, tempfile::tempdir().unwrap(), forms, None, None).await;
    let after = stored(&again);
    assert!(all_v2(&after), "{after:?}");
    let new_enc = KeyEncryption::new(std::fs::read_to_string(&kek).unwrap().trim()).unwrap();
    assert_eq!(opened(&new_enc, &after), (keys, form), "the same keys, now encrypted");
    still_verifies(&again, &token).await;
}

#[tokio::test]
async fn v1_rows_are_rewrapped_to_v2() {
    let app = spawn_app_with(TestDb::Sqlite, with_secret, stoke_init()).await.unwrap();
    assert!(!kek_path(&app).exists(), "a configured secret needs no KEK file");
    let (token, _) = app.login_ok("tester", "tester").await;
    let enc = KeyEncryption::new(SECRET).unwrap();
    let (keys, form) = opened(&enc, &stored(&app));
    let v1: Vec<(String, String)> = keys
        .iter()
        .map(|(kid, der)| (kid.clone(), v1_wrap(SECRET, kid, der)))
        .collect();
    set_stored(&app, &v1, &STANDARD.encode(&form));

    let again = spawn_on_url(&app.db_url, tempfile::tempdir().unwrap(), with_secret, None, None).await;
    let after = stored(&again);
    assert!(all_v2(&after), "{after:?}");
    assert_eq!(opened(&enc, &after), (keys, form));
    still_verifies(&again, &token).await;
}

#[tokio::test]
async fn a_wrong_secret_refuses_to_start() {
    let app = spawn_app_with(TestDb::Sqlite, with_secret, None).await.unwrap();
    let before = stored(&app);
    let mut config = test_config(&app.db_url);
    with_secret(&mut config);
    config.tokens.key_encryption_secret = Secret::new("another secret, long enough");
    let err = start_error(config).await;
    assert!(
        err.contains("does not decrypt with tokens.key_encryption_secret"),
        "{err}"
    );
    assert!(
        !err.contains(SECRET) && !err.contains("another secret"),
        "a secret in: {err}"
    );
    assert_eq!(stored(&app), before, "nothing was re-made over the keys");
    // No secret at all, and no KEK file: refused too.
    let mut config = test_config(&app.db_url);
    forms(&mut config);
    let err = start_error(config).await;
    assert!(err.contains("missing") && err.contains(".kek"), "{err}");
    assert!(!kek_path(&app).exists(), "no new KEK file over encrypted keys");
}

#[tokio::test]
async fn a_lost_or_damaged_kek_file_refuses_to_start() {
    let app = spawn_app_with(TestDb::Sqlite, forms, None).await.unwrap();
    let before = stored(&app);
    let kek = kek_path(&app);
    let key = std::fs::read_to_string(&kek).unwrap();
    std::fs::remove_file(&kek).unwrap();
    let mut config = test_config(&app.db_url);
    forms(&mut config);
    let err = start_error(config.clone()).await;
    assert!(
        err.contains(&kek.display().to_string()) && err.contains("missing"),
        "{err}"
    );
    assert!(err.contains("signing key"), "{err}");
    assert!(!kek.exists(), "no new KEK file over encrypted keys");

    for (content, expected) in [("", "is empty"), (&key[..20], "truncated")] {
        std::fs::write(&kek, content).unwrap();
        let err = start_error(config.clone()).await;
        assert!(
            err.contains(&kek.display().to_string()) && err.contains(expected),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(&kek).unwrap(),
            content,
            "the file is left as found"
        );
    }
    // Another valid-looking key is not the one: refused, naming the file.
    std::fs::write(&kek, format!("{}\n", STANDARD.encode([7u8; 32]))).unwrap();
    let err = start_error(config.clone()).await;
    assert!(
        err.contains("does not decrypt with the key-encryption key file"),
        "{err}"
    );
    assert_eq!(stored(&app), before);
    // The right file back: starts.
    std::fs::write(&kek, &key).unwrap();
    drop(spawn_on_url(&app.db_url, tempfile::tempdir().unwrap(), forms, None, None).await);
}

/// An operator moving from the KEK file to a configured secret: the file opens, the secret wraps.
#[tokio::test]
async fn a_secret_added_later_takes_over_from_the_kek_file() {
    let app = spawn_app_with(TestDb::Sqlite, forms, None).await.unwrap();
    let kek = kek_path(&app);
    let file_enc = KeyEncryption::new(std::fs::read_to_string(&kek).unwrap().trim()).unwrap();
    let expected = opened(&file_enc, &stored(&app));
    let again = spawn_on_url(&app.db_url, tempfile::tempdir().unwrap(), with_secret, None, None).await;
    assert_eq!(opened(&KeyEncryption::new(SECRET).unwrap(), &stored(&again)), expected);
    std::fs::remove_file(&kek).unwrap();
    drop(spawn_on_url(&app.db_url, tempfile::tempdir().unwrap(), with_secret, None, None).await);
}

#[tokio::test]
async fn an_in_memory_database_needs_no_kek_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mem.db").display());
    let app = spawn_on_url(
        &url,
        tempfile::tempdir().unwrap(),
        |c| c.database.sqlite.flags = "mode=memory&cache=shared".into(),
        None,
        None,
    )
    .await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written beside it"
    );
}

/// PostgreSQL (or MariaDB) without a secret: starts, keys stay in the clear, and the operator is told.
#[tokio::test]
async fn a_shared_database_without_a_secret_starts_and_validate_warns() {
    crate::helpers::run_on(TestDb::Postgres, async |db| {
        let app = spawn_app_with(db, forms, None).await.unwrap();
        let (keys, form) = stored(&app);
        assert!(keys.iter().all(|(_, k)| !k.starts_with("enc:")) && !form.starts_with("enc:"));
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg.yaml");
    std::fs::write(&file, "database:\n  url: postgres://tessera@127.0.0.1:5432/tessera\n").unwrap();
    let out = crate::cli::tessera(dir.path())
        .args(["validate", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a warning, not an error: {stderr}");
    assert!(
        stderr.contains("warning:")
            && stderr.contains("tokens.key_encryption_secret")
            && stderr.contains("stored in the clear"),
        "{stderr}"
    );

    // With a secret: no warning, and the secret is never printed.
    std::fs::write(
        &file,
        format!(
            "database:\n  url: postgres://tessera@127.0.0.1:5432/tessera\ntokens:\n  key_encryption_secret: {SECRET}\n"
        ),
    )
    .unwrap();
    let out = crate::cli::tessera(dir.path())
        .args(["validate", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("stored in the clear"), "{stderr}");
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET), "secret printed");
    assert!(stdout.contains("key_encryption_secret: '[redacted]'"), "{stdout}");
}
