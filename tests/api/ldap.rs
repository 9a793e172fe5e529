//! LDAP providers against a real OpenLDAP server (scripts/test starts one: `start_slapd`, loaded from
//! tests/ldap/directory.ldif). Tests that need it skip when `TESSERA_TEST_LDAP_URL` is unset and fail loudly when
//! it is set but unreachable. Each test adds its own people and groups, with unique names, through the admin bind,
//! so tests running in parallel never see each other's entries.

use std::collections::HashSet;
use std::path::PathBuf;

use diesel::prelude::*;
use ldap3::{Ldap, LdapConnAsync, Mod};
use serde_json::{Value, json};
use tessera::config::{Config, ProviderConfig, Secret};
use tessera::db::schema::users;

use crate::db_test;
use crate::helpers::{TestApp, TestDb, claims_of, spawn_app_with};

const BASE: &str = "dc=tessera,dc=test";
const PEOPLE: &str = "ou=people,dc=tessera,dc=test";
const GROUPS: &str = "ou=groups,dc=tessera,dc=test";
/// Stoke's example hash of the password `tester` (tests/fixtures/stoke-dbinit.yaml).
const TESTER_HASH: &str = "+OnrEsjkbdXdXugEKwDLGdqlDnMNV9+WyZ6T9wAtSMzp3jKYY+7pLYxoBlMlmWBOXlC9bviWtS9mw0fa4B6gkA==";
const TESTER_SALT: &str = "H3UP6GzWV3UISU7HJN/sVT6YjTYcmOPdJwiFcdXMVyQ=";

/// The test directory, from the environment scripts/test exports.
pub(crate) struct Directory {
    pub(crate) url: String,
    ldaps_url: Option<String>,
    ldapi_url: Option<String>,
    ca: Option<String>,
    admin: Ldap,
}

pub(crate) async fn directory() -> Option<Directory> {
    let Ok(url) = std::env::var("TESSERA_TEST_LDAP_URL") else {
        eprintln!("skipped: TESSERA_TEST_LDAP_URL is not set (scripts/test starts a slapd)");
        return None;
    };
    let admin_dn = std::env::var("TESSERA_TEST_LDAP_ADMIN_DN").unwrap_or_else(|_| format!("cn=admin,{BASE}"));
    let admin_pw = std::env::var("TESSERA_TEST_LDAP_ADMIN_PASSWORD").unwrap_or_else(|_| "admin-secret".into());
    let (conn, mut admin) = LdapConnAsync::new(&url)
        .await
        .unwrap_or_else(|e| panic!("TESSERA_TEST_LDAP_URL={url} is set but unreachable: {e}"));
    ldap3::drive!(conn);
    admin
        .simple_bind(&admin_dn, &admin_pw)
        .await
        .and_then(|r| r.success())
        .unwrap_or_else(|e| panic!("admin bind to {url} failed: {e}"));
    Some(Directory {
        url,
        ldaps_url: std::env::var("TESSERA_TEST_LDAPS_URL").ok(),
        ldapi_url: std::env::var("TESSERA_TEST_LDAPI_URL").ok(),
        ca: std::env::var("TESSERA_TEST_LDAP_CA").ok(),
        admin,
    })
}

/// A name no other test (or earlier run) uses.
pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}{:012x}", rand::random::<u64>() >> 16)
}

impl Directory {
    /// Adds a person under ou=people; returns its DN. `rdn` is the naming attribute and value (e.g. a cn
    /// with parentheses), `uid` the login name.
    pub(crate) async fn add_person(&mut self, rdn: &str, uid: &str, password: &str) -> String {
        let dn = format!("{rdn},{PEOPLE}");
        let cn = rdn.split_once('=').map(|(_, v)| v.to_string()).unwrap_or_default();
        let mail = format!("{uid}@example.test");
        let attrs = vec![
            ("objectClass", HashSet::from(["inetOrgPerson"])),
            ("uid", HashSet::from([uid])),
            ("cn", HashSet::from([cn.as_str()])),
            ("givenName", HashSet::from(["Given"])),
            ("sn", HashSet::from([uid])),
            ("mail", HashSet::from([mail.as_str()])),
            ("userPassword", HashSet::from([password])),
        ];
        self.admin.add(&dn, attrs).await.unwrap().success().unwrap();
        dn
    }

    pub(crate) async fn add_group(&mut self, cn: &str, members: &[&str]) -> String {
        let dn = format!("cn={cn},{GROUPS}");
        // groupOfNames needs a member; the base entry stands in for "nobody".
        let members: HashSet<&str> = if members.is_empty() {
            HashSet::from([BASE])
        } else {
            members.iter().copied().collect()
        };
        let attrs = vec![
            ("objectClass", HashSet::from(["groupOfNames"])),
            ("cn", HashSet::from([cn])),
            ("member", members),
        ];
        self.admin.add(&dn, attrs).await.unwrap().success().unwrap();
        dn
    }

    pub(crate) async fn set_members(&mut self, group_dn: &str, members: &[&str]) {
        let members: HashSet<&str> = if members.is_empty() {
            HashSet::from([BASE])
        } else {
            members.iter().copied().collect()
        };
        self.admin
            .modify(group_dn, vec![Mod::Replace("member", members)])
            .await
            .unwrap()
            .success()
            .unwrap();
    }
}

/// A provider reading the test directory as the read-only service account.
pub(crate) fn provider(name: &str, url: &str) -> ProviderConfig {
    let mut p = ProviderConfig {
        name: name.into(),
        kind: "ldap".into(),
        ..Default::default()
    };
    let s = &mut p.ldap;
    s.server_url = url.into();
    s.bind_user_dn = format!("cn=reader,{BASE}");
    s.bind_user_password = Secret::new("reader-secret");
    s.user_search_root = PEOPLE.into();
    s.user_filter_template = "(&(objectClass=inetOrgPerson)(uid={{ .Username }}))".into();
    s.group_search_root = GROUPS.into();
    s.group_filter_template = "(&(objectClass=groupOfNames)(member={{ .UserDN }}))".into();
    s.search_timeout = tessera::config::GoDuration::from_secs(5);
    p
}

/// A dbinit file in `dir` with three claims: `crew` (group linked to LDAP group `crew_group` for any provider),
/// `staff` (linked to `staff_group` for provider `corp` only), `other` (linked to `crew_group` for another
/// provider), and `loc` (a local group without links). `local_users` are (username, groups) with password `tester`
/// when the group list is followed by `true`.
pub(crate) fn dbinit(
    dir: &tempfile::TempDir,
    crew_group: &str,
    staff_group: &str,
    local_users: &[(&str, &[&str], bool)],
) -> PathBuf {
    let mut users = String::new();
    for (name, groups, with_password) in local_users {
        users.push_str(&format!(
            "  - username: {name}\n    first_name: Local\n    last_name: {name}\n"
        ));
        if *with_password {
            users.push_str(&format!(
                "    password_hash: {TESTER_HASH}\n    password_salt: {TESTER_SALT}\n"
            ));
        }
        users.push_str(&format!("    groups: {groups:?}\n"));
    }
    let text = format!(
        r#"claims:
  - {{name: Crew, short_name: crew, value: "yes", description: crew}}
  - {{name: Staff, short_name: staff, value: "yes", description: staff}}
  - {{name: Other, short_name: other, value: "yes", description: other}}
  - {{name: Local, short_name: loc, value: "yes", description: local}}
groups:
  - name: Crew group
    description: linked for every LDAP provider
    links: [{crew_group}]
    claims: [Crew]
  - name: Staff group
    description: linked for corp only
    links: [{{type: LDAP, provider: corp, resource: {staff_group}}}]
    claims: [Staff]
  - name: Other group
    description: linked for another provider
    links: [{{type: LDAP, provider: elsewhere, resource: {crew_group}}}]
    claims: [Other]
  - name: Local group
    description: assigned locally
    claims: [Local]
users:
{users}"#
    );
    let path = dir.path().join("dbinit.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

pub(crate) async fn login_with(
    app: &TestApp,
    username: &str,
    password: &str,
    provider: Option<&str>,
) -> reqwest::Response {
    let mut body = json!({"username": username, "password": password});
    if let Some(p) = provider {
        body["provider"] = json!(p);
    }
    app.post_json("/api/login", &body).await
}

pub(crate) async fn claims_after_login(app: &TestApp, username: &str, password: &str, provider: Option<&str>) -> Value {
    let resp = login_with(app, username, password, provider).await;
    assert_eq!(resp.status(), 200, "login of {username} via {provider:?}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["username"], username);
    claims_of(body["token"].as_str().unwrap())
}

pub(crate) async fn expect_401(app: &TestApp, username: &str, password: &str, provider: Option<&str>) {
    let resp = login_with(app, username, password, provider).await;
    assert_eq!(resp.status(), 401, "{username:?} via {provider:?}");
    assert_eq!(resp.text().await.unwrap(), "{}");
}

pub(crate) fn with(providers: Vec<ProviderConfig>) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| c.users.providers = providers
}

db_test!(members_and_non_members_get_claims_from_linked_groups, async |db| {
    let Some(mut dir) = directory().await else { return };
    let (member, outsider, paren) = (unique("mem"), unique("out"), unique("par"));
    let member_dn = dir.add_person(&format!("uid={member}"), &member, "member-pw").await;
    dir.add_person(&format!("uid={outsider}"), &outsider, "outsider-pw")
        .await;
    // A DN with parentheses: the group filter must escape it.
    let paren_dn = dir
        .add_person(&format!("cn=Doctor {paren} (Zoidberg)"), &paren, "paren-pw")
        .await;
    let (crew, staff) = (unique("crew"), unique("staff"));
    dir.add_group(&crew, &[&member_dn, &paren_dn]).await;
    dir.add_group(&staff, &[&member_dn]).await;

    let tmp = tempfile::tempdir().unwrap();
    // The member already has a local row with a locally assigned group: it is kept.
    let init = dbinit(&tmp, &crew, &staff, &[(&member, &["Local group"], false)]);
    let app = spawn_app_with(db, with(vec![provider("corp", &dir.url)]), Some(init))
        .await
        .unwrap();

    let claims = claims_after_login(&app, &member, "member-pw", Some("corp")).await;
    assert_eq!(claims["crew"], "yes");
    assert_eq!(claims["staff"], "yes");
    assert_eq!(claims["loc"], "yes", "locally assigned groups are kept");
    assert!(
        claims.get("other").is_none(),
        "a link for another provider does not apply"
    );
    assert_eq!(claims["e"], format!("{member}@example.test"));
    assert_eq!(claims["n"], format!("Given {member}"));

    // The only provider is used when the login names none.
    let claims = claims_after_login(&app, &outsider, "outsider-pw", None).await;
    for key in ["crew", "staff", "loc", "other"] {
        assert!(claims.get(key).is_none(), "{key} for a non-member");
    }
    let claims = claims_after_login(&app, &paren, "paren-pw", None).await;
    assert_eq!(claims["crew"], "yes");
    assert!(claims.get("staff").is_none());

    // The users are cached locally with source LDAP and no password.
    let rows: Vec<(String, String, Option<String>)> = users::table
        .filter(users::username.eq_any([&member, &outsider, &paren]))
        .select((users::username, users::source, users::password_hash))
        .load(&mut *app.state.db.get().unwrap())
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|(_, source, hash)| source == "LDAP" && hash.is_none()),
        "{rows:?}"
    );
});

#[tokio::test]
async fn group_changes_in_the_directory_show_at_the_next_login() {
    let Some(mut dir) = directory().await else { return };
    let user = unique("chg");
    let dn = dir.add_person(&format!("uid={user}"), &user, "pw").await;
    let (crew, staff) = (unique("crew"), unique("staff"));
    let crew_dn = dir.add_group(&crew, &[&dn]).await;
    let staff_dn = dir.add_group(&staff, &[]).await;
    let tmp = tempfile::tempdir().unwrap();
    let init = dbinit(&tmp, &crew, &staff, &[]);
    let app = spawn_app_with(TestDb::Sqlite, with(vec![provider("corp", &dir.url)]), Some(init))
        .await
        .unwrap();

    let claims = claims_after_login(&app, &user, "pw", None).await;
    assert_eq!(claims["crew"], "yes");
    assert!(claims.get("staff").is_none());

    dir.set_members(&crew_dn, &[]).await;
    dir.set_members(&staff_dn, &[&dn]).await;
    let claims = claims_after_login(&app, &user, "pw", None).await;
    assert!(claims.get("crew").is_none(), "removed from the directory group");
    assert_eq!(claims["staff"], "yes");

    // Concurrent logins share the service connection and the bind pool.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/api/login"));
            let body = json!({"username": user, "password": "pw"});
            tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().status() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
}

#[tokio::test]
async fn filter_metacharacters_in_usernames_match_nobody() {
    let Some(mut dir) = directory().await else { return };
    let user = unique("inj");
    dir.add_person(&format!("uid={user}"), &user, "inj-pw").await;
    let app = spawn_app_with(TestDb::Sqlite, with(vec![provider("corp", &dir.url)]), None)
        .await
        .unwrap();
    claims_after_login(&app, &user, "inj-pw", None).await;
    // Unescaped, each of these would select exactly this user (or every user) and bind with its password.
    let prefix = &user[..user.len() - 3];
    for name in [
        format!("{prefix}*"),
        "*".to_string(),
        "*)(uid=*".to_string(),
        format!("{user})(|(uid=*"),
        format!("*)(uid={user}"),
        format!("{user}\\"),
    ] {
        expect_401(&app, &name, "inj-pw", None).await;
    }
}

/// The directory matches names without regard to case; so does its local copy: one row, under the name of the
/// first login, whatever case a later login types.
#[tokio::test]
async fn a_name_typed_in_another_case_is_the_same_user() {
    let Some(mut dir) = directory().await else { return };
    let user = unique("case");
    dir.add_person(&format!("uid={user}"), &user, "case-pw").await;
    let app = spawn_app_with(TestDb::Sqlite, with(vec![provider("corp", &dir.url)]), None)
        .await
        .unwrap();
    let mut subjects = Vec::new();
    for typed in [user.to_uppercase(), user.clone(), user.to_uppercase()] {
        let resp = login_with(&app, &typed, "case-pw", None).await;
        assert_eq!(resp.status(), 200, "{typed}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["username"], user.to_uppercase());
        subjects.push(claims_of(body["token"].as_str().unwrap())["sub"].clone());
    }
    assert!(subjects[0].is_string(), "{subjects:?}");
    assert!(subjects.iter().all(|s| *s == subjects[0]), "{subjects:?}");
}

#[tokio::test]
async fn wrong_directory_password_is_401_without_local_fallback() {
    let Some(mut dir) = directory().await else { return };
    let user = unique("dup");
    dir.add_person(&format!("uid={user}"), &user, "ldap-pw").await;
    let tmp = tempfile::tempdir().unwrap();
    // A local user of the same name whose local password is `tester`.
    let init = dbinit(
        &tmp,
        "none",
        "none",
        &[(&user, &[], true), ("localonly", &["Local group"], true)],
    );
    let app = spawn_app_with(TestDb::Sqlite, with(vec![provider("corp", &dir.url)]), Some(init))
        .await
        .unwrap();
    let hashes = async || {
        let text = app.get("/metrics").await.text().await.unwrap();
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("tessera_password_hashes_total "))
            .unwrap();
        line.trim().parse::<u64>().unwrap()
    };
    let before = hashes().await;
    expect_401(&app, &user, "tester", None).await;
    // The directory said no; a decoy hash still runs, so this 401 takes as long as one for an unknown name.
    assert_eq!(hashes().await, before + 1);
    expect_401(&app, &user, "tester", Some("corp")).await;
    expect_401(&app, &user, "", None).await;
    // The directory's own password does not take over the local account of that name either (see
    // security::escalation for the rule): the directory user cannot log in until one of them is renamed.
    expect_401(&app, &user, "ldap-pw", None).await;
    // A user the directory does not know is a local user.
    let claims = claims_after_login(&app, "localonly", "tester", None).await;
    assert_eq!(claims["loc"], "yes");
    // `provider: local` skips the directory.
    claims_after_login(&app, &user, "tester", Some("local")).await;
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

// Needs no directory: the provider points at a closed port.
db_test!(unreachable_directory_falls_back_to_local_users, async |db| {
    let tmp = tempfile::tempdir().unwrap();
    let init = dbinit(&tmp, "crew", "staff", &[("tester", &["Local group"], true)]);
    let url = format!("ldap://127.0.0.1:{}", closed_port());
    let app = spawn_app_with(db, with(vec![provider("corp", &url)]), Some(init))
        .await
        .unwrap();
    for _ in 0..3 {
        let claims = claims_after_login(&app, "tester", "tester", None).await;
        assert_eq!(claims["loc"], "yes");
    }
    expect_401(&app, "tester", "wrong", None).await;
    expect_401(&app, "somebody", "tester", Some("corp")).await;
});

// A directory that accepts connections and never answers: `search_timeout` bounds the wait, then local users
// answer; logins queued behind a failed attempt do not each wait out their own timeout.
#[tokio::test]
async fn a_silent_directory_times_out_to_local_users() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let init = dbinit(&tmp, "crew", "staff", &[("tester", &["Local group"], true)]);
    let mut silent = provider("corp", &format!("ldap://127.0.0.1:{port}"));
    silent.ldap.search_timeout = tessera::config::GoDuration(std::time::Duration::from_millis(700));
    let app = spawn_app_with(TestDb::Sqlite, with(vec![silent]), Some(init))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/api/login"));
            let body = json!({"username": "tester", "password": "tester"});
            tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().status() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let elapsed = started.elapsed();
    assert!(elapsed < std::time::Duration::from_secs(3), "{elapsed:?}");
}

/// A TCP proxy to the test directory that can cut its connections and refuse new ones, to play outages without
/// touching the shared slapd.
struct Proxy {
    port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(target: &str) -> Proxy {
        let target = target.trim_start_matches("ldap://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (d, l) = (down.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if d.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    let mut server = tokio::net::TcpStream::connect(target).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                l.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy { port, down, links }
    }

    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Closes every open connection.
    fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
        if down {
            self.cut();
        }
    }
}

#[tokio::test]
async fn pooled_connections_recover_from_cuts_and_outages() {
    let Some(mut dir) = directory().await else { return };
    let user = unique("cut");
    dir.add_person(&format!("uid={user}"), &user, "cut-pw").await;
    let proxy = Proxy::start(&dir.url).await;
    let tmp = tempfile::tempdir().unwrap();
    let init = dbinit(&tmp, "crew", "staff", &[("tester", &[], true)]);
    let app = spawn_app_with(TestDb::Sqlite, with(vec![provider("corp", &proxy.url())]), Some(init))
        .await
        .unwrap();
    claims_after_login(&app, &user, "cut-pw", None).await;
    // The service connection and the pooled bind connection die; the next login opens new ones.
    proxy.cut();
    claims_after_login(&app, &user, "cut-pw", None).await;
    // Outage: directory users cannot log in (no local password), local users can.
    proxy.set_down(true);
    expect_401(&app, &user, "cut-pw", None).await;
    claims_after_login(&app, "tester", "tester", None).await;
    expect_401(&app, &user, "cut-pw", None).await;
    // Back: directory users log in again.
    proxy.set_down(false);
    claims_after_login(&app, &user, "cut-pw", None).await;
    claims_after_login(&app, &user, "cut-pw", None).await;
}

#[tokio::test]
async fn ldaps_verifies_the_server_with_the_ca_file() {
    let Some(mut dir) = directory().await else { return };
    let (Some(ldaps), Some(ca)) = (dir.ldaps_url.clone(), dir.ca.clone()) else {
        eprintln!("skipped: TESSERA_TEST_LDAPS_URL / TESSERA_TEST_LDAP_CA not set");
        return;
    };
    let user = unique("tls");
    dir.add_person(&format!("uid={user}"), &user, "tls-pw").await;
    let mut with_ca = provider("with_ca", &ldaps);
    with_ca.ldap.ldap_ca_cert = ca;
    // Without the CA the system roots do not know the test CA: the directory counts as unreachable.
    let without_ca = provider("without_ca", &ldaps);
    let mut unverified = provider("unverified", &ldaps);
    unverified.ldap.skip_certificate_verify = true;
    let app = spawn_app_with(TestDb::Sqlite, with(vec![with_ca, without_ca, unverified]), None)
        .await
        .unwrap();
    claims_after_login(&app, &user, "tls-pw", Some("with_ca")).await;
    expect_401(&app, &user, "tls-pw", Some("without_ca")).await;
    claims_after_login(&app, &user, "tls-pw", Some("unverified")).await;
    // Several providers and none named: only local users.
    expect_401(&app, &user, "tls-pw", None).await;
}

#[tokio::test]
async fn ldapi_sockets_work() {
    let Some(mut dir) = directory().await else { return };
    let Some(ldapi) = dir.ldapi_url.clone() else {
        eprintln!("skipped: TESSERA_TEST_LDAPI_URL not set");
        return;
    };
    let user = unique("sock");
    dir.add_person(&format!("uid={user}"), &user, "sock-pw").await;
    let app = spawn_app_with(TestDb::Sqlite, with(vec![provider("corp", &ldapi)]), None)
        .await
        .unwrap();
    claims_after_login(&app, &user, "sock-pw", None).await;
}

// Providers from a provider_config_dir file and from Stoke's flat keys, loaded as a config file would be.
#[tokio::test]
async fn providers_from_config_files_and_flat_stoke_keys_log_in() {
    let Some(mut dir) = directory().await else { return };
    let user = unique("cfg");
    dir.add_person(&format!("uid={user}"), &user, "cfg-pw").await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = |indent: &str| {
        format!(
            "{indent}server_url: {url}\n{indent}bind_user_dn: cn=reader,{BASE}\n{indent}bind_user_password: reader-secret\n\
             {indent}user_search_root: {PEOPLE}\n\
             {indent}user_filter_template: \"(&(objectClass=inetOrgPerson)(uid={{{{ .Username }}}}))\"\n\
             {indent}group_search_root: {GROUPS}\n\
             {indent}group_filter_template: \"(&(objectClass=groupOfNames)(member={{{{ .UserDN }}}}))\"\n\
             {indent}search_timeout: 5s\n",
            url = dir.url
        )
    };
    std::fs::write(tmp.path().join("corp.yaml"), format!("type: ldap\n{}", keys(""))).unwrap();
    let text = format!(
        "users:\n  provider_config_dir: {}\n  enable_ldap: true\n{}",
        tmp.path().display(),
        keys("  ")
    );
    let loaded = tessera::config::load_from_str(&text, "t.yaml", Vec::new(), true).unwrap_or_else(|e| panic!("{e}"));
    let providers = loaded.config.users.providers.clone();
    let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["corp", "ldap"]);
    let app = spawn_app_with(TestDb::Sqlite, with(providers), None).await.unwrap();
    claims_after_login(&app, &user, "cfg-pw", Some("corp")).await;
    claims_after_login(&app, &user, "cfg-pw", Some("ldap")).await;
}

#[tokio::test]
async fn available_providers_and_unknown_providers() {
    let url = format!("ldap://127.0.0.1:{}", closed_port());
    let app = spawn_app_with(
        TestDb::Sqlite,
        with(vec![provider("corp", &url), provider("lab", &url)]),
        None,
    )
    .await
    .unwrap();
    let body: Value = app.get("/api/available_providers").await.json().await.unwrap();
    assert_eq!(
        body,
        json!({"providers": [
            {"name": "corp", "provider_type": "LDAP", "type_spec": "LDAP:corp"},
            {"name": "lab", "provider_type": "LDAP", "type_spec": "LDAP:lab"},
        ]})
    );
    let resp = login_with(&app, "x", "y", Some("nope")).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unknown_provider");
}

#[test]
fn bad_filter_templates_and_ca_files_are_configuration_errors() {
    let load = |extra: &str| {
        let text = format!(
            "users:\n  providers:\n    - name: corp\n      type: ldap\n      server_url: ldap://127.0.0.1:1\n{extra}"
        );
        tessera::config::load_from_str(&text, "t.yaml", Vec::new(), false)
    };
    let ok = load("      user_filter_template: (uid={{ .Username }})\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(ok.warnings.is_empty(), "{:?}", ok.warnings);
    let err = load("      user_filter_template: (uid={{ .Name }})\n").unwrap_err();
    assert!(err.to_string().contains("user_filter_template"), "{err}");
    let err =
        load("      user_filter_template: (uid={{ .Username }})\n      group_filter_template: (member={{ .UserDN )\n")
            .unwrap_err();
    assert!(err.to_string().contains("group_filter_template"), "{err}");
    let err = load("      user_filter_template: (uid={{ .Username }})\n      ldap_ca_cert: /nonexistent/ca.pem\n")
        .unwrap_err();
    assert!(err.to_string().contains("ldap_ca_cert"), "{err}");
    let warned = load("").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(warned.warnings[0].key, "users.providers[0].user_filter_template");
}
