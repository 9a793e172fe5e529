//! Standard discovery: `/.well-known/jwks.json` and `/.well-known/openid-configuration`.

use crate::routes::openapi::{Discovery, KeySet};
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
