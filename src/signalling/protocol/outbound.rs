//! Server messages: what the focus and the SFU say, in the protocol's words. The one place where
//! a focus event, a refused join or a refused action becomes a message for the client.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{ErrorCode, PROTOCOL_VERSION, ProtocolError};
use crate::focus::{
    ActionError, EndReason, JoinError, Joined, LeaveReason, ParticipantEvent, ParticipantInfo,
    Permissions, RoomState,
};
use crate::privacy::pii::DisplayName;
use crate::sfu::PeerSignal;

/// A participant as other clients see them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantView {
    pub id: String,
    pub name: String,
    pub role: Cow<'static, str>,
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
            role: p.role.as_str().into(),
            audio_muted: p.audio_muted,
            video_muted: p.video_muted,
            hand_raised: p.hand,
            screen_sharing: p.screen,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
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

#[derive(Debug, Serialize, Deserialize)]
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

#[derive(Debug, Serialize, Deserialize)]
pub struct LobbyView {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RequestView {
    pub id: String,
    pub kind: Cow<'static, str>,
}

/// A TURN server as a browser's `RTCIceServer` takes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IceServerView {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

impl Outbound {
    /// `joined`, from what the focus says, with the TURN servers this participant may use.
    pub fn joined(j: &Joined, ice_servers: Vec<IceServerView>) -> Self {
        Outbound::Joined {
            version: PROTOCOL_VERSION,
            conference: j.conference.to_string(),
            you: j.you.to_string(),
            resume_token: j.resume_token.expose().to_string(),
            resumed: j.resumed,
            role: j.role.as_str().into(),
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
                    kind: kind.as_str().into(),
                })
                .collect(),
            dominant_speaker: j.dominant_speaker.as_ref().map(ToString::to_string),
            ice_servers,
        }
    }
}

/// Messages from the server.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Outbound {
    #[serde(rename_all = "camelCase")]
    Joined {
        version: u32,
        conference: String,
        you: String,
        resume_token: String,
        resumed: bool,
        role: Cow<'static, str>,
        permissions: PermissionsView,
        room: RoomView,
        participants: Vec<ParticipantView>,
        lobby: Vec<LobbyView>,
        unmute_requests: Vec<RequestView>,
        dominant_speaker: Option<String>,
        ice_servers: Vec<IceServerView>,
    },
    Waiting {
        reason: Cow<'static, str>,
    },
    Role {
        id: String,
        role: Cow<'static, str>,
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
        kind: Cow<'static, str>,
    },
    UnmuteRequestDone {
        id: String,
        kind: Cow<'static, str>,
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
        code: Cow<'static, str>,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
}

impl Outbound {
    pub fn error(error: &ProtocolError) -> Self {
        Outbound::Error {
            code: error.code.as_str().into(),
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

/// What a focus event means for the client in the conference.
pub enum Delivery {
    /// A message to send.
    Send(Outbound),
    /// Nothing to say (the event is the session's own business).
    Nothing,
    /// The session is over: tell the client why, and leave for this reason.
    Ends(Ending),
}

/// Why a session ends, for the client and for the focus.
pub struct Ending {
    pub error: ProtocolError,
    pub leave: LeaveReason,
}

impl From<EndReason> for Ending {
    fn from(reason: EndReason) -> Self {
        let (code, text, leave) = match reason {
            EndReason::MediaFailed => (
                ErrorCode::MediaFailed,
                "the media connection was lost",
                LeaveReason::MediaFailed,
            ),
            EndReason::ServerShutdown => (
                ErrorCode::ServerShuttingDown,
                "the server is stopping",
                LeaveReason::ServerShutdown,
            ),
            EndReason::Removed => (
                ErrorCode::Removed,
                "a moderator removed you from the conference",
                LeaveReason::Removed,
            ),
            EndReason::Denied => (
                ErrorCode::Denied,
                "a moderator did not let you in",
                LeaveReason::Left,
            ),
            EndReason::ConferenceEnded => (
                ErrorCode::ConferenceEnded,
                "the conference was ended",
                LeaveReason::ConferenceEnded,
            ),
            EndReason::ConferenceFull => (
                ErrorCode::ConferenceFull,
                "the conference is full",
                LeaveReason::Left,
            ),
        };
        Self {
            error: ProtocolError::new(code, text),
            leave,
        }
    }
}

impl From<ParticipantEvent> for Delivery {
    fn from(event: ParticipantEvent) -> Self {
        Delivery::Send(match event {
            ParticipantEvent::Joined(info) => Outbound::ParticipantJoined {
                participant: ParticipantView::from(&info),
            },
            ParticipantEvent::Left(id) => Outbound::ParticipantLeft { id: id.to_string() },
            ParticipantEvent::Mute {
                id,
                audio_muted,
                video_muted,
            } => Outbound::Mute {
                id: id.to_string(),
                audio_muted,
                video_muted,
            },
            ParticipantEvent::Role { id, role } => Outbound::Role {
                id: id.to_string(),
                role: role.as_str().into(),
            },
            ParticipantEvent::Permissions(p) => Outbound::Permissions(p.into()),
            ParticipantEvent::RoomState(r) => Outbound::RoomState(r.into()),
            ParticipantEvent::Hand { id, order } => Outbound::Hand {
                id: id.to_string(),
                raised: order.is_some(),
                order,
            },
            ParticipantEvent::LobbyRequest { id, name } => Outbound::LobbyRequest {
                id: id.to_string(),
                name: DisplayName::as_str(&name).to_string(),
            },
            ParticipantEvent::LobbyLeft(id) => Outbound::LobbyLeft { id: id.to_string() },
            ParticipantEvent::Chat {
                from,
                text,
                private,
            } => Outbound::Chat {
                from: from.to_string(),
                text,
                private,
            },
            ParticipantEvent::Screen { id, active } => Outbound::Screen {
                id: id.to_string(),
                active,
            },
            ParticipantEvent::DominantSpeaker(id) => Outbound::DominantSpeaker {
                id: id.as_ref().map(ToString::to_string),
            },
            ParticipantEvent::UnmuteRequest { id, kind } => Outbound::UnmuteRequest {
                id: id.to_string(),
                kind: kind.as_str().into(),
            },
            ParticipantEvent::UnmuteRequestDone { id, kind } => Outbound::UnmuteRequestDone {
                id: id.to_string(),
                kind: kind.as_str().into(),
            },
            ParticipantEvent::Media(signal) => Outbound::from(signal),
            ParticipantEvent::Admitted(_) => return Delivery::Nothing,
            ParticipantEvent::Ended(reason) => return Delivery::Ends(reason.into()),
        })
    }
}

impl From<PeerSignal> for Outbound {
    fn from(signal: PeerSignal) -> Self {
        match signal {
            PeerSignal::Offer(sdp) => Outbound::Offer { sdp },
            PeerSignal::Answer(sdp) => Outbound::Answer { sdp },
            PeerSignal::SendVideo { max_height } => Outbound::SendVideo { max_height },
            PeerSignal::NegotiationFailed(reason) => {
                Outbound::error(&ProtocolError::new(ErrorCode::NegotiationFailed, reason))
            }
        }
    }
}

impl From<JoinError> for ErrorCode {
    fn from(e: JoinError) -> Self {
        match e {
            JoinError::RoomNotFound => ErrorCode::RoomNotFound,
            JoinError::ConferenceFull => ErrorCode::ConferenceFull,
            JoinError::ServerFull => ErrorCode::ServerFull,
            JoinError::Unavailable => ErrorCode::ServerShuttingDown,
            JoinError::RoomLocked => ErrorCode::RoomLocked,
            JoinError::PasswordRequired => ErrorCode::PasswordRequired,
            JoinError::PasswordWrong => ErrorCode::PasswordWrong,
            JoinError::Barred => ErrorCode::Barred,
        }
    }
}

impl From<ActionError> for ProtocolError {
    fn from(e: ActionError) -> Self {
        let code = match e {
            ActionError::NotAllowed => ErrorCode::NotAllowed,
            ActionError::UnknownParticipant => ErrorCode::UnknownParticipant,
            ActionError::ConferenceFull => ErrorCode::NoFreeSeat,
        };
        ProtocolError::new(code, e.to_string())
    }
}
