//! `/admin/`: the admin console, a static single-page app compiled into the binary from `admin-ui/`.
//!
//! Owns serving those bytes: content types, validators, a strict Content-Security-Policy, and the history-route
//! fallback (any path under `/admin/` that does not name a file gets `index.html`, so the app's own URLs
//! survive a reload). It holds no logic of the console itself: the app talks to the JSON API like any client.
//! These routes are not API endpoints and so are not in the OpenAPI document.

use std::borrow::Cow;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::RustEmbed;

use crate::error::ApiError;
use crate::services::AppState;

/// The console's files. `debug-embed`: dev builds and tests embed them too, so they serve release's bytes.
#[derive(RustEmbed)]
#[folder = "admin-ui/"]
struct Assets;

/// No inline script or style, no third-party origin, no framing: the console holds an admin token.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const INDEX: &str = "index.html";

/// The content type of each kind of file the console ships; any other file (such as the folder's README) is
/// not served.
fn content_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.').map(|(_, e)| e)?;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff2" => "font/woff2",
        _ => return None,
    })
}

/// Registers `/admin` (a redirect) and `/admin/…`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin").get(redirect))
        .service(web::resource("/admin/{path:.*}").get(serve));
}

/// `/admin` → `/admin/`. A relative `Location` keeps any prefix a reverse proxy put in front (`base_path`).
async fn redirect(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    Ok(HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "admin/"))
        .finish())
}

async fn serve(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    let path = path.into_inner();
    let (name, body, etag) = match Assets::get(&path).filter(|_| !path.is_empty() && content_type(&path).is_some()) {
        Some(file) if path != INDEX => (path.as_str(), file.data, etag(&file.metadata.sha256_hash())),
        // A missing file that looks like one (`app.js`, `logo.png`) is a 404, not the app: a stale or mistyped
        // asset URL must fail loudly rather than be answered with HTML.
        None if last_segment(&path).contains('.') => {
            return Err(ApiError::NotFound(format!("no file {path:?} in the admin console")));
        }
        _ => {
            let (body, etag) = index(&state.config.server.base_path)?;
            (INDEX, body, etag)
        }
    };
    let fresh = if_none_match(&req, &etag);
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag.as_str()))
        // File names are not fingerprinted, so browsers revalidate every time (cheap: a 304 by ETag).
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    if fresh {
        return Ok(response.finish());
    }
    let kind = content_type(name).unwrap_or("application/octet-stream");
    Ok(response.insert_header((header::CONTENT_TYPE, kind)).body(body))
}

/// `server.disable_admin` turns the console off (the admin API stays, for scripts).
fn enabled(state: &AppState) -> Result<(), ApiError> {
    if state.config.server.disable_admin {
        return Err(ApiError::NotFound("the admin console is disabled".into()));
    }
    Ok(())
}

/// The ETag of a file: its SHA-256, which rust-embed computes when it embeds the file (no hashing per request).
fn etag(sha256: &[u8; 32]) -> String {
    let hex: String = sha256[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// `index.html`, its absolute `/admin/` URLs prefixed with `server.base_path` when one is set (the app derives
/// every other URL from where its script was loaded), and its ETag (the embedded file's, with the prefix mixed
/// in when there is one).
fn index(base_path: &str) -> Result<(Cow<'static, [u8]>, String), ApiError> {
    let file = Assets::get(INDEX).ok_or_else(|| ApiError::Internal("admin-ui/index.html is not embedded".into()))?;
    let base = base_path.trim_end_matches('/');
    let hash = file.metadata.sha256_hash();
    if base.is_empty() {
        return Ok((file.data, etag(&hash)));
    }
    let base = if base.starts_with('/') {
        base.to_string()
    } else {
        format!("/{base}")
    };
    let text = String::from_utf8_lossy(&file.data);
    let body = text.replace("\"/admin/", &format!("\"{base}/admin/")).into_bytes();
    let mut mixed = hash.to_vec();
    mixed.extend_from_slice(base.as_bytes());
    let tag = format!("\"{}\"", &crate::crypto::sha256_hex(&mixed)[..32]);
    Ok((Cow::Owned(body), tag))
}

fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn if_none_match(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}
