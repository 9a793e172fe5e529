//! `GET /metrics`: Prometheus text.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::authz::Letter;
use crate::error::ApiError;
use crate::routes::auth::Admin;
use crate::services::AppState;

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
        (status = 401, description = "No valid token (when `telemetry.require_prometheus_authentication`)"),
        (status = 403, description = "The token lacks stk m or S"),
        (status = 404, description = "Monitoring is disabled (`telemetry.disable_monitoring`)")))]
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let telemetry = &state.config.telemetry;
    if telemetry.disable_monitoring {
        return Err(ApiError::NotFound("monitoring is disabled".into()));
    }
    if telemetry.require_prometheus_authentication {
        let caller = <Admin as actix_web::FromRequest>::extract(&req).await?;
        if !caller.0.letters.any_of(&[Letter::METRICS]) {
            return Err(ApiError::Forbidden);
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(&state.gauges())))
}
