//! A browser-like client for the core's tests: a full `rtc` peer connection (ICE agent, DTLS
//! client) that publishes a microphone and a camera (one stream, or three simulcast layers),
//! answers the server's offers, and records every RTP packet it receives. Sans I/O like the
//! core: the test network in `super` moves its datagrams.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
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
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;

use crate::ids::ParticipantId;
use crate::sfu::connection::add_host_candidates;
use crate::sfu::{ClientSignal, PeerSignal};

/// The simulcast layers: rid and the picture height its keyframes announce.
pub const LAYERS: [(&str, u16); 3] = [("q", 180), ("h", 360), ("f", 720)];

/// One RTP packet as a client received it.
#[derive(Debug, Clone)]
pub struct Got {
    /// The media stream it arrived on: the publisher's participant id.
    pub stream: String,
    pub video: bool,
    pub ssrc: u32,
    pub sequence: u16,
    /// The layer the publisher sent it on (its index in [`LAYERS`], 0 without simulcast), and
    /// the publisher's own number for it: what the payload says.
    pub layer: u8,
    pub sent_as: u16,
}

struct Stream {
    rid: &'static str,
    height: u16,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    keyframe_due: bool,
}

struct Outgoing {
    sender: RTCRtpSenderId,
    streams: Vec<Stream>,
    payload_type: Option<u8>,
    mid: &'static str,
    mid_extension: Option<u8>,
    rid_extension: Option<u8>,
}

pub struct Client {
    pub id: ParticipantId,
    pub addr: SocketAddr,
    pub pc: RTCPeerConnection,
    audio: Outgoing,
    video: Outgoing,
    /// Inbound track id → stream id.
    tracks: HashMap<String, String>,
    pub got: Vec<Got>,
    pub connected: bool,
    /// Whether its datagrams still reach the server and the server's reach it.
    pub online: bool,
}

fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.into(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: [("nack", ""), ("nack", "pli"), ("ccm", "fir")]
            .into_iter()
            .map(|(typ, parameter)| RTCPFeedback {
                typ: typ.into(),
                parameter: parameter.into(),
            })
            .collect(),
    }
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

impl Client {
    /// A client at `addr` whose camera sends three simulcast layers when `simulcast` is set.
    pub fn new(now: Instant, id: ParticipantId, addr: SocketAddr, simulcast: bool) -> Self {
        let mut engine = MediaEngine::default();
        for (codec, payload_type, kind) in [
            (opus(), 111, RtpCodecKind::Audio),
            (vp8(), 96, RtpCodecKind::Video),
        ] {
            engine
                .register_codec(
                    RTCRtpCodecParameters {
                        rtp_codec: codec,
                        payload_type,
                    },
                    kind,
                )
                .expect("a codec the engine knows");
        }
        // As the server's own connections do: keyframe requests reach the application only
        // through the feedback tap (the chain keeps all other inbound RTCP to itself).
        let registry = register_default_interceptors(Registry::new(), &mut engine)
            .expect("the default interceptors")
            .with(
                rtc::interceptor::Slot::from(12_500),
                crate::sfu::FeedbackTap::default(),
            );
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(SettingEngineBuilder::new().build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .build(now)
            .expect("a client connection");
        add_host_candidates(&mut pc, &[addr]).expect("a host candidate");
        let tag = id.to_string();
        let mut outgoing = |kind, codec: RTCRtpCodec, mid, layers: &[(&'static str, u16)]| {
            let streams: Vec<Stream> = layers
                .iter()
                .map(|&(rid, height)| Stream {
                    rid,
                    height,
                    ssrc: rand::random::<u32>() | 1,
                    sequence: rand::random(),
                    timestamp: rand::random(),
                    keyframe_due: true,
                })
                .collect();
            let encodings = streams
                .iter()
                .map(|s| RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        rid: s.rid.to_string(),
                        ssrc: Some(s.ssrc),
                        ..Default::default()
                    },
                    active: true,
                    codec: codec.clone(),
                    ..Default::default()
                })
                .collect();
            let track_id = format!("{tag}-{mid}");
            let track =
                MediaStreamTrack::new(tag.clone(), track_id.clone(), track_id, kind, encodings);
            let transceiver = pc
                .add_transceiver_from_track(
                    track,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        streams: vec![tag.clone()],
                        send_encodings: vec![],
                    }),
                )
                .expect("a transceiver");
            let sender = pc
                .rtp_transceiver(transceiver)
                .and_then(|t| t.sender())
                .expect("a sender");
            Outgoing {
                sender,
                streams,
                payload_type: None,
                mid,
                mid_extension: None,
                rid_extension: None,
            }
        };
        let single: &[(&'static str, u16)] = &[("", 360)];
        let audio = outgoing(RtpCodecKind::Audio, opus(), "0", single);
        let camera = if simulcast { &LAYERS[..] } else { single };
        let video = outgoing(RtpCodecKind::Video, vp8(), "1", camera);
        Self {
            id,
            addr,
            pc,
            audio,
            video,
            tracks: HashMap::new(),
            got: Vec::new(),
            connected: false,
            online: true,
        }
    }

    /// The publishing offer, sent once after joining.
    pub fn offer(&mut self, now: Instant) -> ClientSignal {
        let offer = self.pc.create_offer(None).expect("an offer");
        self.pc
            .set_local_description(now, offer)
            .expect("the offer applies");
        let sdp = self.pc.local_description().expect("an offer").sdp;
        ClientSignal::Offer(sdp)
    }

    /// Takes a signal from the server; returns the answer to send back, if one is due.
    pub fn on_signal(&mut self, now: Instant, signal: PeerSignal) -> Option<ClientSignal> {
        match signal {
            PeerSignal::Answer(sdp) => {
                let answer = RTCSessionDescription::answer(sdp).expect("an answer");
                self.pc
                    .set_remote_description(now, answer)
                    .expect("the server's answer applies");
                self.learn_payload_types();
                None
            }
            PeerSignal::Offer(sdp) => {
                let offer = RTCSessionDescription::offer(sdp).expect("an offer");
                self.pc
                    .set_remote_description(now, offer)
                    .expect("the server's offer applies");
                let answer = self.pc.create_answer(None).expect("an answer");
                self.pc
                    .set_local_description(now, answer)
                    .expect("the answer applies");
                let sdp = self.pc.local_description().expect("an answer").sdp;
                Some(ClientSignal::Answer(sdp))
            }
            PeerSignal::NegotiationFailed(why) => panic!("negotiation failed: {why}"),
            PeerSignal::SendVideo { .. } => None,
        }
    }

    fn learn_payload_types(&mut self) {
        for out in [&mut self.audio, &mut self.video] {
            let Some(mut sender) = self.pc.rtp_sender(out.sender) else {
                continue;
            };
            let parameters = &sender.get_parameters().rtp_parameters;
            out.payload_type = parameters.codecs.first().map(|c| c.payload_type);
            let id_of = |uri: &str| {
                parameters
                    .header_extensions
                    .iter()
                    .find(|e| e.uri == uri)
                    .and_then(|e| u8::try_from(e.id).ok())
            };
            out.mid_extension = id_of("urn:ietf:params:rtp-hdrext:sdes:mid");
            out.rid_extension = id_of("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id");
        }
    }

    /// One audio packet, and (when `video`) one single-packet video frame on every layer.
    pub fn send_media(&mut self, now: Instant, video: bool) {
        send(&mut self.pc, &mut self.audio, now, false);
        if video {
            send(&mut self.pc, &mut self.video, now, true);
        }
    }

    /// Takes what the connection has for the application: events and received packets.
    pub fn drain(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    self.connected = state == RTCPeerConnectionState::Connected;
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    if let Some(stream) = init.stream_ids.first() {
                        self.tracks.insert(init.track_id, stream.clone());
                    }
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            match message {
                RTCMessage::RtpPacket(track_id, packet) => {
                    let Some(stream) = self.tracks.get(&track_id) else {
                        continue;
                    };
                    if let Some(got) = parse(stream, &packet) {
                        self.got.push(got);
                    }
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    for packet in &packets {
                        let any = packet.as_any();
                        if let Some(pli) = any.downcast_ref::<rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>() {
                            for stream in &mut self.video.streams {
                                if stream.ssrc == pli.media_ssrc {
                                    stream.keyframe_due = true;
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// What arrived from `publisher`'s stream.
    pub fn from(&self, publisher: &ParticipantId, video: bool) -> Vec<&Got> {
        self.got
            .iter()
            .filter(|g| g.stream == publisher.as_str() && g.video == video)
            .collect()
    }
}

/// Payloads start with a one-byte kind (`a`udio or `v`ideo), the layer and the sender's own
/// sequence number; video adds the VP8 descriptor and, on a keyframe, the picture size, where
/// the server looks for them.
const VP8_HEADER: usize = 11;

fn send(pc: &mut RTCPeerConnection, out: &mut Outgoing, now: Instant, video: bool) {
    let Some(payload_type) = out.payload_type else {
        return;
    };
    let Some(mut sender) = pc.rtp_sender(out.sender) else {
        return;
    };
    for (layer, stream) in out.streams.iter_mut().enumerate() {
        stream.sequence = stream.sequence.wrapping_add(1);
        let mut payload = BytesMut::new();
        if video {
            let keyframe = std::mem::take(&mut stream.keyframe_due);
            let mut head = [0u8; VP8_HEADER];
            head[0] = 0x10;
            head[1] = if keyframe { 0x50 } else { 0x51 };
            if keyframe {
                head[4..7].copy_from_slice(&[0x9d, 0x01, 0x2a]);
                head[7..9].copy_from_slice(&(stream.height / 9 * 16).to_le_bytes());
                head[9..11].copy_from_slice(&stream.height.to_le_bytes());
            }
            payload.extend_from_slice(&head);
        }
        payload.extend_from_slice(&[if video { b'v' } else { b'a' }, layer as u8]);
        payload.extend_from_slice(&stream.sequence.to_be_bytes());
        payload.resize(payload.len() + 100, 0xAB);
        let mut extensions = Vec::new();
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
        let packet = rtp::Packet {
            header: rtp::Header {
                version: 2,
                marker: true,
                payload_type,
                sequence_number: stream.sequence,
                timestamp: stream.timestamp,
                ssrc: stream.ssrc,
                extension: !extensions.is_empty(),
                extension_profile: 0xBEDE,
                extensions,
                ..Default::default()
            },
            payload: payload.freeze(),
        };
        let _ = sender.write_rtp(now, packet);
        stream.timestamp = stream
            .timestamp
            .wrapping_add(if video { 90 * 20 } else { 48 * 20 });
    }
}

fn parse(stream: &str, packet: &rtp::Packet) -> Option<Got> {
    let payload = &packet.payload;
    let at = match payload.first()? {
        0x10 => VP8_HEADER,
        _ => 0,
    };
    let mark = payload.get(at..at + 4)?;
    Some(Got {
        stream: stream.to_string(),
        video: mark[0] == b'v',
        ssrc: packet.header.ssrc,
        sequence: packet.header.sequence_number,
        layer: mark[1],
        sent_as: u16::from_be_bytes([mark[2], mark[3]]),
    })
}
