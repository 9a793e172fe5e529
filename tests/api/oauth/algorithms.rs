//! One key per algorithm of `tokens.algorithms`: OAuth clients choose theirs (`signing_alg`), Stoke's face keeps
//! the configured one, and `/api/pkeys` lists only that one's keys.

use reqwest::Method;
use serde_json::{Value, json};

use super::{oauth_app, post_form, register};
use crate::admin::{PASSWORD, call, token};
use crate::db_test;
use crate::helpers::{TestApp, claims_of, header_of};

fn kids(body: &Value) -> Vec<(String, String)> {
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_string(),
                k["alg"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn client_token(app: &TestApp, client: &Value) -> String {
    let (id, secret) = (
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );
    let resp = post_form(
        app,
        "/oauth/token",
        &[("grant_type", "client_credentials")],
        Some((id, secret)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

db_test!(clients_choose_their_algorithm_and_stokes_face_keeps_one, async |db| {
    let app = oauth_app(db, |_| {}).await.unwrap();
    let jwks = kids(&app.get("/.well-known/jwks.json").await.json().await.unwrap());
    let pkeys = kids(&app.get("/api/pkeys").await.json().await.unwrap());
    let algs: Vec<&str> = jwks.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(
        algs,
        ["ES256", "RS256"],
        "one key per algorithm, the configured one and RS256"
    );
    assert!(pkeys.iter().all(|(_, a)| a == "ES256") && pkeys.len() == 1, "{pkeys:?}");

    let grants = json!(["client_credentials"]);
    let rsa = register(
        &app,
        json!({ "name": "rsa", "type": "confidential", "grant_types": grants, "signing_alg": "RS256" }),
    )
    .await;
    assert_eq!(rsa["signing_alg"], "RS256");
    let plain = register(
        &app,
        json!({ "name": "plain", "type": "confidential", "grant_types": grants }),
    )
    .await;
    assert!(plain["signing_alg"].is_null());
    let profiled = register(
        &app,
        json!({ "name": "at", "type": "confidential", "grant_types": grants, "signing_alg": "RS256", "jwt_profile": "rfc9068" }),
    )
    .await;

    let rsa_token = client_token(&app, &rsa).await;
    let header = header_of(&rsa_token);
    assert_eq!(header["alg"], "RS256");
    let rsa_kid = jwks.iter().find(|(_, a)| a == "RS256").unwrap().0.clone();
    assert_eq!(header["kid"], rsa_kid.as_str(), "signed by the RS256 chain's key");
    assert_eq!(header_of(&client_token(&app, &plain).await)["alg"], "ES256");
    let at = header_of(&client_token(&app, &profiled).await);
    assert_eq!(
        (at["alg"].as_str(), at["typ"].as_str()),
        (Some("RS256"), Some("at+jwt"))
    );
    // Stoke's face signs with the configured algorithm whatever the clients chose.
    let (login, _) = app.login_ok("user_none", PASSWORD).await;
    assert_eq!(header_of(&login)["alg"], "ES256");

    // The RS256 token is Tessera's own: introspection finds it active, and the admin API verifies its kind.
    let rs = register(
        &app,
        json!({ "name": "rs", "type": "confidential", "grant_types": grants, "introspect": true }),
    )
    .await;
    let who = (rs["client_id"].as_str().unwrap(), rs["client_secret"].as_str().unwrap());
    let resp = post_form(&app, "/oauth/introspect", &[("token", &rsa_token)], Some(who)).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["active"], true);

    // An RS256 header on the ES256 key's kid (and the reverse) is refused: per kid, only its algorithm.
    let es_kid = &pkeys[0].0;
    for (alg, kid) in [("RS256", es_kid.as_str()), ("ES256", rsa_kid.as_str())] {
        let forged = swap_header(&rsa_token, alg, kid);
        let resp = post_form(&app, "/oauth/introspect", &[("token", &forged)], Some(who)).await;
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({ "active": false }),
            "{alg} on {kid}"
        );
    }

    // A client can go back to the default.
    let su = token(&app, "user_S").await;
    let path = format!("/api/admin/clients/{}", rsa["client_id"].as_str().unwrap());
    let resp = call(
        &app,
        Some(&su),
        Method::PATCH,
        &path,
        Some(json!({ "signing_alg": null })),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header_of(&client_token(&app, &rsa).await)["alg"], "ES256");
    assert_eq!(
        claims_of(&client_token(&app, &rsa).await)["client_id"],
        rsa["client_id"]
    );
});

/// The claims of `token` under another header, with the original signature: what a key-confusion attack sends.
fn swap_header(token: &str, alg: &str, kid: &str) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (_, payload, signature) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
    let header = URL_SAFE_NO_PAD.encode(json!({ "alg": alg, "kid": kid, "typ": "JWT" }).to_string());
    format!("{header}.{payload}.{signature}")
}

db_test!(a_client_can_choose_only_a_configured_algorithm, async |db| {
    let app = oauth_app(db, |_| {}).await.unwrap();
    let su = token(&app, "user_S").await;
    for alg in ["HS256", "none", "PS256", "rs256", ""] {
        let body =
            json!({ "name": "x", "type": "confidential", "grant_types": ["client_credentials"], "signing_alg": alg });
        let resp = call(&app, Some(&su), Method::POST, "/api/admin/clients", Some(body)).await;
        assert_eq!(resp.status(), 400, "{alg}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().starts_with("signing_alg: "), "{body}");
    }
    let list: Value = call(&app, Some(&su), Method::GET, "/api/admin/clients", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(0), "nothing registered");
    // A server configured for EdDSA and PS256 offers those.
    let other = oauth_app(db, |c| {
        c.tokens.algorithm = "EdDSA".into();
        c.tokens.algorithms = vec!["PS256".into()];
    })
    .await
    .unwrap();
    let c = register(
        &other,
        json!({ "name": "pss", "type": "confidential", "grant_types": ["client_credentials"], "signing_alg": "PS256" }),
    )
    .await;
    assert_eq!(header_of(&client_token(&other, &c).await)["alg"], "PS256");
    let disc: Value = other
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(disc["id_token_signing_alg_values_supported"], json!(["EdDSA", "PS256"]));
});
