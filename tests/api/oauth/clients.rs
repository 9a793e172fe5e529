//! `/api/admin/clients`: superusers register, change, rotate and delete clients; read-all operators read; the
//! secret is shown once and never stored or audited in the clear.

use reqwest::Method;
use serde_json::{Value, json};

use super::{confidential, oauth_app, post_form, register};
use crate::admin::{call, token};
use crate::db_test;

db_test!(superusers_manage_clients_and_secrets_show_once, async |db| {
    let app = oauth_app(db, |c| {
        c.oauth.secret_rotation_overlap = tessera::config::GoDuration::from_secs(0)
    })
    .await
    .unwrap();
    let su = token(&app, "user_S").await;
    let created = register(
        &app,
        json!({
            "name": "reports",
            "type": "confidential",
            "grant_types": ["client_credentials"],
            "scopes": ["read", "read", "write"],
            "audience": "https://api.example",
            "claim_filter": ["stk"],
            "access_token_ttl": 60,
            "jwt_profile": "rfc9068",
            "introspect": true,
        }),
    )
    .await;
    let id = created["client_id"].as_str().unwrap().to_string();
    let secret = created["client_secret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 43, "a 256-bit secret");
    assert_eq!(created["scopes"], json!(["read", "write"]));
    assert_eq!(created["type"], "confidential");

    // Read back: no secret anywhere, not in the audit trail either.
    let got: Value = call(&app, Some(&su), Method::GET, &format!("/api/admin/clients/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(got.get("client_secret").is_none());
    assert_eq!(got["audience"], "https://api.example");
    let listed: Vec<Value> = call(&app, Some(&su), Method::GET, "/api/admin/clients", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let audit = call(&app, Some(&su), Method::GET, "/api/admin/audit?itemsPerPage=255", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(audit.contains("client.create"), "{audit}");
    assert!(!audit.contains(&secret), "the secret reached the audit trail");

    // The secret works; after a rotation with no overlap only the new one does.
    let form = [("grant_type", "client_credentials")];
    assert_eq!(
        post_form(&app, "/oauth/token", &form, Some((&id, &secret)))
            .await
            .status(),
        200
    );
    let rotated: Value = call(
        &app,
        Some(&su),
        Method::POST,
        &format!("/api/admin/clients/{id}/secret"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(
        post_form(&app, "/oauth/token", &form, Some((&id, &secret)))
            .await
            .status(),
        401
    );
    assert_eq!(
        post_form(&app, "/oauth/token", &form, Some((&id, new_secret)))
            .await
            .status(),
        200
    );

    // PATCH changes what it names; the type cannot change; null clears.
    let patched: Value = call(
        &app,
        Some(&su),
        Method::PATCH,
        &format!("/api/admin/clients/{id}"),
        Some(json!({ "name": "reports v2", "audience": null, "scopes": ["read"] })),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(patched["name"], "reports v2");
    assert_eq!(patched["audience"], Value::Null);
    assert_eq!(patched["grant_types"], json!(["client_credentials"]));
    let retype = call(
        &app,
        Some(&su),
        Method::PATCH,
        &format!("/api/admin/clients/{id}"),
        Some(json!({ "type": "public" })),
    )
    .await;
    assert_eq!(retype.status(), 400);

    // Deleted: its secret stops working, the id is gone.
    let del = call(
        &app,
        Some(&su),
        Method::DELETE,
        &format!("/api/admin/clients/{id}"),
        None,
    )
    .await;
    assert_eq!(del.status(), 204);
    assert_eq!(
        post_form(&app, "/oauth/token", &form, Some((&id, new_secret)))
            .await
            .status(),
        401
    );
    let gone = call(&app, Some(&su), Method::GET, &format!("/api/admin/clients/{id}"), None).await;
    assert_eq!(gone.status(), 404);
});

db_test!(only_superusers_write_clients_and_read_all_reads, async |db| {
    let app = oauth_app(db, |_| {}).await.unwrap();
    let (id, _) = confidential(&app).await;
    let body = json!({ "name": "x", "type": "confidential", "grant_types": ["client_credentials"] });
    for letter in ["s", "U", "G", "C", "u"] {
        let t = token(&app, &format!("user_{letter}")).await;
        let create = call(&app, Some(&t), Method::POST, "/api/admin/clients", Some(body.clone())).await;
        assert_eq!(create.status(), 403, "{letter} created a client");
        let rotate = call(
            &app,
            Some(&t),
            Method::POST,
            &format!("/api/admin/clients/{id}/secret"),
            None,
        )
        .await;
        assert_eq!(rotate.status(), 403, "{letter} rotated a secret");
        let delete = call(
            &app,
            Some(&t),
            Method::DELETE,
            &format!("/api/admin/clients/{id}"),
            None,
        )
        .await;
        assert_eq!(delete.status(), 403, "{letter} deleted a client");
        let read = call(&app, Some(&t), Method::GET, "/api/admin/clients", None).await;
        assert_eq!(read.status(), if letter == "s" { 200 } else { 403 }, "{letter} reading");
    }
    let anonymous = call(&app, None, Method::GET, "/api/admin/clients", None).await;
    assert_eq!(anonymous.status(), 401);
});

db_test!(client_registrations_refuse_bad_settings, async |db| {
    let app = oauth_app(db, |_| {}).await.unwrap();
    let su = token(&app, "user_S").await;
    let base = json!({ "name": "x", "type": "confidential", "grant_types": ["client_credentials"] });
    let with = |key: &str, value: Value| {
        let mut b = base.clone();
        b[key] = value;
        b
    };
    let cases = [
        (with("type", json!("trusted")), 400, "invalid_field"),
        (with("grant_types", json!(["implicit"])), 400, "invalid_field"),
        (with("grant_types", json!([])), 400, "invalid_field"),
        (with("scopes", json!(["has space"])), 400, "invalid_field"),
        (with("scopes", json!(["quo\"te"])), 400, "invalid_field"),
        (
            with("redirect_uris", json!(["http://app.example/cb"])),
            400,
            "invalid_field",
        ),
        (
            with("redirect_uris", json!(["https://app.example/cb#x"])),
            400,
            "invalid_field",
        ),
        (with("access_token_ttl", json!(0)), 400, "invalid_field"),
        (with("access_token_ttl", json!(10_000_000)), 400, "invalid_field"),
        (with("refresh_token_ttl", json!(-5)), 400, "invalid_field"),
        (with("jwt_profile", json!("jwt")), 400, "invalid_field"),
        (with("claim_groups", json!([987_654_321])), 400, "unknown_reference"),
        (with("name", json!("")), 400, "invalid_field"),
        (with("client_secret", json!("mine")), 400, "invalid_field"),
        (
            json!({ "name": "x", "type": "public", "grant_types": ["client_credentials"] }),
            400,
            "invalid_field",
        ),
        (
            json!({ "name": "x", "type": "public", "grant_types": ["password"], "introspect": true }),
            400,
            "invalid_field",
        ),
        (
            json!({ "type": "confidential", "grant_types": ["password"] }),
            400,
            "invalid_field",
        ),
    ];
    for (body, status, code) in cases {
        let resp = call(&app, Some(&su), Method::POST, "/api/admin/clients", Some(body.clone())).await;
        assert_eq!(resp.status(), status, "{body}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["error"], code, "{body}: {answer}");
    }
    let listed: Vec<Value> = call(&app, Some(&su), Method::GET, "/api/admin/clients", None)
        .await
        .json()
        .await
        .unwrap();
    assert!(listed.is_empty(), "a refused registration left a client");
    for path in ["/api/admin/clients/nope", "/api/admin/clients/nope/secret"] {
        let method = if path.ends_with("secret") {
            Method::POST
        } else {
            Method::GET
        };
        assert_eq!(call(&app, Some(&su), method, path, None).await.status(), 404, "{path}");
    }
});

db_test!(dbinit_files_register_clients_by_id, async |db| {
    use sha2::Digest as _;
    use tessera::services::dbinit::{Applied, DbInitError, apply_text};
    let app = oauth_app(db, |_| {}).await.unwrap();
    let secret = "a-secret-made-by-the-operator-with-enough-entropy-0123456789";
    let digest: String = sha2::Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let text = format!(
        "claims:\n  - claim: \"Reader,reads,role,reader\"\ngroups:\n  - name: Robots\n    claims: [Reader]\nclients:\n  - client_id: reports\n    name: Reports\n    type: confidential\n    client_secret_sha256: {digest}\n    grant_types: [client_credentials]\n    scopes: [read]\n    groups: [Robots]\n    access_token_ttl: 60\n    introspect: true\n  - client_id: cli\n    name: CLI\n    type: public\n    grant_types: [password, refresh_token]\n"
    );
    {
        let mut conn = app.state.db.get().unwrap();
        assert_eq!(
            apply_text(&mut conn, "clients.yaml", &text, 1).unwrap(),
            Applied::Applied
        );
    }
    let resp = post_form(
        &app,
        "/oauth/token",
        &[("grant_type", "client_credentials")],
        Some(("reports", secret)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 60);
    assert_eq!(
        crate::helpers::claims_of(body["access_token"].as_str().unwrap())["role"],
        "reader"
    );

    // An edit re-applies by client_id; the admin API shows it.
    let edited = text.replace("name: Reports", "name: Reports v2");
    {
        let mut conn = app.state.db.get().unwrap();
        assert_eq!(
            apply_text(&mut conn, "clients.yaml", &edited, 2).unwrap(),
            Applied::Applied
        );
    }
    let su = token(&app, "user_S").await;
    let got: Value = call(&app, Some(&su), Method::GET, "/api/admin/clients/reports", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["name"], "Reports v2");
    assert_eq!(got["introspect"], true);

    // Bad entries: the whole file is refused, every problem named.
    let bad = "clients:\n  - client_id: \"has space\"\n    name: x\n    type: confidential\n    grant_types: [client_credentials]\n  - client_id: p\n    name: p\n    type: public\n    client_secret_sha256: abcd\n    grant_types: [client_credentials]\n    groups: [Nope]\n";
    let mut conn = app.state.db.get().unwrap();
    match apply_text(&mut conn, "bad.yaml", bad, 3) {
        Err(DbInitError::Invalid { problems, .. }) => {
            let all = problems.join("\n");
            for expected in [
                "client_id must be",
                "needs client_secret_sha256",
                "public client has no secret",
                "cannot use client_credentials",
                "\"Nope\"",
            ] {
                assert!(all.contains(expected), "{expected:?} missing from:\n{all}");
            }
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
});
