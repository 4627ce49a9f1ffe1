//! Client messages: their wire form ([`ClientMessage`], which simulated clients also send) and
//! their validation into [`Inbound`]. Nothing here trusts a size, a count or an identifier the
//! client sent before checking it.

use serde::{Deserialize, Serialize};

use super::{
    ErrorCode, MAX_CANDIDATE_BYTES, MAX_CHAT_CHARS, MAX_MESSAGE_BYTES, MAX_NAME_CHARS,
    MAX_PASSWORD_CHARS, MAX_SDP_BYTES, MAX_TILE_HEIGHT, MAX_VIDEO_STREAMS, PROTOCOL_VERSION,
    ProtocolError,
};
use crate::focus::{Action, MediaKind, RoomName};
use crate::ids::ParticipantId;
use crate::privacy::pii::{DisplayName, Secret};
use crate::sfu::{ClientCandidate, ClientSignal};
use crate::signalling::jwt::MAX_TOKEN_BYTES;

/// The wire form of client messages: what [`parse`] reads, and what a simulated client writes.
#[derive(Debug, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ClientMessage {
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
        #[serde(default, rename = "usernameFragment", skip_serializing)]
        username_fragment: Option<serde::de::IgnoredAny>,
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
        kind: MediaKindName,
    },
    MuteParticipant {
        id: String,
        kind: MediaKindName,
    },
    AllowUnmute {
        id: String,
        kind: MediaKindName,
    },
    LockUnmute {
        kind: MediaKindName,
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

/// `audio` or `video`, as the wire says it.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKindName {
    Audio,
    Video,
}

impl From<MediaKindName> for MediaKind {
    fn from(kind: MediaKindName) -> Self {
        match kind {
            MediaKindName::Audio => MediaKind::Audio,
            MediaKindName::Video => MediaKind::Video,
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
    /// For the participant's media connection: SDP, candidates, and what the client shows of
    /// each video stream (for the SFU's layer choice). The focus passes it on unread.
    Signal(ClientSignal),
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
    let wire: ClientMessage = serde_json::from_str(text).map_err(|e| {
        // serde's message names the offending field or type and may quote the value that did
        // not fit: it goes back to the client that sent it, and is never logged.
        ProtocolError::new(ErrorCode::BadMessage, e.to_string())
    })?;
    Ok(match wire {
        ClientMessage::Join {
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
        ClientMessage::Offer { sdp } => Inbound::Signal(ClientSignal::Offer(checked_sdp(sdp)?)),
        ClientMessage::Answer { sdp } => Inbound::Signal(ClientSignal::Answer(checked_sdp(sdp)?)),
        ClientMessage::Candidate {
            candidate,
            sdp_mid,
            sdp_mline_index,
            username_fragment: _,
        } => {
            let too_long = candidate.len() > MAX_CANDIDATE_BYTES
                || sdp_mid.as_ref().is_some_and(|m| m.len() > 64);
            if too_long || candidate.contains(['\r', '\n']) {
                return Err(ProtocolError::new(
                    ErrorCode::BadMessage,
                    "the candidate is malformed or too long",
                ));
            }
            Inbound::Signal(ClientSignal::Candidate(ClientCandidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
            }))
        }
        ClientMessage::Mute {
            audio_muted,
            video_muted,
        } => Inbound::Act(Action::SetMute {
            audio_muted,
            video_muted,
        }),
        ClientMessage::ReceiveVideo { heights, last_n } => {
            if heights.len() > MAX_VIDEO_STREAMS
                || heights.keys().any(|k| k.is_empty() || k.len() > 80)
                || heights.values().any(|h| *h > MAX_TILE_HEIGHT)
                || last_n.is_some_and(|n| n as usize > MAX_VIDEO_STREAMS)
            {
                return Err(bad(
                    "receive-video: at most 200 streams, heights 0 to 4320, lastN up to 200",
                ));
            }
            Inbound::Signal(ClientSignal::ReceiveVideo {
                heights: heights.into_iter().map(|(k, h)| (k, h as u16)).collect(),
                last_n: last_n.map(|n| n as usize),
            })
        }
        ClientMessage::Leave => Inbound::Leave,
        ClientMessage::Hand { raised } => Inbound::Act(Action::Hand { raised }),
        ClientMessage::RequestUnmute { kind } => Inbound::Act(Action::RequestUnmute(kind.into())),
        ClientMessage::MuteParticipant { id, kind } => Inbound::Act(Action::MuteParticipant {
            target: participant(&id),
            kind: kind.into(),
        }),
        ClientMessage::AllowUnmute { id, kind } => Inbound::Act(Action::AllowUnmute {
            target: participant(&id),
            kind: kind.into(),
        }),
        ClientMessage::LockUnmute { kind, locked } => Inbound::Act(Action::LockUnmute {
            kind: kind.into(),
            locked,
        }),
        ClientMessage::Remove { id, bar } => Inbound::Act(Action::Remove {
            target: participant(&id),
            bar,
        }),
        ClientMessage::Promote { id } => Inbound::Act(Action::Promote(participant(&id))),
        ClientMessage::LockRoom { locked } => Inbound::Act(Action::LockRoom(locked)),
        ClientMessage::SetPassword { password } => Inbound::Act(Action::SetPassword(
            password.map(checked_password).transpose()?,
        )),
        ClientMessage::SetLobby { enabled } => Inbound::Act(Action::SetLobby(enabled)),
        ClientMessage::Admit { id } => Inbound::Act(Action::Admit(participant(&id))),
        ClientMessage::Deny { id } => Inbound::Act(Action::Deny(participant(&id))),
        ClientMessage::EndConference => Inbound::Act(Action::EndConference),
        ClientMessage::Chat { text, to } => {
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
        ClientMessage::Screen { active } => Inbound::Act(Action::Screen { active }),
        ClientMessage::RestartMedia => Inbound::Act(Action::RestartMedia),
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
