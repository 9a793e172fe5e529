//! Liveness and readiness probes.

use crate::routes::openapi::{Status, Unready};
use actix_web::{HttpResponse, web};

use crate::error::ApiError;
use crate::services::AppState;
use crate::services::health;

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Success", body = Status)))]
/// The process is up and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, description = "Success", body = Status), Unready))]
/// The database answers and a signing key is loaded; 503 with `Retry-After` otherwise.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    health::ready(&state).await.map_err(|e| match e {
        health::NotReady::NoSigningKey => ApiError::Unavailable,
        health::NotReady::Database(e) => e.into(),
    })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
}
