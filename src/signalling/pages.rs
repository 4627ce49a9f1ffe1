//! The web client, embedded in the binary, and the server's own small pages.
//!
//! `static/` is compiled in (rust-embed), so a deployment is one file and the client always
//! matches the server. Assets are revalidated by ETag. Room pages are the same HTML for every
//! room; the client asks the API whether the room exists.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use rust_embed::RustEmbed;
use serde::Deserialize;

use super::AppState;
use crate::focus::RoomName;
use crate::privacy::statement::Language;

#[derive(RustEmbed)]
#[folder = "static/"]
struct WebClient;

fn embedded(path: &str, request_headers: &HeaderMap) -> Response {
    let Some(file) = WebClient::get(path) else {
        return not_found_response();
    };
    let etag = format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    if request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag)
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let content_type = if mime.type_() == "text" || mime.essence_str() == "application/javascript" {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_string()
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache".to_string()),
            (header::ETAG, etag),
        ],
        Body::from(file.data.into_owned()),
    )
        .into_response()
}

fn not_found_response() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Not found\n",
    )
        .into_response()
}

pub async fn start_page(headers: HeaderMap) -> Response {
    embedded("index.html", &headers)
}

pub async fn setup_page(headers: HeaderMap) -> Response {
    embedded("setup.html", &headers)
}

pub async fn room_page(Path(room): Path<String>, headers: HeaderMap) -> Response {
    match RoomName::parse(&room) {
        Ok(_) => embedded("room.html", &headers),
        Err(_) => not_found_response(),
    }
}

pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    if path
        .split('/')
        .any(|segment| segment == ".." || segment.is_empty())
    {
        return not_found_response();
    }
    embedded(&format!("assets/{path}"), &headers)
}

pub async fn not_found() -> Response {
    not_found_response()
}

#[derive(Deserialize)]
pub struct LanguageQuery {
    lang: Option<String>,
}

/// The privacy statement, rendered from the running configuration (SPEC P13).
pub async fn privacy_page(
    State(state): State<AppState>,
    Query(query): Query<LanguageQuery>,
    headers: HeaderMap,
) -> Html<String> {
    let language = match query.lang.as_deref() {
        Some("nl") => Language::Dutch,
        Some("en") => Language::English,
        _ => {
            let accept = headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if accept.trim_start().to_ascii_lowercase().starts_with("nl") {
                Language::Dutch
            } else {
                Language::English
            }
        }
    };
    Html(state.statement.page(language).to_owned())
}

pub async fn health(State(state): State<AppState>) -> Response {
    if let Some(part) = state.health.failed() {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(serde_json::json!({"status": "failed", "failed": part})),
        )
            .into_response();
    }
    let stats = state.focus.stats().await;
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({
            "status": "ok",
            "conferences": stats.conferences,
            "participants": stats.participants,
        })),
    )
        .into_response()
}

/// Tasks alive in the server's runtime: flat over a day of meetings, or something leaks.
fn runtime_tasks() -> u64 {
    tokio::runtime::Handle::try_current()
        .map_or(0, |runtime| runtime.metrics().num_alive_tasks() as u64)
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let stats = state.focus.stats().await;
    let body = crate::stats::metrics::render(
        &stats,
        &state.sfu_counters,
        &state.refusals,
        runtime_tasks(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
