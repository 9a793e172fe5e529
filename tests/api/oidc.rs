//! Sign-in through an upstream OpenID provider (`/oidc/{name}`), driven over HTTP as a browser does: cookies,
//! redirects and the provider's own login form. The provider is real: node `oidc-provider` (pinned in
//! tests/interop/package-lock.json, started by [`Upstream::start`], PKCE required). The attacks a real provider
//! will not stage (a wrong nonce, a foreign key, an expired id_token, a provider that fails or hangs) come from
//! [`Hostile`], a provider in this process that misbehaves on request.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::prelude::*;
use serde_json::{Value, json};
use sha2::Digest as _;
use tessera::config::{Config, ProviderConfig, Secret};
use tessera::crypto::keys::{Alg, PublicJwk, SigningKey};

use crate::helpers::{TestApp, TestDb, claims_of, repo_path, spawn_app_with};

/// The provider name every test configures.
const NAME: &str = "upstream";

/// node `oidc-provider` on a loopback port, with accounts from a JSON file the test may rewrite.
struct Upstream {
    issuer: String,
    accounts: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Upstream {
    fn start() -> Upstream {
        let dir = tempfile::tempdir().unwrap();
        let accounts = dir.path().join("accounts.json");
        std::fs::write(&accounts, "{}").unwrap();
        let script = repo_path("tests/interop/oidc_provider.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .arg(&accounts)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs (scripts/test installs oidc-provider)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let started: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("oidc-provider did not start: {line:?}"));
        Upstream {
            issuer: started["issuer"].as_str().unwrap().to_string(),
            accounts,
            child,
            _dir: dir,
        }
    }

    fn set_account(&self, login: &str, claims: Value) {
        let mut all: Value = serde_json::from_str(&std::fs::read_to_string(&self.accounts).unwrap()).unwrap();
        all[login] = claims;
        let mut f = std::fs::File::create(&self.accounts).unwrap();
        f.write_all(all.to_string().as_bytes()).unwrap();
    }
}

/// A port that was free a moment ago: the redirect URI names the server's port before it binds it.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The provider settings of Stoke's example Google file (tests/fixtures' `02_google_oidc.yaml`), pointed at
/// `issuer`.
fn provider_config(issuer: &str, port: u16) -> ProviderConfig {
    let mut p = ProviderConfig {
        name: NAME.into(),
        kind: "oidc".into(),
        ..Default::default()
    };
    let o = &mut p.oidc;
    o.discovery_url = format!("{issuer}/.well-known/openid-configuration");
    o.client_id = "tessera".into();
    o.client_secret = Secret::new("tessera-secret");
    o.redirect_uri = format!("http://127.0.0.1:{port}/oidc/{NAME}");
    o.claims_source = "endpoint".into();
    o.scopes = vec!["profile".into(), "email".into(), "groups".into()];
    o.request_timeout = tessera::config::GoDuration::from_secs(2);
    p
}

/// Claims `staff` and `ops`, in groups linked to the `groups` claim of the provider [`NAME`].
fn dbinit(dir: &std::path::Path) -> PathBuf {
    dbinit_for(dir, NAME, "groups=staff")
}

/// The same at provider `name`, with the staff group linked by `staff_link`.
fn dbinit_for(dir: &std::path::Path, name: &str, staff_link: &str) -> PathBuf {
    let text = format!(
        r#"claims:
  - {{name: Staff, short_name: staff, value: "yes", description: staff}}
  - {{name: Ops, short_name: ops, value: "yes", description: ops}}
groups:
  - name: Staff group
    description: linked to {staff_link}
    links: [{{type: OIDC, provider: {name}, resource: "{staff_link}"}}]
    claims: [Staff]
  - name: Ops group
    description: linked to groups=ops
    links: [{{type: OIDC, provider: {name}, resource: "groups=ops"}}]
    claims: [Ops]
"#
    );
    let path = dir.join("oidc-dbinit.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn app_for(issuer: &str, db: TestDb, tweak: impl FnOnce(&mut Config)) -> (TestApp, tempfile::TempDir) {
    app_with_clock(issuer, db, tweak, None).await
}

/// [`app_for`] with a clock the test moves.
async fn app_with_clock(
    issuer: &str,
    db: TestDb,
    tweak: impl FnOnce(&mut Config),
    clock: Option<Arc<dyn tessera::clock::Clock>>,
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let init = dbinit(dir.path());
    let port = free_port();
    let issuer = issuer.to_string();
    let app = crate::helpers::spawn_app_full(
        db,
        move |c| {
            c.server.port = port;
            c.users.providers.push(provider_config(&issuer, port));
            tweak(c);
        },
        Some(init),
        clock,
    )
    .await
    .unwrap();
    (app, dir)
}

/// A browser: a cookie jar, redirects followed by hand so the test sees the provider's return.
struct Browser {
    client: reqwest::Client,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// Starts a sign-in and goes through the provider (logging in as `login` on its form) until it sends the
    /// browser back to Tessera; returns that callback URL, not yet opened.
    async fn through_provider(&self, app: &TestApp, query: &str, login: &str) -> String {
        self.through(app, NAME, query, login).await
    }

    /// [`Browser::through_provider`] at the provider `name`.
    async fn through(&self, app: &TestApp, name: &str, query: &str, login: &str) -> String {
        let mut url = app.url(&format!("/oidc/{name}?{query}"));
        for _ in 0..12 {
            if url.starts_with(&app.url(&format!("/oidc/{name}?")))
                && (url.contains("state=") || url.contains("error="))
            {
                return url;
            }
            let resp = self.client.get(&url).send().await.unwrap();
            if resp.status().is_redirection() {
                url = resolve(&url, resp.headers()["location"].to_str().unwrap());
                continue;
            }
            let status = resp.status();
            let html = resp.text().await.unwrap();
            assert_eq!(status, 200, "{url}: {html}");
            let action = attribute(&html, "action").unwrap_or_else(|| panic!("no form at {url}: {html}"));
            let resp = self
                .client
                .post(resolve(&url, &action))
                .form(&[("prompt", "login"), ("login", login), ("password", "any")])
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_redirection(), "login form answered {}", resp.status());
            url = resolve(&url, resp.headers()["location"].to_str().unwrap());
        }
        panic!("the provider never sent the browser back");
    }

    async fn open(&self, url: &str) -> (u16, String) {
        let resp = self.client.get(url).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

/// `location` resolved against `base` (absolute URLs, absolute paths).
fn resolve(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let origin_end = base[8..].find('/').map_or(base.len(), |i| i + 8);
    format!("{}{location}", &base[..origin_end])
}

/// The first `name="…"` attribute of an HTML page, unescaped.
fn attribute(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("{name}=\""))? + name.len() + 2;
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&amp;", "&")
            .replace("&quot;", "\"")
            .replace("&#39;", "'"),
    )
}

async fn user_count(app: &TestApp) -> i64 {
    use tessera::db::schema::users;
    app.state
        .db
        .run(|c| {
            users::table
                .count()
                .get_result::<i64>(c)
                .map_err(tessera::db::DbError::from)
        })
        .await
        .unwrap()
}

/// Signs in at the provider as `login` and redeems the page's pair at `/api/login`: the login's answer.
async fn full_sign_in(app: &TestApp, browser: &Browser, login: &str) -> Value {
    sign_in_at(app, browser, NAME, login).await
}

async fn sign_in_at(app: &TestApp, browser: &Browser, name: &str, login: &str) -> Value {
    let callback = browser.through(app, name, "next=/admin/&xfer=local", login).await;
    let (status, page) = browser.open(&callback).await;
    assert_eq!(status, 200, "{page}");
    let (id_token, access_code) = (
        attribute(&page, "data-id-token").unwrap(),
        attribute(&page, "data-access-code").unwrap(),
    );
    assert_eq!(attribute(&page, "data-next").as_deref(), Some("/admin/"));
    let resp = app
        .post_json(
            "/api/login",
            &json!({"username": id_token, "password": access_code, "provider": name}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    // The pair works once.
    let again = app
        .post_json(
            "/api/login",
            &json!({"username": id_token, "password": access_code, "provider": name}),
        )
        .await;
    assert_eq!(again.status(), 401);
    body
}

#[tokio::test]
async fn a_first_sign_in_creates_the_user_and_the_next_one_resyncs_its_groups() {
    for db in [TestDb::Sqlite, TestDb::Postgres, TestDb::Mysql] {
        crate::helpers::run_on(db, first_and_second_sign_in).await;
    }
}

async fn first_and_second_sign_in(db: TestDb) {
    {
        let upstream = Upstream::start();
        upstream.set_account(
            "ada",
            json!({"email": "ada@example.test", "email_verified": true, "given_name": "Ada", "family_name": "Lovelace", "groups": ["staff", "ops"]}),
        );
        let (app, _dir) = app_for(&upstream.issuer, db, |_| {}).await;
        let providers: Value = app.get("/api/available_providers").await.json().await.unwrap();
        assert_eq!(
            providers["providers"],
            json!([{"name": NAME, "provider_type": "OIDC", "type_spec": format!("OIDC:{NAME}")}])
        );
        let browser = Browser::new();
        let body = full_sign_in(&app, &browser, "ada").await;
        assert_eq!(body["username"], "ada@example.test");
        let claims = claims_of(body["token"].as_str().unwrap());
        assert_eq!(
            (claims["staff"].as_str(), claims["ops"].as_str()),
            (Some("yes"), Some("yes")),
            "{claims}"
        );
        let user = app
            .state
            .db
            .run(|c| tessera::db::users::find_by_username(c, "ada@example.test"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((user.fname.as_str(), user.lname.as_str()), ("Ada", "Lovelace"));
        assert_eq!(user.source, format!("OIDC:{NAME}"));
        assert!(user.password_hash.is_none());

        // The provider moves Ada out of ops: the next sign-in follows, and it is the same account.
        upstream.set_account(
            "ada",
            json!({"email": "ada@example.test", "email_verified": true, "given_name": "Ada", "family_name": "King", "groups": ["staff"]}),
        );
        let body = full_sign_in(&app, &Browser::new(), "ada").await;
        let claims = claims_of(body["token"].as_str().unwrap());
        assert_eq!(claims["staff"], "yes");
        assert!(claims.get("ops").is_none(), "{claims}");
        assert_eq!(user_count(&app).await, 2, "the bootstrap superuser and Ada");
    }
}

#[tokio::test]
async fn a_sign_in_without_a_matching_group_link_is_refused_and_stores_nothing() {
    let upstream = Upstream::start();
    upstream.set_account("eve", json!({"email": "eve@example.test", "groups": ["visitors"]}));
    let (app, _dir) = app_for(&upstream.issuer, TestDb::Sqlite, |_| {}).await;
    let before = user_count(&app).await;
    let browser = Browser::new();
    let callback = browser.through_provider(&app, "", "eve").await;
    let (status, page) = browser.open(&callback).await;
    assert_eq!(status, 400);
    assert_eq!(attribute(&page, "data-error").as_deref(), Some("oidc_no_group_link"));
    assert_eq!(user_count(&app).await, before);
}

#[tokio::test]
async fn a_state_that_is_not_this_browsers_or_is_spent_is_refused() {
    let upstream = Upstream::start();
    upstream.set_account("ada", json!({"email": "ada@example.test", "groups": ["staff"]}));
    let (app, _dir) = app_for(&upstream.issuer, TestDb::Sqlite, |_| {}).await;
    let before = user_count(&app).await;

    // The victim's browser opens the attacker's callback URL (login CSRF): it has no cookie for that state.
    let attacker = Browser::new();
    let callback = attacker.through_provider(&app, "", "ada").await;
    let (status, page) = Browser::new().open(&callback).await;
    assert_eq!(
        (status, attribute(&page, "data-error").as_deref()),
        (400, Some("oidc_state_mismatch"))
    );
    // A state changed in the URL does not match the cookie either.
    let tampered = callback.replace("state=", "state=x");
    let (status, _) = attacker.open(&tampered).await;
    assert_eq!(status, 400);

    // Used once (the first try above spent nothing: it failed before the state was taken) ...
    let (status, page) = attacker.open(&callback).await;
    assert_eq!(status, 200, "{page}");
    // ... and replayed with the same cookie value: the state is spent.
    let state = callback.split("state=").nth(1).unwrap().split('&').next().unwrap();
    let replay = reqwest::Client::new()
        .get(&callback)
        .header("cookie", format!("tessera-oidc-{NAME}={state}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    assert!(replay.text().await.unwrap().contains("oidc_state_unknown"));

    // A replayed code with a fresh state of this browser: the provider refuses the used code.
    let fresh = attacker.through_provider(&app, "", "ada").await;
    let code = callback.split("code=").nth(1).unwrap().split('&').next().unwrap();
    let fresh_code = fresh.split("code=").nth(1).unwrap().split('&').next().unwrap();
    let (status, page) = attacker.open(&fresh.replace(fresh_code, code)).await;
    assert_eq!(
        (status, attribute(&page, "data-error").as_deref()),
        (400, Some("oidc_refused")),
        "{page}"
    );
    assert_eq!(
        user_count(&app).await,
        before + 1,
        "only the one good sign-in made a user"
    );
}

#[tokio::test]
async fn next_may_not_leave_this_server_and_the_provider_must_exist() {
    let upstream = Upstream::start();
    let (app, _dir) = app_for(&upstream.issuer, TestDb::Sqlite, |c| {
        c.server.allowed_hosts = vec!["app.example".into(), "*".into()];
    })
    .await;
    let browser = Browser::new();
    for next in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "https://app.example@evil.example/",
    ] {
        let url = app.url(&format!("/oidc/{NAME}?next={}", urlencode(next)));
        let (status, page) = browser.open(&url).await;
        assert_eq!(
            (status, attribute(&page, "data-error").as_deref()),
            (400, Some("invalid_next")),
            "{next}"
        );
    }
    let resp = browser
        .client
        .get(app.url(&format!(
            "/oidc/{NAME}?next={}&xfer=window",
            urlencode("https://app.example/done")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let (status, page) = browser.open(&app.url(&format!("/oidc/{NAME}?xfer=popup"))).await;
    assert_eq!(
        (status, attribute(&page, "data-error").as_deref()),
        (400, Some("invalid_xfer"))
    );
    let (status, page) = browser.open(&app.url("/oidc/nobody")).await;
    assert_eq!(
        (status, attribute(&page, "data-error").as_deref()),
        (404, Some("unknown_provider"))
    );
    // A name no provider can have sets no cookie, even on a "return".
    let resp = browser
        .client
        .get(app.url("/oidc/x%3B%20Path%3D%2F?state=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().get("set-cookie").is_none());
    // A pair for a provider that does not exist, or a made-up pair: refused, as a wrong password is.
    let resp = app
        .post_json(
            "/api/login",
            &json!({"username": "x", "password": "y", "provider": NAME}),
        )
        .await;
    assert_eq!(resp.status(), 401);
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// How [`Hostile`] answers the token request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Good,
    WrongNonce,
    ForeignKey,
    Expired,
    WrongAudience,
    /// Several audiences, ours among them, and no azp.
    SharedAudience,
    AlgNone,
    /// The authorization response names another issuer (RFC 9207 mix-up).
    MixUp,
    /// UserInfo describes another subject than the id_token.
    OtherSubject,
    ServerError,
    Hang,
    Garbage,
}

/// An OpenID provider in this process that misbehaves as told: its authorization endpoint sends the browser
/// straight back with a code, its token endpoint answers by [`Mode`].
struct Hostile {
    issuer: String,
    mode: Arc<Mutex<Mode>>,
    server: actix_web::dev::ServerHandle,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

struct HostileState {
    issuer: String,
    mode: Arc<Mutex<Mode>>,
    key: SigningKey,
    foreign: SigningKey,
    /// Code -> (nonce, code_challenge).
    codes: Mutex<std::collections::HashMap<String, (String, String)>>,
}

impl Hostile {
    fn start() -> Hostile {
        use actix_web::{App, HttpResponse, HttpServer, web};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let mode = Arc::new(Mutex::new(Mode::Good));
        let state = web::Data::new(HostileState {
            issuer: issuer.clone(),
            mode: mode.clone(),
            key: SigningKey::generate(Alg::ES256, 2048).unwrap().0,
            foreign: SigningKey::generate(Alg::ES256, 2048).unwrap().0,
            codes: Mutex::new(Default::default()),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(|s: web::Data<HostileState>| async move {
                        let i = &s.issuer;
                        HttpResponse::Ok().json(json!({
                            "issuer": i, "authorization_endpoint": format!("{i}/auth"),
                            "token_endpoint": format!("{i}/token"), "jwks_uri": format!("{i}/jwks"),
                            "userinfo_endpoint": format!("{i}/userinfo"),
                            "id_token_signing_alg_values_supported": ["ES256"],
                        }))
                    }),
                )
                .route(
                    "/jwks",
                    web::get().to(|s: web::Data<HostileState>| async move {
                        HttpResponse::Ok().json(json!({"keys": [jwk(&s.key)]}))
                    }),
                )
                .route("/auth", web::get().to(hostile_auth))
                .route(
                    "/userinfo",
                    web::get().to(|s: web::Data<HostileState>| async move {
                        let sub = match *s.mode.lock().unwrap() {
                            Mode::OtherSubject => "someone-else",
                            _ => "hostile-user",
                        };
                        HttpResponse::Ok()
                            .json(json!({"sub": sub, "email": "mallory@example.test", "groups": ["staff"]}))
                    }),
                )
                .route("/token", web::post().to(hostile_token))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = runtime.block_on(server);
        });
        Hostile {
            issuer,
            mode,
            server: handle,
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

fn jwk(key: &SigningKey) -> Value {
    let PublicJwk::Ec { crv, x, y } = &key.public else {
        panic!("an EC key");
    };
    json!({"kty": "EC", "crv": crv, "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y), "kid": key.kid, "alg": "ES256", "use": "sig"})
}

async fn hostile_auth(
    s: actix_web::web::Data<HostileState>,
    q: actix_web::web::Query<std::collections::HashMap<String, String>>,
) -> actix_web::HttpResponse {
    let code = format!("code-{}", rand::random::<u64>());
    s.codes
        .lock()
        .unwrap()
        .insert(code.clone(), (q["nonce"].clone(), q["code_challenge"].clone()));
    let mut location = format!("{}?code={code}&state={}", q["redirect_uri"], urlencode(&q["state"]));
    if *s.mode.lock().unwrap() == Mode::MixUp {
        location.push_str("&iss=https%3A%2F%2Fother-provider.example");
    }
    actix_web::HttpResponse::SeeOther()
        .insert_header(("location", location))
        .finish()
}

async fn hostile_token(
    s: actix_web::web::Data<HostileState>,
    form: actix_web::web::Form<std::collections::HashMap<String, String>>,
) -> actix_web::HttpResponse {
    let mode = *s.mode.lock().unwrap();
    match mode {
        Mode::ServerError => return actix_web::HttpResponse::InternalServerError().body("boom"),
        Mode::Hang => {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        }
        Mode::Garbage => {
            return actix_web::HttpResponse::Ok()
                .content_type("application/json")
                .body("<html>");
        }
        _ => {}
    }
    let Some((nonce, challenge)) = s.codes.lock().unwrap().remove(&form["code"]) else {
        return actix_web::HttpResponse::BadRequest().json(json!({"error": "invalid_grant"}));
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes())) != challenge {
        return actix_web::HttpResponse::BadRequest()
            .json(json!({"error": "invalid_grant", "error_description": "PKCE"}));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut claims = json!({
        "iss": s.issuer, "sub": "hostile-user", "aud": "tessera", "iat": now, "exp": now + 300, "nonce": nonce,
        "email": "mallory@example.test", "groups": ["staff"],
    });
    match mode {
        Mode::WrongNonce => claims["nonce"] = json!("not-the-nonce"),
        Mode::Expired => {
            claims["iat"] = json!(now - 400);
            claims["exp"] = json!(now - 200);
        }
        Mode::WrongAudience => claims["aud"] = json!("someone-else"),
        Mode::SharedAudience => claims["aud"] = json!(["tessera", "someone-else"]),
        _ => {}
    }
    let Value::Object(map) = claims else { unreachable!() };
    let key = if mode == Mode::ForeignKey { &s.foreign } else { &s.key };
    let mut id_token = tessera::crypto::jwt::encode(key, &tessera::crypto::jwt::encoded_header(key), &map).unwrap();
    if mode == Mode::ForeignKey {
        // Signed by a key the provider never published, under the published key's kid.
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": s.key.kid, "typ": "JWT"}).to_string());
        let rest = id_token.split_once('.').unwrap().1.to_string();
        let payload = rest.split('.').next().unwrap();
        let signed = format!("{header}.{payload}");
        let sig = s.foreign.sign(signed.as_bytes()).unwrap();
        id_token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig));
    }
    if mode == Mode::AlgNone {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": s.key.kid}).to_string());
        let payload = id_token.split('.').nth(1).unwrap().to_string();
        id_token = format!("{header}.{payload}.");
    }
    actix_web::HttpResponse::Ok().json(json!({"id_token": id_token, "access_token": "at", "token_type": "Bearer"}))
}

#[tokio::test]
async fn id_tokens_that_fail_a_check_and_providers_that_fail_are_refused_with_nothing_created() {
    let hostile = Hostile::start();
    let (app, _dir) = app_for(&hostile.issuer, TestDb::Sqlite, |_| {}).await;
    let before = user_count(&app).await;
    let cases = [
        (Mode::WrongNonce, 400, "oidc_check_failed", "nonce"),
        (Mode::ForeignKey, 400, "oidc_check_failed", "bad signature"),
        (Mode::Expired, 400, "oidc_check_failed", "expired"),
        (Mode::WrongAudience, 400, "oidc_check_failed", "audience"),
        (Mode::SharedAudience, 400, "oidc_check_failed", "azp"),
        (Mode::AlgNone, 400, "oidc_check_failed", "none"),
        (Mode::MixUp, 400, "oidc_check_failed", "another issuer"),
        (Mode::OtherSubject, 400, "oidc_check_failed", "another user"),
        (Mode::ServerError, 502, "oidc_provider_error", "500"),
        (Mode::Garbage, 502, "oidc_provider_error", "JSON"),
        (Mode::Hang, 502, "oidc_provider_unavailable", "in time"),
    ];
    for (mode, status, code, says) in cases {
        hostile.set(mode);
        let browser = Browser::new();
        let callback = browser.through_provider(&app, "", "-").await;
        let started = std::time::Instant::now();
        let (got, page) = browser.open(&callback).await;
        assert_eq!(
            (got, attribute(&page, "data-error").as_deref()),
            (status, Some(code)),
            "{mode:?}: {page}"
        );
        assert!(page.contains(says), "{mode:?}: {page}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{mode:?} took too long"
        );
        assert_eq!(user_count(&app).await, before, "{mode:?} stored a user");
    }
    // The same provider, behaving: the sign-in works (the cases above failed for their one fault).
    hostile.set(Mode::Good);
    let body = full_sign_in(&app, &Browser::new(), "-").await;
    assert_eq!(body["username"], "mallory@example.test");
    assert_eq!(claims_of(body["token"].as_str().unwrap())["staff"], "yes");
}

/// Stoke's example provider files (its `providers.d`: an LDAP directory and Google) load as they are; the
/// Google one, pointed at the test provider (the four keys the fixture's README names), signs users in; and
/// the implicit and hybrid flows Stoke offers are refused by the configuration check, saying why.
#[tokio::test]
async fn stokes_example_provider_files_load_and_google_signs_in() {
    let upstream = Upstream::start();
    upstream.set_account(
        "ada",
        json!({"email": "ada@example.test", "given_name": "Ada", "family_name": "L", "groups": ["staff"]}),
    );
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let fixtures = repo_path("tests/fixtures/stoke-providers.d");
    std::fs::copy(fixtures.join("01_ldap.yaml"), dir.path().join("01_ldap.yaml")).unwrap();
    let google = std::fs::read_to_string(fixtures.join("02_google_oidc.yaml"))
        .unwrap()
        .replace(
            "https://accounts.google.com/.well-known/openid-configuration",
            &format!("{}/.well-known/openid-configuration", upstream.issuer),
        )
        .replace("client_id: CLIENT ID", "client_id: tessera")
        .replace("client_secret: CLIENT SECRET", "client_secret: tessera-secret")
        .replace(
            "http://localhost:8080/oidc/google",
            &format!("http://127.0.0.1:{port}/oidc/google"),
        );
    std::fs::write(dir.path().join("02_google_oidc.yaml"), &google).unwrap();
    let text = format!("users:\n  provider_config_dir: {}\n", dir.path().display());
    let loaded = tessera::config::load_from_str(&text, "t.yaml", Vec::new(), false).unwrap_or_else(|e| panic!("{e}"));
    let providers = loaded.config.users.providers.clone();
    let kinds: Vec<(&str, &str)> = providers.iter().map(|p| (p.name.as_str(), p.kind.as_str())).collect();
    assert_eq!(kinds, [("local_ldap", "ldap"), ("google", "oidc")]);

    // Stoke's file asks for no groups scope: the staff group is linked by email.
    let init = dbinit_for(dir.path(), "google", "email=ada@example.test");
    let app = spawn_app_with(
        TestDb::Sqlite,
        move |c| {
            c.server.port = port;
            c.users.providers = providers;
        },
        Some(init),
    )
    .await
    .unwrap();
    let body = sign_in_at(&app, &Browser::new(), "google", "ada").await;
    assert_eq!(body["username"], "ada@example.test");
    assert_eq!(claims_of(body["token"].as_str().unwrap())["staff"], "yes");

    for flow in ["implicit", "hybrid"] {
        std::fs::write(
            dir.path().join("02_google_oidc.yaml"),
            google.replace("auth_flow_type: code", &format!("auth_flow_type: {flow}")),
        )
        .unwrap();
        let err = tessera::config::load_from_str(&text, "t.yaml", Vec::new(), false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("auth_flow_type") && err.contains("PKCE") && err.contains("leak"),
            "{flow}: {err}"
        );
    }
}

/// Puts a user into the database as an admin would have: `username` with `email`, a local account.
async fn local_user(app: &TestApp, username: &str, email: &str) {
    user_of_source(app, username, email, "LOCAL").await;
}

async fn user_of_source(app: &TestApp, username: &str, email: &str, source: &str) {
    let mut u = tessera::db::users::UserRow::new_local(username, Some(email), ("Local", "User"), (None, None), 1);
    u.source = source.into();
    app.state
        .db
        .run(move |c| tessera::db::users::insert(c, &u))
        .await
        .unwrap();
}

async fn sign_in_error(app: &TestApp, login: &str) -> Option<String> {
    let browser = Browser::new();
    let callback = browser.through_provider(app, "", login).await;
    let (status, page) = browser.open(&callback).await;
    if status == 200 {
        return None;
    }
    attribute(&page, "data-error")
}

/// A first sign-in whose email an account already has joins it only when the operator allows it and the
/// provider verified the email, never an account holding stk=S; once linked, the identity (iss, sub) decides.
#[tokio::test]
async fn existing_accounts_are_joined_only_by_verified_email_and_never_a_superusers() {
    let upstream = Upstream::start();
    let (app, _dir) = app_for(&upstream.issuer, TestDb::Sqlite, |c| {
        c.users.providers[0].oidc.link_by_verified_email = true;
        // The claims of the id_token alone (the other tests read UserInfo).
        c.users.providers[0].oidc.claims_source = "token".into();
    })
    .await;
    local_user(&app, "carol", "carol@example.test").await;
    let carol =
        |verified: bool| json!({"email": "carol@example.test", "email_verified": verified, "groups": ["staff"]});
    upstream.set_account("carol", carol(false));
    assert_eq!(
        sign_in_error(&app, "carol").await.as_deref(),
        Some("oidc_account_exists")
    );
    upstream.set_account("carol", carol(true));
    let body = full_sign_in(&app, &Browser::new(), "carol").await;
    assert_eq!(body["username"], "carol", "the existing account");
    // Linked now: the identity signs in whatever the provider says about the email.
    upstream.set_account("carol", carol(false));
    assert_eq!(full_sign_in(&app, &Browser::new(), "carol").await["username"], "carol");
    // Another subject of the provider with the same email cannot take the linked account.
    upstream.set_account("carol2", carol(true));
    assert_eq!(
        sign_in_error(&app, "carol2").await.as_deref(),
        Some("oidc_account_exists")
    );

    // The bootstrap superuser's email, verified by the provider: refused.
    let superuser = app
        .state
        .db
        .run(|c| tessera::db::users::find_by_username(c, "sadmin"))
        .await
        .unwrap()
        .unwrap();
    let mut changed = superuser.clone();
    changed.email = Some("root@example.test".into());
    app.state
        .db
        .run(move |c| tessera::db::users::update_profile(c, &changed, 2))
        .await
        .unwrap();
    upstream.set_account(
        "root",
        json!({"email": "root@example.test", "email_verified": true, "groups": ["staff"]}),
    );
    let before = user_count(&app).await;
    assert_eq!(sign_in_error(&app, "root").await.as_deref(), Some("oidc_link_refused"));
    assert_eq!(user_count(&app).await, before);
}

/// Without `link_by_verified_email` (the default) a verified email of an existing account is refused too.
#[tokio::test]
async fn by_default_no_existing_account_is_joined() {
    let upstream = Upstream::start();
    let (app, _dir) = app_for(&upstream.issuer, TestDb::Sqlite, |_| {}).await;
    local_user(&app, "dave", "dave@example.test").await;
    upstream.set_account(
        "dave",
        json!({"email": "dave@example.test", "email_verified": true, "groups": ["staff"]}),
    );
    assert_eq!(
        sign_in_error(&app, "dave").await.as_deref(),
        Some("oidc_account_exists")
    );
    // A user Stoke created from this provider (imported: source OIDC:<name>, no identity) is linked again by its
    // verified email, and only by a verified one.
    user_of_source(&app, "hank@example.test", "hank@example.test", &format!("OIDC:{NAME}")).await;
    upstream.set_account(
        "hank",
        json!({"email": "hank@example.test", "email_verified": false, "groups": ["staff"]}),
    );
    assert_eq!(
        sign_in_error(&app, "hank").await.as_deref(),
        Some("oidc_account_exists")
    );
    upstream.set_account(
        "hank",
        json!({"email": "hank@example.test", "email_verified": true, "groups": ["staff"]}),
    );
    let before = user_count(&app).await;
    assert_eq!(
        full_sign_in(&app, &Browser::new(), "hank").await["username"],
        "hank@example.test"
    );
    assert_eq!(user_count(&app).await, before);
    // A provider user named like a local account (its email is the username) is refused as well.
    local_user(&app, "erin@example.test", "erin-other@example.test").await;
    upstream.set_account(
        "erin",
        json!({"email": "erin@example.test", "email_verified": true, "groups": ["staff"]}),
    );
    assert_eq!(
        sign_in_error(&app, "erin").await.as_deref(),
        Some("oidc_account_exists")
    );
}

/// Parallel bursts: a callback opened many times at once spends its state once; a pair sent many times at once
/// logs in once; two first sign-ins of one new identity at once make one account, and both succeed.
#[tokio::test]
async fn a_state_and_a_pair_work_once_under_a_parallel_burst() {
    for db in [TestDb::Sqlite, TestDb::Postgres, TestDb::Mysql] {
        crate::helpers::run_on(db, burst).await;
    }
}

async fn burst(db: TestDb) {
    let upstream = Upstream::start();
    upstream.set_account("fay", json!({"email": "fay@example.test", "groups": ["staff"]}));
    let (app, _dir) = app_for(&upstream.issuer, db, |_| {}).await;
    let browser = Browser::new();
    let callback = browser.through_provider(&app, "", "fay").await;
    let mut opens = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let request = browser.client.get(&callback);
        opens.spawn(async move {
            let resp = request.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        });
    }
    let pages: Vec<(u16, String)> = opens.join_all().await;
    let won: Vec<&String> = pages.iter().filter(|(s, _)| *s == 200).map(|(_, p)| p).collect();
    assert_eq!(won.len(), 1, "{:?}", pages.iter().map(|(s, _)| *s).collect::<Vec<_>>());
    let body = json!({
        "username": attribute(won[0], "data-id-token").unwrap(),
        "password": attribute(won[0], "data-access-code").unwrap(),
        "provider": NAME,
    });
    let mut logins = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let request = app.client.post(app.url("/api/login")).json(&body);
        logins.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let statuses: Vec<u16> = logins.join_all().await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");

    upstream.set_account("gus", json!({"email": "gus@example.test", "groups": ["staff"]}));
    let (a, b) = (Browser::new(), Browser::new());
    let (ca, cb) = tokio::join!(a.through_provider(&app, "", "gus"), b.through_provider(&app, "", "gus"));
    let before = user_count(&app).await;
    let ((sa, pa), (sb, pb)) = tokio::join!(a.open(&ca), b.open(&cb));
    assert_eq!((sa, sb), (200, 200), "{pa}\n{pb}");
    assert_eq!(user_count(&app).await, before + 1);
}

/// What `validate` and start-up refuse in an OpenID provider's settings, each with the key and the reason.
#[test]
fn bad_provider_settings_are_configuration_errors() {
    let load = |keys: &str| {
        let text = format!("users:\n  providers:\n    - name: up\n      type: oidc\n{keys}");
        tessera::config::load_from_str(&text, "t.yaml", Vec::new(), false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let good = "      discovery_url: https://op.example/.well-known/openid-configuration\n      client_id: c\n      \
                redirect_uri: https://id.example/oidc/up\n";
    assert_eq!(load(good), "", "a complete provider loads");
    for (keys, key, says) in [
        (
            good.replace("https://op.example", "http://op.example"),
            "discovery_url",
            "https",
        ),
        (
            good.replace("client_id: c", "client_id: \"\""),
            "client_id",
            "client ID",
        ),
        (
            format!("{good}      client_secret_file: /nonexistent/secret\n"),
            "client_secret_file",
            "readable",
        ),
        (
            format!("{good}      client_secret: s\n      client_secret_file: /etc/hostname\n"),
            "client_secret_file",
            "not both",
        ),
        (good.replace("/oidc/up", "/callback"), "redirect_uri", "/oidc/up"),
        (
            format!("{good}      claims_source: cookie\n"),
            "claims_source",
            "endpoint",
        ),
        (
            "      client_id: c\n      redirect_uri: https://id.example/oidc/up\n".to_string(),
            "jwks_url",
            "discovery_url",
        ),
        (
            format!("{good}      request_timeout: 0s\n"),
            "request_timeout",
            "more than 0",
        ),
    ] {
        let err = load(&keys);
        assert!(err.contains(key) && err.contains(says), "{key}: {err}");
    }
    let bad_name = "users:\n  providers:\n    - name: \"a/b\"\n      type: oidc\n      discovery_url: https://op.example/.well-known/openid-configuration\n      client_id: c\n      redirect_uri: https://id.example/oidc/a/b\n";
    let err = tessera::config::load_from_str(bad_name, "t.yaml", Vec::new(), false)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("/oidc/<name>"), "{err}");
}

/// Expired values: a sign-in left at the provider for more than 10 minutes cannot be finished, and an exchange
/// pair not redeemed within 2 minutes logs nobody in.
#[tokio::test]
async fn an_expired_state_or_pair_is_refused() {
    let upstream = Upstream::start();
    upstream.set_account("ivy", json!({"email": "ivy@example.test", "groups": ["staff"]}));
    let clock = tessera::clock::ManualClock::new();
    let (app, _dir) = app_with_clock(&upstream.issuer, TestDb::Sqlite, |_| {}, Some(Arc::new(clock.clone()))).await;
    let before = user_count(&app).await;

    let browser = Browser::new();
    let callback = browser.through_provider(&app, "", "ivy").await;
    clock.advance(601);
    let (status, page) = browser.open(&callback).await;
    assert_eq!(
        (status, attribute(&page, "data-error").as_deref()),
        (400, Some("oidc_state_unknown")),
        "{page}"
    );
    assert_eq!(user_count(&app).await, before);
    clock.advance(-601);

    let browser = Browser::new();
    let callback = browser.through_provider(&app, "", "ivy").await;
    let (status, page) = browser.open(&callback).await;
    assert_eq!(status, 200, "{page}");
    let body = json!({
        "username": attribute(&page, "data-id-token").unwrap(),
        "password": attribute(&page, "data-access-code").unwrap(),
        "provider": NAME,
    });
    clock.advance(121);
    assert_eq!(app.post_json("/api/login", &body).await.status(), 401);
}
