//! Simulated participants: real WebRTC peers (webrtc-rs `rtc`) that join through the real
//! signalling WebSocket, publish synthetic Opus-shaped audio and VP8-shaped video, and count
//! what they receive from whom.
//!
//! Used by the integration tests and the load tool. Each participant is one task with its own
//! loopback UDP socket, driving its sans-I/O connection the way a browser would (full ICE agent,
//! DTLS client, the client side of docs/protocol.md). Every payload carries a sequence number
//! and a send time, so receivers can measure loss and one-way latency. Nothing here is used by
//! the server itself.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Marks a payload as ours: "ZAAL", then sequence (u32) and send time (u64 µs since the epoch).
const PROBE_MAGIC: &[u8; 4] = b"ZAAL";
const PROBE_LEN: usize = 16;
const TICK: Duration = Duration::from_millis(20);
const MAX_VIDEO_PAYLOAD: usize = 1100;
const AUDIO_PAYLOAD: usize = 80;
const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

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

enum Control {
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
    /// Connects, joins and starts publishing. Returns once `joined` has arrived.
    pub async fn join(options: SimOptions) -> Result<Self, SimError> {
        let url = format!(
            "{}/ws",
            options
                .server
                .replacen("http://", "ws://", 1)
                .replacen("https://", "wss://", 1)
        );
        // Connect from the configured local address, so that tests can tell this participant's
        // traffic apart (e.g. 127.0.0.23).
        let host = options
            .server
            .split("://")
            .nth(1)
            .unwrap_or_default()
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let server_addr = tokio::net::lookup_host(&host)
            .await?
            .next()
            .ok_or_else(|| SimError::Protocol(format!("cannot resolve {host}")))?;
        let tcp = if server_addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        tcp.bind(SocketAddr::new(options.local_ip, 0))?;
        let stream = tcp.connect(server_addr).await?;
        let mut request = url.into_client_request()?;
        if let Some(cookie) = &options.session_cookie
            && let Ok(value) = cookie.parse()
        {
            request.headers_mut().insert("cookie", value);
        }
        let (mut ws, _) = tokio_tungstenite::client_async(request, stream).await?;
        let mut join = json!({
            "type": "join", "version": 1, "room": options.room, "name": options.name,
            "audioMuted": !options.send_audio, "videoMuted": !options.send_video,
        });
        for (key, value) in [
            ("jwt", &options.jwt),
            ("password", &options.password),
            ("rejoinKey", &options.rejoin_key),
            ("resume", &options.resume),
        ] {
            if let Some(value) = value {
                join[key] = json!(value);
            }
        }
        ws.send(Message::text(join.to_string())).await?;
        let joined = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(message) = ws.next().await {
                if let Message::Text(text) = message? {
                    let value: Value = serde_json::from_str(&text)
                        .map_err(|e| SimError::Protocol(e.to_string()))?;
                    match value["type"].as_str() {
                        Some("joined") | Some("waiting") => return Ok(value),
                        Some("error") => {
                            return Err(SimError::Protocol(format!(
                                "{}: {}",
                                value["code"].as_str().unwrap_or(""),
                                value["message"].as_str().unwrap_or("")
                            )));
                        }
                        _ => {}
                    }
                }
            }
            Err(SimError::Protocol("closed before joined".into()))
        })
        .await
        .map_err(|_| SimError::Timeout("joined"))??;

        let observed = Arc::new(Mutex::new(Observed::default()));
        let socket = media_socket(SocketAddr::new(options.local_ip, 0))?;
        let mut media = Media::new(&options, socket.local_addr()?)?;
        if joined["type"] == "joined" {
            on_joined(&joined, &mut lock(&observed));
            let offer = media.offer()?;
            ws.send(Message::text(
                json!({"type": "offer", "sdp": offer}).to_string(),
            ))
            .await?;
        } else {
            let mut o = lock(&observed);
            o.waiting = joined["reason"].as_str().map(String::from);
            o.messages.push(joined.clone());
        }
        let id = joined["you"].as_str().unwrap_or_default().to_string();
        let conference = joined["conference"]
            .as_str()
            .unwrap_or_default()
            .to_string();

        let (control, control_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(
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

/// Takes in what `joined` says.
fn on_joined(joined: &Value, o: &mut Observed) {
    for p in joined["participants"].as_array().into_iter().flatten() {
        if let (Some(id), Some(name)) = (p["id"].as_str(), p["name"].as_str()) {
            o.participants.insert(id.into(), name.into());
        }
    }
    o.you = joined["you"].as_str().unwrap_or_default().to_string();
    o.conference = joined["conference"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    o.role = joined["role"].as_str().unwrap_or_default().to_string();
    o.resume_token = joined["resumeToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    o.resumed = joined["resumed"].as_bool().unwrap_or(false);
    o.waiting = None;
    o.messages.push(joined.clone());
}

fn lock(observed: &Arc<Mutex<Observed>>) -> MutexGuard<'_, Observed> {
    observed.lock().unwrap_or_else(|p| p.into_inner())
}

/// One outgoing track: a microphone, a camera (one stream, or one per simulcast layer) or a
/// screen.
struct Outgoing {
    sender: RTCRtpSenderId,
    streams: Vec<Stream>,
    payload_type: Option<u8>,
    /// The audio-level header extension's negotiated id, for a microphone.
    level_extension: Option<u8>,
    /// The media section's mid, and the negotiated ids of the mid and rid extensions: a
    /// simulcast layer is known to the receiver by its rid, as browsers send it.
    mid: &'static str,
    mid_extension: Option<u8>,
    rid_extension: Option<u8>,
}

/// One RTP stream of an outgoing track.
struct Stream {
    rid: &'static str,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    probe_sequence: u32,
    /// Its share of the track's bitrate.
    share: f32,
    /// The picture height its keyframes announce.
    height: u16,
    /// The next frame is a keyframe (the first one, or one a receiver asked for).
    keyframe_due: bool,
    /// Sent at all: the server pauses layers nobody receives (`send-video`).
    active: bool,
}

/// The simulcast layers: rid, share of the top layer's bitrate, height.
const SIMULCAST: [(&str, f32, u16); 3] = [("q", 0.15, 180), ("h", 0.35, 360), ("f", 1.0, 720)];

/// Bytes of every video payload before the probe: the VP8 payload descriptor (one byte) and room
/// for a keyframe's header (ten bytes), so receivers find the probe at a fixed place.
const VIDEO_HEADER: usize = 11;

/// Where sequence numbers of one received stream have got to.
#[derive(Default)]
struct Reception {
    highest: u16,
    highest_ts: u32,
    /// Bit i: `highest - i` arrived.
    seen: u128,
    started: bool,
}

/// Which of a participant's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Audio,
    Video,
    Screen,
}

/// The participant's peer connection and its streams.
struct Media {
    pc: RTCPeerConnection,
    local_addr: SocketAddr,
    audio: Outgoing,
    video: Outgoing,
    /// The third transceiver: a shared screen, when the participant shares one.
    screen: Option<Outgoing>,
    /// Inbound track id → (publisher id, kind).
    tracks: HashMap<String, (String, RtpCodecKind)>,
    /// Highest probe sequence seen per inbound SSRC and layer (a simulcast layer has its own
    /// probe numbers, and one inbound SSRC carries whichever layer the SFU chose).
    highest_probe: HashMap<(u32, u16), u32>,
    receptions: HashMap<u32, Reception>,
    /// The numbers step of the video packet being handled, from the newest before it.
    newest_step: Option<(u16, u32)>,
    /// The level the microphone's packets announce (−dBov).
    voice_level: u8,
}

fn video_feedback() -> Vec<RTCPFeedback> {
    [("nack", ""), ("nack", "pli"), ("ccm", "fir")]
        .into_iter()
        .map(|(t, p)| RTCPFeedback {
            typ: t.into(),
            parameter: p.into(),
        })
        .collect()
}

fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.into(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
        rtcp_feedback: vec![],
    }
}

fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.into(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: video_feedback(),
    }
}

impl Media {
    fn new(options: &SimOptions, local_addr: SocketAddr) -> Result<Self, SimError> {
        let now = Instant::now();
        let mut engine = MediaEngine::default();
        engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus(),
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )?;
        engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: vp8(),
                payload_type: 96,
            },
            RtpCodecKind::Video,
        )?;
        engine.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: AUDIO_LEVEL_URI.into(),
            },
            RtpCodecKind::Audio,
            None,
        )?;
        let registry = register_default_interceptors(Registry::new(), &mut engine)?
            .with(
                rtc::interceptor::Slot::from(12_500),
                crate::sfu::FeedbackTap::default(),
            )
            // As browsers do: a lost packet is asked for again a few times, not forever (an
            // unbounded re-ask every 100 ms turns a congested downlink into a retransmission
            // storm).
            .with(
                rtc::interceptor::Slot::NackGenerator,
                rtc::interceptor::NackGeneratorBuilder::new()
                    .with_interval(Duration::from_millis(100))
                    .with_max_nacks_per_packet(3)
                    .build(),
            );
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(SettingEngineBuilder::new().build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .build(now)?;
        let candidate = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: local_addr.ip().to_string(),
                port: local_addr.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()?;
        pc.add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)?;
        pc.add_local_candidate(RTCIceCandidateInit::default())?;
        let stream = format!("sim-{}", rand::random::<u32>());
        let mut number = 0;
        let mut outgoing = |kind: RtpCodecKind,
                            codec: RTCRtpCodec,
                            layers: &[(&'static str, f32, u16)]|
         -> Result<Outgoing, SimError> {
            // Track ids are unique, as browsers make them: a camera and a screen are both video.
            number += 1;
            let streams: Vec<Stream> = layers
                .iter()
                .map(|(rid, share, height)| Stream {
                    rid,
                    ssrc: rand::random::<u32>() | 1,
                    sequence: rand::random(),
                    timestamp: rand::random(),
                    probe_sequence: 0,
                    share: *share,
                    height: *height,
                    keyframe_due: true,
                    active: true,
                })
                .collect();
            let encodings = layers
                .iter()
                .zip(&streams)
                .map(|((rid, _, _), stream)| RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        rid: rid.to_string(),
                        ssrc: Some(stream.ssrc),
                        ..Default::default()
                    },
                    active: true,
                    codec: codec.clone(),
                    ..Default::default()
                })
                .collect();
            let track = MediaStreamTrack::new(
                stream.clone(),
                format!("{stream}-{kind}-{number}"),
                format!("{stream}-{kind}-{number}"),
                kind,
                encodings,
            );
            let id = pc.add_transceiver_from_track(
                track,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: vec![stream.clone()],
                    send_encodings: vec![],
                }),
            )?;
            let sender = pc
                .rtp_transceiver(id)
                .and_then(|t| t.sender())
                .ok_or_else(|| SimError::Protocol("no sender".into()))?;
            Ok(Outgoing {
                sender,
                streams,
                payload_type: None,
                level_extension: None,
                // Transceivers are added in order: microphone, camera, screen.
                mid: ["0", "1", "2"][number - 1],
                mid_extension: None,
                rid_extension: None,
            })
        };
        let single: &[(&'static str, f32, u16)] = &[("", 1.0, 360)];
        let audio = outgoing(RtpCodecKind::Audio, opus(), single)?;
        let camera: &[(&'static str, f32, u16)] = if options.simulcast {
            &SIMULCAST
        } else {
            single
        };
        let video = outgoing(RtpCodecKind::Video, vp8(), camera)?;
        let screen = if options.send_screen {
            Some(outgoing(RtpCodecKind::Video, vp8(), &[("", 1.0, 1080)])?)
        } else {
            None
        };
        Ok(Self {
            pc,
            local_addr,
            audio,
            video,
            screen,
            tracks: HashMap::new(),
            highest_probe: HashMap::new(),
            receptions: HashMap::new(),
            newest_step: None,
            voice_level: 127,
        })
    }

    fn offer(&mut self) -> Result<String, SimError> {
        let offer = self.pc.create_offer(None)?;
        self.pc.set_local_description(Instant::now(), offer)?;
        Ok(self
            .pc
            .local_description()
            .map(|d| d.sdp)
            .unwrap_or_default())
    }

    fn learn_payload_types(&mut self) {
        let outs = [
            Some(&mut self.audio),
            Some(&mut self.video),
            self.screen.as_mut(),
        ];
        for out in outs.into_iter().flatten() {
            if out.payload_type.is_none()
                && let Some(mut sender) = self.pc.rtp_sender(out.sender)
            {
                let parameters = &sender.get_parameters().rtp_parameters;
                out.payload_type = parameters.codecs.first().map(|c| c.payload_type);
                let id_of = |uri: &str| {
                    parameters
                        .header_extensions
                        .iter()
                        .find(|e| e.uri == uri)
                        .and_then(|e| u8::try_from(e.id).ok())
                };
                out.level_extension = id_of(AUDIO_LEVEL_URI);
                out.mid_extension = id_of("urn:ietf:params:rtp-hdrext:sdes:mid");
                out.rid_extension = id_of("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id");
            }
        }
    }

    fn send_frame(&mut self, which: Which, bytes: usize, now: Instant) {
        let video = which != Which::Audio;
        let out = match which {
            Which::Audio => &mut self.audio,
            Which::Video => &mut self.video,
            Which::Screen => match self.screen.as_mut() {
                Some(screen) => screen,
                None => return,
            },
        };
        let Some(payload_type) = out.payload_type else {
            return;
        };
        let level = match out.level_extension {
            Some(id) if which == Which::Audio => vec![rtp::header::Extension {
                id,
                payload: Bytes::copy_from_slice(&[self.voice_level]),
            }],
            _ => Vec::new(),
        };
        let sent_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let Some(mut sender) = self.pc.rtp_sender(out.sender) else {
            return;
        };
        for stream in &mut out.streams {
            if !stream.active {
                // The capture clock runs on while the encoder is paused.
                stream.timestamp = stream.timestamp.wrapping_add(90 * 20);
                continue;
            }
            let bytes = (bytes as f32 * stream.share) as usize;
            let packets = bytes.div_ceil(MAX_VIDEO_PAYLOAD).max(1);
            let header = if video { VIDEO_HEADER } else { 0 };
            let per_packet = (bytes / packets).max(header + PROBE_LEN + 1);
            let keyframe = std::mem::take(&mut stream.keyframe_due);
            let mut extensions = level.clone();
            if !stream.rid.is_empty()
                && let (Some(mid), Some(rid)) = (out.mid_extension, out.rid_extension)
            {
                extensions.push(rtp::header::Extension {
                    id: mid,
                    payload: Bytes::from_static(out.mid.as_bytes()),
                });
                extensions.push(rtp::header::Extension {
                    id: rid,
                    payload: Bytes::from_static(stream.rid.as_bytes()),
                });
            }
            for i in 0..packets {
                stream.sequence = stream.sequence.wrapping_add(1);
                stream.probe_sequence = stream.probe_sequence.wrapping_add(1);
                let mut payload = BytesMut::with_capacity(per_packet);
                if video {
                    let mut head = [0u8; VIDEO_HEADER];
                    if i == 0 {
                        // VP8: start of partition 0, then the frame tag (bit 0 clear on a
                        // keyframe) and, on a keyframe, the start code and the picture size.
                        head[0] = 0x10;
                        head[1] = if keyframe { 0x50 } else { 0x51 };
                        if keyframe {
                            let width = stream.height / 9 * 16;
                            head[4..7].copy_from_slice(&[0x9d, 0x01, 0x2a]);
                            head[7..9].copy_from_slice(&width.to_le_bytes());
                            head[9..11].copy_from_slice(&stream.height.to_le_bytes());
                        }
                    }
                    payload.extend_from_slice(&head);
                }
                payload.extend_from_slice(PROBE_MAGIC);
                payload.extend_from_slice(&stream.probe_sequence.to_be_bytes());
                payload.extend_from_slice(&sent_at.to_be_bytes());
                payload.resize(per_packet, 0xAB);
                let packet = rtp::Packet {
                    header: rtp::Header {
                        version: 2,
                        marker: i + 1 == packets,
                        payload_type,
                        sequence_number: stream.sequence,
                        timestamp: stream.timestamp,
                        ssrc: stream.ssrc,
                        extension: !extensions.is_empty(),
                        extension_profile: 0xBEDE,
                        extensions: extensions.clone(),
                        ..Default::default()
                    },
                    payload: payload.freeze(),
                };
                let _ = sender.write_rtp(now, packet);
            }
            stream.timestamp = stream
                .timestamp
                .wrapping_add(if video { 90 * 20 } else { 48 * 20 });
        }
    }

    /// Sends only the camera layers up to the first at least `max_height` tall (none for 0, all
    /// for `None`), as a browser does when the server says `send-video`. A layer that starts
    /// again starts with a keyframe.
    fn send_video(&mut self, max_height: Option<u16>) {
        let streams = &mut self.video.streams;
        let cut = match max_height {
            None => u16::MAX,
            Some(0) => 0,
            Some(wanted) => streams
                .iter()
                .map(|s| s.height)
                .filter(|h| *h >= wanted)
                .min()
                .unwrap_or(u16::MAX),
        };
        for stream in streams {
            let active = stream.height <= cut && cut > 0;
            if active && !stream.active {
                stream.keyframe_due = true;
            }
            stream.active = active;
        }
    }

    /// A receiver asked for a keyframe of the stream `ssrc`.
    fn keyframe_requested(&mut self, ssrc: u32) {
        let outs = [Some(&mut self.video), self.screen.as_mut()];
        for out in outs.into_iter().flatten() {
            for stream in &mut out.streams {
                if stream.ssrc == ssrc {
                    stream.keyframe_due = true;
                }
            }
        }
    }

    /// Whether a packet of `ssrc` with `sequence` was already received; tracks the stream's
    /// continuity on the way.
    fn duplicate(&mut self, packet: &rtp::Packet, video: bool, observed: &mut Observed) -> bool {
        let (sequence, timestamp) = (packet.header.sequence_number, packet.header.timestamp);
        self.newest_step = None;
        let r = self.receptions.entry(packet.header.ssrc).or_default();
        if !r.started {
            *r = Reception {
                highest: sequence,
                highest_ts: timestamp,
                seen: 1,
                started: true,
            };
            observed.rtp_expected += 1;
            observed.rtp_received += 1;
            return false;
        }
        let ahead = sequence.wrapping_sub(r.highest);
        if ahead != 0 && ahead < 0x8000 {
            observed.rtp_expected += u64::from(ahead);
            observed.rtp_received += 1;
            if video {
                observed.max_seq_step = observed.max_seq_step.max(ahead);
                let ts_step = timestamp.wrapping_sub(r.highest_ts);
                self.newest_step = Some((ahead, ts_step));
                if ts_step >= 0x8000_0000 {
                    observed.ts_backwards += 1;
                } else {
                    observed.max_ts_step = observed.max_ts_step.max(ts_step);
                }
            }
            r.seen = if ahead >= 128 { 0 } else { r.seen << ahead };
            r.seen |= 1;
            r.highest = sequence;
            r.highest_ts = timestamp;
            return false;
        }
        let behind = r.highest.wrapping_sub(sequence);
        if behind >= 128 {
            observed.rtp_received += 1;
            return false;
        }
        let bit = 1u128 << behind;
        let seen = r.seen & bit != 0;
        r.seen |= bit;
        if !seen {
            observed.rtp_received += 1;
        }
        seen
    }

    fn on_rtp(&mut self, track_id: &str, packet: &rtp::Packet, observed: &mut Observed) {
        let Some((publisher, kind)) = self.tracks.get(track_id).cloned() else {
            return;
        };
        let video = kind == RtpCodecKind::Video;
        if self.duplicate(packet, video, observed) {
            observed.duplicates += 1;
            return;
        }
        if video && packet.payload.is_empty() {
            observed.padding_packets += 1;
            return;
        }
        observed
            .first_packet
            .entry(publisher.clone())
            .or_insert_with(Instant::now);
        let payload: &Bytes = &packet.payload;
        if video {
            if payload.len() >= VIDEO_HEADER && payload[0] & 0x10 != 0 && payload[1] & 0x01 == 0 {
                let height = u16::from_le_bytes([payload[9], payload[10]]);
                observed
                    .first_keyframe
                    .entry(publisher.clone())
                    .or_insert_with(Instant::now);
                let before = observed.video_height.insert(publisher.clone(), height);
                if let (Some(from_height), Some((sequence_step, timestamp_step))) =
                    (before.filter(|h| *h != height), self.newest_step)
                {
                    observed.layer_changes.push(LayerChange {
                        publisher: publisher.clone(),
                        from_height,
                        to_height: height,
                        sequence_step,
                        timestamp_step,
                    });
                }
            }
            if let Some(height) = observed.video_height.get(&publisher).copied() {
                *observed.video_bytes_by_height.entry(height).or_default() += payload.len() as u64;
            }
        }
        let entry = observed.received.entry(publisher.clone()).or_default();
        if !video {
            entry.audio_packets += 1;
        } else {
            entry.video_packets += 1;
        }
        entry.bytes += packet.payload.len() as u64;
        let probe = if video {
            payload.get(VIDEO_HEADER..VIDEO_HEADER + PROBE_LEN)
        } else {
            payload.get(..PROBE_LEN)
        };
        if let Some(probe) = probe
            && probe.starts_with(PROBE_MAGIC)
        {
            let sequence = u32::from_be_bytes([probe[4], probe[5], probe[6], probe[7]]);
            let mut sent = [0u8; 8];
            sent.copy_from_slice(&probe[8..16]);
            let sent = u64::from_be_bytes(sent);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0);
            if observed.latency_us.len() < 100_000 {
                observed
                    .latency_us
                    .push(now.saturating_sub(sent).min(u32::MAX as u64) as u32);
            }
            observed.probes_received += 1;
            let layer = observed.video_height.get(&publisher).copied().unwrap_or(0);
            let key = (packet.header.ssrc, if video { layer } else { 0 });
            match self.highest_probe.get_mut(&key) {
                None => {
                    self.highest_probe.insert(key, sequence);
                    observed.probes_expected += 1;
                }
                Some(highest) if sequence > *highest => {
                    observed.probes_expected += u64::from(sequence - *highest);
                    *highest = sequence;
                }
                // Late or repaired: it was counted as expected already.
                Some(_) => {}
            }
        }
    }
}

/// The server's SDP with its candidates pointing at `relay` instead, when there is one.
fn via_relay(sdp: &str, relay: Option<SocketAddr>) -> String {
    let Some(relay) = relay else {
        return sdp.to_string();
    };
    sdp.split("\r\n")
        .map(|line| {
            if !line.starts_with("a=candidate:") {
                return line.to_string();
            }
            let mut fields: Vec<String> = line.split(' ').map(String::from).collect();
            if fields.len() > 5 {
                fields[4] = relay.ip().to_string();
                fields[5] = relay.port().to_string();
            }
            fields.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// Hands every datagram waiting on the socket (up to a bound, so sending gets its turn) to the
/// connection.
fn receive_available(
    socket: &UdpSocket,
    gro: Option<&quinn_udp::UdpSocketState>,
    buf: &mut [u8],
    media: &mut Media,
) {
    const MAX_READS: usize = 64;
    for _ in 0..MAX_READS {
        let received = socket.try_io(tokio::io::Interest::READABLE, || match gro {
            Some(state) => {
                let mut meta = [quinn_udp::RecvMeta::default()];
                let mut bufs = [std::io::IoSliceMut::new(&mut *buf)];
                state.recv(socket.into(), &mut bufs, &mut meta)?;
                Ok((meta[0].len, meta[0].stride, meta[0].addr))
            }
            None => {
                let (n, from) = socket.try_recv_from(&mut *buf)?;
                Ok((n, n, from))
            }
        });
        let Ok((len, stride, from)) = received else {
            return;
        };
        let from = SocketAddr::new(crate::privacy::pii::canonical_ip(from.ip()), from.port());
        let now = Instant::now();
        for datagram in buf[..len].chunks(stride.max(1)) {
            let _ = media.pc.handle_read(TaggedBytesMut {
                now,
                transport: TransportContext {
                    local_addr: media.local_addr,
                    peer_addr: from,
                    ecn: None,
                    transport_protocol: TransportProtocol::UDP,
                },
                message: BytesMut::from(datagram),
            });
        }
    }
}

async fn run(
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    socket: UdpSocket,
    mut media: Media,
    options: SimOptions,
    observed: Arc<Mutex<Observed>>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let (mut ws_tx, mut ws_rx) = ws.split();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // GRO where the system offers it: the SFU sends a receiver's packets as runs of equal-sized
    // datagrams in one segmentation-offload send, and taking each run in one read is how a
    // remote browser's host would not burden the server's CPU with splitting it (on loopback the
    // receiving socket's work is charged to the sender). Without GRO, one datagram per read.
    let gro = quinn_udp::UdpSocketState::new((&socket).into()).ok();
    let mut buf = vec![0u8; 64 * 1024];
    let mut send_audio = options.send_audio;
    let mut send_video = options.send_video;
    let mut send_screen = true;
    let video_bytes_per_tick = (options.video_kbps as usize * 1000 / 8) / 50;
    let mut tick_count: u64 = 0;
    let mut network_down = false;
    let mut ws_alive = true;
    let ended = loop {
        // Everything the connection wants to send, and everything it has for us.
        while let Some(out) = media.pc.poll_write() {
            if !network_down {
                let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
            }
        }
        while let Some(event) = media.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    lock(&observed).connected = state == RTCPeerConnectionState::Connected;
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let kind = media
                        .pc
                        .rtp_receiver(init.receiver_id)
                        .map(|r| r.track().kind())
                        .unwrap_or(RtpCodecKind::Video);
                    if let Some(stream) = init.stream_ids.first() {
                        media.tracks.insert(init.track_id, (stream.clone(), kind));
                    }
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = media.pc.poll_read() {
            match message {
                RTCMessage::RtpPacket(track_id, packet) => {
                    let mut o = lock(&observed);
                    media.on_rtp(&track_id, &packet, &mut o);
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    for packet in &packets {
                        let any = packet.as_any();
                        let ssrc = any
                            .downcast_ref::<rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>()
                            .map(|p| p.media_ssrc)
                            .or_else(|| {
                                any.downcast_ref::<rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest>()
                                    .map(|f| f.media_ssrc)
                            });
                        if let Some(ssrc) = ssrc {
                            media.keyframe_requested(ssrc);
                        }
                    }
                }
                _ => {}
            }
        }
        let deadline = media
            .pc
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.into()) => {
                let _ = media.pc.handle_timeout(Instant::now());
            }
            readable = socket.readable(), if !network_down => {
                if readable.is_ok() {
                    receive_available(&socket, gro.as_ref(), &mut buf, &mut media);
                }
            }
            _ = ticker.tick() => {
                tick_count += 1;
                let now = Instant::now();
                if send_audio {
                    media.send_frame(Which::Audio, AUDIO_PAYLOAD, now);
                }
                // Video as 25 frames per second: a frame every other tick.
                if send_video && tick_count.is_multiple_of(2) {
                    media.send_frame(Which::Video, video_bytes_per_tick * 2, now);
                }
                // A screen: five frames a second.
                if send_screen && tick_count.is_multiple_of(10) {
                    media.send_frame(Which::Screen, video_bytes_per_tick * 4, now);
                }
            }
            command = control.recv() => match command {
                Some(Control::Leave) | None => {
                    let _ = ws_tx.send(Message::text(r#"{"type":"leave"}"#)).await;
                    break "left".to_string();
                }
                Some(Control::Raw(message)) => {
                    let _ = ws_tx.send(message).await;
                }
                Some(Control::Mute { audio, video }) => {
                    send_audio = !audio;
                    send_video = !video;
                    let m = json!({"type": "mute", "audioMuted": audio, "videoMuted": video});
                    let _ = ws_tx.send(Message::text(m.to_string())).await;
                }
                Some(Control::StopMedia) => {
                    send_audio = false;
                    send_video = false;
                }
                Some(Control::DropNetwork) => network_down = true,
                Some(Control::Voice(level)) => media.voice_level = level,
                Some(Control::StopScreen) => send_screen = false,
                Some(Control::DropWebSocket) => {
                    let _ = ws_tx.close().await;
                    ws_alive = false;
                }
            },
            message = ws_rx.next(), if ws_alive => {
                let Some(Ok(message)) = message else {
                    break "websocket closed".to_string();
                };
                let text = match message {
                    Message::Text(text) => text,
                    Message::Close(_) => break "closed by the server".to_string(),
                    _ => continue,
                };
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if !matches!(value["type"].as_str(), Some("offer" | "answer" | "joined")) {
                    let mut o = lock(&observed);
                    if o.messages.len() < 10_000 {
                        o.messages.push(value.clone());
                    }
                    if value["type"] == "role" && value["id"].as_str() == Some(o.you.as_str()) {
                        o.role = value["role"].as_str().unwrap_or_default().to_string();
                    }
                }
                match value["type"].as_str() {
                    Some("joined") => {
                        on_joined(&value, &mut lock(&observed));
                        if let Ok(offer) = media.offer() {
                            let m = json!({"type": "offer", "sdp": offer});
                            let _ = ws_tx.send(Message::text(m.to_string())).await;
                        }
                    }
                    Some("send-video") => {
                        media.send_video(value["maxHeight"].as_u64().map(|h| h.min(u16::MAX.into()) as u16));
                    }
                    Some("answer") => {
                        let sdp = via_relay(value["sdp"].as_str().unwrap_or_default(), options.media_relay);
                        if let Ok(answer) = RTCSessionDescription::answer(sdp) {
                            let _ = media.pc.set_remote_description(Instant::now(), answer);
                            media.learn_payload_types();
                        }
                    }
                    Some("offer") => {
                        let sdp = via_relay(value["sdp"].as_str().unwrap_or_default(), options.media_relay);
                        lock(&observed).last_server_offer = Some(sdp.clone());
                        let answered = (|| {
                            let offer = RTCSessionDescription::offer(sdp)?;
                            media.pc.set_remote_description(Instant::now(), offer)?;
                            let answer = media.pc.create_answer(None)?;
                            media.pc.set_local_description(Instant::now(), answer)?;
                            Ok::<_, rtc::shared::error::Error>(
                                media.pc.local_description().map(|d| d.sdp).unwrap_or_default(),
                            )
                        })();
                        if let Ok(answer) = answered {
                            let m = json!({"type": "answer", "sdp": answer});
                            let _ = ws_tx.send(Message::text(m.to_string())).await;
                            lock(&observed).offers_answered += 1;
                        }
                    }
                    Some("participant-joined") => {
                        let p = &value["participant"];
                        if let (Some(id), Some(name)) = (p["id"].as_str(), p["name"].as_str()) {
                            lock(&observed).participants.insert(id.into(), name.into());
                        }
                    }
                    Some("participant-left") => {
                        if let Some(id) = value["id"].as_str() {
                            let mut o = lock(&observed);
                            o.participants.remove(id);
                            o.left.push(id.into());
                        }
                    }
                    Some("mute") => {
                        if let Some(id) = value["id"].as_str() {
                            let state = (
                                value["audioMuted"].as_bool().unwrap_or(false),
                                value["videoMuted"].as_bool().unwrap_or(false),
                            );
                            lock(&observed).mutes.insert(id.into(), state);
                        }
                    }
                    Some("error") => {
                        let code = value["code"].as_str().unwrap_or_default().to_string();
                        let message = value["message"].as_str().unwrap_or_default().to_string();
                        lock(&observed).errors.push((code, message));
                    }
                    _ => {}
                }
            }
        }
    };
    let _ = media.pc.close();
    while let Some(out) = media.pc.poll_write() {
        let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
    }
    let _ = ws_tx.close().await;
    let mut o = lock(&observed);
    o.connected = false;
    o.ended = Some(ended);
}
