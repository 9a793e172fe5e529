//! HTTP routes: extract, authorize, call a service, map to a DTO. No business logic and no SQL here.

pub mod accounts;
pub mod admin;
pub mod admin_ui;
pub mod api_keys;
pub mod auth;
pub mod clients;
pub mod health;
pub mod metrics;
pub mod mfa;
pub mod middleware;
pub mod oauth;
pub mod oidc;
pub mod openapi;
pub mod tokens;
pub mod wellknown;

use actix_web::{HttpRequest, error::JsonPayloadError, web};

use crate::error::ApiError;

/// Registers every route, and the JSON and query extractor settings, on an App.
pub fn configure(max_body_bytes: usize) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(
            web::JsonConfig::default()
                .limit(max_body_bytes)
                .error_handler(json_error),
        )
        .app_data(
            web::QueryConfig::default()
                .error_handler(|e, _| ApiError::bad_request("invalid_query", e.to_string()).into()),
        )
        .app_data(
            web::PathConfig::default()
                .error_handler(|e, _| ApiError::bad_request("invalid_path", e.to_string()).into()),
        )
        .route("/healthz", web::get().to(health::healthz))
        .route("/healthz", web::head().to(health::healthz))
        .route("/readyz", web::head().to(health::readyz))
        .route("/api/login", web::post().to(tokens::login))
        .route("/api/refresh", web::post().to(tokens::refresh))
        .route("/api/pkeys", web::get().to(tokens::pkeys))
        .route("/api/available_providers", web::get().to(tokens::available_providers))
        .route("/api/capabilities", web::get().to(tokens::capabilities))
        .route("/.well-known/jwks.json", web::get().to(wellknown::jwks))
        .route(
            "/.well-known/openid-configuration",
            web::get().to(wellknown::openid_configuration),
        )
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::metrics))
        .app_data(web::PayloadConfig::new(max_body_bytes))
        .route(
            "/.well-known/oauth-authorization-server",
            web::get().to(wellknown::authorization_server),
        )
        .configure(oauth::configure)
        .configure(clients::configure)
        .configure(api_keys::configure)
        .configure(mfa::configure)
        .configure(oidc::configure)
        .configure(admin::configure)
        .configure(admin_ui::configure)
        .configure(accounts::configure)
        .route(
            "/docs",
            web::get().to(|| async {
                actix_web::HttpResponse::PermanentRedirect()
                    .insert_header(("Location", "/docs/"))
                    .finish()
            }),
        )
        .route("/api/openapi.json", web::get().to(openapi_json))
        .service(
            utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
                .config(utoipa_swagger_ui::Config::from("/api/openapi.json")),
        )
        .default_service(web::to(not_found));
    }
}

/// The OpenAPI document, built and serialized at its first request: most servers never serve it, and building
/// it at start-up touched megabytes of code and heap for nothing.
async fn openapi_json() -> actix_web::HttpResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(crate::routes::openapi::document);
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(body.as_str())
}

/// Turns JSON extraction failures into stable 4xx errors (never a 500).
fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => ApiError::PayloadTooLarge,
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::bad_request("invalid_field", e.to_string()),
        JsonPayloadError::Deserialize(e) => ApiError::bad_request("invalid_json", e.to_string()),
        other => ApiError::bad_request("invalid_body", other.to_string()),
    };
    api.into()
}

/// No route matched: 405 with `Allow` when the path is an endpoint of another method, else 404.
async fn not_found(req: HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError as _;
    let allowed = allowed_methods(req.path());
    if allowed.is_empty() {
        return ApiError::NotFound("no such endpoint".into()).error_response();
    }
    let allow = allowed.join(", ");
    actix_web::HttpResponse::MethodNotAllowed()
        .insert_header((actix_web::http::header::ALLOW, allow.clone()))
        .json(crate::error::ErrorBody {
            error: "method_not_allowed",
            message: format!("{} is not allowed here; allowed: {allow}", req.method()),
        })
}

/// The methods the API serves at `path`, from the OpenAPI document's paths (`{name}` matches one segment).
fn allowed_methods(path: &str) -> Vec<String> {
    static TABLE: std::sync::OnceLock<Vec<(Vec<String>, Vec<String>)>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let doc: serde_json::Value = serde_json::from_str(&crate::routes::openapi::document()).unwrap_or_default();
        let Some(paths) = doc.get("paths").and_then(|p| p.as_object()) else {
            return Vec::new();
        };
        paths
            .iter()
            .map(|(pattern, item)| {
                let segments = pattern.split('/').map(str::to_string).collect();
                let mut methods: Vec<String> = item
                    .as_object()
                    .map(|m| m.keys().map(|k| k.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                if methods.iter().any(|m| m == "GET") && ["/healthz", "/readyz"].contains(&pattern.as_str()) {
                    methods.push("HEAD".into());
                }
                (segments, methods)
            })
            .collect()
    });
    let wanted: Vec<&str> = path.split('/').collect();
    let mut out: Vec<String> = table
        .iter()
        .filter(|(segments, _)| {
            segments.len() == wanted.len()
                && segments
                    .iter()
                    .zip(&wanted)
                    .all(|(s, w)| (s.starts_with('{') && s.ends_with('}') && !w.is_empty()) || s == w)
        })
        .flat_map(|(_, methods)| methods.iter().cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}
