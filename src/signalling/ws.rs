//! One task per WebSocket: read, validate, hand to the focus; and write back what the focus and
//! the SFU have for this participant.
//!
//! A bad message is answered with an `error` to this client alone and never reaches the focus.
//! The session checks who the client is (host session, signed link) before asking the focus to
//! let it in; everything else about the conference is the focus's decision. When the session
//! ends, for whatever reason, the focus is told the participant left.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::info;

use super::AppState;
use super::jwt::{self, VerifiedToken};
use super::protocol::{
    self, ErrorCode, Inbound, JoinMessage, Outbound, ParticipantView, ProtocolError,
};
use super::rate::{RateLimiter, Verdict};
use crate::focus::{
    ActionError, EndReason, JoinError, JoinOutcome, JoinRequest, Joined, LeaveReason,
    ParticipantEvent,
};
use crate::ids::ParticipantId;
use crate::privacy::TECHNICAL;
use crate::privacy::pii::{ClientIp, DisplayName};
use crate::sfu::{ClientSignal, PeerSignal};
use crate::store::HostName;

/// How long a client may take to send `join`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
const PING_INTERVAL: Duration = Duration::from_secs(10);
/// A client silent for this long (no message, no pong) is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(30);
/// A client that does not take a message within this time is too slow to keep.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_GOING_AWAY: u16 = 1001;

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;
type Stream = futures_util::stream::SplitStream<WebSocket>;
type Events = mpsc::UnboundedReceiver<ParticipantEvent>;

struct Outcome {
    reason: LeaveReason,
    close_code: u16,
}

fn gone(reason: LeaveReason, close_code: u16) -> Outcome {
    Outcome { reason, close_code }
}

/// Who the client is, as far as the server can tell before the focus decides.
pub struct Caller {
    pub ip: IpAddr,
    /// A logged-in host (the session cookie came with the upgrade).
    pub host: Option<HostName>,
}

pub async fn run_session(socket: WebSocket, state: AppState, caller: Caller) {
    let (mut sink, mut stream) = socket.split();
    let mut limiter = RateLimiter::new(Instant::now());

    let message = match wait_for_join(&mut sink, &mut stream, &mut limiter).await {
        Ok(message) => message,
        Err(close_code) => {
            close(&mut sink, &mut stream, close_code).await;
            return;
        }
    };
    let (events_tx, mut events) = mpsc::unbounded_channel();
    // Identifies this session to the focus when it ends, without keeping the inbox open.
    let session = events_tx.downgrade();
    let (me, joined) = match enter(&state, &caller, *message, events_tx, &mut sink).await {
        Entered::Joined(joined) => (joined.you.clone(), joined),
        Entered::Waiting(id) => {
            match wait_for_admission(&mut sink, &mut stream, &mut events, &mut limiter).await {
                Ok(joined) => (id, joined),
                Err(outcome) => {
                    state.focus.leave(id, outcome.reason, &session);
                    close(&mut sink, &mut stream, outcome.close_code).await;
                    return;
                }
            }
        }
        Entered::Refused(close_code) => {
            close(&mut sink, &mut stream, close_code).await;
            return;
        }
    };
    let outcome = if send(&mut sink, &Outbound::joined(&joined)).await {
        in_conference(&state, &me, &mut sink, &mut stream, events, &mut limiter).await
    } else {
        gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY)
    };
    state.focus.leave(me, outcome.reason, &session);
    close(&mut sink, &mut stream, outcome.close_code).await;
}

enum Entered {
    Joined(Joined),
    Waiting(ParticipantId),
    Refused(u16),
}

async fn refuse(
    sink: &mut Sink,
    code: ErrorCode,
    message: String,
    retry_after: Option<u64>,
) -> Entered {
    let _ = send(
        sink,
        &Outbound::Error {
            code: code.as_str(),
            message,
            retry_after,
        },
    )
    .await;
    Entered::Refused(CLOSE_NORMAL)
}

/// Checks the caller, asks the focus, and tells the client the answer.
async fn enter(
    state: &AppState,
    caller: &Caller,
    message: JoinMessage,
    events: mpsc::UnboundedSender<ParticipantEvent>,
    sink: &mut Sink,
) -> Entered {
    let token: Option<VerifiedToken> = match &message.jwt {
        None => None,
        Some(token) => match jwt::verify(
            token.expose(),
            &state.settings.auth.jwt,
            Some(&message.room),
        ) {
            Ok(verified) => Some(verified),
            Err(e) => return refuse(sink, ErrorCode::Token(e), e.to_string(), None).await,
        },
    };
    let token_moderator = token.as_ref().is_some_and(|t| t.moderator);
    let moderator = caller.host.is_some() || token_moderator;
    let name = token
        .as_ref()
        .and_then(|t| t.name.as_deref())
        .and_then(|n| protocol::display_name(n).ok())
        .unwrap_or(message.name);
    let room_exists = {
        let store = state.store.clone();
        let room = message.room.clone();
        let opener = token
            .as_ref()
            .filter(|t| t.moderator)
            .map(|t| format!("token:{}", t.subject));
        tokio::task::spawn_blocking(move || {
            if store.room_exists(&room)? {
                return Ok(true);
            }
            // A moderator's signed link may open a room no host created yet.
            match opener {
                Some(owner) => store.create_room(&room, &owner).map(|_| true),
                None => Ok(false),
            }
        })
        .await
    };
    let room_exists = match room_exists {
        Ok(Ok(exists)) => exists,
        _ => {
            return refuse(
                sink,
                ErrorCode::Internal,
                "the server cannot look up rooms".into(),
                None,
            )
            .await;
        }
    };
    let throttle_key = format!("{}|{}", message.room, caller.ip);
    if message.password.is_some() && !moderator {
        let wait = state.room_passwords.wait(Instant::now(), &throttle_key);
        if !wait.is_zero() {
            return refuse(
                sink,
                ErrorCode::TooManyAttempts,
                "too many wrong passwords".into(),
                Some(wait.as_secs().max(1)),
            )
            .await;
        }
    }
    // The one record tying a name to an address, for debugging connection problems: it goes to
    // the technical stream only, with the configured IP mode and name policy, and without any
    // conference or participant identifier (SPEC P2, P3, P6).
    info!(
        target: TECHNICAL,
        event = "join",
        room = %message.room,
        name = %name.for_technical_log(),
        client_ip = %ClientIp(caller.ip),
    );
    let gave_password = message.password.is_some();
    let request = JoinRequest {
        room: message.room,
        name,
        audio_muted: message.audio_muted,
        video_muted: message.video_muted,
        moderator,
        password: message.password,
        rejoin_key: message.rejoin_key,
        resume: message.resume,
        token_identity: token
            .as_ref()
            .map(|t| format!("{}|{}", t.subject, t.name.as_deref().unwrap_or_default())),
    };
    let session = events.downgrade();
    let outcome = state.focus.join(request, room_exists, events).await;
    match outcome {
        Ok(JoinOutcome::Joined(joined)) => {
            if gave_password {
                state.room_passwords.succeeded(&throttle_key);
            }
            Entered::Joined(*joined)
        }
        Ok(JoinOutcome::Waiting { id, reason }) => {
            if gave_password {
                state.room_passwords.succeeded(&throttle_key);
            }
            if send(
                sink,
                &Outbound::Waiting {
                    reason: reason.as_str(),
                },
            )
            .await
            {
                Entered::Waiting(id)
            } else {
                state.focus.leave(id, LeaveReason::Disconnected, &session);
                Entered::Refused(CLOSE_GOING_AWAY)
            }
        }
        Err(e) => {
            if e == JoinError::PasswordWrong {
                state.room_passwords.failed(Instant::now(), &throttle_key);
            }
            let code = match e {
                JoinError::RoomNotFound => ErrorCode::RoomNotFound,
                JoinError::ConferenceFull => ErrorCode::ConferenceFull,
                JoinError::Unavailable => ErrorCode::ServerShuttingDown,
                JoinError::RoomLocked => ErrorCode::RoomLocked,
                JoinError::PasswordRequired => ErrorCode::PasswordRequired,
                JoinError::PasswordWrong => ErrorCode::PasswordWrong,
                JoinError::Barred => ErrorCode::Barred,
            };
            refuse(sink, code, e.to_string(), None).await
        }
    }
}

/// Reads until a valid `join`; answers everything else with an error. On failure, returns the
/// close code to end the connection with.
async fn wait_for_join(
    sink: &mut Sink,
    stream: &mut Stream,
    limiter: &mut RateLimiter,
) -> Result<Box<JoinMessage>, u16> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    loop {
        let message = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(_) => return Err(CLOSE_GOING_AWAY),
            Err(_) => return Err(CLOSE_POLICY),
        };
        let Some(text) = accept(sink, message, limiter).await? else {
            continue;
        };
        match protocol::parse(&text) {
            Ok(Inbound::Join(join)) => return Ok(join),
            Ok(_) => {
                let error = ProtocolError::new(ErrorCode::NotJoined, "send join first");
                if !send(sink, &Outbound::error(&error)).await {
                    return Err(CLOSE_GOING_AWAY);
                }
            }
            Err(error) => {
                if !send(sink, &Outbound::error(&error)).await {
                    return Err(CLOSE_GOING_AWAY);
                }
                if error.code.closes() {
                    return Err(CLOSE_NORMAL);
                }
            }
        }
    }
}

/// Turns a frame into a text message to parse, or `None` if there is nothing to parse; applies
/// the rate limit. `Err` carries the close code when the client must go.
async fn accept(
    sink: &mut Sink,
    message: Message,
    limiter: &mut RateLimiter,
) -> Result<Option<Utf8Bytes>, u16> {
    let text = match message {
        Message::Text(text) => text,
        Message::Binary(_) => {
            let error = ProtocolError::new(ErrorCode::BadMessage, "binary frames are not used");
            if !send(sink, &Outbound::error(&error)).await {
                return Err(CLOSE_GOING_AWAY);
            }
            return Ok(None);
        }
        Message::Close(_) => return Err(CLOSE_NORMAL),
        Message::Ping(_) | Message::Pong(_) => return Ok(None),
    };
    match limiter.check(Instant::now()) {
        Verdict::Accept => Ok(Some(text)),
        Verdict::Refuse => {
            let error = ProtocolError::new(ErrorCode::RateLimited, "too many messages");
            if !send(sink, &Outbound::error(&error)).await {
                return Err(CLOSE_GOING_AWAY);
            }
            Ok(None)
        }
        Verdict::Disconnect => Err(CLOSE_POLICY),
    }
}

fn ended(reason: EndReason) -> (ErrorCode, &'static str, LeaveReason) {
    match reason {
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
    }
}

/// Waits in the lobby or for the host: only `leave` (or closing) is accepted until admitted.
async fn wait_for_admission(
    sink: &mut Sink,
    stream: &mut Stream,
    events: &mut Events,
    limiter: &mut RateLimiter,
) -> Result<Joined, Outcome> {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(Ok(message)) = message else {
                    return Err(gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY));
                };
                last_heard = Instant::now();
                let text = match accept(sink, message, limiter).await {
                    Ok(Some(text)) => text,
                    Ok(None) => continue,
                    Err(code) => return Err(gone(LeaveReason::Disconnected, code)),
                };
                let error = match protocol::parse(&text) {
                    Ok(Inbound::Leave) => return Err(gone(LeaveReason::Left, CLOSE_NORMAL)),
                    Ok(_) => ProtocolError::new(ErrorCode::NotJoined, "still waiting to be let in"),
                    Err(error) => error,
                };
                if !send(sink, &Outbound::error(&error)).await {
                    return Err(gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY));
                }
            }
            event = events.recv() => match event {
                Some(ParticipantEvent::Admitted(joined)) => return Ok(*joined),
                Some(ParticipantEvent::Ended(reason)) => {
                    let (code, text, leave) = ended(reason);
                    let _ = send(sink, &Outbound::error(&ProtocolError::new(code, text))).await;
                    return Err(gone(leave, CLOSE_NORMAL));
                }
                Some(_) => {}
                None => return Err(gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY)),
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT || !ping_client(sink).await {
                    return Err(gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY));
                }
            }
        }
    }
}

/// What to tell the client about an event, or that the session is over.
fn outbound(
    event: ParticipantEvent,
) -> Result<Option<Outbound>, (ErrorCode, &'static str, LeaveReason)> {
    Ok(Some(match event {
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
            role: role.as_str(),
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
            kind: kind.as_str(),
        },
        ParticipantEvent::UnmuteRequestDone { id, kind } => Outbound::UnmuteRequestDone {
            id: id.to_string(),
            kind: kind.as_str(),
        },
        ParticipantEvent::Media(PeerSignal::Offer(sdp)) => Outbound::Offer { sdp },
        ParticipantEvent::Media(PeerSignal::Answer(sdp)) => Outbound::Answer { sdp },
        ParticipantEvent::Media(PeerSignal::SendVideo { max_height }) => {
            Outbound::SendVideo { max_height }
        }
        ParticipantEvent::Media(PeerSignal::NegotiationFailed(reason)) => {
            Outbound::error(&ProtocolError::new(ErrorCode::NegotiationFailed, reason))
        }
        ParticipantEvent::Admitted(_) => return Ok(None),
        ParticipantEvent::Ended(reason) => return Err(ended(reason)),
    }))
}

async fn in_conference(
    state: &AppState,
    me: &ParticipantId,
    sink: &mut Sink,
    stream: &mut Stream,
    mut events: Events,
    limiter: &mut RateLimiter,
) -> Outcome {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(Ok(message)) = message else {
                    return gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY);
                };
                last_heard = Instant::now();
                let text = match accept(sink, message, limiter).await {
                    Ok(Some(text)) => text,
                    Ok(None) => continue,
                    Err(code) => return gone(LeaveReason::Disconnected, code),
                };
                let error = match protocol::parse(&text) {
                    Ok(Inbound::Leave) => return gone(LeaveReason::Left, CLOSE_NORMAL),
                    Ok(Inbound::Join(_)) => {
                        Some(ProtocolError::new(ErrorCode::AlreadyJoined, "already in the conference"))
                    }
                    Ok(Inbound::Offer(sdp)) => {
                        state.focus.signal(me.clone(), ClientSignal::Offer(sdp));
                        None
                    }
                    Ok(Inbound::Answer(sdp)) => {
                        state.focus.signal(me.clone(), ClientSignal::Answer(sdp));
                        None
                    }
                    Ok(Inbound::Candidate(c)) => {
                        state.focus.signal(me.clone(), ClientSignal::Candidate(c));
                        None
                    }
                    Ok(Inbound::ReceiveVideo { heights, last_n }) => {
                        state
                            .focus
                            .signal(me.clone(), ClientSignal::ReceiveVideo { heights, last_n });
                        None
                    }
                    Ok(Inbound::Act(action)) => match state.focus.act(me.clone(), action).await {
                        Ok(()) => None,
                        Err(e) => Some(ProtocolError::new(
                            match e {
                                ActionError::NotAllowed => ErrorCode::NotAllowed,
                                ActionError::UnknownParticipant => ErrorCode::UnknownParticipant,
                            },
                            e.to_string(),
                        )),
                    },
                    Err(error) => Some(error),
                };
                if let Some(error) = error
                    && !send(sink, &Outbound::error(&error)).await
                {
                    return gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY);
                }
            }
            event = events.recv() => {
                let Some(event) = event else {
                    return gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY);
                };
                match outbound(event) {
                    Ok(Some(message)) => {
                        if !send(sink, &message).await {
                            return gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY);
                        }
                    }
                    Ok(None) => {}
                    Err((code, text, leave)) => {
                        let _ = send(sink, &Outbound::error(&ProtocolError::new(code, text))).await;
                        return gone(leave, CLOSE_GOING_AWAY);
                    }
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT || !ping_client(sink).await {
                    return gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY);
                }
            }
        }
    }
}

async fn ping_client(sink: &mut Sink) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Ping(Default::default()))).await,
        Ok(Ok(()))
    )
}

/// Sends one message; false if the client is gone or too slow.
async fn send(sink: &mut Sink, message: &Outbound) -> bool {
    let frame = Message::Text(Utf8Bytes::from(message.to_json()));
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, sink.send(frame)).await,
        Ok(Ok(()))
    )
}

/// The closing handshake. The client may still be sending (an answer, a candidate): its input
/// is read and dropped until it answers the close, because closing a TCP socket with unread
/// input resets the connection, and the client would lose the last messages we sent it — the
/// error that says why it is being disconnected.
async fn close(sink: &mut Sink, stream: &mut Stream, code: u16) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::default(),
    }));
    let _ = tokio::time::timeout(Duration::from_secs(2), sink.send(frame)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}
