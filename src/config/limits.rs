//! The `[limits]` section: how much of anything a client, an address or the whole internet may
//! hold of this server at once, and how long it may take.
//!
//! Only parsing and checking live here; the listeners and the signalling apply the values.
//! Every key has a default that a school behind one NAT address does not reach in normal use
//! (hundreds of pupils share an address), and every value is bounded, so that a typo cannot
//! switch a limit off.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, duration, invalid};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub http_connections: u32,
    pub http_connections_per_address: u32,
    pub tls_handshakes: u32,
    pub header_timeout: String,
    pub request_timeout: String,
    pub websockets: u32,
    pub websockets_per_address: u32,
    pub conferences: u32,
    pub messages_per_second: u32,
    pub message_burst: u32,
    pub media_tcp_connections: u32,
    pub media_tcp_connections_per_address: u32,
    pub turn_allocations: u32,
    pub turn_allocations_per_address: u32,
    pub turn_allocations_per_credential: u32,
}

/// The limits, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Open HTTP connections (WebSockets included) at once.
    pub http_connections: usize,
    /// Open HTTP connections from one TCP peer that is not a trusted proxy.
    pub http_connections_per_address: usize,
    /// TLS handshakes in progress at once.
    pub tls_handshakes: usize,
    /// A request's head must arrive within this, also when a kept-alive connection waits for
    /// its next request.
    pub header_timeout: Duration,
    /// A request (its body included) must be answered within this; WebSockets are exempt once
    /// upgraded.
    pub request_timeout: Duration,
    /// Signalling WebSockets at once.
    pub websockets: usize,
    /// Signalling WebSockets from one client address.
    pub websockets_per_address: usize,
    /// Conferences (and queues waiting for one) at once on this server.
    pub conferences: usize,
    /// Signalling messages one client may send per second on average, and in a burst.
    pub messages_per_second: u32,
    pub message_burst: u32,
    /// ICE-TCP connections at once, in all and from one address.
    pub media_tcp_connections: usize,
    pub media_tcp_connections_per_address: usize,
    /// TURN allocations at once, from one client address, under one credential.
    pub turn_allocations: usize,
    pub turn_allocations_per_address: usize,
    pub turn_allocations_per_credential: usize,
}

/// The relayed ports TURN gives out on one address (49152 to 65535).
pub const TURN_RELAYED_PORTS: usize = 16_384;

/// Counts beyond this are a typo, not a machine.
const MAX_COUNT: u32 = 1_000_000;

fn count(key: &'static str, value: u32) -> Result<usize, ConfigError> {
    if value == 0 || value > MAX_COUNT {
        return Err(invalid(key, format!("expected 1 to {MAX_COUNT}")));
    }
    Ok(value as usize)
}

fn timeout(key: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let d = duration(key, value)?;
    if d > Duration::from_secs(600) {
        return Err(invalid(
            key,
            "at most 10m: a longer wait only helps a slow attacker",
        ));
    }
    Ok(d)
}

pub fn limit_settings(raw: &RawLimits) -> Result<LimitSettings, ConfigError> {
    let limits = LimitSettings {
        http_connections: count("limits.http_connections", raw.http_connections)?,
        http_connections_per_address: count(
            "limits.http_connections_per_address",
            raw.http_connections_per_address,
        )?,
        tls_handshakes: count("limits.tls_handshakes", raw.tls_handshakes)?,
        header_timeout: timeout("limits.header_timeout", &raw.header_timeout)?,
        request_timeout: timeout("limits.request_timeout", &raw.request_timeout)?,
        websockets: count("limits.websockets", raw.websockets)?,
        websockets_per_address: count("limits.websockets_per_address", raw.websockets_per_address)?,
        conferences: count("limits.conferences", raw.conferences)?,
        messages_per_second: count("limits.messages_per_second", raw.messages_per_second)? as u32,
        message_burst: count("limits.message_burst", raw.message_burst)? as u32,
        media_tcp_connections: count("limits.media_tcp_connections", raw.media_tcp_connections)?,
        media_tcp_connections_per_address: count(
            "limits.media_tcp_connections_per_address",
            raw.media_tcp_connections_per_address,
        )?,
        turn_allocations: count("limits.turn_allocations", raw.turn_allocations)?,
        turn_allocations_per_address: count(
            "limits.turn_allocations_per_address",
            raw.turn_allocations_per_address,
        )?,
        turn_allocations_per_credential: count(
            "limits.turn_allocations_per_credential",
            raw.turn_allocations_per_credential,
        )?,
    };
    if limits.turn_allocations > TURN_RELAYED_PORTS {
        return Err(invalid(
            "limits.turn_allocations",
            format!("at most {TURN_RELAYED_PORTS} (the relayed ports of one address)"),
        ));
    }
    for (key, value) in [
        (
            "limits.turn_allocations_per_address",
            limits.turn_allocations_per_address,
        ),
        (
            "limits.turn_allocations_per_credential",
            limits.turn_allocations_per_credential,
        ),
    ] {
        if value > limits.turn_allocations {
            return Err(invalid(key, "cannot exceed limits.turn_allocations"));
        }
    }
    if limits.media_tcp_connections_per_address > limits.media_tcp_connections {
        return Err(invalid(
            "limits.media_tcp_connections_per_address",
            "cannot exceed limits.media_tcp_connections",
        ));
    }
    if limits.message_burst < limits.messages_per_second {
        return Err(invalid(
            "limits.message_burst",
            "cannot be below limits.messages_per_second",
        ));
    }
    if limits.http_connections_per_address > limits.http_connections {
        return Err(invalid(
            "limits.http_connections_per_address",
            "cannot exceed limits.http_connections",
        ));
    }
    if limits.websockets_per_address > limits.websockets {
        return Err(invalid(
            "limits.websockets_per_address",
            "cannot exceed limits.websockets",
        ));
    }
    if limits.websockets > limits.http_connections {
        return Err(invalid(
            "limits.websockets",
            "cannot exceed limits.http_connections (every WebSocket is one)",
        ));
    }
    Ok(limits)
}
