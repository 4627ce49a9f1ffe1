//! The signalling protocol, version 1 (docs/protocol.md): message types and their validation.
//!
//! Pure: text in, a validated [`Inbound`] or a [`ProtocolError`] out; server messages to JSON.
//! Everything a client sends passes through [`parse`], which bounds every size and rejects
//! unknown types and fields, so the rest of the server only sees well-formed requests.

use serde::{Deserialize, Serialize};

use crate::focus::{ParticipantInfo, RoomName};
use crate::privacy::pii::DisplayName;
use crate::sfu::ClientCandidate;

pub const PROTOCOL_VERSION: u32 = 1;
/// Larger messages are answered with `too-large`.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Larger frames close the connection (enforced by the WebSocket layer).
pub const MAX_FRAME_BYTES: usize = 256 * 1024;
pub const MAX_SDP_BYTES: usize = 32 * 1024;
pub const MAX_CANDIDATE_BYTES: usize = 1024;
pub const MAX_NAME_CHARS: usize = 64;

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
    NegotiationFailed,
    MediaFailed,
    ServerShuttingDown,
    Internal,
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
            ErrorCode::NegotiationFailed => "negotiation-failed",
            ErrorCode::MediaFailed => "media-failed",
            ErrorCode::ServerShuttingDown => "server-shutting-down",
            ErrorCode::Internal => "internal",
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
                | ErrorCode::MediaFailed
                | ErrorCode::ServerShuttingDown
                | ErrorCode::Internal
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

/// The wire form of client messages.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
enum Wire {
    #[serde(rename_all = "camelCase")]
    Join {
        version: u32,
        room: String,
        name: String,
        #[serde(default)]
        audio_muted: bool,
        #[serde(default)]
        video_muted: bool,
    },
    Offer {
        sdp: String,
    },
    Answer {
        sdp: String,
    },
    #[serde(rename_all = "camelCase")]
    Candidate {
        candidate: String,
        #[serde(default)]
        sdp_mid: Option<String>,
        #[serde(default, rename = "sdpMLineIndex")]
        sdp_mline_index: Option<u16>,
        /// Sent by browsers; the server does not need it.
        #[serde(default, rename = "usernameFragment")]
        _username_fragment: Option<serde::de::IgnoredAny>,
    },
    #[serde(rename_all = "camelCase")]
    Mute {
        audio_muted: bool,
        video_muted: bool,
    },
    Leave,
}

/// A validated client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Join {
        room: RoomName,
        name: DisplayName,
        audio_muted: bool,
        video_muted: bool,
    },
    Offer(String),
    Answer(String),
    Candidate(ClientCandidate),
    Mute {
        audio_muted: bool,
        video_muted: bool,
    },
    Leave,
}

/// Validates one text message from a client.
pub fn parse(text: &str) -> Result<Inbound, ProtocolError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::new(
            ErrorCode::TooLarge,
            format!("messages are at most {MAX_MESSAGE_BYTES} bytes"),
        ));
    }
    let wire: Wire = serde_json::from_str(text).map_err(|e| {
        // serde's message names the offending type or field but never echoes values.
        ProtocolError::new(ErrorCode::BadMessage, e.to_string())
    })?;
    Ok(match wire {
        Wire::Join {
            version,
            room,
            name,
            audio_muted,
            video_muted,
        } => {
            if version != PROTOCOL_VERSION {
                return Err(ProtocolError::new(
                    ErrorCode::UnsupportedVersion,
                    format!("this server speaks protocol version {PROTOCOL_VERSION}"),
                ));
            }
            let room = RoomName::parse(&room)
                .map_err(|e| ProtocolError::new(ErrorCode::InvalidRoom, e.to_string()))?;
            let name = display_name(&name)?;
            Inbound::Join {
                room,
                name,
                audio_muted,
                video_muted,
            }
        }
        Wire::Offer { sdp } => Inbound::Offer(checked_sdp(sdp)?),
        Wire::Answer { sdp } => Inbound::Answer(checked_sdp(sdp)?),
        Wire::Candidate {
            candidate,
            sdp_mid,
            sdp_mline_index,
            _username_fragment: _,
        } => {
            let too_long = candidate.len() > MAX_CANDIDATE_BYTES
                || sdp_mid.as_ref().is_some_and(|m| m.len() > 64);
            if too_long || candidate.contains(['\r', '\n']) {
                return Err(ProtocolError::new(
                    ErrorCode::BadMessage,
                    "the candidate is malformed or too long",
                ));
            }
            Inbound::Candidate(ClientCandidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
            })
        }
        Wire::Mute {
            audio_muted,
            video_muted,
        } => Inbound::Mute {
            audio_muted,
            video_muted,
        },
        Wire::Leave => Inbound::Leave,
    })
}

fn checked_sdp(sdp: String) -> Result<String, ProtocolError> {
    if sdp.len() > MAX_SDP_BYTES {
        return Err(ProtocolError::new(
            ErrorCode::TooLarge,
            format!("SDP is at most {MAX_SDP_BYTES} bytes"),
        ));
    }
    if !sdp.starts_with("v=0") {
        return Err(ProtocolError::new(
            ErrorCode::BadMessage,
            "the SDP does not start with v=0",
        ));
    }
    Ok(sdp)
}

/// A display name: trimmed, 1–64 characters, no control characters.
pub fn display_name(input: &str) -> Result<DisplayName, ProtocolError> {
    let name = input.trim();
    let count = name.chars().count();
    if count == 0 || count > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ProtocolError::new(
            ErrorCode::InvalidName,
            format!(
                "a display name has 1 to {MAX_NAME_CHARS} characters and no control characters"
            ),
        ));
    }
    Ok(DisplayName::new(name.to_string()))
}

/// A participant as other clients see them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantView {
    pub id: String,
    pub name: String,
    pub audio_muted: bool,
    pub video_muted: bool,
}

impl From<&ParticipantInfo> for ParticipantView {
    fn from(p: &ParticipantInfo) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name.as_str().to_string(),
            audio_muted: p.audio_muted,
            video_muted: p.video_muted,
        }
    }
}

/// Messages from the server.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Outbound {
    Joined {
        version: u32,
        conference: String,
        you: String,
        participants: Vec<ParticipantView>,
    },
    ParticipantJoined {
        participant: ParticipantView,
    },
    ParticipantLeft {
        id: String,
    },
    #[serde(rename_all = "camelCase")]
    Mute {
        id: String,
        audio_muted: bool,
        video_muted: bool,
    },
    Offer {
        sdp: String,
    },
    Answer {
        sdp: String,
    },
    Error {
        code: &'static str,
        message: String,
    },
}

impl Outbound {
    pub fn error(error: &ProtocolError) -> Self {
        Outbound::Error {
            code: error.code.as_str(),
            message: error.message.clone(),
        }
    }

    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"serialisation"}"#.into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        parse(text).unwrap_err().code
    }

    #[test]
    fn a_valid_join() {
        let m = parse(
            r#"{"type":"join","version":1,"room":"Maths-3B","name":"  Anna de Vries ","videoMuted":true}"#,
        )
        .unwrap();
        match m {
            Inbound::Join {
                room,
                name,
                audio_muted,
                video_muted,
            } => {
                assert_eq!(room.as_str(), "maths-3b");
                assert_eq!(name.as_str(), "Anna de Vries");
                assert!(!audio_muted);
                assert!(video_muted);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_messages_are_named() {
        assert_eq!(code("not json"), ErrorCode::BadMessage);
        assert_eq!(code("[]"), ErrorCode::BadMessage);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::BadMessage);
        assert_eq!(code(r#"{"sdp":"v=0"}"#), ErrorCode::BadMessage);
        assert_eq!(
            code(r#"{"type":"offer","sdp":"v=0","extra":1}"#),
            ErrorCode::BadMessage,
            "unknown fields are errors"
        );
        assert_eq!(code(r#"{"type":"offer","sdp":5}"#), ErrorCode::BadMessage);
        assert_eq!(
            code(r#"{"type":"offer","sdp":"hello"}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"type":"mute","audioMuted":"yes","videoMuted":false}"#),
            ErrorCode::BadMessage
        );
    }

    #[test]
    fn joins_are_checked() {
        assert_eq!(
            code(r#"{"type":"join","version":2,"room":"a","name":"x"}"#),
            ErrorCode::UnsupportedVersion
        );
        assert_eq!(
            code(r#"{"type":"join","version":1,"room":"../etc","name":"x"}"#),
            ErrorCode::InvalidRoom
        );
        assert_eq!(
            code(r#"{"type":"join","version":1,"room":"a","name":"   "}"#),
            ErrorCode::InvalidName
        );
        assert_eq!(
            code(r#"{"type":"join","version":1,"room":"a","name":"a\u0007b"}"#),
            ErrorCode::InvalidName
        );
        let long = "é".repeat(65);
        assert_eq!(
            code(&format!(
                r#"{{"type":"join","version":1,"room":"a","name":"{long}"}}"#
            )),
            ErrorCode::InvalidName
        );
        let ok = "é".repeat(64);
        assert!(
            parse(&format!(
                r#"{{"type":"join","version":1,"room":"a","name":"{ok}"}}"#
            ))
            .is_ok()
        );
    }

    #[test]
    fn sizes_are_bounded() {
        let big = format!(
            r#"{{"type":"offer","sdp":"v=0{}"}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(code(&big), ErrorCode::TooLarge);
        let big_sdp = format!(
            r#"{{"type":"offer","sdp":"v=0{}"}}"#,
            "x".repeat(MAX_SDP_BYTES)
        );
        assert_eq!(code(&big_sdp), ErrorCode::TooLarge);
        let big_candidate = format!(
            r#"{{"type":"candidate","candidate":"{}"}}"#,
            "x".repeat(MAX_CANDIDATE_BYTES + 1)
        );
        assert_eq!(code(&big_candidate), ErrorCode::BadMessage);
    }

    #[test]
    fn browser_candidates_are_accepted() {
        let m = parse(
            r#"{"type":"candidate","candidate":"candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}"#,
        )
        .unwrap();
        assert!(matches!(m, Inbound::Candidate(c) if c.sdp_mline_index == Some(0)));
        assert!(matches!(
            parse(r#"{"type":"candidate","candidate":""}"#).unwrap(),
            Inbound::Candidate(c) if c.candidate.is_empty()
        ));
    }

    #[test]
    fn server_messages_have_the_documented_shape() {
        let m = Outbound::Mute {
            id: "p1".into(),
            audio_muted: true,
            video_muted: false,
        };
        assert_eq!(
            m.to_json(),
            r#"{"type":"mute","id":"p1","audioMuted":true,"videoMuted":false}"#
        );
        let left = Outbound::ParticipantLeft { id: "p1".into() };
        assert_eq!(left.to_json(), r#"{"type":"participant-left","id":"p1"}"#);
        let e = Outbound::error(&ProtocolError::new(ErrorCode::RoomNotFound, "no"));
        assert_eq!(
            e.to_json(),
            r#"{"type":"error","code":"room-not-found","message":"no"}"#
        );
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let samples = [
            "",
            "{",
            "null",
            "1",
            "\"x\"",
            "{\"type\":null}",
            "{\"type\":\"join\"}",
            "{\"type\":\"join\",\"version\":-1}",
            "{\"type\":\"leave\",\"x\":[]}",
            "{\"type\":\"candidate\",\"candidate\":\"a\\r\\nb\"}",
        ];
        for s in samples {
            let _ = parse(s);
        }
    }
}
