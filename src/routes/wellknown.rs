//! Standard discovery: `/.well-known/jwks.json`, `/.well-known/openid-configuration` and
//! `/.well-known/oauth-authorization-server`.

use crate::routes::openapi::{AuthServerMetadata, Discovery, KeySet};
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::services::AppState;

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys", responses((status = 200, description = "Success", body = KeySet)))]
/// RFC 7517 key set, pre-serialized; cacheable until clients should look for the next key.
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let ring = state.keys.current();
    let max_age = (ring.refetch_at - state.clock.now()).max(0);
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header((CACHE_CONTROL, format!("public, max-age={max_age}")))
        .body(ring.jwks_body.clone())
}

#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "keys", responses((status = 200, description = "Success", body = Discovery)))]
/// OpenID Connect Discovery: the authorization server's metadata plus what OpenID adds.
pub async fn openid_configuration(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let mut doc = metadata(&state, &req).await;
    doc.insert("subject_types_supported".into(), json!(["public"]));
    doc.insert(
        "id_token_signing_alg_values_supported".into(),
        json!(algorithms(&state)),
    );
    doc.insert(
        "claims_supported".into(),
        json!(["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope"]),
    );
    HttpResponse::Ok().json(doc)
}

#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth", responses((status = 200, description = "RFC 8414 metadata", body = AuthServerMetadata)))]
/// RFC 8414 authorization server metadata.
pub async fn authorization_server(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    HttpResponse::Ok().json(metadata(&state, &req).await)
}

/// The algorithms of the published keys and of the configured signer.
fn algorithms(state: &AppState) -> Vec<&'static str> {
    let mut a: Vec<&str> = state.keys.current().keys.iter().map(|k| k.key.alg.name()).collect();
    a.push(state.keys.settings().alg.name());
    a.sort_unstable();
    a.dedup();
    a
}

/// What exists, and nothing else: the token, revocation and introspection endpoints, their grants and
/// client authentication methods, the scopes of the registered clients. `issuer` is `tokens.issuer`, the `iss`
/// of every token.
async fn metadata(state: &AppState, req: &HttpRequest) -> serde_json::Map<String, serde_json::Value> {
    let base = base_url(state, req);
    let scopes = match crate::services::admin::clients::all_scopes(state).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "scopes_supported left out of the metadata");
            Vec::new()
        }
    };
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    let mut doc = serde_json::Map::new();
    for (key, value) in [
        ("issuer", json!(state.config.tokens.issuer)),
        ("jwks_uri", json!(format!("{base}/.well-known/jwks.json"))),
        ("token_endpoint", json!(format!("{base}/oauth/token"))),
        ("revocation_endpoint", json!(format!("{base}/oauth/revoke"))),
        ("introspection_endpoint", json!(format!("{base}/oauth/introspect"))),
        (
            "grant_types_supported",
            json!(["password", "refresh_token", "client_credentials"]),
        ),
        // Required by RFC 8414; there is no authorization endpoint yet.
        ("response_types_supported", json!(["none"])),
        ("token_endpoint_auth_methods_supported", json!(auth_methods)),
        ("revocation_endpoint_auth_methods_supported", json!(auth_methods)),
        (
            "introspection_endpoint_auth_methods_supported",
            json!(["client_secret_basic", "client_secret_post", "bearer"]),
        ),
        ("scopes_supported", json!(scopes)),
    ] {
        doc.insert(key.into(), value);
    }
    doc
}

/// `server.public_url` when configured. Otherwise the scheme and host this request came to: from `Forwarded` /
/// `X-Forwarded-Proto` / `X-Forwarded-Host` only when the TCP peer is one of `security.trusted_proxies` (anyone
/// else could point `jwks_uri` at a server of theirs), else plain HTTP to the request's own `Host`.
fn base_url(state: &AppState, req: &HttpRequest) -> String {
    let configured = state.config.server.public_url.trim_end_matches('/');
    if !configured.is_empty() {
        return configured.to_string();
    }
    let from_proxy = req
        .peer_addr()
        .is_some_and(|peer| state.throttle.is_trusted_proxy(&peer.ip()));
    if from_proxy {
        let info = req.connection_info();
        return format!("{}://{}", info.scheme(), info.host());
    }
    let host = req
        .headers()
        .get(actix_web::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| plausible_host(h))
        .map_or_else(|| req.app_config().local_addr().to_string(), str::to_string);
    format!("http://{host}")
}

/// A `Host` value that is a name or address with an optional port, nothing else.
fn plausible_host(host: &str) -> bool {
    !host.is_empty() && host.len() <= 255 && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}
