//! One task per WebSocket: read, validate, hand to the focus; and write back what the focus and
//! the SFU have for this participant.
//!
//! A bad message is answered with an `error` to this client alone and never reaches the focus.
//! The session holds no conference state of its own beyond "who am I"; when it ends, for
//! whatever reason, the focus is told the participant left.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::info;

use super::AppState;
use super::protocol::{
    self, ErrorCode, Inbound, Outbound, PROTOCOL_VERSION, ParticipantView, ProtocolError,
};
use super::rate::{RateLimiter, Verdict};
use crate::focus::{
    EndReason, JoinError, JoinRequest, LeaveReason, ParticipantEvent, ParticipantId,
};
use crate::privacy::TECHNICAL;
use crate::privacy::pii::ClientIp;
use crate::sfu::{ClientSignal, PeerSignal};

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

struct Outcome {
    reason: LeaveReason,
    close_code: u16,
}

pub async fn run_session(socket: WebSocket, state: AppState, client: IpAddr) {
    let (mut sink, mut stream) = socket.split();
    let mut limiter = RateLimiter::new(Instant::now());

    let request = match wait_for_join(&mut sink, &mut stream, &mut limiter).await {
        Ok(request) => request,
        Err(close_code) => {
            close(&mut sink, close_code).await;
            return;
        }
    };

    // The one record tying a name to an address, for debugging connection problems: it goes to
    // the technical stream only, with the configured IP mode and name policy, and without any
    // conference or participant identifier (SPEC P2, P3, P6).
    info!(
        target: TECHNICAL,
        event = "join",
        room = %request.room,
        name = %request.name.for_technical_log(),
        client_ip = %ClientIp(client),
    );
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let joined = match state.focus.join(request, events_tx).await {
        Ok(joined) => joined,
        Err(e) => {
            let code = match e {
                JoinError::RoomNotFound => ErrorCode::RoomNotFound,
                JoinError::ConferenceFull => ErrorCode::ConferenceFull,
                JoinError::Unavailable => ErrorCode::ServerShuttingDown,
            };
            let _ = send(
                &mut sink,
                &Outbound::error(&ProtocolError::new(code, e.to_string())),
            )
            .await;
            close(&mut sink, CLOSE_NORMAL).await;
            return;
        }
    };
    let me = joined.you.clone();
    let welcome = Outbound::Joined {
        version: PROTOCOL_VERSION,
        conference: joined.conference.to_string(),
        you: joined.you.to_string(),
        participants: joined
            .participants
            .iter()
            .map(ParticipantView::from)
            .collect(),
    };
    let outcome = if send(&mut sink, &welcome).await {
        in_conference(&state, &me, &mut sink, &mut stream, events_rx, &mut limiter).await
    } else {
        Outcome {
            reason: LeaveReason::Disconnected,
            close_code: CLOSE_GOING_AWAY,
        }
    };
    state.focus.leave(me, outcome.reason);
    close(&mut sink, outcome.close_code).await;
}

/// Reads until a valid `join`; answers everything else with an error. On failure, returns the
/// close code to end the connection with.
async fn wait_for_join(
    sink: &mut Sink,
    stream: &mut Stream,
    limiter: &mut RateLimiter,
) -> Result<JoinRequest, u16> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    loop {
        let message = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(_) => return Err(CLOSE_GOING_AWAY),
            Err(_) => return Err(CLOSE_POLICY),
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                let error = ProtocolError::new(ErrorCode::BadMessage, "binary frames are not used");
                if !send(sink, &Outbound::error(&error)).await {
                    return Err(CLOSE_GOING_AWAY);
                }
                continue;
            }
            Message::Close(_) => return Err(CLOSE_NORMAL),
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        match limiter.check(Instant::now()) {
            Verdict::Accept => {}
            Verdict::Refuse => {
                let error = ProtocolError::new(ErrorCode::RateLimited, "too many messages");
                if !send(sink, &Outbound::error(&error)).await {
                    return Err(CLOSE_GOING_AWAY);
                }
                continue;
            }
            Verdict::Disconnect => return Err(CLOSE_POLICY),
        }
        match protocol::parse(&text) {
            Ok(Inbound::Join {
                room,
                name,
                audio_muted,
                video_muted,
            }) => {
                return Ok(JoinRequest {
                    room,
                    name,
                    audio_muted,
                    video_muted,
                });
            }
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

async fn in_conference(
    state: &AppState,
    me: &ParticipantId,
    sink: &mut Sink,
    stream: &mut Stream,
    mut events: mpsc::UnboundedReceiver<ParticipantEvent>,
    limiter: &mut RateLimiter,
) -> Outcome {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let gone = |reason, close_code| Outcome { reason, close_code };
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(Ok(message)) = message else {
                    return gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY);
                };
                last_heard = Instant::now();
                let text = match message {
                    Message::Text(text) => text,
                    Message::Binary(_) => {
                        let error = ProtocolError::new(ErrorCode::BadMessage, "binary frames are not used");
                        if !send(sink, &Outbound::error(&error)).await {
                            return gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY);
                        }
                        continue;
                    }
                    Message::Close(_) => return gone(LeaveReason::Disconnected, CLOSE_NORMAL),
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                match limiter.check(last_heard) {
                    Verdict::Accept => {}
                    Verdict::Refuse => {
                        let error = ProtocolError::new(ErrorCode::RateLimited, "too many messages");
                        if !send(sink, &Outbound::error(&error)).await {
                            return gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY);
                        }
                        continue;
                    }
                    Verdict::Disconnect => return gone(LeaveReason::Disconnected, CLOSE_POLICY),
                }
                match protocol::parse(&text) {
                    Ok(Inbound::Leave) => return gone(LeaveReason::Left, CLOSE_NORMAL),
                    Ok(Inbound::Join { .. }) => {
                        let error = ProtocolError::new(ErrorCode::AlreadyJoined, "already in the conference");
                        if !send(sink, &Outbound::error(&error)).await {
                            return gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY);
                        }
                    }
                    Ok(Inbound::Offer(sdp)) => state.focus.signal(me.clone(), ClientSignal::Offer(sdp)),
                    Ok(Inbound::Answer(sdp)) => state.focus.signal(me.clone(), ClientSignal::Answer(sdp)),
                    Ok(Inbound::Candidate(c)) => state.focus.signal(me.clone(), ClientSignal::Candidate(c)),
                    Ok(Inbound::Mute { audio_muted, video_muted }) => {
                        state.focus.set_mute(me.clone(), audio_muted, video_muted)
                    }
                    Err(error) => {
                        if !send(sink, &Outbound::error(&error)).await {
                            return gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY);
                        }
                    }
                }
            }
            event = events.recv() => {
                let Some(event) = event else {
                    return gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY);
                };
                let message = match event {
                    ParticipantEvent::Joined(info) => Outbound::ParticipantJoined {
                        participant: ParticipantView::from(&info),
                    },
                    ParticipantEvent::Left(id) => Outbound::ParticipantLeft { id: id.to_string() },
                    ParticipantEvent::Mute { id, audio_muted, video_muted } => Outbound::Mute {
                        id: id.to_string(),
                        audio_muted,
                        video_muted,
                    },
                    ParticipantEvent::Media(PeerSignal::Offer(sdp)) => Outbound::Offer { sdp },
                    ParticipantEvent::Media(PeerSignal::Answer(sdp)) => Outbound::Answer { sdp },
                    ParticipantEvent::Media(PeerSignal::NegotiationFailed(reason)) => {
                        Outbound::error(&ProtocolError::new(ErrorCode::NegotiationFailed, reason))
                    }
                    ParticipantEvent::Ended(reason) => {
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
                        };
                        let _ = send(sink, &Outbound::error(&ProtocolError::new(code, text))).await;
                        return gone(leave, CLOSE_GOING_AWAY);
                    }
                };
                if !send(sink, &message).await {
                    return gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY);
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    return gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY);
                }
                let sent = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Ping(Default::default()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    return gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY);
                }
            }
        }
    }
}

/// Sends one message; false if the client is gone or too slow.
async fn send(sink: &mut Sink, message: &Outbound) -> bool {
    let frame = Message::Text(Utf8Bytes::from(message.to_json()));
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, sink.send(frame)).await,
        Ok(Ok(()))
    )
}

async fn close(sink: &mut Sink, code: u16) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::default(),
    }));
    let _ = tokio::time::timeout(Duration::from_secs(2), sink.send(frame)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
}
