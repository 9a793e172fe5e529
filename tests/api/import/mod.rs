//! `tessera import-stoke` (issue 21), run as the real binary against Stoke's schema on each backend
//! (tests/fixtures/stoke-db: the rows Stoke's README dbinit leaves, a directory user `fry`, two ECDSA keys),
//! then the real server on the imported database.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::{Value, json};
use tessera::db::schema::users;

use crate::cli::tessera;
use crate::db_test;
use crate::helpers::{TestDb, claims_of, fresh_database, repo_path, spawn_on_url, test_config};

mod config;

const FIXTURE: &str = "tests/fixtures/stoke-db";

/// The text of Stoke's key `id` in the fixture rows (base64url of SEC1 DER).
fn fixture_key(id: u32) -> String {
    let rows = std::fs::read_to_string(repo_path(&format!("{FIXTURE}/rows.sql"))).unwrap();
    let line = rows
        .lines()
        .find(|l| l.starts_with(&format!("INSERT INTO private_keys (id, text, expires) VALUES ({id}, ")))
        .unwrap();
    line.split('\'').nth(1).unwrap().to_string()
}

/// Runs statements on a Stoke database (a SQLite path or a server URL).
fn execute(source: &str, sql: &str) {
    if source.starts_with("postgres") {
        diesel::pg::PgConnection::establish(source)
            .unwrap()
            .batch_execute(sql)
            .unwrap();
    } else if source.starts_with("mysql") {
        execute_mysql(source, sql);
    } else {
        diesel::sqlite::SqliteConnection::establish(source)
            .unwrap()
            .batch_execute(sql)
            .unwrap();
    }
}

#[cfg(feature = "mysql")]
fn execute_mysql(source: &str, sql: &str) {
    diesel::mysql::MysqlConnection::establish(source)
        .unwrap()
        .batch_execute(sql)
        .unwrap();
}

#[cfg(not(feature = "mysql"))]
fn execute_mysql(_: &str, _: &str) {
    panic!("built without --features mysql");
}

/// Stoke's database made from the fixture on `db`; what `--from` takes. `None`: backend not configured.
fn stoke_source(db: TestDb, dir: &Path) -> Option<String> {
    let read = |name: &str| std::fs::read_to_string(repo_path(&format!("{FIXTURE}/{name}"))).unwrap();
    match db {
        TestDb::Sqlite => {
            // Made from the SQL, like the others (a `.db` file is not committed).
            let path = dir.join("stoke.db");
            diesel::sqlite::SqliteConnection::establish(path.to_str().unwrap())
                .unwrap()
                .batch_execute(&(read("schema-sqlite.sql") + &read("rows.sql")))
                .unwrap();
            Some(path.display().to_string())
        }
        TestDb::Postgres => {
            let url = fresh_database(db, dir)?;
            execute(&url, &(read("schema-postgres.sql") + &read("rows.sql")));
            Some(url)
        }
        TestDb::Mysql => {
            let url = fresh_database(db, dir)?;
            // Stoke's MySQL `expires` is a TIMESTAMP, which ends in January 2038 on MariaDB before 11.5.
            let rows = read("rows.sql").replace("'2099-01-01 00:00:00'", "'2038-01-01 00:00:00'");
            execute(&url, &(read("schema-mysql.sql") + &rows));
            Some(url)
        }
    }
}

/// A config file pointing at `target`, plus `extra` YAML.
fn config_file(dir: &Path, target: &str, extra: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    let text = format!("database:\n  url: \"{target}\"\nlogging:\n  write_to_stdout: false\n{extra}");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `tessera --config <config> import-stoke --from <from> <extra…>`: (success, stdout, stderr).
fn import(dir: &Path, config: &Path, from: &str, extra: &[&str]) -> (bool, String, String) {
    let out = tessera(dir)
        .arg("--config")
        .arg(config)
        .args(["import-stoke", "--from", from])
        .args(extra)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (finished(&out), text(&out.stdout), text(&out.stderr))
}

/// Whether a command succeeded. On PostgreSQL the binary sometimes dies of SIGSEGV while exiting, after its work
/// and its output are complete (seen with plain `migrate` too, about one run in twenty: process teardown, not
/// the import); a run whose last line is the summary counts as the success it was.
fn finished(out: &std::process::Output) -> bool {
    use std::os::unix::process::ExitStatusExt as _;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.lines().last().is_some_and(|l| {
        l.starts_with("imported ") || l.starts_with("would import ") || l.starts_with("nothing to change")
    });
    out.status.success() || (out.status.signal() == Some(11) && summary)
}

/// Everything an import could touch in the target, in a stable order.
async fn snapshot(target: &str) -> String {
    let config = test_config(target);
    tokio::task::spawn_blocking(move || {
        let db = tessera::db::Db::connect(&config.database).unwrap();
        let mut conn = db.get().unwrap();
        let mut t = tessera::db::import::read_target(&mut conn).unwrap();
        t.claims.sort();
        t.groups.sort();
        t.links.sort();
        t.group_claims.sort();
        t.users.sort();
        t.members.sort();
        t.keys.sort();
        let passwords: Vec<(String, String, Option<String>)> = users::table
            .select((users::username, users::source, users::password_hash))
            .order(users::username)
            .load(&mut *conn)
            .unwrap();
        format!("{t:?}\n{passwords:?}")
    })
    .await
    .unwrap()
}

async fn has_table(target: &str, table: &'static str) -> bool {
    let config = test_config(target);
    tokio::task::spawn_blocking(move || {
        let db = tessera::db::Db::connect(&config.database).unwrap();
        tessera::db::stoke::table_exists(&mut db.get().unwrap(), table).unwrap()
    })
    .await
    .unwrap()
}

/// A token as Stoke signs one, with its key `id` of the fixture under `kid`, header fields overridden.
fn stoke_token(id: u32, kid: &str, claims: &Value) -> String {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let sec1 = base64::engine::general_purpose::URL_SAFE
        .decode(fixture_key(id))
        .unwrap();
    let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &sec1).unwrap();
    let pkcs8 = pair.to_pkcs8v1().unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.into());
    let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// `token` with its header replaced by `header` (the signature kept).
fn with_header(token: &str, header: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (_, rest) = token.split_once('.').unwrap();
    format!("{}.{rest}", b64.encode(header.to_string()))
}

async fn me(app: &crate::helpers::TestApp, token: &str) -> reqwest::Response {
    app.client
        .get(app.url("/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

db_test!(
    stoke_users_log_in_with_their_claims_and_stoke_tokens_verify,
    async |db| {
        let dir = tempfile::tempdir().unwrap();
        let Some(from) = stoke_source(db, dir.path()) else {
            return;
        };
        let target = fresh_database(db, dir.path()).unwrap();
        let config = config_file(dir.path(), &target, "");

        // A dry run says what it would do and creates nothing.
        let (ok, out, err) = import(dir.path(), &config, &from, &["--dry-run"]);
        assert!(ok, "{err}");
        assert!(
            out.contains(
                "would import 3 users, 4 claim groups, 4 claims, 2 links, 6 group claims, 3 memberships, 1 signing keys"
            ),
            "{out}"
        );
        assert!(out.contains("signing key p-0 (ES256, verification only"), "{out}");
        assert!(out.contains("Stoke key 1: expired"), "{out}");
        if let Some(file) = target.strip_prefix("sqlite://") {
            assert!(!Path::new(file).exists(), "a dry run created the SQLite file");
        } else {
            assert!(!has_table(&target, "users").await, "a dry run created tables");
        }

        let (ok, out, err) = import(dir.path(), &config, &from, &[]);
        assert!(ok, "{err}");
        assert!(out.contains("imported 3 users, 4 claim groups"), "{out}");
        let imported = snapshot(&target).await;

        // A second run finds everything in place and writes nothing.
        let (ok, out, err) = import(dir.path(), &config, &from, &[]);
        assert!(ok, "{err}");
        assert!(out.contains("nothing to change"), "{out}");
        assert_eq!(snapshot(&target).await, imported);

        let app = spawn_on_url(&target, dir, |_| {}, None, None).await;
        assert_eq!(
            app.superuser_password, None,
            "Stoke's admin is the superuser: no sadmin"
        );
        let (token, _) = app.login_ok("tester", "tester").await;
        let claims = claims_of(&token);
        assert_eq!((claims["test"].as_str(), claims.get("stk")), (Some("acc"), None));
        assert_ne!(
            crate::helpers::header_of(&token)["kid"],
            "p-0",
            "Tessera never signs with Stoke's key"
        );
        let (token, _) = app.login_ok("stoke", "admin").await;
        assert_eq!(claims_of(&token)["stk"], "S");
        assert_eq!(
            app.login("fry", "x").await.status(),
            401,
            "a directory user has no local password"
        );

        // Stoke's hashes were verified and replaced by PHC strings; a later import keeps them.
        let (dir_path, url) = (app.dir.path().to_path_buf(), app.db_url.clone());
        let after_logins = snapshot(&url).await;
        assert!(
            after_logins.contains("(\"tester\", \"LOCAL\", Some(\"$argon2id$"),
            "{after_logins}"
        );
        assert!(after_logins.contains("(\"fry\", \"LDAP\", None)"), "{after_logins}");
        let (ok, out, _) = import(&dir_path, &config, &from, &[]);
        assert!(ok && out.contains("nothing to change"), "{out}");
        assert_eq!(snapshot(&url).await, after_logins);

        // Stoke's key 2 is published under the kid Stoke gave it, in both key documents.
        let jwks: jsonwebtoken::jwk::JwkSet = app.get("/.well-known/jwks.json").await.json().await.unwrap();
        let pkeys: Value = app.get("/api/pkeys").await.json().await.unwrap();
        assert!(
            pkeys["keys"].as_array().unwrap().iter().any(|k| k["kid"] == "p-0"),
            "{pkeys}"
        );
        assert!(jwks.find("p-1").is_none(), "the expired key is not imported");

        // A token Stoke signed with it verifies: at Tessera's /api/me, and through the JWKS.
        let now = tessera::clock::Clock::now(&tessera::clock::SystemClock);
        let claims = json!({ "iss": "tessera", "u": "tester", "test": "acc", "exp": now + 600, "iat": now });
        let token = stoke_token(2, "p-0", &claims);
        let resp = me(&app, &token).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.json::<Value>().await.unwrap()["username"], "tester");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find("p-0").unwrap()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_issuer(&["tessera"]);
        jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();

        // What is refused stays refused: another alg on the key, none, an unknown kid, the expired key, a change.
        for bad in [
            with_header(&token, &json!({"alg": "ES384", "kid": "p-0", "typ": "JWT"})),
            with_header(&token, &json!({"alg": "none", "kid": "p-0", "typ": "JWT"})),
            with_header(&token, &json!({"alg": "HS256", "kid": "p-0", "typ": "JWT"})),
            stoke_token(2, "p-1", &claims),
            stoke_token(1, "p-0", &claims),
            stoke_token(2, "p-0", &json!({ "iss": "tessera", "u": "tester", "exp": now - 3600 })),
            format!("{}x", &token[..token.len() - 1]),
        ] {
            assert_eq!(
                me(&app, &bad).await.status(),
                401,
                "{}",
                crate::helpers::header_of(&bad)
            );
        }
    }
);

db_test!(bad_stoke_rows_refuse_the_whole_import, async |db| {
    let dir = tempfile::tempdir().unwrap();
    let Some(from) = stoke_source(db, dir.path()) else {
        return;
    };
    let target = fresh_database(db, dir.path()).unwrap();
    // A Tessera that already has a user with tester's address.
    let init = dir.path().join("init.yaml");
    std::fs::write(&init, "users:\n  - username: travis\n    email: tester@hppr.dev\n").unwrap();
    let config = config_file(dir.path(), &target, "");
    let out = tessera(dir.path())
        .arg("--config")
        .arg(&config)
        .arg("--dbinit")
        .arg(&init)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success() || db == TestDb::Postgres,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = snapshot(&target).await;

    let refused = |expected: &[&str]| {
        let (ok, out, err) = import(dir.path(), &config, &from, &[]);
        assert!(!ok, "{out}");
        assert!(err.contains("the import was refused, nothing was written"), "{err}");
        for e in expected {
            assert!(err.contains(e), "{e:?} missing in {err}");
        }
        assert_eq!(err.matches("\n  - ").count(), expected.len(), "{err}");
    };
    refused(&["user \"tester\": the email \"tester@hppr.dev\" belongs to the Tessera user \"travis\""]);
    assert_eq!(snapshot(&target).await, before);

    execute(&from, "UPDATE users SET email = 'travis.ester@hppr.dev' WHERE id = 1;");
    execute(&from, "UPDATE users SET password = 'not a hash!' WHERE id = 2;");
    refused(&["user \"stoke\": malformed password hash"]);
    execute(&from, "UPDATE users SET source = 'KERBEROS' WHERE id = 3;");
    execute(&from, "UPDATE private_keys SET text = 'bm90IGEga2V5' WHERE id = 2;");
    refused(&[
        "malformed password hash",
        "user \"fry\": unknown source \"KERBEROS\"",
        "Stoke key 2 (p-0): does not parse",
    ]);
    assert_eq!(snapshot(&target).await, before);

    // --skip-invalid leaves them out and lists them; as a dry run it still writes nothing.
    let (ok, out, err) = import(dir.path(), &config, &from, &["--skip-invalid", "--dry-run"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("left out (--skip-invalid):") && out.contains("unknown source"),
        "{out}"
    );
    assert_eq!(snapshot(&target).await, before);
    let (ok, out, err) = import(dir.path(), &config, &from, &["--skip-invalid"]);
    assert!(ok, "{err}");
    assert!(out.contains("imported 1 users"), "{out}");
    assert!(out.contains("0 signing keys"), "{out}");
    let after = snapshot(&target).await;
    assert!(after.contains("\"tester\", Some(\"travis.ester@hppr.dev\")"), "{after}");
    assert!(!after.contains("\"stoke\"") && !after.contains("\"fry\""), "{after}");
});

db_test!(
    migrate_and_serve_refuse_a_stoke_database_naming_the_import,
    async |db| {
        let dir = tempfile::tempdir().unwrap();
        let Some(from) = stoke_source(db, dir.path()) else {
            return;
        };
        let url = if db == TestDb::Sqlite {
            format!("sqlite://{from}")
        } else {
            from.clone()
        };
        let config = config_file(dir.path(), &url, "");
        for command in ["migrate", "serve"] {
            let out = tessera(dir.path())
                .arg("--config")
                .arg(&config)
                .arg(command)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            // Exit code 1, or the exit-time SIGSEGV seen on PostgreSQL (see `finished`) after the refusal was printed.
            assert!(!out.status.success(), "{command}: {err}");
            assert!(
                err.contains("holds Stoke's tables") && err.contains("tessera import-stoke --from"),
                "{err}"
            );
        }
        // Importing a database into itself is refused too.
        let (ok, _, err) = import(dir.path(), &config, &from, &[]);
        assert!(
            !ok && err.contains("the configured database holds Stoke's tables"),
            "{err}"
        );
    }
);

#[tokio::test]
async fn kids_carry_the_instance_id() {
    let dir = tempfile::tempdir().unwrap();
    let from = stoke_source(TestDb::Sqlite, dir.path()).unwrap();
    let target = fresh_database(TestDb::Sqlite, dir.path()).unwrap();
    let config = config_file(dir.path(), &target, "cluster:\n  instance_id: stoke1\n");
    let (ok, out, err) = import(dir.path(), &config, &from, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("signing key stoke1-p-0"), "{out}");
}

#[tokio::test]
async fn fry_is_a_directory_user() {
    let Some(directory) = crate::ldap::directory().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let from = stoke_source(TestDb::Sqlite, dir.path()).unwrap();
    let target = fresh_database(TestDb::Sqlite, dir.path()).unwrap();
    let config = config_file(dir.path(), &target, "");
    let (ok, _, err) = import(dir.path(), &config, &from, &[]);
    assert!(ok, "{err}");
    let url = directory.url.clone();
    let app = spawn_on_url(
        &target,
        dir,
        move |c| c.users.providers = vec![crate::ldap::provider("ldap", &url)],
        None,
        None,
    )
    .await;
    // fry (fry-secret in the test directory) is in ship_crew, which Stoke linked to "Ship Crew".
    let claims = crate::ldap::claims_after_login(&app, "fry", "fry-secret", Some("ldap")).await;
    assert_eq!(
        (claims["ship"].as_str(), claims["inv"].as_str()),
        (Some("acc"), Some("mod"))
    );
    assert!(claims.get("stk").is_none(), "fry is not in admin_staff");
    crate::ldap::expect_401(&app, "fry", "wrong", Some("ldap")).await;
}
