//! How the JSON API's failures look to a client: `{"error": {"code", "message"}}` with the
//! matching HTTP status (and `Retry-After` where waiting helps). Shared by the API handlers and
//! the host-session extractor; it must never put a password, a token or an address into a
//! message.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::{MIN_PASSWORD_LEN, StoreError};

/// An API failure, as the client sees it.
#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    InvalidCredentials,
    InvalidRoom(String),
    RoomTaken,
    NotFound(&'static str),
    InvalidUsername,
    PasswordTooShort,
    SetupLinkInvalid,
    TooManyAttempts(u64),
    /// Every password check is taken: try again in a moment.
    Busy,
    Forbidden,
    /// The request came from a page of another origin (`http.allowed_origins`).
    ForeignOrigin,
    /// Too many connections, from this address or in all: try again later.
    TooManyConnections,
    /// The request took longer than `limits.request_timeout`.
    Timeout,
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "log in as a host first".to_string(),
            ),
            ApiError::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "invalid-credentials",
                "wrong user name or password".to_string(),
            ),
            ApiError::InvalidRoom(reason) => (StatusCode::BAD_REQUEST, "invalid-room", reason),
            ApiError::RoomTaken => (
                StatusCode::CONFLICT,
                "room-taken",
                "another host already has a room with this name".to_string(),
            ),
            ApiError::NotFound(code) => (StatusCode::NOT_FOUND, code, "not found".to_string()),
            ApiError::InvalidUsername => (
                StatusCode::BAD_REQUEST,
                "invalid-username",
                "a user name is 1 to 32 characters from a-z, 0-9, '.', '_' and '-'".to_string(),
            ),
            ApiError::PasswordTooShort => (
                StatusCode::BAD_REQUEST,
                "password-too-short",
                format!("a password has at least {MIN_PASSWORD_LEN} characters"),
            ),
            ApiError::SetupLinkInvalid => (
                StatusCode::FORBIDDEN,
                "setup-link-invalid",
                "this setup link is wrong, used or expired".to_string(),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "something went wrong on the server".to_string(),
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "this room belongs to someone else".to_string(),
            ),
            ApiError::ForeignOrigin => (
                StatusCode::FORBIDDEN,
                "foreign-origin",
                "requests from pages of other sites are refused".to_string(),
            ),
            ApiError::Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "the request took too long".to_string(),
            ),
            ApiError::TooManyConnections => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "5".to_string())],
                    Json(json!({"error": {
                        "code": "too-many-connections",
                        "message": "too many connections from this address or in all; try again later",
                    }})),
                )
                    .into_response();
            }
            ApiError::Busy => {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "1".to_string())],
                    Json(json!({"error": {
                        "code": "busy",
                        "message": "the server is checking other passwords; try again in a moment",
                    }})),
                )
                    .into_response();
            }
            ApiError::TooManyAttempts(seconds) => {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, seconds.to_string())],
                    Json(json!({"error": {
                        "code": "too-many-attempts",
                        "message": "too many failed logins; wait and try again",
                        "retryAfter": seconds,
                    }})),
                )
                    .into_response();
            }
        };
        (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::PasswordTooShort => ApiError::PasswordTooShort,
            other => {
                tracing::error!(error = %other, "database failure");
                ApiError::Internal
            }
        }
    }
}
