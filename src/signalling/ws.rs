//! One task per WebSocket: read, validate, hand to the focus; and write back what the focus and
//! the SFU have for this participant.
//!
//! A bad message is answered with an `error` to this client alone and never reaches the focus.
//! The session checks who the client is (host session, signed link) before asking the focus to
//! let it in; everything else about the conference is the focus's decision. When the session
//! ends, for whatever reason, the focus is told the participant left.

use std::convert::Infallible;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::info;

use super::AppState;
use super::jwt::{self, VerifiedToken};
use super::protocol::{
    self, Delivery, Ending, ErrorCode, Inbound, JoinMessage, Outbound, ProtocolError,
};
use super::rate::{RateLimiter, Verdict};
use crate::focus::{JoinError, JoinOutcome, JoinRequest, Joined, LeaveReason, ParticipantEvent};
use crate::ids::ParticipantId;
use crate::privacy::TECHNICAL;
use crate::privacy::pii::ClientIp;
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
/// A frame or message over `protocol::MAX_FRAME_BYTES` (RFC 6455 §7.4.1, "message too big").
const CLOSE_TOO_BIG: u16 = 1009;

/// The close code for a connection whose read failed: 1009 when the client sent more than a
/// message may hold, otherwise it is simply gone.
fn close_code_for(error: &axum::Error) -> u16 {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return CLOSE_TOO_BIG;
        }
        source = e.source();
    }
    CLOSE_GOING_AWAY
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;
type Stream = futures_util::stream::SplitStream<WebSocket>;
type Events = mpsc::Receiver<ParticipantEvent>;

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
    let limits = state.settings.limits;
    let mut limiter = RateLimiter::new(
        Instant::now(),
        limits.messages_per_second,
        limits.message_burst,
    );

    let message = match wait_for_join(&mut sink, &mut stream, &mut limiter).await {
        Ok(message) => message,
        Err(close_code) => {
            close(&mut sink, &mut stream, close_code).await;
            return;
        }
    };
    let (events_tx, mut events) = mpsc::channel(crate::focus::SESSION_INBOX);
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
    let ice_servers = state
        .turn
        .as_ref()
        .map(|offer| offer.ice_servers())
        .unwrap_or_default();
    let outcome = if send(&mut sink, &Outbound::joined(&joined, ice_servers)).await {
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
            code: code.as_str().into(),
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
    events: mpsc::Sender<ParticipantEvent>,
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
                    reason: reason.as_str().into(),
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
            let code = ErrorCode::from(e);
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
            Ok(Some(Err(error))) => return Err(close_code_for(&error)),
            Ok(None) => return Err(CLOSE_GOING_AWAY),
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

/// What reaches a session: a client's message (parsed), or an event from the focus.
enum Input {
    Message(Result<Inbound, ProtocolError>),
    Event(ParticipantEvent),
}

/// The session's one loop, for waiting and for the conference alike: reads the client (rate
/// limit, frames, silence) and the focus's events, and keeps the connection alive; the phase
/// decides what each input means.
struct Connection<'a> {
    sink: &'a mut Sink,
    stream: &'a mut Stream,
    events: &'a mut Events,
    limiter: &'a mut RateLimiter,
    ping: tokio::time::Interval,
    last_heard: Instant,
}

fn disconnected() -> Outcome {
    gone(LeaveReason::Disconnected, CLOSE_GOING_AWAY)
}

impl<'a> Connection<'a> {
    fn new(
        sink: &'a mut Sink,
        stream: &'a mut Stream,
        events: &'a mut Events,
        limiter: &'a mut RateLimiter,
    ) -> Self {
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            sink,
            stream,
            events,
            limiter,
            ping,
            last_heard: Instant::now(),
        }
    }

    /// The next input for the phase; `Err` when the client is gone or must go.
    async fn next(&mut self) -> Result<Input, Outcome> {
        loop {
            tokio::select! {
                message = self.stream.next() => {
                    let message = match message {
                        Some(Ok(message)) => message,
                        Some(Err(error)) => {
                            return Err(gone(LeaveReason::Disconnected, close_code_for(&error)));
                        }
                        None => return Err(disconnected()),
                    };
                    self.last_heard = Instant::now();
                    match accept(self.sink, message, self.limiter).await {
                        Ok(Some(text)) => return Ok(Input::Message(protocol::parse(&text))),
                        Ok(None) => {}
                        Err(code) => return Err(gone(LeaveReason::Disconnected, code)),
                    }
                }
                event = self.events.recv() => match event {
                    Some(event) => return Ok(Input::Event(event)),
                    None => return Err(disconnected()),
                },
                _ = self.ping.tick() => {
                    if self.last_heard.elapsed() > SILENCE_LIMIT || !ping_client(self.sink).await {
                        return Err(disconnected());
                    }
                }
            }
        }
    }

    /// Sends one message; `Err` when the client is gone or too slow.
    async fn send(&mut self, message: &Outbound) -> Result<(), Outcome> {
        if send(self.sink, message).await {
            Ok(())
        } else {
            Err(disconnected())
        }
    }

    async fn refuse(&mut self, error: &ProtocolError) -> Result<(), Outcome> {
        self.send(&Outbound::error(error)).await
    }

    /// Tells the client why the session ends, and ends it.
    async fn end<T>(&mut self, ending: Ending, close_code: u16) -> Result<T, Outcome> {
        let _ = send(self.sink, &Outbound::error(&ending.error)).await;
        Err(gone(ending.leave, close_code))
    }
}

/// Waits in the lobby or for the host: only `leave` (or closing) is accepted until admitted.
async fn wait_for_admission(
    sink: &mut Sink,
    stream: &mut Stream,
    events: &mut Events,
    limiter: &mut RateLimiter,
) -> Result<Joined, Outcome> {
    let mut connection = Connection::new(sink, stream, events, limiter);
    loop {
        match connection.next().await? {
            Input::Message(Ok(Inbound::Leave)) => {
                return Err(gone(LeaveReason::Left, CLOSE_NORMAL));
            }
            Input::Message(Ok(_)) => {
                let error = ProtocolError::new(ErrorCode::NotJoined, "still waiting to be let in");
                connection.refuse(&error).await?;
            }
            Input::Message(Err(error)) => connection.refuse(&error).await?,
            Input::Event(ParticipantEvent::Admitted(joined)) => return Ok(*joined),
            Input::Event(ParticipantEvent::Ended(reason)) => {
                return connection.end(reason.into(), CLOSE_NORMAL).await;
            }
            Input::Event(_) => {}
        }
    }
}

/// In the conference: signals and actions to the focus, its events to the client.
async fn in_conference(
    state: &AppState,
    me: &ParticipantId,
    sink: &mut Sink,
    stream: &mut Stream,
    mut events: Events,
    limiter: &mut RateLimiter,
) -> Outcome {
    let mut connection = Connection::new(sink, stream, &mut events, limiter);
    let ended: Result<Infallible, Outcome> = async {
        loop {
            match connection.next().await? {
                Input::Message(Ok(Inbound::Leave)) => {
                    return Err(gone(LeaveReason::Left, CLOSE_NORMAL));
                }
                Input::Message(Ok(Inbound::Join(_))) => {
                    let error =
                        ProtocolError::new(ErrorCode::AlreadyJoined, "already in the conference");
                    connection.refuse(&error).await?;
                }
                Input::Message(Ok(Inbound::Signal(signal))) => {
                    state.focus.signal(me.clone(), signal);
                }
                Input::Message(Ok(Inbound::Act(action))) => {
                    if let Err(e) = state.focus.act(me.clone(), action).await {
                        connection.refuse(&e.into()).await?;
                    }
                }
                Input::Message(Err(error)) => connection.refuse(&error).await?,
                Input::Event(event) => match Delivery::from(event) {
                    Delivery::Send(message) => connection.send(&message).await?,
                    Delivery::Nothing => {}
                    Delivery::Ends(ending) => {
                        return connection.end(ending, CLOSE_GOING_AWAY).await;
                    }
                },
            }
        }
    }
    .await;
    match ended {
        Ok(never) => match never {},
        Err(outcome) => outcome,
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
