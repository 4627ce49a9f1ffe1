//! Host sessions: the login cookie, and the extractor that requires it.
//!
//! The cookie is the only one Zaal sets (SPEC P8): `HttpOnly`, `SameSite=Strict`, `Secure` when
//! the public address is HTTPS, carrying a random token of which the database keeps only a
//! digest. The API accepts JSON bodies only, which with `SameSite=Strict` closes cross-site
//! request forgery. Scripts (a reservation system) may instead send `Authorization: Bearer`
//! with a session token or a moderator's signed link.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use super::api_error::ApiError;
use super::jwt::{self, VerifiedToken};
use crate::focus::RoomName;
use crate::store::HostName;

pub const SESSION_COOKIE: &str = "zaal_session";

/// The session token in a request's cookies, if any.
pub fn session_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The `Set-Cookie` value that starts a session.
pub fn session_cookie(token: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    )
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn cleared_cookie(secure: bool) -> String {
    session_cookie("", 0, secure)
}

/// The `Authorization: Bearer` value of a request, if any.
fn bearer(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= jwt::MAX_TOKEN_BYTES)
}

async fn host_of_session(state: &AppState, token: String) -> Result<Option<HostName>, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.session_host(&token))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|_| ApiError::Internal)
}

/// The host whose session cookie came with this request, if any.
pub async fn session_host(parts: &Parts, state: &AppState) -> Option<HostName> {
    let token = session_token(parts)?;
    host_of_session(state, token).await.ok().flatten()
}

/// Who may use the hosts' API: a host (session cookie or bearer session token), or the holder of
/// a moderator's signed link.
#[derive(Debug, Clone)]
pub enum Principal {
    Host(HostName),
    Token(VerifiedToken),
}

impl Principal {
    /// Who owns the rooms this principal creates.
    pub fn owner(&self) -> String {
        match self {
            Principal::Host(host) => host.as_str().to_string(),
            Principal::Token(token) => format!("token:{}", token.subject),
        }
    }

    /// Whether this principal may create or manage `room`.
    pub fn may_manage(&self, room: &RoomName) -> bool {
        match self {
            Principal::Host(_) => true,
            Principal::Token(token) => token.allows(room),
        }
    }
}

/// A request from a host or a moderator's link.
pub struct Authorized(pub Principal);

impl FromRequestParts<AppState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(bearer) = bearer(parts) {
            if let Some(host) = host_of_session(state, bearer.clone()).await? {
                return Ok(Authorized(Principal::Host(host)));
            }
            return match jwt::verify(&bearer, &state.settings.auth.jwt, None) {
                Ok(token) if token.moderator => Ok(Authorized(Principal::Token(token))),
                _ => Err(ApiError::Unauthorized),
            };
        }
        let token = session_token(parts).ok_or(ApiError::Unauthorized)?;
        host_of_session(state, token)
            .await?
            .map(|host| Authorized(Principal::Host(host)))
            .ok_or(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_cookie_among_others() {
        let request = axum::http::Request::builder()
            .header(header::COOKIE, "a=1; zaal_session=tok123; b=2")
            .body(())
            .unwrap();
        let (parts, _) = request.into_parts();
        assert_eq!(session_token(&parts).as_deref(), Some("tok123"));
        let none = axum::http::Request::builder()
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert_eq!(session_token(&none), None);
    }

    #[test]
    fn the_cookie_is_strict() {
        let c = session_cookie("t", 60, true);
        assert!(c.contains("HttpOnly"));
        assert!(c.contains("SameSite=Strict"));
        assert!(c.contains("Secure"));
        assert!(!session_cookie("t", 60, false).contains("Secure"));
    }
}
