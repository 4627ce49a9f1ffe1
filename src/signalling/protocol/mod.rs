//! The signalling protocol, version 1 (docs/protocol.md): the messages, their limits and their
//! error codes.
//!
//! Pure: text in, a validated [`Inbound`] or a [`ProtocolError`] out ([`inbound`]); what the
//! focus says, as server messages ([`outbound`]). Everything a client sends passes through
//! [`parse`], which bounds every size and rejects unknown types and fields, so the rest of the
//! server only sees well-formed requests. The mapping between protocol messages and the focus's
//! events and errors lives here and nowhere else; the WebSocket session only carries them.

mod inbound;
mod outbound;

pub use inbound::{ClientMessage, Inbound, JoinMessage, MediaKindName, display_name, parse};
pub use outbound::{
    Delivery, Ending, IceServerView, LobbyView, Outbound, ParticipantView, PermissionsView,
    RequestView, RoomView,
};

use super::jwt::TokenError;

pub const PROTOCOL_VERSION: u32 = 1;
/// Larger messages are answered with `too-large`. An answer in a room of fifty, with an m-line
/// per received track, is about 100 KiB.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Larger frames close the connection (enforced by the WebSocket layer).
pub const MAX_FRAME_BYTES: usize = 512 * 1024;
pub const MAX_SDP_BYTES: usize = 200 * 1024;
pub const MAX_CANDIDATE_BYTES: usize = 1024;
/// The most video streams a `receive-video` message may describe.
pub const MAX_VIDEO_STREAMS: usize = 200;
/// The tallest tile a client may report (8K).
pub const MAX_TILE_HEIGHT: u32 = 4320;
pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_PASSWORD_CHARS: usize = 64;
pub const MAX_CHAT_CHARS: usize = 2000;

/// The error codes of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadMessage,
    TooLarge,
    RateLimited,
    UnsupportedVersion,
    NotJoined,
    AlreadyJoined,
    InvalidRoom,
    InvalidName,
    RoomNotFound,
    ConferenceFull,
    ServerFull,
    NegotiationFailed,
    MediaFailed,
    ServerShuttingDown,
    Internal,
    NotAllowed,
    UnknownParticipant,
    RoomLocked,
    PasswordRequired,
    PasswordWrong,
    TooManyAttempts,
    Barred,
    Denied,
    Removed,
    ConferenceEnded,
    /// A moderator's `admit` into a conference without a free seat (the knock stays).
    NoFreeSeat,
    Token(TokenError),
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadMessage => "bad-message",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::UnsupportedVersion => "unsupported-version",
            ErrorCode::NotJoined => "not-joined",
            ErrorCode::AlreadyJoined => "already-joined",
            ErrorCode::InvalidRoom => "invalid-room",
            ErrorCode::InvalidName => "invalid-name",
            ErrorCode::RoomNotFound => "room-not-found",
            ErrorCode::ConferenceFull => "conference-full",
            ErrorCode::ServerFull => "server-full",
            ErrorCode::NegotiationFailed => "negotiation-failed",
            ErrorCode::MediaFailed => "media-failed",
            ErrorCode::ServerShuttingDown => "server-shutting-down",
            ErrorCode::Internal => "internal",
            ErrorCode::NotAllowed => "not-allowed",
            ErrorCode::UnknownParticipant => "unknown-participant",
            ErrorCode::RoomLocked => "room-locked",
            ErrorCode::PasswordRequired => "password-required",
            ErrorCode::PasswordWrong => "password-wrong",
            ErrorCode::TooManyAttempts => "too-many-attempts",
            ErrorCode::Barred => "barred",
            ErrorCode::Denied => "denied",
            ErrorCode::Removed => "removed",
            ErrorCode::ConferenceEnded => "conference-ended",
            ErrorCode::NoFreeSeat => "no-free-seat",
            ErrorCode::Token(e) => e.code(),
        }
    }

    /// Whether the server closes the connection after sending this error.
    pub fn closes(self) -> bool {
        matches!(
            self,
            ErrorCode::UnsupportedVersion
                | ErrorCode::InvalidRoom
                | ErrorCode::RoomNotFound
                | ErrorCode::ConferenceFull
                | ErrorCode::ServerFull
                | ErrorCode::MediaFailed
                | ErrorCode::ServerShuttingDown
                | ErrorCode::Internal
                | ErrorCode::RoomLocked
                | ErrorCode::PasswordRequired
                | ErrorCode::PasswordWrong
                | ErrorCode::TooManyAttempts
                | ErrorCode::Barred
                | ErrorCode::Denied
                | ErrorCode::Removed
                | ErrorCode::ConferenceEnded
                | ErrorCode::Token(_)
        )
    }
}

/// A refused message: the code for the client and an English explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests;
