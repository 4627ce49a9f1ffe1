//! The JSON API: host login and logout, first-host setup, and rooms.
//!
//! Errors are `{"error": {"code", "message"}}` with the matching HTTP status. Password checks
//! (argon2, slow on purpose) run off the async executor. Nothing here logs a password, a token
//! or a session id.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::api_error::ApiError;
use super::auth::{Authorized, Principal, cleared_cookie, session_cookie, session_token};
use super::client_ip::client_ip;
use crate::focus::RoomName;
use crate::store::{HostName, MIN_PASSWORD_LEN, RoomCreated, StoreError};

/// Runs a blocking store call off the executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(ApiError::from)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    password: String,
}

fn logged_in(state: &AppState, host: &HostName, token: &str, status: StatusCode) -> Response {
    let cookie = session_cookie(
        token,
        state.settings.auth.session_ttl.as_secs(),
        state.secure_cookies(),
    );
    (
        status,
        [(header::SET_COOKIE, cookie)],
        Json(json!({"user": host.as_str()})),
    )
        .into_response()
}

/// Logs a host in. Failures slow further attempts down, per account and per client address
/// (`auth.login_delay`), before the password is even looked at.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(credentials): Json<Credentials>,
) -> Result<Response, ApiError> {
    let client = client_ip(peer.ip(), &headers, &state.settings.http.trusted_proxies);
    let account = credentials.username.trim().to_lowercase();
    // By account and address together, and by address: guesses from one address slow down,
    // and nobody elsewhere can lock a host out of their own account. The keys are reserved
    // before the password is checked, so concurrent guesses cost one check.
    let keys = vec![
        format!("login:{account}|{client}"),
        format!("client:{client}"),
    ];
    let attempt = state
        .logins
        .begin(Instant::now(), keys)
        .map_err(|wait| ApiError::TooManyAttempts(wait.as_secs().max(1)))?;
    let Ok(host) = HostName::parse(&credentials.username) else {
        attempt.failed(Instant::now());
        return Err(ApiError::InvalidCredentials);
    };
    let permit = state.password_checks.try_acquire()?;
    let store = state.store.clone();
    let ttl = state.settings.auth.session_ttl;
    let checked = host.clone();
    let token = blocking(move || {
        let _permit = permit;
        if store.check_password(&checked, &credentials.password)? {
            store.create_session(&checked, ttl).map(Some)
        } else {
            Ok(None)
        }
    })
    .await?;
    match token {
        Some(token) => {
            attempt.succeeded();
            Ok(logged_in(&state, &host, &token, StatusCode::OK))
        }
        None => {
            attempt.failed(Instant::now());
            Err(ApiError::InvalidCredentials)
        }
    }
}

pub async fn logout(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let (parts, _) = request.into_parts();
    if let Some(token) = session_token(&parts) {
        let store = state.store.clone();
        let _ = blocking(move || store.end_session(&token)).await;
    }
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cleared_cookie(state.secure_cookies()))],
    )
        .into_response()
}

pub async fn me(Authorized(principal): Authorized) -> Json<serde_json::Value> {
    match principal {
        Principal::Host(host) => Json(json!({"user": host.as_str(), "kind": "host"})),
        Principal::Token(token) => Json(json!({
            "user": token.name.unwrap_or_default(),
            "kind": "token",
        })),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    token: String,
    username: String,
    password: String,
}

pub async fn setup(
    State(state): State<AppState>,
    Json(request): Json<SetupRequest>,
) -> Result<Response, ApiError> {
    let host = HostName::parse(&request.username).map_err(|_| ApiError::InvalidUsername)?;
    if request.password.chars().count() < MIN_PASSWORD_LEN {
        return Err(ApiError::PasswordTooShort);
    }
    if request.token.len() > 128 {
        return Err(ApiError::SetupLinkInvalid);
    }
    // The cheap check first: a link that is not valid costs no password hash.
    let store = state.store.clone();
    let token = request.token.clone();
    if !blocking(move || store.setup_link_redeemable(&token)).await? {
        return Err(ApiError::SetupLinkInvalid);
    }
    let permit = state.password_checks.try_acquire()?;
    let store = state.store.clone();
    let ttl = state.settings.auth.session_ttl;
    let created = host.clone();
    let token = blocking(move || {
        let _permit = permit;
        if store.redeem_setup_link(&request.token, &created, &request.password)? {
            store.create_session(&created, ttl).map(Some)
        } else {
            Ok(None)
        }
    })
    .await?
    .ok_or(ApiError::SetupLinkInvalid)?;
    Ok(logged_in(&state, &host, &token, StatusCode::CREATED))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRoom {
    name: String,
}

pub async fn create_room(
    State(state): State<AppState>,
    Authorized(principal): Authorized,
    Json(request): Json<NewRoom>,
) -> Result<Response, ApiError> {
    let room = RoomName::parse(&request.name).map_err(|e| ApiError::InvalidRoom(e.to_string()))?;
    if !principal.may_manage(&room) {
        return Err(ApiError::Forbidden);
    }
    let store = state.store.clone();
    let wanted = room.clone();
    let owner = principal.owner();
    let outcome = blocking(move || store.create_room(&wanted, &owner)).await?;
    let status = match outcome {
        RoomCreated::Created => StatusCode::CREATED,
        RoomCreated::AlreadyYours => StatusCode::OK,
        RoomCreated::TakenByOtherHost => return Err(ApiError::RoomTaken),
    };
    let url = format!("{}/{}", state.public_url, room);
    Ok((status, Json(json!({"room": room.as_str(), "url": url}))).into_response())
}

pub async fn room_info(
    State(state): State<AppState>,
    Path(room): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let room = RoomName::parse(&room).map_err(|_| ApiError::NotFound("room-not-found"))?;
    let store = state.store.clone();
    let wanted = room.clone();
    if blocking(move || store.room_exists(&wanted)).await? {
        Ok(Json(json!({"room": room.as_str()})))
    } else {
        Err(ApiError::NotFound("room-not-found"))
    }
}

/// The caller's rooms, and whether a conference runs in each.
pub async fn list_rooms(
    State(state): State<AppState>,
    Authorized(principal): Authorized,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = state.store.clone();
    let owner = principal.owner();
    let rooms = blocking(move || store.rooms_of(&owner)).await?;
    let mut listed = Vec::new();
    for room in rooms {
        let participants = state.focus.room_status(room.clone()).await;
        listed.push(json!({
            "room": room.as_str(),
            "url": format!("{}/{}", state.public_url, room),
            "running": participants.is_some(),
            "participants": participants.unwrap_or(0),
        }));
    }
    Ok(Json(json!({"rooms": listed})))
}

/// Checks that the caller owns an existing room.
async fn owned_room(
    state: &AppState,
    principal: &Principal,
    room: &str,
) -> Result<RoomName, ApiError> {
    let room = RoomName::parse(room).map_err(|_| ApiError::NotFound("room-not-found"))?;
    let store = state.store.clone();
    let wanted = room.clone();
    let owner = blocking(move || store.room_owner(&wanted))
        .await?
        .ok_or(ApiError::NotFound("room-not-found"))?;
    if owner != principal.owner() || !principal.may_manage(&room) {
        return Err(ApiError::Forbidden);
    }
    Ok(room)
}

/// Ends the conference in one of the caller's rooms for everyone in it.
pub async fn end_room(
    State(state): State<AppState>,
    Authorized(principal): Authorized,
    Path(room): Path<String>,
) -> Result<StatusCode, ApiError> {
    let room = owned_room(&state, &principal, &room).await?;
    state.focus.end_room(room).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes one of the caller's rooms (ending its conference first).
pub async fn delete_room(
    State(state): State<AppState>,
    Authorized(principal): Authorized,
    Path(room): Path<String>,
) -> Result<StatusCode, ApiError> {
    let room = owned_room(&state, &principal, &room).await?;
    state.focus.end_room(room.clone()).await;
    let store = state.store.clone();
    blocking(move || store.delete_room(&room)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("not-found")
}
