//! Simulated participants: real WebRTC peers (webrtc-rs `rtc`) that join a Zaal server through
//! its real signalling WebSocket, publish synthetic Opus-shaped audio and VP8-shaped video, and
//! count what they receive from whom.
//!
//! Used by the server's integration tests and by the `zaal-bench` load tool; the server itself
//! never links this crate. Each participant is one task with its own loopback UDP socket,
//! driving its sans-I/O connection the way a browser would (full ICE agent, DTLS client, the
//! client side of docs/protocol.md). It speaks the protocol in the server's own typed messages
//! (`zaal::signalling::protocol`) and announces its candidates with the server's own set-up
//! (`zaal::sfu::connection`), so neither can drift from the server. Every payload carries a
//! sequence number and a send time, so receivers can measure loss and one-way latency.
//!
//! [`SimulatedParticipant`] is the handle; `media` owns the peer connection and what it sends
//! and counts; `session` owns the WebSocket and the task that drives both.

mod media;
mod session;
mod tcp_media;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::Value;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use zaal::signalling::protocol::ClientMessage;

use media::Media;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("webrtc: {0}")]
    Rtc(#[from] rtc::shared::error::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("timed out: {0}")]
    Timeout(&'static str),
}

/// How a simulated participant behaves.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// `http://host:port` of the server.
    pub server: String,
    pub room: String,
    pub name: String,
    pub send_audio: bool,
    pub send_video: bool,
    pub video_kbps: u32,
    /// The address the participant's UDP socket binds to.
    pub local_ip: IpAddr,
    /// A signed link's token, sent in `join`.
    pub jwt: Option<String>,
    /// The room password, sent in `join`.
    pub password: Option<String>,
    pub rejoin_key: Option<String>,
    /// `zaal_session=…`: join as a logged-in host.
    pub session_cookie: Option<String>,
    /// Publish a third (screen) video track as well.
    pub send_screen: bool,
    /// Come back as the participant a previous `joined` named (its `resumeToken`).
    pub resume: Option<String>,
    /// Publish the camera as three simulcast layers (`q`, `h`, `f`: 180, 360 and 720 lines at
    /// 15 %, 35 % and 100 % of `video_kbps`).
    pub simulcast: bool,
    /// Send media to this address instead of the server's candidates (a relay in between).
    pub media_relay: Option<SocketAddr>,
    /// For an `https://` server: the TLS client set-up that trusts its certificate.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Reach the media over ICE-TCP only (an active TCP candidate, as a browser behind a
    /// firewall that drops UDP has); the server's `media.tcp_port` must be on.
    pub media_tcp: bool,
}

impl SimOptions {
    pub fn new(server: &str, room: &str, name: &str) -> Self {
        Self {
            server: server.trim_end_matches('/').to_string(),
            room: room.into(),
            name: name.into(),
            send_audio: true,
            send_video: true,
            video_kbps: 300,
            local_ip: IpAddr::from([127, 0, 0, 1]),
            jwt: None,
            password: None,
            rejoin_key: None,
            session_cookie: None,
            send_screen: false,
            resume: None,
            simulcast: false,
            media_relay: None,
            media_tcp: false,
            tls: None,
        }
    }
}

/// Packets and bytes received from one publisher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    pub audio_packets: u64,
    pub video_packets: u64,
    pub bytes: u64,
}

/// What a simulated participant has observed so far.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// Everyone else in the conference: id → name.
    pub participants: BTreeMap<String, String>,
    /// Media received, by publisher id (the media stream id).
    pub received: HashMap<String, Received>,
    /// Ids announced as having left.
    pub left: Vec<String>,
    /// `(code, message)` of every error the server sent.
    pub errors: Vec<(String, String)>,
    /// Mute states announced by others: id → (audio muted, video muted).
    pub mutes: HashMap<String, (bool, bool)>,
    /// The latest SDP offer from the server.
    pub last_server_offer: Option<String>,
    pub offers_answered: u32,
    pub connected: bool,
    /// Set when the server closed the session or the task stopped.
    pub ended: Option<String>,
    /// The participant's own id, once in the conference.
    pub you: String,
    pub conference: String,
    /// `moderator` or `participant`.
    pub role: String,
    /// Why the participant waits (`host`, `lobby`), while it does.
    pub waiting: Option<String>,
    /// Every message from the server other than SDP, in order (bounded).
    pub messages: Vec<Value>,
    /// From `joined`: what lets this participant come back as themselves.
    pub resume_token: String,
    pub resumed: bool,
    /// One-way latency samples in microseconds (bounded).
    pub latency_us: Vec<u32>,
    /// Probe packets the publishers sent on the streams received so far (from their sequence
    /// numbers), and how many of them arrived: loss is one minus their ratio.
    pub probes_expected: u64,
    pub probes_received: u64,
    /// RTP packets of the received streams, counted from their sequence numbers (which the
    /// server keeps continuous when it switches layers or leaves a video out for a while), and
    /// how many arrived, repairs included: transport loss is one minus their ratio.
    pub rtp_expected: u64,
    pub rtp_received: u64,
    /// Per publisher: when the first video keyframe arrived, and the height of the last one (the
    /// simulcast layer being received).
    pub first_keyframe: HashMap<String, Instant>,
    /// Per publisher: when its first packet (of any kind) arrived.
    pub first_packet: HashMap<String, Instant>,
    pub video_height: HashMap<String, u16>,
    /// Packets that arrived twice, not counted anywhere else.
    pub duplicates: u64,
    /// Padding-only video packets (the server's bandwidth probes), not counted anywhere else.
    pub padding_packets: u64,
    /// Continuity of the received video streams: the largest step forward in sequence numbers
    /// and in timestamps between one newest packet and the next, and how often a newer packet
    /// carried an older timestamp.
    pub max_seq_step: u16,
    pub max_ts_step: u32,
    pub ts_backwards: u64,
    /// Received video payload bytes by the height of the layer they belonged to.
    pub video_bytes_by_height: BTreeMap<u16, u64>,
    /// Every change of layer seen, with the step in numbers from the packet before.
    pub layer_changes: Vec<LayerChange>,
}

/// The first packet of a new layer of one publisher's video, as a receiver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerChange {
    pub publisher: String,
    pub from_height: u16,
    pub to_height: u16,
    /// Sequence-number and timestamp distance from the newest packet before it: one and about a
    /// frame's time when the switch is seamless.
    pub sequence_step: u16,
    pub timestamp_step: u32,
}

pub(crate) enum Control {
    Leave,
    Raw(Message),
    Mute { audio: bool, video: bool },
    StopMedia,
    DropNetwork,
    DropWebSocket,
    Voice(u8),
    StopScreen,
}

/// A running simulated participant.
pub struct SimulatedParticipant {
    pub id: String,
    pub conference: String,
    observed: Arc<Mutex<Observed>>,
    control: mpsc::UnboundedSender<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl SimulatedParticipant {
    /// Connects, joins and starts publishing. Returns once `joined` (or `waiting`) has arrived.
    pub async fn join(options: SimOptions) -> Result<Self, SimError> {
        let (mut ws, first) = session::connect(&options).await?;
        let observed = Arc::new(Mutex::new(Observed::default()));
        let socket = media_socket(SocketAddr::new(options.local_ip, 0))?;
        let mut media = Media::new(&options, socket.local_addr()?)?;
        let (id, conference) = match first {
            session::Entered::Joined { raw, joined } => {
                let ids = session::on_joined(&joined, raw, &mut lock(&observed));
                let offer = media.offer()?;
                ws.send(session::text(&ClientMessage::Offer { sdp: offer }))
                    .await?;
                ids
            }
            session::Entered::Waiting { raw, reason } => {
                let mut o = lock(&observed);
                o.waiting = Some(reason);
                o.messages.push(raw);
                (String::new(), String::new())
            }
        };
        let (control, control_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(session::run(
            ws,
            socket,
            media,
            options,
            observed.clone(),
            control_rx,
        ));
        Ok(Self {
            id,
            conference,
            observed,
            control,
            task,
        })
    }

    /// A snapshot of what has been observed.
    pub fn observed(&self) -> Observed {
        lock(&self.observed).clone()
    }

    /// Packets received from `publisher` so far.
    pub fn received_from(&self, publisher: &str) -> Received {
        lock(&self.observed)
            .received
            .get(publisher)
            .copied()
            .unwrap_or_default()
    }

    /// Takes the latency samples gathered so far (microseconds), leaving none.
    pub fn take_latency(&self) -> Vec<u32> {
        std::mem::take(&mut lock(&self.observed).latency_us)
    }

    /// Sends a raw WebSocket message (for tests of malformed input).
    pub fn send_raw(&self, message: Message) {
        let _ = self.control.send(Control::Raw(message));
    }

    pub fn set_mute(&self, audio: bool, video: bool) {
        let _ = self.control.send(Control::Mute { audio, video });
    }

    /// The audio level (RFC 6464: −dBov, 0 loudest, 127 silence) the microphone's packets carry
    /// from now on; 127 at first. About −30 dBov is someone talking.
    pub fn set_voice_level(&self, level: u8) {
        let _ = self.control.send(Control::Voice(level.min(127)));
    }

    /// Stops sharing the screen (its track stays negotiated, as a browser's does).
    pub fn stop_screen(&self) {
        let _ = self.control.send(Control::StopScreen);
    }

    /// Stops sending media but stays connected.
    pub fn stop_media(&self) {
        let _ = self.control.send(Control::StopMedia);
    }

    /// Loses the network for media (no more UDP in or out) while the WebSocket stays open, as a
    /// laptop that drops off Wi-Fi with the signalling connection still half-open would.
    pub fn drop_network(&self) {
        let _ = self.control.send(Control::DropNetwork);
    }

    /// Loses the signalling connection (as when the WebSocket breaks) while media goes on.
    pub fn drop_websocket(&self) {
        let _ = self.control.send(Control::DropWebSocket);
    }

    /// Leaves politely and waits for the task to end.
    pub async fn leave(self) {
        let _ = self.control.send(Control::Leave);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }

    /// Vanishes without a word: the socket and the connection just stop.
    pub fn vanish(self) {
        self.task.abort();
    }

    /// Waits until `condition` holds for the observed state, polling every 50 ms.
    pub async fn wait_for(
        &self,
        what: &'static str,
        timeout: Duration,
        condition: impl Fn(&Observed) -> bool,
    ) -> Result<Observed, SimError> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let o = lock(&self.observed);
                if condition(&o) {
                    return Ok(o.clone());
                }
            }
            if Instant::now() >= deadline {
                return Err(SimError::Timeout(what));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The participant's UDP socket, with a receive buffer of a second of a busy room's video: many
/// participants share one process, which may not get the CPU for a while, and the default
/// buffer (a fifth of a second at 8 Mbit/s) would then drop what the server sent.
fn media_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // The system may cap it (net.core.rmem_max); a smaller buffer still works.
    let _ = socket.set_recv_buffer_size(1 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

pub(crate) fn lock(observed: &Arc<Mutex<Observed>>) -> MutexGuard<'_, Observed> {
    observed.lock().unwrap_or_else(|p| p.into_inner())
}
