//! `/oauth/revoke` (RFC 7009) and `/oauth/introspect` (RFC 7662), and the metadata that names them.

use reqwest::Method;
use serde_json::{Value, json};

use super::{confidential, oauth_app, oauth_error, post_form, register};
use crate::admin::{PASSWORD, call, id_of, token};
use crate::db_test;

/// A confidential client that may introspect.
async fn introspector(app: &crate::helpers::TestApp) -> (String, String) {
    let c = register(
        app,
        json!({ "name": "rs", "type": "confidential", "grant_types": ["client_credentials"], "introspect": true }),
    )
    .await;
    (
        c["client_id"].as_str().unwrap().into(),
        c["client_secret"].as_str().unwrap().into(),
    )
}

async fn introspect(app: &crate::helpers::TestApp, who: (&str, &str), token: &str) -> Value {
    let resp = post_form(app, "/oauth/introspect", &[("token", token)], Some(who)).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

db_test!(revoked_and_orphaned_tokens_introspect_inactive, async |db| {
    let app = oauth_app(db, |_| {}).await.unwrap();
    let (id, secret) = confidential(&app).await;
    let (rs_id, rs_secret) = introspector(&app).await;
    let rs = (rs_id.as_str(), rs_secret.as_str());
    let me = Some((id.as_str(), secret.as_str()));
    let grant = |user: &'static str| {
        [
            ("grant_type", "password"),
            ("username", user),
            ("password", PASSWORD),
            ("scope", "read"),
        ]
    };

    let body: Value = post_form(&app, "/oauth/token", &grant("user_none"), me)
        .await
        .json()
        .await
        .unwrap();
    let (access, refresh) = (
        body["access_token"].as_str().unwrap(),
        body["refresh_token"].as_str().unwrap(),
    );
    let active = introspect(&app, rs, access).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["client_id"], id);
    assert_eq!(active["scope"], "read");
    assert_eq!(active["token_type"], "Bearer");
    assert_eq!(active["username"], "user_none");
    for key in ["exp", "sub", "iss", "jti"] {
        assert!(active.get(key).is_some(), "{key} missing: {active}");
    }
    let r = introspect(&app, rs, refresh).await;
    assert_eq!(r["active"], true);
    assert_eq!(r["token_type"], "refresh_token");
    assert_eq!(r["client_id"], id);

    // Garbage, another issuer's token, an empty-looking refresh token: exactly {"active":false}.
    for junk in ["junk", "a.b.c", "00000000000000000000000000000000.0.AAAA"] {
        assert_eq!(introspect(&app, rs, junk).await, json!({ "active": false }));
    }

    // Another client's revocation changes nothing and still answers 200.
    let (other_id, other_secret) = introspector(&app).await;
    let resp = post_form(
        &app,
        "/oauth/revoke",
        &[("token", access)],
        Some((&other_id, &other_secret)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(introspect(&app, rs, access).await["active"], true);
    // Unknown tokens answer 200 too.
    assert_eq!(
        post_form(&app, "/oauth/revoke", &[("token", "nothing")], me)
            .await
            .status(),
        200
    );
    // The owner revokes the access token: inactive, its session lives on.
    assert_eq!(
        post_form(
            &app,
            "/oauth/revoke",
            &[("token", access), ("token_type_hint", "access_token")],
            me
        )
        .await
        .status(),
        200
    );
    assert_eq!(introspect(&app, rs, access).await, json!({ "active": false }));
    assert_eq!(introspect(&app, rs, refresh).await["active"], true);
    // Revoking the refresh token ends the session: its new access tokens are inactive too.
    let body: Value = post_form(&app, "/oauth/token", &grant("user_none"), me)
        .await
        .json()
        .await
        .unwrap();
    let (access2, refresh2) = (
        body["access_token"].as_str().unwrap(),
        body["refresh_token"].as_str().unwrap(),
    );
    assert_eq!(
        post_form(&app, "/oauth/revoke", &[("token", refresh2)], me)
            .await
            .status(),
        200
    );
    assert_eq!(introspect(&app, rs, refresh2).await, json!({ "active": false }));
    assert_eq!(introspect(&app, rs, access2).await, json!({ "active": false }));

    // A deleted user's tokens are inactive.
    let body: Value = post_form(&app, "/oauth/token", &grant("user_c"), me)
        .await
        .json()
        .await
        .unwrap();
    let access3 = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(introspect(&app, rs, &access3).await["active"], true);
    let su = token(&app, "user_S").await;
    let uid = id_of(&app, &su, "users", "username", "user_c").await;
    assert_eq!(
        call(
            &app,
            Some(&su),
            Method::DELETE,
            &format!("/api/admin/users/{uid}"),
            None
        )
        .await
        .status(),
        204
    );
    assert_eq!(introspect(&app, rs, &access3).await, json!({ "active": false }));

    // A deleted client's own tokens are inactive.
    let cc: Value = post_form(&app, "/oauth/token", &[("grant_type", "client_credentials")], me)
        .await
        .json()
        .await
        .unwrap();
    let client_token = cc["access_token"].as_str().unwrap();
    assert_eq!(introspect(&app, rs, client_token).await["active"], true);
    assert_eq!(
        call(
            &app,
            Some(&su),
            Method::DELETE,
            &format!("/api/admin/clients/{id}"),
            None
        )
        .await
        .status(),
        204
    );
    assert_eq!(introspect(&app, rs, client_token).await, json!({ "active": false }));
});

db_test!(
    only_introspecting_clients_and_read_all_admins_may_introspect,
    async |db| {
        let app = oauth_app(db, |_| {}).await.unwrap();
        let (id, secret) = confidential(&app).await;
        let cc: Value = post_form(
            &app,
            "/oauth/token",
            &[("grant_type", "client_credentials")],
            Some((&id, &secret)),
        )
        .await
        .json()
        .await
        .unwrap();
        let t = cc["access_token"].as_str().unwrap();
        // A client not registered to introspect.
        let resp = post_form(&app, "/oauth/introspect", &[("token", t)], Some((&id, &secret))).await;
        oauth_error(resp, 403, "unauthorized_client").await;
        // No credentials; a wrong secret.
        oauth_error(
            post_form(&app, "/oauth/introspect", &[("token", t)], None).await,
            401,
            "invalid_client",
        )
        .await;
        oauth_error(
            post_form(&app, "/oauth/introspect", &[("token", t)], Some((&id, "x"))).await,
            401,
            "invalid_client",
        )
        .await;
        // Admin bearer tokens: s and S may, others may not.
        for (user, status) in [("user_s", 200), ("user_S", 200), ("user_U", 403), ("user_none", 403)] {
            let bearer = token(&app, user).await;
            let resp = app
                .client
                .post(app.url("/oauth/introspect"))
                .bearer_auth(&bearer)
                .form(&[("token", t)])
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), status, "{user}");
        }
        // No token parameter.
        let (rs_id, rs_secret) = introspector(&app).await;
        oauth_error(
            post_form(&app, "/oauth/introspect", &[], Some((&rs_id, &rs_secret))).await,
            400,
            "invalid_request",
        )
        .await;
        oauth_error(
            post_form(&app, "/oauth/revoke", &[], Some((&id, &secret))).await,
            400,
            "invalid_request",
        )
        .await;
    }
);

db_test!(the_metadata_lists_what_exists, async |db| {
    let app = oauth_app(db, |_| {}).await.unwrap();
    confidential(&app).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc: Value = app.get(path).await.json().await.unwrap();
        assert_eq!(doc["issuer"], "http://127.0.0.1", "{path}");
        assert_eq!(doc["token_endpoint"], app.url("/oauth/token"));
        assert_eq!(doc["revocation_endpoint"], app.url("/oauth/revoke"));
        assert_eq!(doc["introspection_endpoint"], app.url("/oauth/introspect"));
        assert_eq!(
            doc["grant_types_supported"],
            json!(["password", "refresh_token", "client_credentials"])
        );
        assert_eq!(doc["response_types_supported"], json!(["none"]));
        assert_eq!(doc["scopes_supported"], json!(["read", "write"]));
        assert!(doc.get("authorization_endpoint").is_none());
    }
});

db_test!(records_of_revoked_tokens_go_once_the_tokens_expired, async |db| {
    let app = oauth_app(db, |_| {}).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    {
        let mut c = app.state.db.get().unwrap();
        tessera::db::clients::revoke_jti(&mut c, "expired-jti", now - 60).unwrap();
        tessera::db::clients::revoke_jti(&mut c, "live-jti", now + 600).unwrap();
        // A second revocation changes nothing.
        tessera::db::clients::revoke_jti(&mut c, "live-jti", now + 600).unwrap();
    }
    let swept = tessera::services::maintenance::sweep(&app.state, now).await.unwrap();
    assert_eq!(swept.revoked_tokens, 1, "{swept:?}");
    let mut c = app.state.db.get().unwrap();
    assert!(tessera::db::clients::is_revoked(&mut c, "live-jti").unwrap());
    assert!(!tessera::db::clients::is_revoked(&mut c, "expired-jti").unwrap());
});

db_test!(forged_expired_and_public_callers_get_nothing, async |db| {
    let app = oauth_app(db, |_| {}).await.unwrap();
    let (id, secret) = confidential(&app).await;
    let (rs_id, rs_secret) = introspector(&app).await;
    let rs = (rs_id.as_str(), rs_secret.as_str());
    let me = Some((id.as_str(), secret.as_str()));
    let grant = [
        ("grant_type", "password"),
        ("username", "user_none"),
        ("password", PASSWORD),
    ];
    let body: Value = post_form(&app, "/oauth/token", &grant, me).await.json().await.unwrap();
    let (access, refresh) = (
        body["access_token"].as_str().unwrap(),
        body["refresh_token"].as_str().unwrap(),
    );

    // A string naming the session (its id is the access token's sid) with a made-up secret revokes nothing,
    // even from the session's own client.
    let sid = refresh.split('.').next().unwrap();
    let forged = format!("{sid}.0.{}", "A".repeat(64));
    assert_eq!(
        post_form(&app, "/oauth/revoke", &[("token", &forged)], me)
            .await
            .status(),
        200
    );
    assert_eq!(introspect(&app, rs, refresh).await["active"], true);
    assert_eq!(introspect(&app, rs, &forged).await, json!({ "active": false }));
    // A token with its signature changed is inactive.
    let mut tampered = access.to_string();
    tampered.push('A');
    assert_eq!(introspect(&app, rs, &tampered).await, json!({ "active": false }));

    // A public client cannot introspect, even naming itself.
    let public = register(
        &app,
        json!({ "name": "spa", "type": "public", "grant_types": ["password"] }),
    )
    .await;
    let resp = post_form(
        &app,
        "/oauth/introspect",
        &[("token", access), ("client_id", public["client_id"].as_str().unwrap())],
        None,
    )
    .await;
    oauth_error(resp, 403, "unauthorized_client").await;

    // An expired access token is inactive (1 s lifetime, past the 5 s leeway).
    let short = register(
        &app,
        json!({ "name": "short", "type": "confidential", "grant_types": ["client_credentials"], "access_token_ttl": 1 }),
    )
    .await;
    let basic = (
        short["client_id"].as_str().unwrap(),
        short["client_secret"].as_str().unwrap(),
    );
    let cc: Value = post_form(
        &app,
        "/oauth/token",
        &[("grant_type", "client_credentials")],
        Some(basic),
    )
    .await
    .json()
    .await
    .unwrap();
    let expiring = cc["access_token"].as_str().unwrap();
    assert_eq!(introspect(&app, rs, expiring).await["active"], true);
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    assert_eq!(introspect(&app, rs, expiring).await, json!({ "active": false }));
});
