//! The signalling protocol, version 1 (docs/protocol.md): message types and their validation.
//!
//! Pure: text in, a validated [`Inbound`] or a [`ProtocolError`] out; server messages to JSON.
//! Everything a client sends passes through [`parse`], which bounds every size and rejects
//! unknown types and fields, so the rest of the server only sees well-formed requests.

use serde::{Deserialize, Serialize};

use super::jwt::{MAX_TOKEN_BYTES, TokenError};
use crate::focus::{Action, Joined, MediaKind, ParticipantInfo, Permissions, RoomName, RoomState};
use crate::ids::ParticipantId;
use crate::privacy::pii::{DisplayName, Secret};
use crate::sfu::ClientCandidate;

pub const PROTOCOL_VERSION: u32 = 1;
/// Larger messages are answered with `too-large`. An answer in a room of fifty, with an m-line
/// per received track, is about 100 KiB.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Larger frames close the connection (enforced by the WebSocket layer).
pub const MAX_FRAME_BYTES: usize = 512 * 1024;
pub const MAX_SDP_BYTES: usize = 200 * 1024;
pub const MAX_CANDIDATE_BYTES: usize = 1024;
/// The most video streams a `receive-video` message may describe.
const MAX_VIDEO_STREAMS: usize = 200;
/// The tallest tile a client may report (8K).
const MAX_TILE_HEIGHT: u32 = 4320;
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
        #[serde(default)]
        jwt: Option<String>,
        #[serde(default)]
        password: Option<String>,
        #[serde(default)]
        rejoin_key: Option<String>,
        #[serde(default)]
        resume: Option<String>,
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
    #[serde(rename_all = "camelCase")]
    ReceiveVideo {
        #[serde(default)]
        heights: std::collections::HashMap<String, u32>,
        #[serde(default)]
        last_n: Option<u32>,
    },
    Leave,
    Hand {
        raised: bool,
    },
    RequestUnmute {
        kind: Kind,
    },
    MuteParticipant {
        id: String,
        kind: Kind,
    },
    AllowUnmute {
        id: String,
        kind: Kind,
    },
    LockUnmute {
        kind: Kind,
        locked: bool,
    },
    Remove {
        id: String,
        #[serde(default)]
        bar: bool,
    },
    Promote {
        id: String,
    },
    LockRoom {
        locked: bool,
    },
    SetPassword {
        password: Option<String>,
    },
    SetLobby {
        enabled: bool,
    },
    Admit {
        id: String,
    },
    Deny {
        id: String,
    },
    EndConference,
    Chat {
        text: String,
        #[serde(default)]
        to: Option<String>,
    },
    Screen {
        active: bool,
    },
    RestartMedia,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Audio,
    Video,
}

impl From<Kind> for MediaKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Audio => MediaKind::Audio,
            Kind::Video => MediaKind::Video,
        }
    }
}

/// A validated `join`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMessage {
    pub room: RoomName,
    pub name: DisplayName,
    pub audio_muted: bool,
    pub video_muted: bool,
    pub jwt: Option<Secret>,
    pub password: Option<Secret>,
    pub rejoin_key: Option<String>,
    pub resume: Option<Secret>,
}

/// A validated client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Join(Box<JoinMessage>),
    Offer(String),
    Answer(String),
    Candidate(ClientCandidate),
    /// What the client shows of each video stream, for the SFU's layer choice.
    ReceiveVideo {
        heights: std::collections::HashMap<String, u16>,
        last_n: Option<usize>,
    },
    Leave,
    /// Mute state, hands, requests and moderation: everything the focus decides on.
    Act(Action),
}

fn participant(id: &str) -> ParticipantId {
    // An id that cannot exist names nobody; the focus answers `unknown-participant`.
    ParticipantId::parse(id).unwrap_or_else(ParticipantId::random)
}

fn bad(message: &str) -> ProtocolError {
    ProtocolError::new(ErrorCode::BadMessage, message)
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
            jwt,
            password,
            rejoin_key,
            resume,
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
            if jwt.as_ref().is_some_and(|t| t.len() > MAX_TOKEN_BYTES) {
                return Err(ProtocolError::new(
                    ErrorCode::TooLarge,
                    "the token is too long",
                ));
            }
            let password = password.map(checked_password).transpose()?;
            if let Some(key) = &rejoin_key {
                let valid = (16..=64).contains(&key.len())
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !valid {
                    return Err(bad("rejoinKey is 16 to 64 characters of A-Z a-z 0-9 - _"));
                }
            }
            Inbound::Join(Box::new(JoinMessage {
                room,
                name,
                audio_muted,
                video_muted,
                jwt: jwt.filter(|t| !t.is_empty()).map(Secret::new),
                password,
                rejoin_key,
                resume: resume
                    .filter(|t| !t.is_empty() && t.len() <= 64)
                    .map(Secret::new),
            }))
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
        } => Inbound::Act(Action::SetMute {
            audio_muted,
            video_muted,
        }),
        Wire::ReceiveVideo { heights, last_n } => {
            if heights.len() > MAX_VIDEO_STREAMS
                || heights.keys().any(|k| k.is_empty() || k.len() > 80)
                || heights.values().any(|h| *h > MAX_TILE_HEIGHT)
                || last_n.is_some_and(|n| n as usize > MAX_VIDEO_STREAMS)
            {
                return Err(bad(
                    "receive-video: at most 200 streams, heights 0 to 4320, lastN up to 200",
                ));
            }
            Inbound::ReceiveVideo {
                heights: heights.into_iter().map(|(k, h)| (k, h as u16)).collect(),
                last_n: last_n.map(|n| n as usize),
            }
        }
        Wire::Leave => Inbound::Leave,
        Wire::Hand { raised } => Inbound::Act(Action::Hand { raised }),
        Wire::RequestUnmute { kind } => Inbound::Act(Action::RequestUnmute(kind.into())),
        Wire::MuteParticipant { id, kind } => Inbound::Act(Action::MuteParticipant {
            target: participant(&id),
            kind: kind.into(),
        }),
        Wire::AllowUnmute { id, kind } => Inbound::Act(Action::AllowUnmute {
            target: participant(&id),
            kind: kind.into(),
        }),
        Wire::LockUnmute { kind, locked } => Inbound::Act(Action::LockUnmute {
            kind: kind.into(),
            locked,
        }),
        Wire::Remove { id, bar } => Inbound::Act(Action::Remove {
            target: participant(&id),
            bar,
        }),
        Wire::Promote { id } => Inbound::Act(Action::Promote(participant(&id))),
        Wire::LockRoom { locked } => Inbound::Act(Action::LockRoom(locked)),
        Wire::SetPassword { password } => Inbound::Act(Action::SetPassword(
            password.map(checked_password).transpose()?,
        )),
        Wire::SetLobby { enabled } => Inbound::Act(Action::SetLobby(enabled)),
        Wire::Admit { id } => Inbound::Act(Action::Admit(participant(&id))),
        Wire::Deny { id } => Inbound::Act(Action::Deny(participant(&id))),
        Wire::EndConference => Inbound::Act(Action::EndConference),
        Wire::Chat { text, to } => {
            let trimmed = text.trim();
            let count = trimmed.chars().count();
            if count == 0 || count > MAX_CHAT_CHARS {
                return Err(bad("a chat message has 1 to 2000 characters"));
            }
            Inbound::Act(Action::Chat {
                text: trimmed.to_string(),
                to: to.as_deref().map(participant),
            })
        }
        Wire::Screen { active } => Inbound::Act(Action::Screen { active }),
        Wire::RestartMedia => Inbound::Act(Action::RestartMedia),
    })
}

fn checked_password(password: String) -> Result<Secret, ProtocolError> {
    let count = password.chars().count();
    if count == 0 || count > MAX_PASSWORD_CHARS || password.chars().any(char::is_control) {
        return Err(bad("a room password has 1 to 64 characters"));
    }
    Ok(Secret::new(password))
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
    pub role: &'static str,
    pub audio_muted: bool,
    pub video_muted: bool,
    pub hand_raised: Option<u64>,
    pub screen_sharing: bool,
}

impl From<&ParticipantInfo> for ParticipantView {
    fn from(p: &ParticipantInfo) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name.as_str().to_string(),
            role: p.role.as_str(),
            audio_muted: p.audio_muted,
            video_muted: p.video_muted,
            hand_raised: p.hand,
            screen_sharing: p.screen,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PermissionsView {
    pub audio: bool,
    pub video: bool,
}

impl From<Permissions> for PermissionsView {
    fn from(p: Permissions) -> Self {
        Self {
            audio: p.audio,
            video: p.video,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    pub locked: bool,
    pub lobby: bool,
    pub password_set: bool,
    pub unmute_locked: PermissionsView,
}

impl From<RoomState> for RoomView {
    fn from(r: RoomState) -> Self {
        Self {
            locked: r.locked,
            lobby: r.lobby,
            password_set: r.password_set,
            unmute_locked: PermissionsView {
                audio: r.unmute_locked[0],
                video: r.unmute_locked[1],
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LobbyView {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct RequestView {
    pub id: String,
    pub kind: &'static str,
}

impl Outbound {
    /// `joined`, from what the focus says.
    pub fn joined(j: &Joined) -> Self {
        Outbound::Joined {
            version: PROTOCOL_VERSION,
            conference: j.conference.to_string(),
            you: j.you.to_string(),
            resume_token: j.resume_token.expose().to_string(),
            resumed: j.resumed,
            role: j.role.as_str(),
            permissions: j.permissions.into(),
            room: j.room.into(),
            participants: j.participants.iter().map(ParticipantView::from).collect(),
            lobby: j
                .lobby
                .iter()
                .map(|(id, name)| LobbyView {
                    id: id.to_string(),
                    name: name.as_str().to_string(),
                })
                .collect(),
            unmute_requests: j
                .unmute_requests
                .iter()
                .map(|(id, kind)| RequestView {
                    id: id.to_string(),
                    kind: kind.as_str(),
                })
                .collect(),
            dominant_speaker: j.dominant_speaker.as_ref().map(ToString::to_string),
        }
    }
}

/// Messages from the server.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Outbound {
    #[serde(rename_all = "camelCase")]
    Joined {
        version: u32,
        conference: String,
        you: String,
        resume_token: String,
        resumed: bool,
        role: &'static str,
        permissions: PermissionsView,
        room: RoomView,
        participants: Vec<ParticipantView>,
        lobby: Vec<LobbyView>,
        unmute_requests: Vec<RequestView>,
        dominant_speaker: Option<String>,
    },
    Waiting {
        reason: &'static str,
    },
    Role {
        id: String,
        role: &'static str,
    },
    Permissions(PermissionsView),
    RoomState(RoomView),
    Hand {
        id: String,
        raised: bool,
        order: Option<u64>,
    },
    LobbyRequest {
        id: String,
        name: String,
    },
    LobbyLeft {
        id: String,
    },
    Chat {
        from: String,
        text: String,
        private: bool,
    },
    Screen {
        id: String,
        active: bool,
    },
    DominantSpeaker {
        id: Option<String>,
    },
    UnmuteRequest {
        id: String,
        kind: &'static str,
    },
    UnmuteRequestDone {
        id: String,
        kind: &'static str,
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
    /// The camera layers the client needs to send: those up to the first at least `max_height`
    /// lines tall; 0 pauses them all, `null` sends every layer.
    #[serde(rename_all = "camelCase")]
    SendVideo {
        max_height: Option<u16>,
    },
    #[serde(rename_all = "camelCase")]
    Error {
        code: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
}

impl Outbound {
    pub fn error(error: &ProtocolError) -> Self {
        Outbound::Error {
            code: error.code.as_str(),
            message: error.message.clone(),
            retry_after: None,
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
            Inbound::Join(j) => {
                assert_eq!(j.room.as_str(), "maths-3b");
                assert_eq!(j.name.as_str(), "Anna de Vries");
                assert!(!j.audio_muted);
                assert!(j.video_muted);
                assert_eq!(j.jwt, None);
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
        let pause = Outbound::SendVideo {
            max_height: Some(0),
        };
        assert_eq!(pause.to_json(), r#"{"type":"send-video","maxHeight":0}"#);
        let all = Outbound::SendVideo { max_height: None };
        assert_eq!(all.to_json(), r#"{"type":"send-video","maxHeight":null}"#);
    }

    #[test]
    fn moderation_messages_are_validated() {
        let id = ParticipantId::random();
        let m = parse(&format!(
            r#"{{"type":"mute-participant","id":"{id}","kind":"audio"}}"#
        ))
        .unwrap();
        assert_eq!(
            m,
            Inbound::Act(Action::MuteParticipant {
                target: id.clone(),
                kind: MediaKind::Audio
            })
        );
        assert_eq!(
            code(r#"{"type":"mute-participant","id":"x","kind":"smell"}"#),
            ErrorCode::BadMessage
        );
        assert!(matches!(
            parse(r#"{"type":"set-password","password":null}"#).unwrap(),
            Inbound::Act(Action::SetPassword(None))
        ));
        assert_eq!(
            code(r#"{"type":"set-password","password":""}"#),
            ErrorCode::BadMessage
        );
        assert!(matches!(
            parse(r#"{"type":"remove","id":"nobody"}"#).unwrap(),
            Inbound::Act(Action::Remove { bar: false, .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"end-conference"}"#).unwrap(),
            Inbound::Act(Action::EndConference)
        ));
        assert_eq!(
            code(r#"{"type":"join","version":1,"room":"a","name":"x","rejoinKey":"short"}"#),
            ErrorCode::BadMessage
        );
        let with_everything = parse(
            r#"{"type":"join","version":1,"room":"a","name":"x","jwt":"e.y.z","password":"pw","rejoinKey":"abcdefghijklmnop"}"#,
        )
        .unwrap();
        let Inbound::Join(j) = with_everything else {
            panic!()
        };
        assert_eq!(j.password.as_ref().map(|p| p.expose()), Some("pw"));
        assert_eq!(format!("{:?}", j.password), "Some(<secret>)");
        assert_eq!(j.rejoin_key.as_deref(), Some("abcdefghijklmnop"));
    }

    #[test]
    fn chat_is_bounded_and_addressed() {
        let to = ParticipantId::random();
        assert_eq!(
            parse(&format!(
                r#"{{"type":"chat","text":"  hoi  ","to":"{to}"}}"#
            ))
            .unwrap(),
            Inbound::Act(Action::Chat {
                text: "hoi".into(),
                to: Some(to)
            })
        );
        assert_eq!(
            code(r#"{"type":"chat","text":"   "}"#),
            ErrorCode::BadMessage
        );
        let long = "x".repeat(MAX_CHAT_CHARS + 1);
        assert_eq!(
            code(&format!(r#"{{"type":"chat","text":"{long}"}}"#)),
            ErrorCode::BadMessage
        );
        assert!(matches!(
            parse(r#"{"type":"restart-media"}"#).unwrap(),
            Inbound::Act(Action::RestartMedia)
        ));
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
