//! What the server refused because a limit (`[limits]`, the origin rule) held: one counter per
//! limit, kept by the signalling and the listeners, rendered by [`super::metrics`] as
//! `zaal_refused_total{limit="..."}`. Counts only: never who was refused, or from where.

use std::sync::atomic::{AtomicU64, Ordering};

/// Each limit a refusal can come from; the label is its name in the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    HttpConnections,
    HttpConnectionsPerAddress,
    TlsHandshakes,
    HeaderTimeout,
    RequestTimeout,
    Websockets,
    WebsocketsPerAddress,
    ForeignOrigin,
}

impl Limit {
    pub const ALL: [Limit; 8] = [
        Limit::HttpConnections,
        Limit::HttpConnectionsPerAddress,
        Limit::TlsHandshakes,
        Limit::HeaderTimeout,
        Limit::RequestTimeout,
        Limit::Websockets,
        Limit::WebsocketsPerAddress,
        Limit::ForeignOrigin,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Limit::HttpConnections => "http_connections",
            Limit::HttpConnectionsPerAddress => "http_connections_per_address",
            Limit::TlsHandshakes => "tls_handshakes",
            Limit::HeaderTimeout => "header_timeout",
            Limit::RequestTimeout => "request_timeout",
            Limit::Websockets => "websockets",
            Limit::WebsocketsPerAddress => "websockets_per_address",
            Limit::ForeignOrigin => "origin",
        }
    }
}

#[derive(Debug, Default)]
pub struct Refusals {
    counts: [AtomicU64; Limit::ALL.len()],
}

impl Refusals {
    pub fn count(&self, limit: Limit) {
        self.counts[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, limit: Limit) -> u64 {
        self.counts[limit as usize].load(Ordering::Relaxed)
    }
}
