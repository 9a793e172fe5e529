//! What every request passes through before and after its handler: [`envelope`] (request id, time budget,
//! metrics) and, with encrypted forms on, [`decrypt_forms`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web;
use tracing::Instrument as _;

use crate::error::ApiError;
use crate::services::AppState;

/// What every request passes through: a request id on every log line it causes (the client's `X-Request-Id`
/// when short and plain, else a new one), echoed in the response; the `server.timeout` budget (503 `timeout`
/// when it runs out); the metrics, by matched route pattern so ids in paths do not explode the label set; and,
/// with `logging.access_log`, one `info` line per request (`tessera::access`: status, route, latency; the span
/// adds the request id, method and path).
pub fn envelope<S, B>(
    req: ServiceRequest,
    srv: &S,
    metrics: Arc<crate::metrics::Metrics>,
    timeout: Option<Duration>,
    access_log: bool,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let (start, method) = (crate::clock::monotonic(), req.method().to_string());
    let id = request_id(&req);
    let span = request_span(&req, &id, &method);
    let response = span.in_scope(|| srv.call(req));
    async move {
        let result = match timeout {
            Some(limit) => tokio::time::timeout(limit, response).await.unwrap_or_else(|_| {
                tracing::warn!(limit_ms = limit.as_millis() as u64, "request timed out");
                Err(ApiError::Timeout.into())
            }),
            None => response.await,
        };
        let elapsed = start.elapsed();
        match result {
            Ok(mut response) => {
                let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".into());
                let status = response.status().as_u16();
                metrics.observe(&method, &route, status, elapsed);
                finish_span(&method, &route, status, elapsed);
                if let Ok(value) = HeaderValue::from_str(&id) {
                    response
                        .headers_mut()
                        .insert(HeaderName::from_static("x-request-id"), value);
                }
                if access_log {
                    let latency_ms = elapsed.as_secs_f64() * 1000.0;
                    tracing::info!(target: "tessera::access", status, route = %route, latency_ms, "request");
                }
                Ok(response)
            }
            Err(e) => {
                let status = e.as_response_error().status_code().as_u16();
                metrics.observe(&method, "timeout", status, elapsed);
                finish_span(&method, "timeout", status, elapsed);
                Err(e)
            }
        }
    }
    .instrument(span)
}

/// The span of one request: its id, method and path on every log line it causes; with traces exported, also a
/// server span in the caller's trace (W3C `traceparent`) that [`finish_span`] names by route and status.
fn request_span(req: &ServiceRequest, id: &str, method: &str) -> tracing::Span {
    if !crate::telemetry::otlp::tracing_on() {
        return tracing::info_span!("request", request_id = %id, method = %method, path = %req.path());
    }
    let span = tracing::info_span!("request", request_id = %id, method = %method, path = %req.path(),
        otel.kind = "server", otel.name = crate::metrics::method_label(method),
        http.request.method = crate::metrics::method_label(method), url.path = %req.path());
    crate::telemetry::otlp::adopt_parent(&span, req.headers());
    span
}

/// Names the current request span by its route (`POST /api/login`) and records its status (5xx an error), and
/// counts the request in the exported duration histogram; nothing when neither is exported.
fn finish_span(method: &str, route: &str, status: u16, elapsed: Duration) {
    let method = crate::metrics::method_label(method);
    crate::telemetry::otlp::record_request(method, route, status, elapsed);
    crate::telemetry::otlp::finish(&tracing::Span::current(), method, route, status);
}

/// The client's `X-Request-Id` if it is 1 to 64 plain characters (so it cannot forge log lines), else a new
/// random one.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
        .map_or_else(|| format!("{:016x}", rand::random::<u64>()), str::to_string)
}

/// With `registration.rsa_encryption`, replaces an encrypted login or register body by its plain JSON before
/// the handler reads it; plain bodies pass unchanged. A body that claims to be encrypted and does not decrypt
/// is `400 invalid_encrypted_body`.
pub async fn decrypt_forms(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    use actix_web::FromRequest as _;
    let key = req.app_data::<web::Data<AppState>>().and_then(|s| s.form_key.clone());
    let applies = req.method() == actix_web::http::Method::POST && matches!(req.path(), "/api/login" | "/api/register");
    let Some(key) = key.filter(|_| applies) else {
        return next.call(req).await.map(|r| r.map_into_boxed_body());
    };
    let (http, mut payload) = req.into_parts();
    let body = match web::Bytes::from_request(&http, &mut payload).await {
        Ok(body) => body,
        Err(e) => return Ok(actix_web::dev::ServiceResponse::from_err(e, http)),
    };
    let body = match key.open(&body) {
        Ok(Some(plain)) => web::Bytes::from(plain),
        Ok(None) => body,
        Err(why) => {
            let e = ApiError::bad_request("invalid_encrypted_body", why);
            return Ok(actix_web::dev::ServiceResponse::from_err(e, http));
        }
    };
    let mut req = actix_web::dev::ServiceRequest::from_parts(http, actix_web::dev::Payload::from(body.clone()));
    req.headers_mut().insert(
        actix_web::http::header::CONTENT_LENGTH,
        actix_web::http::header::HeaderValue::from(body.len()),
    );
    next.call(req).await.map(|r| r.map_into_boxed_body())
}
