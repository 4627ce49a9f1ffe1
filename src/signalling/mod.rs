//! Signalling: everything that reaches Zaal over HTTP.
//!
//! Owns the routes (web client, API, WebSocket, privacy statement, health), host login, the
//! security headers every response carries, and the access log. Conference state lives in the
//! focus; this module only validates requests and passes them on. It must never touch media
//! packets, and never log a name, a token or an address outside the access stream.

mod api;
mod api_error;
mod auth;
pub mod client_ip;
pub mod jwt;
pub mod listener;
pub mod origin;
mod pages;
mod prefixed;
pub mod protocol;
mod rate;
mod throttle;
pub mod tls;
pub mod turn_offer;
mod ws;

pub use crate::occupancy::Occupancy;
pub use throttle::SharedThrottle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tracing::info;

use crate::config::Settings;
use crate::focus::Focus;
use crate::privacy::ACCESS;
use crate::privacy::pii::ClientIp;
use crate::sfu::SfuCounters;
use crate::stats::refusals::{Limit, Refusals};
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub focus: Focus,
    pub settings: Arc<Settings>,
    /// The base URL participants use, without a trailing slash.
    pub public_url: Arc<str>,
    pub sfu_counters: Arc<SfuCounters>,
    /// Failed host logins, by account and by client address.
    pub logins: Arc<SharedThrottle>,
    /// Wrong room passwords, by room and client address.
    pub room_passwords: Arc<SharedThrottle>,
    /// Password hashes computed at once (argon2 is slow and large on purpose).
    pub password_checks: PasswordChecks,
    /// The pages that may act on this server.
    pub origins: Arc<origin::Origins>,
    /// Open signalling WebSockets, in all and per client address (`[limits]`).
    pub websockets: Arc<Occupancy>,
    pub refusals: Arc<Refusals>,
    /// Whether the media workers and the focus still run (`/healthz`).
    pub health: Arc<crate::health::Health>,
    /// The TURN servers participants are told of; `None`: none.
    pub turn: Option<turn_offer::TurnOffer>,
    /// The privacy statement of this configuration, as published at start-up.
    pub statement: Arc<crate::privacy::statement::Published>,
}

/// At most a few password hashes at once: argon2 takes 19 MiB and tens of milliseconds each,
/// so a burst of logins or setup redemptions must not turn into a burst of hashes.
#[derive(Debug, Clone)]
pub struct PasswordChecks(Arc<tokio::sync::Semaphore>);

impl PasswordChecks {
    /// Checks at once: two, so that a host logging in while another check runs gets through.
    pub const AT_ONCE: usize = 2;

    pub fn new() -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(Self::AT_ONCE)))
    }

    /// A permit for one hash, or [`api_error::ApiError::Busy`] for the client to retry.
    fn try_acquire(&self) -> Result<tokio::sync::OwnedSemaphorePermit, api_error::ApiError> {
        self.0
            .clone()
            .try_acquire_owned()
            .map_err(|_| api_error::ApiError::Busy)
    }
}

impl Default for PasswordChecks {
    fn default() -> Self {
        Self::new()
    }
}

impl AppState {
    /// Whether cookies must be `Secure` (the public address is HTTPS).
    fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// The Content-Security-Policy of every page: nothing from another origin (SPEC P9).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; \
    connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'; form-action 'self'";

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::start_page))
        .route("/setup", get(pages::setup_page))
        .route("/privacy", get(pages::privacy_page))
        .route("/healthz", get(pages::health))
        .route("/metrics", get(pages::metrics))
        .route("/assets/{*path}", get(pages::asset))
        .route("/ws", get(websocket))
        .route("/api/login", post(api::login))
        .route("/api/logout", post(api::logout))
        .route("/api/me", get(api::me))
        .route("/api/setup", post(api::setup))
        .route("/api/rooms", post(api::create_room).get(api::list_rooms))
        .route(
            "/api/rooms/{room}",
            get(api::room_info).delete(api::delete_room),
        )
        .route("/api/rooms/{room}/end", post(api::end_room))
        .route("/api/{*rest}", axum::routing::any(api::not_found))
        .route("/{room}", get(pages::room_page))
        .fallback(pages::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(middleware::from_fn_with_state(state.clone(), request_guard))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security_headers,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), access_log))
        .with_state(state)
}

async fn websocket(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    if !state.origins.allow(&parts.headers) {
        state.refusals.count(Limit::ForeignOrigin);
        return api_error::ApiError::ForeignOrigin.into_response();
    }
    let ip = client_ip::client_ip(
        peer.ip(),
        &parts.headers,
        &state.settings.http.trusted_proxies,
    );
    let seat = match state.websockets.take(Some(ip)) {
        Ok(seat) => seat,
        Err(full) => {
            state.refusals.count(match full {
                crate::occupancy::Full::Total => Limit::Websockets,
                crate::occupancy::Full::Address => Limit::WebsocketsPerAddress,
            });
            return api_error::ApiError::TooManyConnections.into_response();
        }
    };
    // A host's session cookie comes with the upgrade (same origin): the host joins as moderator.
    let host = auth::session_host(&parts, &state).await;
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let caller = ws::Caller { ip, host };
    upgrade
        // Signalling messages are small; tungstenite's default 128 KiB read buffer per
        // connection is room for a file transfer (a larger message still grows it, up to the
        // limit below).
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_frame_size(protocol::MAX_FRAME_BYTES)
        .max_message_size(protocol::MAX_FRAME_BYTES)
        .on_upgrade(move |socket| async move {
            ws::run_session(socket, state, caller).await;
            drop(seat);
        })
}

/// Every request but the WebSocket's: one that changes something only from an allowed page,
/// and every one answered within `limits.request_timeout` (a slowly sent body included).
async fn request_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let changes_something = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if changes_something && !state.origins.allow(request.headers()) {
        state.refusals.count(Limit::ForeignOrigin);
        return api_error::ApiError::ForeignOrigin.into_response();
    }
    match tokio::time::timeout(state.settings.limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            state.refusals.count(Limit::RequestTimeout);
            api_error::ApiError::Timeout.into_response()
        }
    }
}

/// What a signalling connection's read buffer starts with.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// HSTS on responses over Zaal's own TLS: a year, and for this host only (a school's other
/// sites on sibling names are not Zaal's to decide for).
const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

async fn security_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if state.settings.tls.enabled() {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
        );
    }
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(
        headers,
        HeaderName::from_static("permissions-policy"),
        "camera=(self), microphone=(self), display-capture=(self), geolocation=(), \
         interest-cohort=()",
    );
    set(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    response
}

/// The `access` stream: one record per request, path without query or fragment.
async fn access_log(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| {
            client_ip::client_ip(
                addr.ip(),
                request.headers(),
                &state.settings.http.trusted_proxies,
            )
        });
    let method = request.method().clone();
    let mut path = request.uri().path().to_string();
    if path.len() > 256 {
        let mut cut = 256;
        while !path.is_char_boundary(cut) {
            cut -= 1;
        }
        path.truncate(cut);
    }
    let response = next.run(request).await;
    let client_ip = client.map_or_else(|| "-".to_string(), |ip| ClientIp(ip).to_string());
    info!(
        target: ACCESS,
        client_ip = %client_ip,
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        duration_ms = (started.elapsed().as_secs_f64() * 1e4).round() / 10.0,
    );
    response
}
