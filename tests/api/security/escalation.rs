//! Privilege escalation: a caller without `S` can never make anyone a superuser nor take over a superuser's
//! account, and no caller can give itself (or anyone) a letter it does not hold. Each test here was an attack
//! that worked before `tessera::authz` existed.

use reqwest::Method;
use serde_json::{Value, json};
use tessera::db::catalog;

use super::{expect, expect_call, superusers};
use crate::admin::{PASSWORD, admin_app, call, id_of, token};
use crate::db_test;
use crate::helpers::{TestDb, claims_of};

db_test!(stk_values_grant_exactly_what_tokens_read, async |db| {
    let app = admin_app(db, |_| {}).await.unwrap();
    let (s, c, g) = (
        token(&app, "user_S").await,
        token(&app, "user_C").await,
        token(&app, "user_G").await,
    );
    let l_c = id_of(&app, &s, "claim-groups", "name", "L_C").await;
    let l_g = id_of(&app, &s, "claim-groups", "name", "L_G").await;
    let claim = |value: &str, groups: Vec<i64>| json!({"name": format!("stk {value:?}"), "short_name": "stk", "value": value, "claim_groups": groups});

    // A C admin's claim " S" on its own group read as stk = C,S in its next token: values are letter lists.
    for value in [" S", "S ", "C,S,C", "SC", "", "S,", "x", "S;C"] {
        expect_call(
            &app,
            Some(&c),
            Method::POST,
            "/api/admin/claims",
            Some(claim(value, vec![l_c])),
            422,
            "invalid_stk_value",
        )
        .await;
    }
    // A well-formed value that gives S: only a superuser may.
    for value in ["S,C", "C,S"] {
        expect_call(
            &app,
            Some(&c),
            Method::POST,
            "/api/admin/claims",
            Some(claim(value, vec![l_c])),
            403,
            "superuser_required",
        )
        .await;
    }
    // A claim on no group gives nobody anything; attaching it does.
    let loose: Value = expect_call(
        &app,
        Some(&c),
        Method::POST,
        "/api/admin/claims",
        Some(claim("S,m", vec![])),
        200,
        "",
    )
    .await;
    let loose = loose["id"].as_i64().unwrap();
    let attach = json!({"claim_groups": [l_c]});
    expect_call(
        &app,
        Some(&c),
        Method::PATCH,
        &format!("/api/admin/claims/{loose}"),
        Some(attach),
        403,
        "superuser_required",
    )
    .await;
    // Changing the value of the claim that makes user_C a C admin is the same hole.
    let admin_c = id_of(&app, &s, "claims", "name", "Admin C").await;
    for (value, status, code) in [
        ("S,U", 403, "superuser_required"),
        ("C,S", 403, "superuser_required"),
        ("S,C ", 422, "invalid_stk_value"),
    ] {
        let path = format!("/api/admin/claims/{admin_c}");
        let resp = call(&app, Some(&c), Method::PATCH, &path, Some(json!({"value": value}))).await;
        expect(resp, status, code).await;
    }
    // A G admin attaching the stk=C claim to its own group would hold C.
    let admin_g = id_of(&app, &s, "claims", "name", "Admin G").await;
    let path = format!("/api/admin/claim-groups/{l_g}");
    expect_call(
        &app,
        Some(&g),
        Method::PATCH,
        &path,
        Some(json!({"claims": [admin_g, admin_c]})),
        403,
        "letter_required",
    )
    .await;
    // Giving C is not the problem for a C admin; (stk, C) exists already, and the unique value is named.
    expect_call(
        &app,
        Some(&c),
        Method::POST,
        "/api/admin/claims",
        Some(claim("C", vec![l_c])),
        409,
        "claim_exists",
    )
    .await;

    assert_eq!(claims_of(&token(&app, "user_C").await)["stk"], "C");
    assert_eq!(claims_of(&token(&app, "user_G").await)["stk"], "G");

    // Values stored before validation existed (a Stoke database, a dbinit file) are read as tokens read them:
    // a group granting "S, C" makes superusers, and only a superuser may add members to it.
    let crew = id_of(&app, &s, "claim-groups", "name", "Crew").await;
    {
        let mut conn = app.state.db.get().unwrap();
        let row = catalog::ClaimRow {
            id: tessera::db::new_id(),
            name: "Legacy superusers".into(),
            short_name: "stk".into(),
            value: "S, C".into(),
            description: String::new(),
            created_at: 0,
        };
        catalog::insert_claim(&mut conn, &row).unwrap();
        catalog::set_claim_groups(&mut conn, row.id, &[crew]).unwrap();
    }
    let (u, none) = (
        token(&app, "user_U").await,
        id_of(&app, &s, "users", "username", "user_none").await,
    );
    let path = format!("/api/admin/users/{none}");
    expect_call(
        &app,
        Some(&u),
        Method::PATCH,
        &path,
        Some(json!({"claim_groups": [crew]})),
        403,
        "superuser_required",
    )
    .await;
    expect_call(
        &app,
        Some(&s),
        Method::PATCH,
        &path,
        Some(json!({"claim_groups": [crew]})),
        200,
        "",
    )
    .await;
    assert!(superusers(&app).contains(&none));
    let stk = claims_of(&token(&app, "user_none").await)["stk"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(tessera::authz::Letters::granted_by(&stk).is_superuser(), "{stk}");
});

db_test!(links_into_letter_groups_need_those_letters, async |db| {
    let app = admin_app(db, |_| {}).await.unwrap();
    let (s, g) = (token(&app, "user_S").await, token(&app, "user_G").await);
    let l_s = id_of(&app, &s, "claim-groups", "name", "L_S").await;
    let l_g = id_of(&app, &s, "claim-groups", "name", "L_G").await;
    let crew = id_of(&app, &s, "claim-groups", "name", "Crew").await;
    let link = |spec: &str, group: i64| json!({"type": "LDAP:", "resource_spec": spec, "claim_group": group});
    let post = async |token: &str, body: Value| {
        call(&app, Some(token), Method::POST, "/api/admin/group-links", Some(body)).await
    };

    // A G admin linking the superuser group to a directory group everybody is in.
    expect(post(&g, link("everyone", l_s)).await, 403, "superuser_required").await;
    // A link into a letterless group is fine, re-targeting it at the superuser group is not.
    let ok: Value = expect(post(&g, link("crew", crew)).await, 200, "").await;
    let id = ok["id"].as_i64().unwrap();
    let path = format!("/api/admin/group-links/{id}");
    expect_call(
        &app,
        Some(&g),
        Method::PATCH,
        &path,
        Some(json!({"claim_group": l_s})),
        403,
        "superuser_required",
    )
    .await;
    let path = format!("/api/admin/claim-groups/{l_s}");
    expect_call(
        &app,
        Some(&g),
        Method::PATCH,
        &path,
        Some(json!({"group_links": [id]})),
        403,
        "superuser_required",
    )
    .await;
    // A link a superuser made into the superuser group: no G admin may widen, move or drop it.
    let admins: Value = expect(post(&s, link("admins", l_s)).await, 200, "").await;
    let admins = admins["id"].as_i64().unwrap();
    let path = format!("/api/admin/group-links/{admins}");
    expect_call(
        &app,
        Some(&g),
        Method::PATCH,
        &path,
        Some(json!({"resource_spec": "everyone"})),
        403,
        "superuser_required",
    )
    .await;
    expect_call(
        &app,
        Some(&g),
        Method::PATCH,
        &path,
        Some(json!({"claim_group": crew})),
        403,
        "superuser_required",
    )
    .await;
    expect_call(&app, Some(&g), Method::DELETE, &path, None, 403, "superuser_required").await;
    // Its own letters a G admin may link.
    expect(post(&g, link("group-admins", l_g)).await, 200, "").await;
    let kept: Value = call(&app, Some(&s), Method::GET, &path, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (kept["resource_spec"].as_str(), kept["type"].as_str()),
        (Some("admins"), Some("LDAP:"))
    );
});

db_test!(lower_admins_cannot_take_over_accounts_above_them, async |db| {
    let app = admin_app(db, |_| {}).await.unwrap();
    let (s, u) = (token(&app, "user_S").await, token(&app, "user_U").await);
    let target = id_of(&app, &s, "users", "username", "user_S").await;
    let c_admin = id_of(&app, &s, "users", "username", "user_C").await;
    let hashes = async || crate::security::counter(&app, "tessera_password_hashes_total").await;

    // Forcing a new password, or guessing the old one through oldPassword: refused before any hash.
    let before = hashes().await;
    for body in [
        json!({"username": "user_S", "newPassword": "taken-over-1", "force": true}),
        json!({"username": "user_S", "newPassword": "taken-over-1", "oldPassword": "guess-1"}),
    ] {
        expect_call(
            &app,
            Some(&u),
            Method::PATCH,
            "/api/admin/localuser",
            Some(body),
            403,
            "superuser_required",
        )
        .await;
    }
    assert_eq!(hashes().await, before, "no hash was spent on a refused change");
    // The email (then forgot-password), the name, the source; deletion; ending its sessions.
    let path = format!("/api/admin/users/{target}");
    for body in [
        json!({"email": "attacker@example.com"}),
        json!({"username": "renamed"}),
        json!({"source": "LDAP"}),
        json!({"fname": "Mallory"}),
    ] {
        expect_call(
            &app,
            Some(&u),
            Method::PATCH,
            &path,
            Some(body),
            403,
            "superuser_required",
        )
        .await;
    }
    expect_call(&app, Some(&u), Method::DELETE, &path, None, 403, "superuser_required").await;
    let sessions = format!("{path}/sessions");
    expect_call(
        &app,
        Some(&u),
        Method::DELETE,
        &sessions,
        None,
        403,
        "superuser_required",
    )
    .await;
    let family = tessera::services::tokens::SESSION;
    let sid = claims_of(&s)[family].as_str().unwrap().to_string();
    let one = format!("{sessions}/{sid}");
    expect_call(&app, Some(&u), Method::DELETE, &one, None, 403, "superuser_required").await;
    // The same for any account holding a letter the caller lacks: a U admin does not become a C admin.
    let body = json!({"username": "user_C", "newPassword": "taken-over-1", "force": true});
    expect_call(
        &app,
        Some(&u),
        Method::PATCH,
        "/api/admin/localuser",
        Some(body),
        403,
        "letter_required",
    )
    .await;
    let path = format!("/api/admin/users/{c_admin}");
    expect_call(&app, Some(&u), Method::DELETE, &path, None, 403, "letter_required").await;

    // Nothing changed: the superuser logs in with its password, its session still works.
    app.login_ok("user_S", PASSWORD).await;
    expect_call(&app, Some(&s), Method::GET, "/api/admin/users", None, 200, "").await;
    // A superuser may do all of it.
    let body = json!({"username": "user_S2", "newPassword": "new-password-1", "force": true});
    expect_call(
        &app,
        Some(&s),
        Method::PATCH,
        "/api/admin/localuser",
        Some(body),
        200,
        "",
    )
    .await;
});

db_test!(renames_respect_protection_and_rotation_respects_read_only, async |db| {
    let app = admin_app(db, |c| c.users.policy_config.protected_users = vec!["root".into()])
        .await
        .unwrap();
    let (s, u) = (token(&app, "user_S").await, token(&app, "user_U").await);
    let none = id_of(&app, &s, "users", "username", "user_none").await;
    let path = format!("/api/admin/users/{none}");
    expect_call(
        &app,
        Some(&u),
        Method::PATCH,
        &path,
        Some(json!({"username": "root"})),
        403,
        "protected",
    )
    .await;
    let body = json!({"fname": "root", "lname": "root", "username": "root", "email": "root@example.com", "password": "password-1"});
    expect_call(
        &app,
        Some(&u),
        Method::POST,
        "/api/admin/localuser",
        Some(body),
        403,
        "protected",
    )
    .await;

    let ro = admin_app(db, |c| c.users.policy_config.read_only_mode = true)
        .await
        .unwrap();
    let s = token(&ro, "user_S").await;
    expect_call(
        &ro,
        Some(&s),
        Method::POST,
        "/api/admin/keys/rotate",
        None,
        403,
        "read_only",
    )
    .await;
    let keys: Value = call(&ro, Some(&s), Method::GET, "/api/admin/keys", None)
        .await
        .json()
        .await
        .unwrap();
    // One key per algorithm (ES256 and RS256), none more.
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2, "no key was made");
});

// ---- directories (the test slapd; skipped without it)

use crate::ldap::{claims_after_login, directory, expect_401, login_with, provider, unique, with};

/// A dbinit file: a superuser group linked to the directory group `linked`, holding `supers`
/// (placeholders without passwords: directory users provisioned before their first login), and local users
/// with passwords (`locals`, password `local-password-1`, in the superuser group when `true`).
fn directory_dbinit(
    dir: &tempfile::TempDir,
    linked: &str,
    supers: &[&str],
    locals: &[(&str, bool)],
) -> std::path::PathBuf {
    let cfg = crate::helpers::test_config("sqlite://unused");
    let phc = tessera::crypto::password::Hasher::new(&cfg.security.password_hash)
        .unwrap()
        .hash("local-password-1")
        .unwrap();
    let mut users = String::new();
    for name in supers {
        users.push_str(&format!(
            "  - {{ username: \"{name}\", groups: [\"Directory admins\"] }}\n"
        ));
    }
    for (name, admin) in locals {
        let groups = if *admin { "[\"Directory admins\"]" } else { "[]" };
        users.push_str(&format!(
            "  - {{ username: \"{name}\", email: \"{name}@local.test\", password_hash: \"{phc}\", groups: {groups} }}\n"
        ));
    }
    let text = format!(
        "claims:\n  - claim: \"Super,,stk,S\"\ngroups:\n  - {{ name: \"Directory admins\", claims: [Super], links: [\"{linked}\"] }}\nusers:\n{users}"
    );
    let path = dir.path().join("dbinit.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn the_directory_never_removes_the_last_superuser() {
    let Some(mut dir) = directory().await else { return };
    let (boss, group) = (unique("boss"), unique("admins"));
    let boss_dn = dir.add_person(&format!("uid={boss}"), &boss, "boss-pw").await;
    let group_dn = dir.add_group(&group, &[&boss_dn]).await;
    let tmp = tempfile::tempdir().unwrap();
    let init = directory_dbinit(&tmp, &group, &[&boss], &[]);
    let app = crate::helpers::spawn_app_with(TestDb::Sqlite, with(vec![provider("corp", &dir.url)]), Some(init))
        .await
        .unwrap();
    assert!(app.superuser_password.is_none(), "the directory user is the superuser");
    assert_eq!(claims_after_login(&app, &boss, "boss-pw", None).await["stk"], "S");
    // The directory drops the only superuser from the linked group: the membership stays.
    dir.set_members(&group_dn, &[]).await;
    assert_eq!(claims_after_login(&app, &boss, "boss-pw", None).await["stk"], "S");
    assert_eq!(superusers(&app).len(), 1);
}

#[tokio::test]
async fn directory_logins_never_take_over_local_accounts() {
    let Some(mut dir) = directory().await else { return };
    let (local_admin, group) = (unique("sadmin"), unique("admins"));
    // A directory entry with the name of the local superuser (what `sadmin` is on a fresh install).
    let dn = dir
        .add_person(&format!("uid={local_admin}"), &local_admin, "directory-pw")
        .await;
    dir.add_group(&group, &[&dn]).await;
    let tmp = tempfile::tempdir().unwrap();
    let init = directory_dbinit(&tmp, &unique("nobody"), &[], &[(&local_admin, true)]);
    let app = crate::helpers::spawn_app_with(TestDb::Sqlite, with(vec![provider("corp", &dir.url)]), Some(init))
        .await
        .unwrap();
    let before = superusers(&app);
    for typed in [local_admin.clone(), local_admin.to_uppercase()] {
        expect_401(&app, &typed, "directory-pw", None).await;
        expect_401(&app, &typed, "directory-pw", Some("corp")).await;
    }
    // The local account is untouched: its source, its email, its password, its letters.
    let row = tessera::db::users::find_by_username(&mut app.state.db.get().unwrap(), &local_admin)
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.source.as_str(), row.email.as_deref()),
        ("LOCAL", Some(format!("{local_admin}@local.test").as_str()))
    );
    assert_eq!(superusers(&app), before);
    let claims = claims_after_login(&app, &local_admin, "local-password-1", Some("local")).await;
    assert_eq!(claims["stk"], "S");
    let resp = login_with(&app, &local_admin, "local-password-1", Some("local")).await;
    let token = resp.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let audit: Vec<Value> = call(
        &app,
        Some(&token),
        Method::GET,
        "/api/admin/audit?itemsPerPage=255",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        audit.iter().any(|e| e["action"] == "login.directory_conflict"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_kept_local_password_needs_the_directory_down() {
    let Some(mut dir) = directory().await else { return };
    let merged = unique("merged");
    dir.add_person(&format!("uid={merged}"), &merged, "directory-pw").await;
    let tmp = tempfile::tempdir().unwrap();
    let init = directory_dbinit(&tmp, &unique("nobody"), &[], &[(&merged, false)]);
    let app = crate::helpers::spawn_app_with(TestDb::Sqlite, with(vec![provider("corp", &dir.url)]), Some(init))
        .await
        .unwrap();
    // A row merged into a directory user by an older version kept its local password.
    {
        use diesel::prelude::*;
        use tessera::db::schema::users;
        diesel::update(users::table.filter(users::username.eq(&merged)))
            .set(users::source.eq("LDAP"))
            .execute(&mut *app.state.db.get().unwrap())
            .unwrap();
    }
    // While the directory answers, only the directory's password counts, whichever way the login asks.
    expect_401(&app, &merged, "local-password-1", Some("local")).await;
    expect_401(&app, &merged, "local-password-1", None).await;
    claims_after_login(&app, &merged, "directory-pw", None).await;
    // With the directory unreachable, the kept password is the fallback the README promises.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = crate::helpers::spawn_on_url(
        &app.db_url,
        tempfile::tempdir().unwrap(),
        with(vec![provider("corp", &format!("ldap://127.0.0.1:{closed}"))]),
        None,
        None,
    )
    .await;
    claims_after_login(&down, &merged, "local-password-1", None).await;
}
