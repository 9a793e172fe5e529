//! `POST /oauth/token` (RFC 6749): the `password`, `refresh_token` and `client_credentials` grants.

use serde::Serialize;

use super::{Client, ClientAuth, Grant, auth};
use crate::db::clients;
use crate::services::auth::{self as login, LoginInput};
use crate::services::throttle::ClientAddr;
use crate::services::tokens;
use crate::services::{AppState, ServiceError};

/// The parameters of a token request (besides the client's credentials).
// No `Debug`: it holds a password or a refresh token.
#[derive(Clone, Default)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub scope: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// A current TOTP code of a user with a second factor (the `password` grant).
    pub otp: Option<String>,
    pub refresh_token: Option<String>,
}

/// RFC 6749 §5.1.
// No `Debug`: it holds tokens.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// Absent for `client_credentials`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scope, space-separated.
    pub scope: String,
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, ServiceError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ServiceError::invalid("invalid_request", format!("{name} is required")))
}

/// Issues tokens for one grant: the grant type is known, the client authenticates and may use it, then the
/// grant's own checks run.
pub async fn token(
    state: &AppState,
    auth: &ClientAuth,
    request: TokenRequest,
    addr: Option<ClientAddr>,
) -> Result<TokenResponse, ServiceError> {
    let grant_type = required(&request.grant_type, "grant_type")?;
    let grant = Grant::parse(grant_type).ok_or_else(|| {
        ServiceError::invalid(
            "unsupported_grant_type",
            "grant_type must be password, refresh_token or client_credentials",
        )
    })?;
    let client = auth::authenticate(state, auth, addr).await?;
    client.allow(grant)?;
    let response = match grant {
        Grant::ClientCredentials => client_credentials(state, &client, &request).await,
        Grant::Password => password(state, &client, request, addr).await,
        Grant::RefreshToken => refresh(state, &client, request).await,
    };
    state.metrics.oauth_tokens.add(match &response {
        Ok(_) => grant.name(),
        Err(_) => "refused",
    });
    response
}

/// A token for the client itself (`sub: client:<id>`), with the claims of its own groups; no refresh token,
/// no write.
async fn client_credentials(
    state: &AppState,
    client: &Client,
    request: &TokenRequest,
) -> Result<TokenResponse, ServiceError> {
    if client.public {
        return Err(ServiceError::invalid(
            "unauthorized_client",
            "a public client cannot use client_credentials",
        ));
    }
    let grant = client.grant(client.grant_scope(request.scope.as_deref())?);
    let held = {
        let id = client.id.clone();
        state.db.read_now(move |c| clients::claims_of(c, &id)).await?
    };
    let now = state.clock.now();
    let settings = &state.tokens;
    let groups = tokens::group_claims(&held);
    let mut claims =
        tokens::build_client_claims(settings, &client.subject(), groups, grant.claim_filter.as_deref(), now);
    grant.apply(&mut claims, settings, now);
    let access_token = grant.sign(&state.keys.current(), &claims, now)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: grant.access_ttl(settings),
        refresh_token: None,
        scope: grant.scope.join(" "),
    })
}

/// A user's password or API key (with `otp` for a user with a second factor): the login of `/api/login` through
/// this client.
async fn password(
    state: &AppState,
    client: &Client,
    request: TokenRequest,
    addr: Option<ClientAddr>,
) -> Result<TokenResponse, ServiceError> {
    let username = required(&request.username, "username")?.to_string();
    let password = required(&request.password, "password")?.to_string();
    let grant = client.grant(client.grant_scope(request.scope.as_deref())?);
    let expires_in = grant.access_ttl(&state.tokens);
    let scope = grant.scope.join(" ");
    let input = LoginInput {
        username,
        password,
        provider: None,
        required_claims: Vec::new(),
        filter_claims: None,
        otp: request.otp,
    };
    let (pair, _) = login::login_for_client(state, input, addr, grant).await?;
    Ok(TokenResponse {
        access_token: pair.token,
        token_type: "Bearer",
        expires_in,
        refresh_token: Some(pair.refresh),
        scope,
    })
}

/// Rotates a refresh token of a session this client started; the scope may narrow, never widen.
async fn refresh(state: &AppState, client: &Client, request: TokenRequest) -> Result<TokenResponse, ServiceError> {
    let presented = required(&request.refresh_token, "refresh_token")?.to_string();
    let rotated = login::refresh_for_client(state, presented, client.grant(Vec::new()), request.scope.clone()).await?;
    Ok(TokenResponse {
        access_token: rotated.pair.token,
        token_type: "Bearer",
        expires_in: rotated.expires_in,
        refresh_token: Some(rotated.pair.refresh),
        scope: rotated.scope,
    })
}
