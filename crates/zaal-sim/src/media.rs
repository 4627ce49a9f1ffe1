//! A simulated participant's media: its peer connection (set up as a browser's would be, with
//! the server's own host-candidate announcement), the synthetic streams it sends, and what it
//! counts of the streams it receives. Sans I/O: `session` moves its datagrams.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use zaal::sfu::connection::{
    ACTIVE_TCP_PORT, AUDIO_LEVEL_URI, add_active_tcp_candidate, add_host_candidates,
};

use crate::{LayerChange, Observed, SimError, SimOptions};

/// Marks a payload as ours: "ZAAL", then sequence (u32) and send time (u64 µs since the epoch).
const PROBE_MAGIC: &[u8; 4] = b"ZAAL";
const PROBE_LEN: usize = 16;
const MAX_VIDEO_PAYLOAD: usize = 1100;
/// Bytes of one audio packet's payload.
pub(crate) const AUDIO_PAYLOAD: usize = 80;

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
pub(crate) enum Which {
    Audio,
    Video,
    Screen,
}

/// The participant's peer connection and its streams.
pub(crate) struct Media {
    pub(crate) pc: RTCPeerConnection,
    pub(crate) local_addr: SocketAddr,
    audio: Outgoing,
    video: Outgoing,
    /// The third transceiver: a shared screen, when the participant shares one.
    screen: Option<Outgoing>,
    /// Inbound track id → (publisher id, kind).
    pub(crate) tracks: HashMap<String, (String, RtpCodecKind)>,
    /// Highest probe sequence seen per inbound SSRC and layer (a simulcast layer has its own
    /// probe numbers, and one inbound SSRC carries whichever layer the SFU chose).
    highest_probe: HashMap<(u32, u16), u32>,
    receptions: HashMap<u32, Reception>,
    /// The numbers step of the video packet being handled, from the newest before it.
    newest_step: Option<(u16, u32)>,
    /// The level the microphone's packets announce (−dBov).
    pub(crate) voice_level: u8,
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
    pub(crate) fn new(options: &SimOptions, local_addr: SocketAddr) -> Result<Self, SimError> {
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
                zaal::sfu::FeedbackTap::default(),
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
        // Over TCP the connection's own address is the active candidate's.
        let local_addr = if options.media_tcp {
            add_active_tcp_candidate(&mut pc, local_addr.ip())?;
            SocketAddr::new(local_addr.ip(), ACTIVE_TCP_PORT)
        } else {
            add_host_candidates(&mut pc, &[local_addr])?;
            local_addr
        };
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

    pub(crate) fn offer(&mut self) -> Result<String, SimError> {
        let offer = self.pc.create_offer(None)?;
        self.pc.set_local_description(Instant::now(), offer)?;
        Ok(self
            .pc
            .local_description()
            .map(|d| d.sdp)
            .unwrap_or_default())
    }

    pub(crate) fn learn_payload_types(&mut self) {
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

    pub(crate) fn send_frame(&mut self, which: Which, bytes: usize, now: Instant) {
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
    pub(crate) fn send_video(&mut self, max_height: Option<u16>) {
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
    pub(crate) fn keyframe_requested(&mut self, ssrc: u32) {
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

    pub(crate) fn on_rtp(&mut self, track_id: &str, packet: &rtp::Packet, observed: &mut Observed) {
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
pub(crate) fn via_relay(sdp: &str, relay: Option<SocketAddr>) -> String {
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
pub(crate) fn receive_available(
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
        let from = SocketAddr::new(zaal::privacy::pii::canonical_ip(from.ip()), from.port());
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
