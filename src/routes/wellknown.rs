//! Standard discovery: `/.well-known/jwks.json` and `/.well-known/openid-configuration`.

use crate::openapi::{Discovery, KeySet};
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

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
pub async fn openid_configuration(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let base = base_url(&state, &req);
    let algs: Vec<&str> = {
        let mut a: Vec<&str> = state.keys.current().keys.iter().map(|k| k.key.alg.name()).collect();
        a.push(state.keys.settings().alg.name());
        a.sort_unstable();
        a.dedup();
        a
    };
    HttpResponse::Ok().json(json!({
        "issuer": state.config.tokens.issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint": format!("{base}/api/login"),
        "subject_types_supported": ["public"],
        "response_types_supported": ["token"],
        "grant_types_supported": ["password", "refresh_token"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"],
    }))
}

/// `server.public_url` when configured, else the scheme and host this request came to.
fn base_url(state: &AppState, req: &HttpRequest) -> String {
    let configured = state.config.server.public_url.trim_end_matches('/');
    if !configured.is_empty() {
        return configured.to_string();
    }
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}
