//! The plain-HTTP listener beside HTTPS (`http.redirect_listen`): every request is redirected
//! to the same path on the public HTTPS address, and ACME's http-01 challenges are answered.
//!
//! The redirect's target is built from the configured public address, never from the request's
//! `Host` header, so the listener cannot be made to send anyone elsewhere.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// ACME http-01 tokens and their key authorisations, while an order waits for them.
#[derive(Debug, Default)]
pub struct Http01Tokens(Mutex<HashMap<String, String>>);

impl Http01Tokens {
    pub fn insert(&self, token: &str, key_authorization: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_string(), key_authorization.to_string());
    }

    pub fn remove(&self, token: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
    }

    fn get(&self, token: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()
    }
}

#[derive(Clone)]
struct Redirect {
    /// `https://host[:port]`, without a trailing slash.
    base: Arc<str>,
    tokens: Arc<Http01Tokens>,
}

/// Where a request for `uri` is sent: the same path and query on `base`.
pub fn target(base: &str, uri: &Uri) -> String {
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| p.starts_with('/'))
        .unwrap_or("/");
    format!("{base}{path}")
}

/// The redirect listener's routes.
pub fn router(https_base: &str, tokens: Arc<Http01Tokens>) -> Router {
    let state = Redirect {
        base: https_base.trim_end_matches('/').into(),
        tokens,
    };
    Router::new()
        .route("/.well-known/acme-challenge/{token}", get(challenge))
        .fallback(redirect)
        .with_state(state)
}

async fn challenge(State(state): State<Redirect>, Path(token): Path<String>) -> Response {
    match state.tokens.get(&token) {
        Some(answer) => ([(header::CONTENT_TYPE, "text/plain")], answer).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn redirect(State(state): State<Redirect>, uri: Uri) -> Response {
    // 308: the method and body are kept, and browsers remember the move.
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, target(&state.base, &uri))],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_keeps_path_and_query_and_nothing_of_the_host() {
        let uri: Uri = "/maths-3b?x=1".parse().unwrap();
        assert_eq!(
            target("https://meet.school.nl", &uri),
            "https://meet.school.nl/maths-3b?x=1"
        );
        let absolute: Uri = "http://evil.example/steal".parse().unwrap();
        assert_eq!(
            target("https://meet.school.nl", &absolute),
            "https://meet.school.nl/steal"
        );
        assert_eq!(
            target("https://meet.school.nl", &"*".parse().unwrap()),
            "https://meet.school.nl/"
        );
    }
}
