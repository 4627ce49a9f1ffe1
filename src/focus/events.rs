//! The focus's vocabulary: requests it takes, what it tells participants, what it records, and the
//! effects its state machine asks the actor to carry out.

use super::room::RoomName;
use crate::ids::{ConferenceId, ParticipantId};
use crate::privacy::pii::{DisplayName, Secret};
use crate::sfu::{ClientSignal, PeerSignal};

/// A participant's role in a conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Moderator,
    Participant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Moderator => "moderator",
            Role::Participant => "participant",
        }
    }
}

/// Microphone or camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    pub const BOTH: [MediaKind; 2] = [MediaKind::Audio, MediaKind::Video];

    pub fn index(self) -> usize {
        match self {
            MediaKind::Audio => 0,
            MediaKind::Video => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// A participant as the others see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub id: ParticipantId,
    pub name: DisplayName,
    pub role: Role,
    /// As the others should show it: muted by themselves or by a moderator.
    pub audio_muted: bool,
    pub video_muted: bool,
    /// The order of a raised hand (lower is earlier), if raised.
    pub hand: Option<u64>,
    /// Sharing their screen.
    pub screen: bool,
}

/// The room's rules, as everyone in it sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomState {
    pub locked: bool,
    pub lobby: bool,
    pub password_set: bool,
    /// "Nobody may unmute until a moderator allows it", per kind.
    pub unmute_locked: [bool; 2],
}

/// Whether a participant may unmute, per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    pub audio: bool,
    pub video: bool,
}

/// Why a participant's session ends by the focus's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The media connection failed or its ICE consent expired.
    MediaFailed,
    /// The server is stopping.
    ServerShutdown,
    /// A moderator removed the participant.
    Removed,
    /// A moderator denied entry from the lobby.
    Denied,
    /// A moderator ended the conference (or it ended while the participant waited).
    ConferenceEnded,
    /// The doors opened while the participant waited, but every seat was taken.
    ConferenceFull,
}

/// What a participant's session is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParticipantEvent {
    /// A waiting participant was let in.
    Admitted(Box<Joined>),
    Joined(ParticipantInfo),
    Left(ParticipantId),
    Mute {
        id: ParticipantId,
        audio_muted: bool,
        video_muted: bool,
    },
    Role {
        id: ParticipantId,
        role: Role,
    },
    Permissions(Permissions),
    RoomState(RoomState),
    Hand {
        id: ParticipantId,
        order: Option<u64>,
    },
    LobbyRequest {
        id: ParticipantId,
        name: DisplayName,
    },
    LobbyLeft(ParticipantId),
    Chat {
        from: ParticipantId,
        text: String,
        private: bool,
    },
    Screen {
        id: ParticipantId,
        active: bool,
    },
    /// The participant now speaking; `None` when they left and nobody has taken over yet.
    DominantSpeaker(Option<ParticipantId>),
    UnmuteRequest {
        id: ParticipantId,
        kind: MediaKind,
    },
    UnmuteRequestDone {
        id: ParticipantId,
        kind: MediaKind,
    },
    Media(PeerSignal),
    /// The participant is out of the conference; the session should close.
    Ended(EndReason),
}

/// Why someone left, for the `focus` stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    Left,
    Disconnected,
    MediaFailed,
    ServerShutdown,
    Removed,
    ConferenceEnded,
}

impl LeaveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Disconnected => "disconnected",
            LeaveReason::MediaFailed => "media-failed",
            LeaveReason::ServerShutdown => "server-shutdown",
            LeaveReason::Removed => "removed",
            LeaveReason::ConferenceEnded => "conference-ended",
        }
    }
}

/// A request to join, as signalling has verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub room: RoomName,
    pub name: DisplayName,
    pub audio_muted: bool,
    pub video_muted: bool,
    /// A host, or the holder of a moderator link.
    pub moderator: bool,
    pub password: Option<Secret>,
    /// The browser's key for this room, to recognise a barred participant.
    pub rejoin_key: Option<String>,
    /// The resume token from an earlier `joined`: come back as the same participant.
    pub resume: Option<Secret>,
    /// Who a signed link says this is (its subject and name), to recognise a barred participant.
    pub token_identity: Option<String>,
}

/// What the joining participant is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub conference: ConferenceId,
    pub you: ParticipantId,
    /// Lets this participant come back as themselves after losing the connection.
    pub resume_token: Secret,
    /// This join continued an earlier one.
    pub resumed: bool,
    pub role: Role,
    pub permissions: Permissions,
    pub room: RoomState,
    pub participants: Vec<ParticipantInfo>,
    /// For moderators: who waits in the lobby.
    pub lobby: Vec<(ParticipantId, DisplayName)>,
    /// For moderators: open requests to unmute.
    pub unmute_requests: Vec<(ParticipantId, MediaKind)>,
    pub dominant_speaker: Option<ParticipantId>,
}

/// Why a participant waits instead of joining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    Host,
    Lobby,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::Host => "host",
            WaitReason::Lobby => "lobby",
        }
    }
}

/// The answer to a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    Joined(Box<Joined>),
    /// Not in yet: `id` is the participant's id once admitted (and its lobby id).
    Waiting {
        id: ParticipantId,
        reason: WaitReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("there is no room with that name")]
    RoomNotFound,
    #[error("the conference is full")]
    ConferenceFull,
    #[error("this server runs as many conferences as it may (limits.conferences)")]
    ServerFull,
    #[error("the server is not accepting participants")]
    Unavailable,
    #[error("the room is locked")]
    RoomLocked,
    #[error("the room has a password")]
    PasswordRequired,
    #[error("the password is wrong")]
    PasswordWrong,
    #[error("a moderator removed you from this conference")]
    Barred,
}

impl JoinError {
    pub fn as_str(self) -> &'static str {
        match self {
            JoinError::RoomNotFound => "room-not-found",
            JoinError::ConferenceFull => "conference-full",
            JoinError::ServerFull => "server-full",
            JoinError::Unavailable => "unavailable",
            JoinError::RoomLocked => "room-locked",
            JoinError::PasswordRequired => "password-required",
            JoinError::PasswordWrong => "password-wrong",
            JoinError::Barred => "barred",
        }
    }
}

/// What a participant asks of the conference, beyond media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Their own microphone and camera state.
    SetMute {
        audio_muted: bool,
        video_muted: bool,
    },
    Hand {
        raised: bool,
    },
    RequestUnmute(MediaKind),
    /// A chat message to everyone, or privately to one participant.
    Chat {
        text: String,
        to: Option<ParticipantId>,
    },
    /// Screen sharing started or stopped.
    Screen {
        active: bool,
    },
    /// The participant's media connection is to be rebuilt (ICE failed, or a new page state).
    RestartMedia,
    // Moderators only:
    MuteParticipant {
        target: ParticipantId,
        kind: MediaKind,
    },
    AllowUnmute {
        target: ParticipantId,
        kind: MediaKind,
    },
    LockUnmute {
        kind: MediaKind,
        locked: bool,
    },
    Remove {
        target: ParticipantId,
        bar: bool,
    },
    Promote(ParticipantId),
    LockRoom(bool),
    SetPassword(Option<Secret>),
    SetLobby(bool),
    Admit(ParticipantId),
    Deny(ParticipantId),
    EndConference,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::SetMute { .. } => "mute",
            Action::Hand { .. } => "hand",
            Action::RequestUnmute(_) => "request-unmute",
            Action::Chat { .. } => "chat",
            Action::Screen { .. } => "screen",
            Action::RestartMedia => "restart-media",
            Action::MuteParticipant { .. } => "mute-participant",
            Action::AllowUnmute { .. } => "allow-unmute",
            Action::LockUnmute { .. } => "lock-unmute",
            Action::Remove { .. } => "remove",
            Action::Promote(_) => "promote",
            Action::LockRoom(_) => "lock-room",
            Action::SetPassword(_) => "set-password",
            Action::SetLobby(_) => "set-lobby",
            Action::Admit(_) => "admit",
            Action::Deny(_) => "deny",
            Action::EndConference => "end-conference",
        }
    }

    pub fn needs_moderator(&self) -> bool {
        !matches!(
            self,
            Action::SetMute { .. }
                | Action::Hand { .. }
                | Action::RequestUnmute(_)
                | Action::Chat { .. }
                | Action::Screen { .. }
                | Action::RestartMedia
        )
    }
}

/// Why an action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("only moderators may do this, or you may not unmute now")]
    NotAllowed,
    #[error("nobody with that id is in the conference")]
    UnknownParticipant,
    #[error("the conference is full: nobody more can come in until someone leaves")]
    ConferenceFull,
}

impl ActionError {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionError::NotAllowed => "not-allowed",
            ActionError::UnknownParticipant => "unknown-participant",
            ActionError::ConferenceFull => "no-free-seat",
        }
    }
}

/// Records for the `focus` stream: identifiers, room names and durations, never names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FocusRecord {
    ConferenceStarted {
        conference: ConferenceId,
        room: RoomName,
    },
    ParticipantJoined {
        conference: ConferenceId,
        participant: ParticipantId,
        role: Role,
    },
    ParticipantWaiting {
        conference: ConferenceId,
        participant: ParticipantId,
        reason: WaitReason,
    },
    ParticipantLeft {
        conference: ConferenceId,
        participant: ParticipantId,
        reason: LeaveReason,
        seconds: u64,
    },
    /// The connection dropped; the participant may come back within the grace period.
    ParticipantAway {
        conference: ConferenceId,
        participant: ParticipantId,
    },
    ParticipantResumed {
        conference: ConferenceId,
        participant: ParticipantId,
    },
    ConferenceEnded {
        conference: ConferenceId,
        room: RoomName,
        /// From the first join to the last leave.
        seconds: u64,
        /// From the first join to now (the end includes the grace period).
        age_seconds: u64,
        peak_participants: usize,
        /// Joins over the conference's life.
        participants: usize,
        participant_seconds: u64,
    },
    JoinRefused {
        room: RoomName,
        reason: JoinError,
    },
    /// A moderator's action, by whom and on whom.
    Moderation {
        conference: ConferenceId,
        by: ParticipantId,
        action: &'static str,
        target: Option<ParticipantId>,
    },
    /// An action the server refused.
    ActionRefused {
        conference: ConferenceId,
        by: ParticipantId,
        action: &'static str,
        reason: ActionError,
    },
}

/// What the actor must do after a state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Notify(ParticipantId, ParticipantEvent),
    StartMedia {
        conference: ConferenceId,
        participant: ParticipantId,
    },
    StopMedia {
        participant: ParticipantId,
    },
    Plan {
        participant: ParticipantId,
        publishers: Vec<ParticipantId>,
    },
    /// Whether the SFU forwards this participant's audio and video to anyone.
    Forwarding {
        participant: ParticipantId,
        audio: bool,
        video: bool,
    },
    Signal {
        participant: ParticipantId,
        signal: ClientSignal,
    },
    /// The participant's session is no longer the focus's concern (it waited and gave up, or was
    /// refused): forget its inbox.
    Forget(ParticipantId),
    Log(FocusRecord),
}
