//! dbinit files: Stoke's example applies whole, once; a bad file is refused whole.

use diesel::prelude::*;
use tessera::db::schema::{claim_group_claims, claim_groups, claims, group_links, user_claim_groups, users};
use tessera::services::dbinit::{Applied, DbInitError, apply_text};

use crate::db_test;
use crate::helpers::{repo_path, spawn_app, spawn_app_with};

fn count_rows(app: &crate::helpers::TestApp) -> (i64, i64, i64, i64) {
    let mut conn = app.state.db.get().unwrap();
    (
        users::table.count().get_result(&mut *conn).unwrap(),
        claim_groups::table.count().get_result(&mut *conn).unwrap(),
        claims::table.count().get_result(&mut *conn).unwrap(),
        group_links::table.count().get_result(&mut *conn).unwrap(),
    )
}

db_test!(stoke_example_applies_and_suppresses_sadmin, async |db| {
    let file = repo_path("tests/fixtures/stoke-dbinit.yaml");
    let app = spawn_app_with(db, |_| {}, Some(file)).await.unwrap();
    // `stoke` holds stk=S through "Stoke Admins", so no sadmin is created.
    assert_eq!(app.superuser_password, None);
    let mut conn = app.state.db.get().unwrap();
    let conn = &mut *conn;
    let names: Vec<String> = users::table
        .select(users::username)
        .order(users::username)
        .load(conn)
        .unwrap();
    assert_eq!(names, vec!["stoke", "tester"]);
    let tester_claims: Vec<(String, String)> = users::table
        .inner_join(
            user_claim_groups::table
                .inner_join(claim_groups::table.inner_join(claim_group_claims::table.inner_join(claims::table))),
        )
        .filter(users::username.eq("tester"))
        .select((claims::short_name, claims::value))
        .load(conn)
        .unwrap();
    assert_eq!(tester_claims, vec![("test".to_string(), "acc".to_string())]);
    let links: Vec<(String, String)> = group_links::table
        .select((group_links::link_type, group_links::resource_spec))
        .order(group_links::resource_spec)
        .load(conn)
        .unwrap();
    assert_eq!(
        links,
        vec![
            ("LDAP:".into(), "admin_staff".into()),
            ("LDAP:".into(), "ship_crew".into())
        ]
    );
    // Stoke's format is kept as is until the next login rehashes it.
    let salt: Option<String> = users::table
        .filter(users::username.eq("tester"))
        .select(users::password_salt)
        .first(conn)
        .unwrap();
    assert_eq!(salt.as_deref(), Some("H3UP6GzWV3UISU7HJN/sVT6YjTYcmOPdJwiFcdXMVyQ="));
});

db_test!(same_file_applies_once_and_edits_reapply, async |db| {
    let app = spawn_app(db).await.unwrap();
    let text = "claims:\n  - claim: \"Reader,reads,rd,1\"\ngroups:\n  - name: Readers\n    description: d\n    claims: [Reader]\n";
    let mut conn = app.state.db.get().unwrap();
    assert_eq!(apply_text(&mut conn, "a.yaml", text, 1).unwrap(), Applied::Applied);
    assert_eq!(
        apply_text(&mut conn, "a.yaml", text, 2).unwrap(),
        Applied::AlreadyApplied
    );
    let edited = text.replace("description: d", "description: changed");
    assert_eq!(apply_text(&mut conn, "a.yaml", &edited, 3).unwrap(), Applied::Applied);
    let description: String = claim_groups::table
        .filter(claim_groups::name.eq("Readers"))
        .select(claim_groups::description)
        .first(&mut *conn)
        .unwrap();
    assert_eq!(description, "changed");
    let value: String = claims::table
        .filter(claims::name.eq("Reader"))
        .select(claims::value)
        .first(&mut *conn)
        .unwrap();
    assert_eq!(value, "1");
});

db_test!(inconsistent_file_writes_nothing, async |db| {
    let app = spawn_app(db).await.unwrap();
    let before = count_rows(&app);
    let text = "claims:\n  - name: A\n    short_name: a\n    value: x\n    description: ''\ngroups:\n  - name: G\n    claims: [A, Undefined]\nusers:\n  - username: u1\n    groups: [G]\n";
    let mut conn = app.state.db.get().unwrap();
    match apply_text(&mut conn, "bad.yaml", text, 1) {
        Err(DbInitError::Invalid { file, problems }) => {
            assert_eq!(file, "bad.yaml");
            assert!(problems.iter().any(|p| p.contains("\"Undefined\"")), "{problems:?}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    drop(conn);
    assert_eq!(count_rows(&app), before);
});

db_test!(conflict_with_existing_data_rolls_back_whole_file, async |db| {
    let app = spawn_app(db).await.unwrap();
    let mut conn = app.state.db.get().unwrap();
    let first = "users:\n  - username: ann\n    email: shared@example.com\n";
    apply_text(&mut conn, "one.yaml", first, 1).unwrap();
    drop(conn);
    let before = count_rows(&app);
    // A new claim, then a user whose email belongs to ann: the claim must not survive.
    let second = "claims:\n  - claim: \"New,n,new,1\"\nusers:\n  - username: bob\n    email: shared@example.com\n";
    let mut conn = app.state.db.get().unwrap();
    let err = apply_text(&mut conn, "two.yaml", second, 2).unwrap_err();
    assert!(err.to_string().contains("two.yaml"), "{err}");
    drop(conn);
    assert_eq!(count_rows(&app), before);
});

#[tokio::test]
async fn fresh_database_gets_a_superuser_who_can_log_in() {
    let app = spawn_app(crate::helpers::TestDb::Sqlite).await.unwrap();
    let password = app.superuser_password.clone().expect("sadmin password");
    assert!(password.len() >= 32);
    let login = app.login("sadmin", &password).await;
    assert_eq!(login.status(), 200);
    let body: serde_json::Value = login.json().await.unwrap();
    let claims = crate::helpers::claims_of(body["token"].as_str().unwrap());
    assert_eq!(claims["stk"], "S");
    // The admin claims exist, and a second start does not make another superuser.
    let mut conn = app.state.db.get().unwrap();
    let stk: i64 = claims::table
        .filter(claims::short_name.eq("stk"))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(stk, 9);
    let hasher = tessera::crypto::password::Hasher::new(&app.state.config.security.password_hash).unwrap();
    let again = tessera::services::bootstrap::ensure_superuser(
        &mut conn,
        &hasher,
        5,
        tessera::services::bootstrap::STOKE_NAMES,
    )
    .unwrap();
    assert_eq!(again, None);
}

/// The superuser's claim, group and name are Stoke's when the configuration asks for Stoke's claims
/// (`users.create_stoke_claims`, on by default, as in Stoke's example) and Tessera's own otherwise.
#[tokio::test]
async fn built_in_names_are_tessera_s_unless_stoke_claims_are_asked_for() {
    for (stoke, group, claim, person) in [
        (true, "Stoke Superusers", "Stoke Super User", "Stoke Admin"),
        (false, "Superusers", "Superuser", "Tessera Admin"),
    ] {
        let app = crate::helpers::spawn_app_with(
            crate::helpers::TestDb::Sqlite,
            |c| c.users.create_stoke_claims = stoke,
            None,
        )
        .await
        .unwrap();
        let password = app.superuser_password.clone().unwrap();
        let token = app.login_ok("sadmin", &password).await.0;
        let get = async |path: &str| -> serde_json::Value {
            app.client
                .get(app.url(path))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        };
        let groups = get("/api/admin/claim-groups").await;
        assert_eq!(
            groups
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["name"].clone())
                .collect::<Vec<_>>(),
            [group],
            "{stoke}"
        );
        let claims = get("/api/admin/claims?itemsPerPage=255").await;
        let names: Vec<&str> = claims
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert!(names.contains(&claim), "{names:?}");
        // Stoke's eight read/write claims only when asked for.
        assert_eq!(names.len(), if stoke { 9 } else { 1 }, "{names:?}");
        let users = get("/api/admin/users?q=sadmin").await;
        let u = &users[0];
        assert_eq!(
            format!("{} {}", u["fname"].as_str().unwrap(), u["lname"].as_str().unwrap()),
            person
        );
    }
}
