//! Two servers on one database act as one: shared keys, shared sessions, and a fast rotation under
//! continuous load that no client notices.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::{TestApp, TestDb, spawn_app_with, spawn_on_url};

fn fast_rotation(c: &mut tessera::config::Config) {
    c.tokens.key_duration = tessera::config::GoDuration::from_secs(5);
    c.tokens.token_duration = tessera::config::GoDuration::from_secs(2);
    c.cluster.key_check_interval = tessera::config::GoDuration(Duration::from_millis(300));
}

/// A resource server's key cache: honours the JWKS `Cache-Control: max-age`, and never refetches on an
/// unknown kid (so a key missing from a published set shows up as a failure).
struct JwksCache {
    url: String,
    keys: HashMap<String, jsonwebtoken::DecodingKey>,
    valid_until: Instant,
}

impl JwksCache {
    fn new(url: String) -> Self {
        JwksCache {
            url,
            keys: HashMap::new(),
            valid_until: Instant::now(),
        }
    }

    async fn key(&mut self, client: &reqwest::Client, kid: &str) -> Option<&jsonwebtoken::DecodingKey> {
        if Instant::now() >= self.valid_until {
            let resp = client.get(&self.url).send().await.unwrap();
            let max_age: u64 = resp.headers()["cache-control"]
                .to_str()
                .unwrap()
                .trim_start_matches("public, max-age=")
                .parse()
                .unwrap();
            let set: jsonwebtoken::jwk::JwkSet = resp.json().await.unwrap();
            self.keys = set
                .keys
                .iter()
                .map(|k| {
                    (
                        k.common.key_id.clone().unwrap(),
                        jsonwebtoken::DecodingKey::from_jwk(k).unwrap(),
                    )
                })
                .collect();
            self.valid_until = Instant::now() + Duration::from_secs(max_age);
        }
        self.keys.get(kid)
    }
}

async fn verify_with(cache: &mut JwksCache, client: &reqwest::Client, token: &str) -> Result<(), String> {
    let kid = jsonwebtoken::decode_header(token)
        .map_err(|e| e.to_string())?
        .kid
        .ok_or("no kid")?;
    let key = cache
        .key(client, &kid)
        .await
        .ok_or_else(|| format!("kid {kid} not in the cached JWKS"))?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&["tessera"]);
    jsonwebtoken::decode::<Value>(token, key, &validation)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn pair_of(app: &TestApp) -> (TestApp, String) {
    let b = spawn_on_url(&app.db_url, tempfile::tempdir().unwrap(), |_| {}, None, None).await;
    (b, app.superuser_password.clone().unwrap())
}

db_test!(tokens_and_sessions_cross_replicas, async |db| {
    let a = spawn_app_with(db, |_| {}, None).await.unwrap();
    let (b, password) = pair_of(&a).await;
    assert_eq!(b.superuser_password, None, "the second replica finds the superuser");
    let jwks_a: Value = a.get("/.well-known/jwks.json").await.json().await.unwrap();
    let jwks_b: Value = b.get("/.well-known/jwks.json").await.json().await.unwrap();
    assert_eq!(jwks_a, jwks_b, "one key ring");

    let (token, refresh) = a.login_ok("sadmin", &password).await;
    let mut cache = JwksCache::new(b.url("/.well-known/jwks.json"));
    verify_with(&mut cache, &b.client, &token).await.unwrap();
    let resp = b.refresh(&refresh).await;
    assert_eq!(resp.status(), 200, "a refresh issued by A is accepted by B");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(a.refresh(body["refresh"].as_str().unwrap()).await.status(), 200);
    // A replay on A of the token B rotated, within the grace, gets the same successor back.
    let replay = a.refresh(&refresh).await;
    assert_eq!(replay.status(), 200, "within the grace the successor comes back");
});

/// K = 5 s, T = 2 s: a new key every second, under a continuous stream of logins and refreshes on both
/// replicas, each token checked by a caching client of the *other* replica's JWKS.
#[tokio::test]
async fn fast_rotation_under_load_has_no_verification_failures() {
    for db in [TestDb::Postgres, TestDb::Sqlite] {
        let Some(a) = spawn_app_with(db, fast_rotation, None).await else {
            continue;
        };
        let b = spawn_on_url(&a.db_url, tempfile::tempdir().unwrap(), fast_rotation, None, None).await;
        let password = a.superuser_password.clone().unwrap();
        let apps = Arc::new([a, b]);
        let (checked, failures) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let deadline = Instant::now() + Duration::from_secs(11);
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (apps, password, checked, failures) =
                    (apps.clone(), password.clone(), checked.clone(), failures.clone());
                tokio::spawn(async move {
                    let (issuer, verifier) = (&apps[w % 2], &apps[(w + 1) % 2]);
                    let mut cache = JwksCache::new(verifier.url("/.well-known/jwks.json"));
                    let (mut token, mut refresh) = issuer.login_ok("sadmin", &password).await;
                    let mut kids = std::collections::HashSet::new();
                    while Instant::now() < deadline {
                        if let Err(e) = verify_with(&mut cache, &verifier.client, &token).await {
                            eprintln!("{db:?} worker {w}: {e}");
                            failures.fetch_add(1, Ordering::SeqCst);
                        }
                        checked.fetch_add(1, Ordering::SeqCst);
                        kids.insert(crate::helpers::header_of(&token)["kid"].as_str().unwrap().to_string());
                        let resp = issuer.post_json("/api/refresh", &json!({ "refresh": refresh })).await;
                        assert_eq!(resp.status(), 200);
                        let body: Value = resp.json().await.unwrap();
                        token = body["token"].as_str().unwrap().to_string();
                        refresh = body["refresh"].as_str().unwrap().to_string();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    kids.len()
                })
            })
            .collect();
        let mut kids_seen = 0;
        for w in workers {
            kids_seen = kids_seen.max(w.await.unwrap());
        }
        let checked = checked.load(Ordering::SeqCst);
        assert!(checked > 100, "{db:?}: only {checked} tokens checked");
        assert!(kids_seen >= 5, "{db:?}: keys rotated only {kids_seen} times");
        assert_eq!(
            failures.load(Ordering::SeqCst),
            0,
            "{db:?}: verification failures among {checked}"
        );
    }
}

/// Two replicas started at the same moment on an empty database: the migrations, the dbinit file and the
/// bootstrap run once (under the database lock), and both serve.
async fn start_together_on_an_empty_database(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let Some(url) = tokio::task::spawn_blocking(move || crate::helpers::fresh_database(db, &path))
        .await
        .unwrap()
    else {
        return;
    };
    let init = Some(crate::helpers::repo_path("tests/fixtures/stoke-dbinit.yaml"));
    let (a, b) = tokio::join!(
        spawn_on_url(&url, tempfile::tempdir().unwrap(), |_| {}, init.clone(), None),
        spawn_on_url(&url, tempfile::tempdir().unwrap(), |_| {}, init.clone(), None),
    );
    for app in [&a, &b] {
        assert_eq!(app.get("/readyz").await.status(), 200);
        app.login_ok("tester", "tester").await;
    }
    use diesel::prelude::*;
    use tessera::db::schema::{claims, users};
    let mut conn = a.state.db.get().unwrap();
    let testers: i64 = users::table
        .filter(users::username.eq("tester"))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(testers, 1);
    let stk: i64 = claims::table
        .filter(claims::short_name.eq("stk"))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert!(stk >= 8, "{stk}");
    let dbinit_runs: i64 = tessera::db::schema::dbinit_files::table
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(dbinit_runs, 1);
}

#[tokio::test]
async fn two_replicas_start_together_on_empty_postgres() {
    start_together_on_an_empty_database(TestDb::Postgres).await;
}

#[tokio::test]
async fn two_replicas_start_together_on_empty_mariadb() {
    start_together_on_an_empty_database(TestDb::Mysql).await;
}
