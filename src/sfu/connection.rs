//! How Zaal's WebRTC connections are configured: the server's side of each participant
//! (ICE-lite on the shared port with credentials of its own choosing, so the demux can find the
//! connection by ufrag; DTLS as server, `setup:passive`, the faster handshake; AEAD-GCM SRTP
//! first, cheaper per packet, with AES-CM as fallback; Opus, VP8 and H.264; Zaal's own NACK
//! tap and congestion control in the interceptor chain), and the host candidates every
//! connection, server or simulated client, announces. No I/O: it builds sans-I/O connections.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distr::Alphanumeric;
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::ice::tcp_type::TcpType;
use rtc::interceptor::{Registry, Slot};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::shared::error::Error as RtcError;

use super::bandwidth::{DownlinkEstimator, DownlinkReadings};
use super::demux::IceCredentials;
use super::rtcp::FeedbackTap;
use super::transport_cc::TransportCc;

/// ICE consent: a connection with no traffic for this long is "disconnected"…
const ICE_DISCONNECTED_AFTER: Duration = Duration::from_secs(3);
/// …and this much later "failed", which removes the participant (SPEC: within 10 s).
const ICE_FAILED_AFTER: Duration = Duration::from_secs(3);
const ICE_KEEPALIVE: Duration = Duration::from_secs(2);

pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
const SDES_MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";

/// ICE credentials for a new connection, with a username fragment that `taken` does not know
/// yet (RFC 8445 asks for at least 24 bits of randomness; these have 95, so a second draw is all
/// but unheard of) and a password of 190 bits.
pub fn new_ice_credentials(taken: impl Fn(&str) -> bool) -> IceCredentials {
    loop {
        let ufrag = random_string(16);
        if !taken(&ufrag) {
            return IceCredentials {
                ufrag,
                pwd: random_string(32),
            };
        }
    }
}

fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn video_feedback() -> Vec<RTCPFeedback> {
    // No `goog-remb`: the SFU estimates from transport-wide feedback and sends no REMB, and
    // every line offered is copied into each outgoing transceiver's codec lists.
    [
        ("transport-cc", ""),
        ("ccm", "fir"),
        ("nack", ""),
        ("nack", "pli"),
    ]
    .into_iter()
    .map(|(typ, parameter)| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    })
    .collect()
}

fn media_engine() -> Result<MediaEngine, RtcError> {
    let mut engine = MediaEngine::default();
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.into(),
                clock_rate: 48000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1;usedtx=1".into(),
                rtcp_feedback: vec![RTCPFeedback {
                    typ: "transport-cc".into(),
                    parameter: String::new(),
                }],
            },
            payload_type: 111,
        },
        RtpCodecKind::Audio,
    )?;
    let video = [
        (MIME_TYPE_VP8, "", 96),
        (
            MIME_TYPE_H264,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            102,
        ),
        (
            MIME_TYPE_H264,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
            108,
        ),
    ];
    for (mime, fmtp, pt) in video {
        engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: mime.into(),
                    clock_rate: 90000,
                    channels: 0,
                    sdp_fmtp_line: fmtp.into(),
                    rtcp_feedback: video_feedback(),
                },
                payload_type: pt,
            },
            RtpCodecKind::Video,
        )?;
    }
    for (uri, kind) in [
        (AUDIO_LEVEL_URI, RtpCodecKind::Audio),
        (SDES_MID_URI, RtpCodecKind::Audio),
    ] {
        engine.register_header_extension(
            RTCRtpHeaderExtensionCapability { uri: uri.into() },
            kind,
            None,
        )?;
    }
    Ok(engine)
}

/// Builds a participant's server-side connection with its ICE candidates already added.
pub fn build_connection(
    now: Instant,
    credentials: &IceCredentials,
    candidates: &Candidates,
    downlink: Arc<DownlinkReadings>,
) -> Result<RTCPeerConnection, RtcError> {
    let mut engine = media_engine()?;
    let registry = register_default_interceptors(Registry::new(), &mut engine)?
        // In the responder's place, a tap that hands NACKs (and keyframe requests) to the
        // engine: the default responder keeps the last 1024 packets of every outgoing video
        // stream, per receiver; the engine answers from one history per source
        // (`super::retransmit`), which with 15 streams per receiver in a full room is a
        // fifteenth of the records and payloads held for no receiver in particular.
        .with(Slot::NackResponder, FeedbackTap::default())
        // Transport-wide sequence numbers on everything sent, and the receiver's feedback on
        // them turned into a bandwidth estimate (layer choice, docs/decisions.md).
        .with(
            Slot::CongestionControl,
            TransportCc::new(now, DownlinkEstimator::new(downlink)),
        );
    let settings = SettingEngineBuilder::new()
        .with_lite(true)
        .with_ice_credentials(credentials.ufrag.clone(), credentials.pwd.clone())
        .with_answering_dtls_role(RTCDtlsRole::Server)
        .with_srtp_protection_profiles(vec![
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        ])
        .with_ice_timeouts(
            Some(ICE_DISCONNECTED_AFTER),
            Some(ICE_FAILED_AFTER),
            Some(ICE_KEEPALIVE),
        )
        // Nothing reads webrtc-rs's statistics (the server keeps figures of its own), and
        // counting every forwarded packet in them cost three table lookups per receiver.
        .with_sent_rtp_statistics(false)
        .build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(settings)
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .build(now)?;
    add_candidates(&mut pc, candidates)?;
    Ok(pc)
}

/// The server's host candidates: the media port's addresses, and the ICE-TCP port's (none when
/// it is off).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
}

/// Announces a UDP host candidate for each address, then the end of candidates: nothing more
/// is gathered.
pub fn add_host_candidates(
    pc: &mut RTCPeerConnection,
    addresses: &[SocketAddr],
) -> Result<(), RtcError> {
    add_candidates(
        pc,
        &Candidates {
            udp: addresses.to_vec(),
            tcp: Vec::new(),
        },
    )
}

/// Announces an active ICE-TCP host candidate on `ip` (port 9, RFC 6544: an active candidate
/// connects and listens nowhere), then the end of candidates: a client that reaches the server
/// only over TCP, as a browser behind a firewall that drops UDP does (the load tool's
/// `--transport tcp`).
pub fn add_active_tcp_candidate(pc: &mut RTCPeerConnection, ip: IpAddr) -> Result<(), RtcError> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "tcp".to_owned(),
            address: ip.to_string(),
            port: ACTIVE_TCP_PORT,
            component: 1,
            ..Default::default()
        },
        tcp_type: TcpType::Active,
    }
    .new_candidate_host()?;
    pc.add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)?;
    pc.add_local_candidate(RTCIceCandidateInit::default())
}

/// The port an active TCP candidate is announced with (RFC 6544 §4.5).
pub const ACTIVE_TCP_PORT: u16 = 9;

/// Announces the UDP host candidates, then the passive TCP ones (RFC 6544: the client connects
/// to them; their priority is below every UDP candidate's, so TCP carries media only where UDP
/// cannot), then the end of candidates.
fn add_candidates(pc: &mut RTCPeerConnection, candidates: &Candidates) -> Result<(), RtcError> {
    let udp = candidates
        .udp
        .iter()
        .map(|a| (a, "udp", TcpType::Unspecified));
    let tcp = candidates.tcp.iter().map(|a| (a, "tcp", TcpType::Passive));
    for (addr, network, tcp_type) in udp.chain(tcp) {
        let candidate = CandidateHostConfig {
            base_config: CandidateConfig {
                network: network.to_owned(),
                address: addr.ip().to_string(),
                port: addr.port(),
                component: 1,
                ..Default::default()
            },
            tcp_type,
        }
        .new_candidate_host()?;
        pc.add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)?;
    }
    pc.add_local_candidate(RTCIceCandidateInit::default())
}
