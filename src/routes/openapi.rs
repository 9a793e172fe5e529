//! The OpenAPI document (served at `/api/openapi.json`, committed as `openapi/openapi.json`) and the shapes that
//! exist only to document pre-serialized or dynamic bodies. Every route is listed here; a test proves it.

use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

use crate::error::ErrorBody;

/// The error responses every admin route may give.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum AdminErrors<'a> {
    /// Malformed input (`invalid_json`, `invalid_field`, `invalid_query`, `invalid_path`, `unknown_reference`, …).
    #[response(status = 400)]
    BadRequest(ErrorBody<'a>),
    /// No valid bearer token, or its session was revoked or its user deleted (`unauthenticated`).
    #[response(status = 401)]
    Unauthenticated(ErrorBody<'a>),
    /// The caller does not hold the letter now (`forbidden`), or a rule refuses the change: `read_only`,
    /// `protected`, `superuser_required` (it gives or takes `S`, or touches an account holding `S`),
    /// `letter_required` (it gives or takes another letter the caller does not hold, or touches an account that
    /// holds one).
    #[response(status = 403)]
    Forbidden(ErrorBody<'a>),
    /// No such entity (`not_found`).
    #[response(status = 404)]
    NotFound(ErrorBody<'a>),
    /// A unique value is taken (`username_taken`, `email_taken`, `claim_name_taken`, `claim_exists` for a short
    /// name and value, `group_name_taken`; `conflict` when another write took it in the meantime), no superuser
    /// would remain (`last_superuser`), or the user holds `security.max_api_keys_per_user` keys (`too_many_keys`).
    #[response(status = 409)]
    Conflict(ErrorBody<'a>),
    /// An `stk` claim value that is not one letter of `SsuUgGcCm` or a comma list of them (`invalid_stk_value`).
    #[response(status = 422)]
    Unprocessable(ErrorBody<'a>),
    /// The database is unreachable (`database_unavailable`), hashing is saturated (`busy`) or the request took
    /// longer than `server.timeout` (`timeout`); see `Retry-After`.
    #[response(status = 503)]
    Unavailable(ErrorBody<'a>),
}

/// The error responses of `/api/login` and `/api/refresh`.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum TokenErrors<'a> {
    /// Malformed input, or a password over `security.max_password_bytes` (`password_too_long`); a malformed
    /// `Authorization: Basic` (`invalid_authorization`), or one naming other credentials than the body
    /// (`conflicting_credentials`).
    #[response(status = 400)]
    BadRequest(ErrorBody<'a>),
    /// Bad credentials or an invalid refresh token: the body is `{}` exactly (Stoke's clients read it). For a
    /// user with a second factor, a right password without `otp` is `{"error":"mfa_required","mfa_token":…}`
    /// and a wrong `otp` `invalid_code`.
    #[response(status = 401)]
    Unauthorized(Empty),
    /// The account must enrol a second factor first (`mfa_enrollment_required`, with `enrollment_token`).
    #[response(status = 403)]
    Forbidden(ErrorBody<'a>),
    /// The body is larger than `server.max_body_bytes`.
    #[response(status = 413)]
    TooLarge(ErrorBody<'a>),
    /// The body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody<'a>),
    /// A brute-force limit (`too_many_attempts`: this username or address failed too often), a rate limit
    /// (`too_many_requests`) or a second factor waiting after wrong codes (`mfa_locked`); see `Retry-After`.
    #[response(status = 429)]
    TooManyRequests(ErrorBody<'a>),
    /// The database is unreachable (`database_unavailable`), too many password checks wait (`busy`) or the
    /// request took longer than `server.timeout` (`timeout`); see `Retry-After`.
    #[response(status = 503)]
    Unavailable(ErrorBody<'a>),
}

/// Readiness failure.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Unready<'a> {
    /// The database is unreachable or no signing key is loaded.
    #[response(status = 503)]
    Unavailable(ErrorBody<'a>),
}

/// An empty JSON object.
#[derive(Serialize, ToSchema)]
pub struct Empty {}

#[derive(Serialize, ToSchema)]
pub struct Status {
    pub status: String,
}

/// A public key as a JWK. `/api/pkeys` pads its base64url members (Stoke's clients need it); the JWKS does not.
#[derive(Serialize, ToSchema)]
pub struct Jwk {
    pub kty: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub kid: String,
    pub alg: String,
    pub crv: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
    pub n: Option<String>,
    pub e: Option<String>,
}

/// Stoke's key list.
#[derive(Serialize, ToSchema)]
pub struct PublicKeys {
    /// RFC 3339, whole seconds: when clients should fetch again.
    pub exp: String,
    pub keys: Vec<Jwk>,
}

/// An RFC 7517 key set.
#[derive(Serialize, ToSchema)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
}

#[derive(Serialize, ToSchema)]
pub struct Provider {
    pub name: String,
    pub provider_type: String,
    pub type_spec: String,
}

#[derive(Serialize, ToSchema)]
pub struct Providers {
    pub providers: Vec<Provider>,
}

#[derive(Serialize, ToSchema)]
pub struct Capabilities {
    pub capabilities: Vec<String>,
}

/// RFC 8414 authorization server metadata.
#[derive(Serialize, ToSchema)]
pub struct AuthServerMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub grant_types_supported: Vec<String>,
    pub response_types_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    pub scopes_supported: Vec<String>,
}

/// OpenID Connect discovery metadata: the authorization server's, plus what OpenID adds.
#[derive(Serialize, ToSchema)]
pub struct Discovery {
    #[serde(flatten)]
    pub server: AuthServerMetadata,
    pub id_token_signing_alg_values_supported: Vec<String>,
    pub subject_types_supported: Vec<String>,
    pub claims_supported: Vec<String>,
}

/// The body of an OAuth error (RFC 6749 §5.2).
#[derive(Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`, `unsupported_grant_type`,
    /// `invalid_scope`, `access_denied`, `too_many_attempts`, `temporarily_unavailable`, `server_error`.
    pub error: String,
    pub error_description: String,
}

/// `POST /oauth/token`, form-encoded.
#[derive(Deserialize, ToSchema)]
pub struct TokenForm {
    /// `password`, `refresh_token` or `client_credentials`.
    pub grant_type: String,
    pub scope: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// A current TOTP code, for a user with a second factor (`password` grant; without it the answer is
    /// `invalid_grant` with `error_description: mfa_required`).
    pub otp: Option<String>,
    pub refresh_token: Option<String>,
    /// With `client_secret_post` or a public client (else HTTP Basic).
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// `POST /oauth/revoke` and `/oauth/introspect`, form-encoded.
#[derive(Deserialize, ToSchema)]
pub struct TokenHintForm {
    pub token: String,
    /// `access_token` or `refresh_token`; optional, and only a hint.
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// The error responses of the OAuth endpoints, every one with `Cache-Control: no-store`.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum OAuthErrors {
    /// `invalid_request`, `invalid_grant`, `unauthorized_client`, `unsupported_grant_type`, `invalid_scope`.
    #[response(status = 400)]
    BadRequest(OAuthErrorBody),
    /// `invalid_client` (with `WWW-Authenticate` when HTTP Basic was used), or an invalid bearer token.
    #[response(status = 401)]
    Unauthorized(OAuthErrorBody),
    /// The caller may not do this (`unauthorized_client`, `access_denied`).
    #[response(status = 403)]
    Forbidden(OAuthErrorBody),
    /// The body is larger than `server.max_body_bytes`.
    #[response(status = 413)]
    TooLarge(OAuthErrorBody),
    /// Too many failed client authentications from this client id or address (`too_many_attempts`), or the
    /// login limits of the `password` grant; see `Retry-After`.
    #[response(status = 429)]
    TooManyRequests(OAuthErrorBody),
    /// `temporarily_unavailable`; see `Retry-After`.
    #[response(status = 503)]
    Unavailable(OAuthErrorBody),
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Tessera", description = "A lightweight self-hosted token service, Stoke-compatible."),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody, Empty, OAuthErrorBody)),
    paths(
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        crate::routes::metrics::metrics,
        crate::routes::tokens::login,
        crate::routes::tokens::refresh,
        crate::routes::tokens::pkeys,
        crate::routes::tokens::available_providers,
        crate::routes::tokens::capabilities,
        crate::routes::wellknown::jwks,
        crate::routes::wellknown::openid_configuration,
        crate::routes::admin::list_users,
        crate::routes::admin::get_user,
        crate::routes::admin::patch_user,
        crate::routes::admin::delete_user,
        crate::routes::admin::user_groups,
        crate::routes::admin::user_sessions,
        crate::routes::admin::revoke_user_sessions,
        crate::routes::admin::revoke_user_session,
        crate::routes::admin::create_local_user,
        crate::routes::admin::set_local_password,
        crate::routes::admin::totals,
        crate::routes::admin::list_locks,
        crate::routes::admin::lift_lock,
        crate::routes::admin::list_groups,
        crate::routes::admin::get_group,
        crate::routes::admin::create_group,
        crate::routes::admin::patch_group,
        crate::routes::admin::delete_group,
        crate::routes::admin::group_claims,
        crate::routes::admin::group_users,
        crate::routes::admin::group_links_of,
        crate::routes::admin::list_claims,
        crate::routes::admin::get_claim,
        crate::routes::admin::create_claim,
        crate::routes::admin::patch_claim,
        crate::routes::admin::delete_claim,
        crate::routes::admin::claim_groups_of,
        crate::routes::admin::list_links,
        crate::routes::admin::get_link,
        crate::routes::admin::create_link,
        crate::routes::admin::patch_link,
        crate::routes::admin::delete_link,
        crate::routes::admin::link_group,
        crate::routes::admin::audit,
        crate::routes::admin::status,
        crate::routes::admin::token_preview,
        crate::routes::admin::keys,
        crate::routes::admin::rotate_keys,
        crate::routes::clients::list_clients,
        crate::routes::clients::create_client,
        crate::routes::clients::get_client,
        crate::routes::clients::patch_client,
        crate::routes::clients::delete_client,
        crate::routes::clients::rotate_client_secret,
        crate::routes::oauth::token_endpoint,
        crate::routes::oauth::revoke_endpoint,
        crate::routes::oauth::introspect_endpoint,
        crate::routes::wellknown::authorization_server,
        crate::routes::accounts::register,
        crate::routes::accounts::confirm,
        crate::routes::accounts::forgot_password,
        crate::routes::accounts::reset_password,
        crate::routes::accounts::change_password,
        crate::routes::accounts::me,
        crate::routes::accounts::update_me,
        crate::routes::accounts::change_email,
        crate::routes::accounts::logout,
        crate::routes::accounts::anonymous,
        crate::routes::accounts::public_key,
        crate::routes::api_keys::list_mine,
        crate::routes::api_keys::create_mine,
        crate::routes::api_keys::revoke_mine,
        crate::routes::api_keys::list_of_user,
        crate::routes::api_keys::create_for_user,
        crate::routes::api_keys::revoke_of_user,
        crate::routes::mfa::start,
        crate::routes::mfa::confirm,
        crate::routes::mfa::disable,
        crate::routes::mfa::regenerate,
        crate::routes::mfa::second_step,
        crate::routes::mfa::status,
        crate::routes::mfa::reset,
        crate::routes::oidc::sign_in,
        crate::routes::oidc::transfer_js,
    )
)]
pub struct ApiDoc;

/// The document as pretty JSON (what `/api/openapi.json` serves and `openapi/openapi.json` holds).
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".into())
}
