//! /api/admin: the authorization matrix, CRUD, policies, superuser invariants and concurrency.

use reqwest::Method;
use serde_json::{Value, json};

use crate::accounts::error_code;
use crate::db_test;
use crate::helpers::{TestApp, TestDb, spawn_app_with};

pub const PASSWORD: &str = "password1";
const LETTERS: [&str; 9] = ["c", "C", "u", "U", "g", "G", "s", "m", "S"];

/// A dbinit file with one user per admin letter (`user_X` in group `L_X`), `user_none` with no group,
/// `user_sU` holding s and U, a second superuser, and a plain group `Crew`.
fn admin_dbinit(dir: &std::path::Path, hash_cfg: &tessera::config::PasswordHashConfig) -> std::path::PathBuf {
    let phc = tessera::crypto::password::Hasher::new(hash_cfg)
        .unwrap()
        .hash(PASSWORD)
        .unwrap();
    let mut claims = String::new();
    let mut groups = String::new();
    let mut users = String::new();
    for l in LETTERS {
        claims.push_str(&format!("  - claim: \"Admin {l},,stk,{l}\"\n"));
        groups.push_str(&format!("  - {{ name: \"L_{l}\", claims: [\"Admin {l}\"] }}\n"));
        users.push_str(&format!(
            "  - {{ username: \"user_{l}\", password_hash: \"{phc}\", groups: [\"L_{l}\"] }}\n"
        ));
    }
    users.push_str(&format!(
        "  - {{ username: user_none, email: none@example.com, password_hash: \"{phc}\" }}\n"
    ));
    users.push_str(&format!(
        "  - {{ username: user_sU, password_hash: \"{phc}\", groups: [L_s, L_U] }}\n"
    ));
    users.push_str(&format!(
        "  - {{ username: user_S2, password_hash: \"{phc}\", groups: [L_S] }}\n"
    ));
    claims.push_str("  - claim: \"Ship Access,,ship,acc\"\n");
    groups.push_str("  - { name: Crew, claims: [\"Ship Access\"] }\n");
    let path = dir.join("admin-dbinit.yaml");
    std::fs::write(&path, format!("claims:\n{claims}groups:\n{groups}users:\n{users}")).unwrap();
    path
}

pub async fn admin_app(db: TestDb, tweak: impl FnOnce(&mut tessera::config::Config)) -> Option<TestApp> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::helpers::test_config("sqlite://unused");
    let file = admin_dbinit(dir.path(), &cfg.security.password_hash);
    let app = spawn_app_with(db, tweak, Some(file)).await;
    drop(dir);
    app
}

/// One request; the returned future borrows nothing, so several can run at once.
pub fn call(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> impl std::future::Future<Output = reqwest::Response> + use<> {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    async move { req.send().await.unwrap() }
}

pub async fn token(app: &TestApp, user: &str) -> String {
    app.login_ok(user, PASSWORD).await.0
}

pub async fn id_of(app: &TestApp, admin: &str, list: &str, field: &str, value: &str) -> i64 {
    let all: Vec<Value> = call(
        app,
        Some(admin),
        Method::GET,
        &format!("/api/admin/{list}?itemsPerPage=255"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    all.iter()
        .find(|e| e[field] == value)
        .unwrap_or_else(|| panic!("no {list} with {field}={value}"))["id"]
        .as_i64()
        .unwrap()
}

/// Which letters may use each route (besides S).
fn matrix() -> Vec<(Method, &'static str, Option<Value>, &'static [&'static str])> {
    const USERS_R: &[&str] = &["s", "u", "U"];
    const USERS_W: &[&str] = &["U"];
    const GROUPS_R: &[&str] = &["s", "g", "G", "U"];
    const GROUPS_W: &[&str] = &["G"];
    const CLAIMS_R: &[&str] = &["s", "c", "C", "G", "U"];
    const CLAIMS_W: &[&str] = &["C"];
    const TOTALS: &[&str] = &["s", "u", "U", "g", "G", "c", "C"];
    const OPS_R: &[&str] = &["s"];
    const SUPERUSER: &[&str] = &[];
    vec![
        (Method::GET, "/api/admin/users", None, USERS_R),
        (Method::GET, "/api/admin/users/999999999", None, USERS_R),
        (Method::GET, "/api/admin/users/999999999/claim-groups", None, USERS_R),
        (Method::GET, "/api/admin/users/999999999/sessions", None, USERS_R),
        // Users and claims both: it shows claim values.
        (
            Method::GET,
            "/api/admin/users/999999999/token-preview",
            None,
            &["s", "U"],
        ),
        (
            Method::PATCH,
            "/api/admin/users/999999999",
            Some(json!({"fname": "x"})),
            USERS_W,
        ),
        (Method::DELETE, "/api/admin/users/999999999", None, USERS_W),
        (Method::DELETE, "/api/admin/users/999999999/sessions", None, USERS_W),
        (
            Method::POST,
            "/api/admin/localuser",
            Some(json!({"fname": "", "lname": "", "username": "", "email": "", "password": ""})),
            USERS_W,
        ),
        (
            Method::PATCH,
            "/api/admin/localuser",
            Some(json!({"username": "nobody", "newPassword": "long enough pw", "force": true})),
            USERS_W,
        ),
        (Method::GET, "/api/admin/totals", None, TOTALS),
        (Method::GET, "/api/admin/status", None, TOTALS),
        (Method::GET, "/api/admin/audit", None, OPS_R),
        (Method::GET, "/api/admin/keys", None, OPS_R),
        (Method::POST, "/api/admin/keys/rotate", None, SUPERUSER),
        (Method::GET, "/api/admin/claim-groups", None, GROUPS_R),
        (Method::GET, "/api/admin/claim-groups/999999999", None, GROUPS_R),
        (Method::GET, "/api/admin/claim-groups/999999999/claims", None, GROUPS_R),
        (Method::GET, "/api/admin/claim-groups/999999999/users", None, GROUPS_R),
        (
            Method::GET,
            "/api/admin/claim-groups/999999999/group-links",
            None,
            GROUPS_R,
        ),
        (
            Method::POST,
            "/api/admin/claim-groups",
            Some(json!({"name": ""})),
            GROUPS_W,
        ),
        (
            Method::PATCH,
            "/api/admin/claim-groups/999999999",
            Some(json!({"name": "x"})),
            GROUPS_W,
        ),
        (Method::DELETE, "/api/admin/claim-groups/999999999", None, GROUPS_W),
        (Method::GET, "/api/admin/group-links", None, GROUPS_R),
        (Method::GET, "/api/admin/group-links/999999999", None, GROUPS_R),
        (
            Method::GET,
            "/api/admin/group-links/999999999/claim-group",
            None,
            GROUPS_R,
        ),
        (
            Method::POST,
            "/api/admin/group-links",
            Some(json!({"type": ""})),
            GROUPS_W,
        ),
        (
            Method::PATCH,
            "/api/admin/group-links/999999999",
            Some(json!({"type": "LDAP:"})),
            GROUPS_W,
        ),
        (Method::DELETE, "/api/admin/group-links/999999999", None, GROUPS_W),
        (Method::GET, "/api/admin/claims", None, CLAIMS_R),
        (Method::GET, "/api/admin/claims/999999999", None, CLAIMS_R),
        (Method::GET, "/api/admin/claims/999999999/claim-groups", None, CLAIMS_R),
        (Method::POST, "/api/admin/claims", Some(json!({"name": ""})), CLAIMS_W),
        (
            Method::PATCH,
            "/api/admin/claims/999999999",
            Some(json!({"value": "x"})),
            CLAIMS_W,
        ),
        (Method::DELETE, "/api/admin/claims/999999999", None, CLAIMS_W),
    ]
}

db_test!(authorization_matrix, async |db| {
    let app = admin_app(db, |_| {}).await.unwrap();
    let mut tokens = vec![("none".to_string(), token(&app, "user_none").await)];
    for l in LETTERS {
        tokens.push((l.to_string(), token(&app, &format!("user_{l}")).await));
    }
    tokens.push(("s,U".to_string(), token(&app, "user_sU").await));
    let mut failures = Vec::new();
    for (method, path, body, allowed) in matrix() {
        let anonymous = call(&app, None, method.clone(), path, body.clone())
            .await
            .status()
            .as_u16();
        if anonymous != 401 {
            failures.push(format!("{method} {path} without a token: {anonymous}"));
        }
        for (letters, token) in &tokens {
            let status = call(&app, Some(token), method.clone(), path, body.clone())
                .await
                .status()
                .as_u16();
            let may = letters.split(',').any(|l| l == "S" || allowed.contains(&l));
            // Allowed calls get past authorization: 200, or 400/404 for the deliberately bad or missing input.
            let ok = if may {
                [200, 204, 400, 404].contains(&status)
            } else {
                status == 403
            };
            if !ok {
                failures.push(format!("{method} {path} as [{letters}]: {status} (allowed: {may})"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
});

db_test!(crud_edges_and_errors, async |db| {
    let app = admin_app(db, |_| {}).await.unwrap();
    let s = token(&app, "user_S").await;
    let admin = |m: Method, p: &str, b: Option<Value>| call(&app, Some(&s), m, p, b);

    let claim = admin(
        Method::POST,
        "/api/admin/claims",
        Some(json!({"name": "Deck", "short_name": "deck", "value": "1", "description": "d"})),
    )
    .await;
    assert_eq!(claim.status(), 200);
    let claim: Value = claim.json().await.unwrap();
    assert_eq!(
        (claim["short_name"].as_str(), claim["value"].as_str()),
        (Some("deck"), Some("1"))
    );
    let dup = admin(
        Method::POST,
        "/api/admin/claims",
        Some(json!({"name": "Deck 2", "short_name": "deck", "value": "1"})),
    )
    .await;
    assert_eq!(dup.status(), 409);
    assert_eq!(dup.json::<Value>().await.unwrap()["error"], "claim_exists");

    let none_id = id_of(&app, &s, "users", "username", "user_none").await;
    let group = admin(
        Method::POST,
        "/api/admin/claim-groups",
        Some(json!({"name": "Deckhands", "description": "", "claims": [claim["id"]], "users": [none_id]})),
    )
    .await;
    assert_eq!(group.status(), 200);
    let group: Value = group.json().await.unwrap();
    let gid = group["id"].as_i64().unwrap();
    let (t, _) = app.login_ok("user_none", PASSWORD).await;
    assert_eq!(crate::helpers::claims_of(&t)["deck"], "1");

    let link = admin(
        Method::POST,
        "/api/admin/group-links",
        Some(json!({"type": "LDAP:corp", "resource_spec": "deckhands", "claim_group": gid})),
    )
    .await;
    let link: Value = link.json().await.unwrap();
    assert_eq!(link["type"], "LDAP:corp");
    let owner: Value = admin(
        Method::GET,
        &format!("/api/admin/group-links/{}/claim-group", link["id"]),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(owner["name"], "Deckhands");
    let links: Vec<Value> = admin(Method::GET, &format!("/api/admin/claim-groups/{gid}/group-links"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(links.len(), 1);
    let members: Vec<Value> = admin(Method::GET, &format!("/api/admin/claim-groups/{gid}/users"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(members[0]["username"], "user_none");
    assert_eq!(members[0]["email"], "none@example.com");
    assert!(members[0]["created_at"].as_str().unwrap().ends_with('Z'));

    // PATCH replaces an edge array wholesale.
    let patched = admin(
        Method::PATCH,
        &format!("/api/admin/claim-groups/{gid}"),
        Some(json!({"users": [], "description": "empty"})),
    )
    .await;
    assert_eq!(patched.json::<Value>().await.unwrap()["description"], "empty");
    let groups: Vec<Value> = admin(Method::GET, &format!("/api/admin/users/{none_id}/claim-groups"), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(groups.is_empty());

    let totals: Value = admin(Method::GET, "/api/admin/totals", None)
        .await
        .json()
        .await
        .unwrap();
    assert!(totals["users"].as_i64().unwrap() >= 12 && totals["claims"].as_i64().unwrap() >= 11);

    // Paging.
    let page: Vec<Value> = admin(Method::GET, "/api/admin/users?page=2&itemsPerPage=5", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page.len(), 5);
    for bad in ["page=0", "itemsPerPage=0", "itemsPerPage=256", "page=x"] {
        let resp = admin(Method::GET, &format!("/api/admin/users?{bad}"), None).await;
        assert_eq!(resp.status(), 400, "{bad}");
    }
    // Bad input and missing ids.
    let cases = [
        (
            Method::POST,
            "/api/admin/claims".to_string(),
            json!({"name": "", "short_name": "x"}),
            400,
        ),
        (
            Method::POST,
            "/api/admin/claim-groups".to_string(),
            json!({"name": "G", "users": [1]}),
            400,
        ),
        (
            Method::PATCH,
            format!("/api/admin/users/{none_id}"),
            json!({"email": "a@b@c"}),
            400,
        ),
        // The account flows' one email rule: no address syntax an email header would misread.
        (
            Method::PATCH,
            format!("/api/admin/users/{none_id}"),
            json!({"email": "a<b@x.com"}),
            400,
        ),
        (
            Method::POST,
            "/api/admin/localuser".to_string(),
            json!({"fname": "", "lname": "", "username": "mallory", "email": "m@x.com\r\nBcc: all@x.com", "password": "a long enough password"}),
            400,
        ),
        (
            Method::PATCH,
            format!("/api/admin/users/{none_id}"),
            json!({"username": "user_S"}),
            409,
        ),
        (
            Method::PATCH,
            format!("/api/admin/users/{none_id}"),
            json!({"fname": "a\u{0}b"}),
            400,
        ),
        (
            Method::PATCH,
            "/api/admin/claims/123".to_string(),
            json!({"value": "v"}),
            404,
        ),
        (
            Method::PATCH,
            format!("/api/admin/users/{none_id}"),
            json!({"claim_groups": "nope"}),
            400,
        ),
    ];
    for (m, p, b, status) in cases {
        let resp = admin(m.clone(), &p, Some(b.clone())).await;
        assert_eq!(resp.status().as_u16(), status, "{m} {p} {b}");
        assert!(resp.json::<Value>().await.unwrap()["error"].is_string());
    }
    let bad_id = admin(Method::GET, "/api/admin/users/abc", None).await;
    assert_eq!(bad_id.status(), 400);

    // DELETE answers 204, then 404.
    let del = admin(Method::DELETE, &format!("/api/admin/claim-groups/{gid}"), None).await;
    assert_eq!(del.status(), 204);
    assert_eq!(
        admin(Method::GET, &format!("/api/admin/claim-groups/{gid}"), None)
            .await
            .status(),
        404
    );
});

db_test!(policies_and_superuser_invariants, async |db| {
    let app = admin_app(db, |c| {
        c.users.policy_config.protected_users = vec!["user_none".into()];
        c.users.policy_config.protected_claims = vec!["ship".into()];
    })
    .await
    .unwrap();
    let s = token(&app, "user_S").await;
    let u = token(&app, "user_U").await;
    let none_id = id_of(&app, &s, "users", "username", "user_none").await;
    let resp = call(
        &app,
        Some(&u),
        Method::PATCH,
        &format!("/api/admin/users/{none_id}"),
        Some(json!({"fname": "x"})),
    )
    .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "protected");
    let resp = call(
        &app,
        Some(&s),
        Method::PATCH,
        &format!("/api/admin/users/{none_id}"),
        Some(json!({"fname": "x"})),
    )
    .await;
    assert_eq!(resp.status(), 403, "no override unless allow_superuser_override");
    let ship = id_of(&app, &s, "claims", "short_name", "ship").await;
    let resp = call(
        &app,
        Some(&s),
        Method::DELETE,
        &format!("/api/admin/claims/{ship}"),
        None,
    )
    .await;
    assert_eq!(resp.status(), 403);

    // Only S may make a superuser.
    let admins = id_of(&app, &s, "claim-groups", "name", "L_S").await;
    let g_id = id_of(&app, &s, "users", "username", "user_g").await;
    let resp = call(
        &app,
        Some(&u),
        Method::PATCH,
        &format!("/api/admin/users/{g_id}"),
        Some(json!({"claim_groups": [admins]})),
    )
    .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "superuser_required");
    let resp = call(
        &app,
        Some(&s),
        Method::PATCH,
        &format!("/api/admin/users/{g_id}"),
        Some(json!({"claim_groups": [admins]})),
    )
    .await;
    assert_eq!(resp.status(), 200);

    // Emptying the superuser group would leave nobody with stk=S.
    let resp = call(
        &app,
        Some(&s),
        Method::PATCH,
        &format!("/api/admin/claim-groups/{admins}"),
        Some(json!({"users": []})),
    )
    .await;
    assert_eq!(resp.status(), 409);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "last_superuser");
});

db_test!(read_only_mode_refuses_writes, async |db| {
    let app = admin_app(db, |c| c.users.policy_config.read_only_mode = true)
        .await
        .unwrap();
    let s = token(&app, "user_S").await;
    let resp = call(
        &app,
        Some(&s),
        Method::POST,
        "/api/admin/claims",
        Some(json!({"name": "n", "short_name": "n", "value": "v"})),
    )
    .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "read_only");
    assert_eq!(
        call(&app, Some(&s), Method::GET, "/api/admin/claims", None)
            .await
            .status(),
        200
    );
});

db_test!(local_users_passwords_and_sessions, async |db| {
    let app = admin_app(db, |_| {}).await.unwrap();
    let u = token(&app, "user_U").await;
    let create = call(&app, Some(&u), Method::POST, "/api/admin/localuser",
        Some(json!({"fname": "Ann", "lname": "Lee", "username": "ann", "email": "ann@example.com", "password": "first password"}))).await;
    assert_eq!(create.status(), 200);
    let ann: Value = create.json().await.unwrap();
    assert_eq!(
        (ann["source"].as_str(), ann["username"].as_str()),
        (Some("LOCAL"), Some("ann"))
    );
    let (_, refresh) = app.login_ok("ann", "first password").await;
    let weak = call(
        &app,
        Some(&u),
        Method::POST,
        "/api/admin/localuser",
        Some(json!({"fname": "", "lname": "", "username": "bob", "email": "", "password": "short"})),
    )
    .await;
    assert_eq!(weak.json::<Value>().await.unwrap()["error"], "weak_password");

    let wrong = call(
        &app,
        Some(&u),
        Method::PATCH,
        "/api/admin/localuser",
        Some(json!({"username": "ann", "oldPassword": "nope", "newPassword": "second password"})),
    )
    .await;
    assert_eq!(wrong.status(), 400);
    let ok = call(
        &app,
        Some(&u),
        Method::PATCH,
        "/api/admin/localuser",
        Some(json!({"username": "ann", "oldPassword": "first password", "newPassword": "second password"})),
    )
    .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(app.login("ann", "first password").await.status(), 401);
    assert_eq!(
        app.refresh(&refresh).await.status(),
        401,
        "a password change revokes sessions"
    );

    let (_, refresh) = app.login_ok("ann", "second password").await;
    let id = ann["id"].as_i64().unwrap();
    let sessions: Vec<Value> = call(
        &app,
        Some(&u),
        Method::GET,
        &format!("/api/admin/users/{id}/sessions"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let live: Vec<&Value> = sessions.iter().filter(|s| s["revoked_at"].is_null()).collect();
    assert_eq!(live.len(), 1);
    let sid = live[0]["id"].as_str().unwrap();
    let resp = call(
        &app,
        Some(&u),
        Method::DELETE,
        &format!("/api/admin/users/{id}/sessions/{sid}"),
        None,
    )
    .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(app.refresh(&refresh).await.status(), 401);
    let resp = call(
        &app,
        Some(&u),
        Method::DELETE,
        &format!("/api/admin/users/{id}/sessions/nope"),
        None,
    )
    .await;
    assert_eq!(resp.status(), 404);
});

db_test!(parallel_patches_lose_nothing_and_superusers_survive, async |db| {
    let app = admin_app(db, |c| c.database.max_connections = 8).await.unwrap();
    let s = token(&app, "user_S").await;
    let none_id = id_of(&app, &s, "users", "username", "user_none").await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (client, url, s) = (
                app.client.clone(),
                app.url(&format!("/api/admin/users/{none_id}")),
                s.clone(),
            );
            tokio::spawn(async move {
                client
                    .patch(url)
                    .bearer_auth(s)
                    .json(&json!({"lname": format!("v{i}")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let version: i64 = {
        use diesel::prelude::*;
        use tessera::db::schema::users;
        users::table
            .find(none_id)
            .select(users::version)
            .first(&mut *app.state.db.get().unwrap())
            .unwrap()
    };
    assert_eq!(version, 50, "every acknowledged update was applied");

    // Two superusers remove each other's superuser group at the same time: one must fail.
    let s2 = token(&app, "user_S2").await;
    let (id1, id2) = (
        id_of(&app, &s, "users", "username", "user_S").await,
        id_of(&app, &s, "users", "username", "user_S2").await,
    );
    let a = call(
        &app,
        Some(&s),
        Method::PATCH,
        &format!("/api/admin/users/{id2}"),
        Some(json!({"claim_groups": []})),
    );
    let b = call(
        &app,
        Some(&s2),
        Method::PATCH,
        &format!("/api/admin/users/{id1}"),
        Some(json!({"claim_groups": []})),
    );
    let (a, b) = tokio::join!(a, b);
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    // The loser finds the last-superuser guard (409), or, when the winner committed first, that it no longer
    // holds S: admin requests are authorized against the letters held now (403).
    assert!(
        statuses.contains(&200) && (statuses.contains(&409) || statuses.contains(&403)),
        "{statuses:?}"
    );
    let left = tessera::db::catalog::holdings(&mut app.state.db.get().unwrap())
        .unwrap()
        .superusers();
    assert!(!left.is_empty(), "somebody still holds stk=S");
});

#[tokio::test]
async fn capabilities_totals_for_sqlite_only_smoke() {
    let app = admin_app(TestDb::Sqlite, |_| {}).await.unwrap();
    let m = token(&app, "user_m").await;
    assert_eq!(
        call(&app, Some(&m), Method::GET, "/api/admin/totals", None)
            .await
            .status(),
        403
    );
}

db_test!(audit_trail_and_key_rotation, async |db| {
    let app = admin_app(db, |_| {}).await.unwrap();
    let s = token(&app, "user_S").await;
    assert_eq!(app.login("user_c", "wrong password").await.status(), 401);
    let created = call(
        &app,
        Some(&s),
        Method::POST,
        "/api/admin/claims",
        Some(json!({"name": "Audited", "short_name": "aud", "value": "1"})),
    )
    .await;
    assert_eq!(created.status(), 200);

    let before: Value = call(&app, Some(&s), Method::GET, "/api/admin/keys", None)
        .await
        .json()
        .await
        .unwrap();
    // One key per algorithm (ES256, and RS256 by default), each signing.
    assert_eq!(before["keys"].as_array().unwrap().len(), 2);
    assert_eq!(before["keys"][0]["signing"], true);
    assert_eq!(before["keys"][1]["signing"], true);
    assert!(before["keys"][0].get("private_key").is_none());
    let rotated = call(&app, Some(&s), Method::POST, "/api/admin/keys/rotate", None).await;
    assert_eq!(rotated.status(), 200);
    let kid = rotated.json::<Value>().await.unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string();
    let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid.as_str()),
        "published at once"
    );
    let after: Value = call(&app, Some(&s), Method::GET, "/api/admin/keys", None)
        .await
        .json()
        .await
        .unwrap();
    let new_key = after["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .clone();
    assert_eq!(new_key["signing"], false, "signs only after one token lifetime");

    let trail: Vec<Value> = call(&app, Some(&s), Method::GET, "/api/admin/audit?itemsPerPage=50", None)
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = trail.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for wanted in [
        "login.failed",
        "login.succeeded",
        "claim.create",
        "keys.rotate",
        "keys.rotated",
    ] {
        assert!(actions.contains(&wanted), "{wanted} missing from {actions:?}");
    }
    let failed = trail.iter().find(|e| e["action"] == "login.failed").unwrap();
    assert_eq!(failed["actor"], "user_c");
    let create = trail.iter().find(|e| e["action"] == "claim.create").unwrap();
    assert_eq!(create["actor"], "user_S");
    assert!(create["detail"].as_str().unwrap().contains("\"short_name\":\"aud\""));
});

db_test!(the_audit_trail_filters_pages_and_names_targets, async |db| {
    let app = admin_app(db, |_| {}).await.unwrap();
    let s = token(&app, "user_S").await;
    assert_eq!(app.login("user_c", "wrong").await.status(), 401);
    let users: Vec<Value> = call(&app, Some(&s), Method::GET, "/api/admin/users?q=user_none", None)
        .await
        .json()
        .await
        .unwrap();
    let id = users[0]["id"].as_i64().unwrap();
    let patched = call(
        &app,
        Some(&s),
        Method::PATCH,
        &format!("/api/admin/users/{id}"),
        Some(json!({"fname": "Nan"})),
    )
    .await;
    assert_eq!(patched.status(), 200);
    let get = async |query: &str| -> Vec<Value> {
        let resp = call(
            &app,
            Some(&s),
            Method::GET,
            &format!("/api/admin/audit?itemsPerPage=255&{query}"),
            None,
        )
        .await;
        assert_eq!(resp.status(), 200, "{query}");
        resp.json().await.unwrap()
    };
    let actions = |entries: &[Value]| {
        entries
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };

    // Who, ignoring case; what, by prefix; on what, exactly; and the target's name when it is an id.
    let of_c = get("actor=User_C").await;
    assert_eq!(actions(&of_c), ["login.failed"]);
    let logins = get("action=login.").await;
    assert!(
        logins.len() >= 2
            && logins
                .iter()
                .all(|e| e["action"].as_str().unwrap().starts_with("login."))
    );
    let updates = get(&format!("action=user.update&target={id}")).await;
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0]["target_name"], "user_none");
    assert_eq!(updates[0]["actor"], "user_S");
    // A LIKE wildcard in a filter is a character, not a pattern.
    assert!(get("actor=user%25").await.is_empty());
    assert!(get("action=%25").await.is_empty());

    // Time ranges, as RFC 3339 or Unix seconds; an empty range is empty.
    let at = updates[0]["at"].as_str().unwrap().to_string();
    let seconds = time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp();
    assert_eq!(
        get(&format!("action=user.update&since={}", at.replace('+', "%2B")))
            .await
            .len(),
        1
    );
    assert_eq!(
        get(&format!("action=user.update&since={seconds}&until={}", seconds + 1))
            .await
            .len(),
        1
    );
    assert!(get(&format!("action=user.update&until={seconds}")).await.is_empty());
    assert!(get(&format!("since={}", seconds + 3600)).await.is_empty());

    // Pages of one entry never repeat or skip one, whatever the clock's resolution.
    let all = get("").await;
    let mut paged = Vec::new();
    for page in 1..=all.len() {
        let one: Vec<Value> = call(
            &app,
            Some(&s),
            Method::GET,
            &format!("/api/admin/audit?itemsPerPage=1&page={page}"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
        paged.push(one[0]["id"].clone());
    }
    assert_eq!(paged, all.iter().map(|e| e["id"].clone()).collect::<Vec<_>>());

    for bad in [
        "since=yesterday",
        "until=2026-13-01T00:00:00Z",
        &format!("actor={}", "a".repeat(256)),
    ] {
        let resp = call(&app, Some(&s), Method::GET, &format!("/api/admin/audit?{bad}"), None).await;
        assert_eq!(error_code(resp).await, (400, "invalid_query".into()), "{bad}");
    }
    // The trail is the operators' (stk s); a user admin may not read it, filtered or not.
    let u = token(&app, "user_u").await;
    let resp = call(&app, Some(&u), Method::GET, "/api/admin/audit?actor=user_S", None).await;
    assert_eq!(resp.status(), 403);
});

/// The overview's status: version and readiness for any admin; the signing key, the next rotation and the failed
/// logins of the last hour for operators; the lock count for user readers; nothing for a user without letters.
#[tokio::test]
async fn the_status_shows_each_part_to_whom_may_read_it() {
    let app = admin_app(TestDb::Sqlite, |_| {}).await.unwrap();
    for _ in 0..2 {
        assert_eq!(app.login("user_c", "wrong").await.status(), 401);
    }
    let status = async |user: &str| -> Value {
        let t = token(&app, user).await;
        let resp = call(&app, Some(&t), Method::GET, "/api/admin/status", None).await;
        assert_eq!(resp.status(), 200, "{user}");
        resp.json().await.unwrap()
    };
    let keys = ["signing_key", "next_rotation", "failed_logins_last_hour", "locks"];
    let present = |v: &Value| {
        keys.iter()
            .filter(|k| v.get(**k).is_some())
            .copied()
            .collect::<Vec<_>>()
    };
    for operator in ["user_S", "user_s"] {
        let v = status(operator).await;
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            (v["ready"].clone(), v["database"].clone()),
            (json!(true), json!("sqlite"))
        );
        assert_eq!(present(&v), keys, "{operator}: {v}");
        assert_eq!(v["failed_logins_last_hour"], 2, "{v}");
        assert_eq!(v["signing_key"]["signing"], true);
        assert_eq!(v["locks"], 0);
    }
    assert_eq!(present(&status("user_u").await), ["locks"]);
    assert_eq!(present(&status("user_c").await), Vec::<&str>::new());
    let none = token(&app, "user_none").await;
    let resp = call(&app, Some(&none), Method::GET, "/api/admin/status", None).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        call(&app, None, Method::GET, "/api/admin/status", None).await.status(),
        401
    );
}

/// A user's page previews the claims of their next token and its size, built as a login builds them: a group
/// change shows at once; the token itself never leaves the server; only who may read users and claims may look.
#[tokio::test]
async fn the_token_preview_follows_group_changes() {
    let app = admin_app(TestDb::Sqlite, |_| {}).await.unwrap();
    let s = token(&app, "user_S").await;
    let id = id_of(&app, &s, "users", "username", "user_none").await;
    let crew = id_of(&app, &s, "claim-groups", "name", "Crew").await;
    let path = format!("/api/admin/users/{id}/token-preview");
    let preview = async || -> Value {
        let resp = call(&app, Some(&s), Method::GET, &path, None).await;
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    };
    let before = preview().await;
    assert_eq!(before["login"], "password");
    assert_eq!(before["claims"]["u"], "user_none");
    assert_eq!(before["claims"]["e"], "none@example.com");
    assert!(before["claims"].get("ship").is_none(), "{before}");

    let joined = call(
        &app,
        Some(&s),
        Method::PATCH,
        &format!("/api/admin/claim-groups/{crew}"),
        Some(json!({"users": [id]})),
    )
    .await;
    assert_eq!(joined.status(), 200);
    let after = preview().await;
    assert_eq!(after["claims"]["ship"], "acc", "{after}");
    assert!(!after.to_string().contains("eyJ"), "no token in {after}");

    // The size is what the login's token measures (same claims; random ids of fixed length).
    let (real, _) = app.login_ok("user_none", PASSWORD).await;
    let size = after["size"].as_u64().unwrap() as i64;
    assert!((size - real.len() as i64).abs() <= 4, "{size} vs {}", real.len());
    let real_claims = crate::helpers::claims_of(&real);
    assert_eq!(real_claims["ship"], after["claims"]["ship"]);

    // It shows claim values: reading users alone (u) or claims alone (c) is not enough; U reads both.
    let writer = token(&app, "user_U").await;
    assert_eq!(call(&app, Some(&writer), Method::GET, &path, None).await.status(), 200);
    for reader in ["user_u", "user_c"] {
        let t = token(&app, reader).await;
        assert_eq!(
            call(&app, Some(&t), Method::GET, &path, None).await.status(),
            403,
            "{reader}"
        );
    }
    let missing = call(
        &app,
        Some(&s),
        Method::GET,
        "/api/admin/users/999999999/token-preview",
        None,
    )
    .await;
    assert_eq!(missing.status(), 404);
}

db_test!(conflicts_name_the_value_that_is_taken, async |db| {
    let app = admin_app(db, |_| {}).await.unwrap();
    let s = token(&app, "user_S").await;
    let send = async |method: Method, path: &str, body: Value| {
        let resp = call(&app, Some(&s), method, path, Some(body)).await;
        (
            resp.status().as_u16(),
            resp.json::<Value>().await.unwrap()["error"].clone(),
        )
    };
    let taken = |code: &str| (409u16, Value::from(code));
    let claim = json!({"name": "Admin c", "short_name": "x", "value": "1"});
    assert_eq!(
        send(Method::POST, "/api/admin/claims", claim).await,
        taken("claim_name_taken")
    );
    let claim = json!({"name": "Another", "short_name": "stk", "value": "c"});
    assert_eq!(
        send(Method::POST, "/api/admin/claims", claim).await,
        taken("claim_exists")
    );
    let group = json!({"name": "Crew"});
    assert_eq!(
        send(Method::POST, "/api/admin/claim-groups", group).await,
        taken("group_name_taken")
    );
    let user =
        json!({"fname": "", "lname": "", "username": "user_c", "email": "new@example.com", "password": PASSWORD});
    assert_eq!(
        send(Method::POST, "/api/admin/localuser", user).await,
        taken("username_taken")
    );
    let user =
        json!({"fname": "", "lname": "", "username": "new_user", "email": "none@example.com", "password": PASSWORD});
    assert_eq!(
        send(Method::POST, "/api/admin/localuser", user).await,
        taken("email_taken")
    );
    let id = id_of(&app, &s, "users", "username", "user_u").await;
    let path = format!("/api/admin/users/{id}");
    assert_eq!(
        send(Method::PATCH, &path, json!({"username": "user_c"})).await,
        taken("username_taken")
    );
    assert_eq!(
        send(Method::PATCH, &path, json!({"email": "none@example.com"})).await,
        taken("email_taken")
    );
    // Its own values are not "taken" from itself.
    assert_eq!(send(Method::PATCH, &path, json!({"username": "user_u"})).await.0, 200);
});

db_test!(lists_search_on_the_server, async |db| {
    let app = admin_app(db, |_| {}).await.unwrap();
    let su = token(&app, "user_S").await;
    let names = |v: Value, field: &str| -> Vec<String> {
        let mut out: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[field].as_str().unwrap().to_string())
            .collect();
        out.sort();
        out
    };
    let get = |path: String| call(&app, Some(&su), Method::GET, &path, None);
    let users = get("/api/admin/users?q=USER_S&itemsPerPage=255".into())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(users, "username"), ["user_S", "user_S2", "user_s", "user_sU"]);
    let by_email = get("/api/admin/users?q=NONE%40example".into())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(by_email, "username"), ["user_none"]);
    // `%` and `_` are themselves, not wildcards.
    let none: Value = get("/api/admin/users?q=%25".into()).await.json().await.unwrap();
    assert_eq!(none, json!([]));
    let underscore: Value = get("/api/admin/users?q=r_n&itemsPerPage=255".into())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(underscore, "username"), ["user_none"]);
    let groups = get("/api/admin/claim-groups?q=l_s".into()).await.json().await.unwrap();
    assert_eq!(names(groups, "name"), ["L_S", "L_s"]);
    let claims = get("/api/admin/claims?q=ship".into()).await.json().await.unwrap();
    assert_eq!(names(claims, "name"), ["Ship Access"]);
    let paged: Value = get("/api/admin/users?q=user&itemsPerPage=2&page=2".into())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(paged.as_array().unwrap().len(), 2);
    let long = format!("/api/admin/users?q={}", "x".repeat(256));
    let resp = get(long).await;
    assert_eq!(resp.status(), 400);
});
