//! The core's tables beside its peers: published sources, their RTP streams (layers), and who
//! receives each. Plain data with the lookups every part of the core makes; no I/O, no clock.

use std::time::Instant;

use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};

use crate::ids::ParticipantId;
use crate::sfu::forward::{NegotiatedCodec, Rewrite};
use crate::sfu::frame::VideoCodec;
use crate::sfu::keyframe::KeyframeThrottle;
use crate::sfu::pause::Demand;
use crate::sfu::peer::PeerKey;
use crate::sfu::retransmit::{RecentResends, SourceHistory};
use crate::sfu::switch::LayerSwitch;
use crate::sfu::voice::VoiceMeter;

/// Appended to the publisher's id to name the media stream of their screen.
pub const SCREEN_STREAM_SUFFIX: &str = "~screen";

/// One published track (a participant's microphone, camera or screen) and everyone receiving it.
pub struct Source {
    pub publisher: PeerKey,
    pub participant: ParticipantId,
    pub kind: RtpCodecKind,
    /// The client's third transceiver: its screen, not its camera.
    pub screen: bool,
    pub receiver: RTCRtpReceiverId,
    pub codec: RTCRtpCodec,
    pub video_codec: VideoCodec,
    pub codecs: Vec<NegotiatedCodec>,
    pub extensions: Vec<(u8, String)>,
    /// The RTP streams of the track: one, or one per simulcast layer.
    pub layers: Vec<Layer>,
    /// A microphone whose packets carry their audio level.
    pub voice: Option<VoiceMeter>,
    pub subscribers: Vec<Subscriber>,
}

impl Source {
    pub fn is_video(&self) -> bool {
        self.kind == RtpCodecKind::Video
    }

    /// The media stream id receivers know the source by: the publisher's id, and for a screen
    /// a stream of its own, so a client can show it apart from the camera.
    pub fn stream_id(&self) -> String {
        if self.screen {
            format!("{}{SCREEN_STREAM_SUFFIX}", self.participant)
        } else {
            self.participant.to_string()
        }
    }

    /// The entry of the receiver `peer`, if it receives this source.
    pub fn subscriber(&self, peer: PeerKey) -> Option<&Subscriber> {
        self.subscribers.iter().find(|s| s.peer == peer)
    }

    pub fn subscriber_mut(&mut self, peer: PeerKey) -> Option<&mut Subscriber> {
        self.subscribers.iter_mut().find(|s| s.peer == peer)
    }

    /// The position of the layer with this SSRC, added if it is new.
    pub fn layer_index(&mut self, ssrc: u32, now: Instant) -> usize {
        match self.layers.iter().position(|l| l.ssrc == ssrc) {
            Some(at) => at,
            None => {
                self.layers.push(Layer::new(ssrc, now));
                self.layers.len() - 1
            }
        }
    }
}

/// One RTP stream of a source: a simulcast layer, or the source's only stream.
pub struct Layer {
    pub ssrc: u32,
    pub keyframes: KeyframeThrottle,
    /// Payload bytes since the last rate update.
    pub bytes: u64,
    pub bitrate_bps: u64,
    /// From the layer's last keyframe, when the codec says it.
    pub height: Option<u16>,
    pub last_packet: Instant,
    pub since: Instant,
    /// Its video packets of the last second, for receivers' retransmission requests.
    pub history: SourceHistory,
}

impl Layer {
    pub fn new(ssrc: u32, now: Instant) -> Self {
        Self {
            ssrc,
            keyframes: KeyframeThrottle::default(),
            bytes: 0,
            bitrate_bps: 0,
            height: None,
            last_packet: now,
            since: now,
            history: SourceHistory::default(),
        }
    }
}

/// One receiver of a source.
pub struct Subscriber {
    pub peer: PeerKey,
    pub sender: RTCRtpSenderId,
    /// `None` until the subscriber's answer has been applied.
    pub rewrite: Option<Rewrite>,
    /// Which layer of a video source the subscriber is on, and the numbers that keep it one
    /// continuous stream.
    pub switch: LayerSwitch,
    /// The payload type of the last video packet sent, which padding packets carry too.
    pub payload_type: u8,
    /// How much of a camera this subscriber takes, for pausing layers nobody takes.
    pub demand: Demand,
    /// What was lately resent to it, for the retransmission hold-off.
    pub resends: RecentResends,
}

impl Subscriber {
    pub fn new(peer: PeerKey, sender: RTCRtpSenderId) -> Self {
        Self {
            peer,
            sender,
            rewrite: None,
            switch: LayerSwitch::default(),
            payload_type: 0,
            demand: Demand::Everything,
            resends: RecentResends::default(),
        }
    }
}
