//! `GET /oidc/{name}`: Stoke's sign-in through an upstream OpenID provider (the flow is `services::oidc`'s).
//! Without `state`, `code` or `error` in the query it starts a sign-in (a redirect to the provider, and the
//! state's cookie); with them it is the provider's return, answered by a small page whose external script
//! (`/oidc/transfer.js`: the CSP allows no inline script) hands the exchange pair to the front-end. Failures
//! are an HTML page too (a browser is on the other end), with a stable code; never a 500.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::services::AppState;
use crate::services::mail::html_escape;
use crate::services::oidc::{self, Callback, Failure, Transfer};

type State = web::Data<AppState>;

/// The page's policy: its one script from here, nothing else, no framing, no referrer (the URL holds a code).
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// What the callback page runs: store the pair and go on (`local`), or post it to the opener (`window`).
const TRANSFER_JS: &str = r#"// Tessera: hands an upstream sign-in's exchange pair to the front-end (Stoke's contract).
(function () {
  "use strict";
  var d = document.body.dataset;
  if (!d.idToken) { return; }
  if (d.xfer === "window") {
    var message = JSON.stringify({ id_token: d.idToken, access_code: d.accessCode });
    if (window.opener) { window.opener.postMessage(message, d.origin || window.location.origin); }
    window.close();
    return;
  }
  window.sessionStorage.setItem("id_token", d.idToken);
  window.sessionStorage.setItem("access_code", d.accessCode);
  if (d.next) { window.location.replace(d.next); }
})();
"#;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/oidc/transfer.js", web::get().to(transfer_js))
        .route("/oidc/{name}", web::get().to(sign_in));
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct SignInQuery {
    pub next: Option<String>,
    pub xfer: Option<String>,
    #[serde(flatten)]
    pub back: Callback,
}

#[utoipa::path(get, path = "/oidc/transfer.js", tag = "oidc", responses((status = 200, description = "The callback page's script", content_type = "text/javascript")))]
pub async fn transfer_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(TRANSFER_JS)
}

#[utoipa::path(get, path = "/oidc/{name}", tag = "oidc",
    params(("name" = String, Path, description = "An OpenID provider of `/api/available_providers`"),
        ("next" = Option<String>, Query, description = "Where to go after: a path here, or a URL of an origin in `server.allowed_hosts`"),
        ("xfer" = Option<String>, Query, description = "`local` (sessionStorage, the default) or `window` (postMessage to the opener)"),
        ("code" = Option<String>, Query, description = "From the provider"),
        ("state" = Option<String>, Query, description = "From the provider"),
        ("error" = Option<String>, Query, description = "From the provider"),
        ("error_description" = Option<String>, Query, description = "From the provider"),
        ("iss" = Option<String>, Query, description = "From the provider (RFC 9207)")),
    responses(
        (status = 200, description = "The provider's return, verified: a page that hands the exchange pair to the front-end", content_type = "text/html"),
        (status = 303, description = "A sign-in starts: to the provider"),
        (status = 400, description = "A bad next or xfer, a state that is not this browser's or is spent, a refusal or a failed check (an HTML page naming the code)", content_type = "text/html"),
        (status = 404, description = "No such OpenID provider", content_type = "text/html"),
        (status = 502, description = "The provider is unavailable or answered garbage", content_type = "text/html"),
        (status = 503, description = "The database is unavailable", content_type = "text/html")))]
pub async fn sign_in(state: State, req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    // The query by hand: a malformed one is an error page, not the API's JSON.
    let query: SignInQuery = match serde_urlencoded_query(req.query_string()) {
        Some(q) => q,
        None => return page_error(&Failure::bad("invalid_query", "the query string cannot be read")),
    };
    // A name that no provider can have (they are checked at start-up) never names a cookie.
    if !crate::config::oidc_name_ok(&name) {
        return page_error(&Failure::unknown_provider(&name));
    }
    let secure = served_over_https(&state);
    let cookie_name = cookie_name(&name, secure);
    let back = &query.back;
    let returning = back.state.is_some() || back.code.is_some() || back.error.is_some();
    if !returning {
        return match oidc::start(&state, &name, query.next.as_deref(), query.xfer.as_deref()).await {
            Ok(started) => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, started.location))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .cookie(state_cookie(&cookie_name, &name, secure, started.state, false))
                .finish(),
            Err(failure) => page_error(&failure),
        };
    }
    let cookie = req.cookie(&cookie_name).map(|c| c.value().to_string());
    let result = oidc::finish(&state, &name, query.back, cookie.as_deref()).await;
    // The state's cookie is spent once its state was tried (a return that is not this browser's leaves it: a
    // stray link must not end a sign-in in progress).
    let tried = !matches!(&result, Err(f) if f.code == oidc::STATE_MISMATCH);
    let mut response = match result {
        Ok(transfer) => page_transfer(&transfer),
        Err(failure) => page_error(&failure),
    };
    if tried {
        let spent = state_cookie(&cookie_name, &name, secure, String::new(), true);
        if let Err(e) = response.add_cookie(&spent) {
            tracing::warn!(error = %e, "the state cookie was not cleared");
        }
    }
    response
}

fn serde_urlencoded_query(query: &str) -> Option<SignInQuery> {
    web::Query::<SignInQuery>::from_query(query)
        .ok()
        .map(web::Query::into_inner)
}

fn served_over_https(state: &AppState) -> bool {
    let s = &state.config.server;
    !s.tls_private_key.is_empty() || s.public_url.starts_with("https://")
}

/// One cookie per provider (two tabs signing in at two providers do not clash); `__Host-` over https, so no
/// other host or path can set it.
fn cookie_name(provider: &str, secure: bool) -> String {
    match secure {
        true => format!("__Host-tessera-oidc-{provider}"),
        false => format!("tessera-oidc-{provider}"),
    }
}

fn state_cookie(name: &str, provider: &str, secure: bool, value: String, expire: bool) -> Cookie<'static> {
    let path = match secure {
        true => "/".to_string(),
        false => format!("/oidc/{provider}"),
    };
    let mut cookie = Cookie::build(name.to_string(), value)
        .path(path)
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::seconds(if expire { 0 } else { 600 }))
        .finish();
    if expire {
        cookie.make_removal();
    }
    cookie
}

fn page(status: u16, body: String) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    let mut response = HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body);
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY));
    response
}

fn page_transfer(t: &Transfer) -> HttpResponse {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signing in</title>\
         <script src=\"/oidc/transfer.js\" defer></script></head>\n\
         <body data-xfer=\"{}\" data-next=\"{}\" data-origin=\"{}\" data-id-token=\"{}\" data-access-code=\"{}\">\
         <p>Signing in&hellip;</p><noscript>This page needs JavaScript to finish signing in.</noscript></body></html>\n",
        t.xfer.as_str(),
        html_escape(&t.next),
        html_escape(&t.origin),
        html_escape(&t.id_token),
        html_escape(&t.access_code),
    );
    page(200, body)
}

fn page_error(f: &Failure) -> HttpResponse {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in failed</title></head>\n\
         <body data-error=\"{code}\" style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\
         <h1>Sign-in failed</h1><p>{message}</p><p><small>Error code: <code>{code}</code></small></p></body></html>\n",
        code = f.code,
        message = html_escape(&f.message),
    );
    page(f.status, body)
}
