//! One participant's side of the core: its `rtc` connection (built by `super::connection`), its
//! negotiation state, the tracks it publishes and receives, and its downlink's figures. Plain
//! data: the core (`super::core`) drives it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::shared::error::Error as RtcError;

use super::bandwidth::DownlinkReadings;
use super::demux::IceCredentials;
use super::pause::PublisherDemand;
use super::probe::Probe;
use super::retransmit::RepairBudget;
use crate::ids::ParticipantId;

/// Where a connection is in the offer/answer exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    /// Created; the client's publishing offer has not arrived.
    AwaitingClientOffer,
    /// No offer outstanding.
    Stable,
    /// The server's offer is with the client; waiting for its answer.
    AwaitingAnswer,
}

/// A track this peer receives from another participant.
#[derive(Debug)]
pub struct OutgoingTrack {
    pub sender: RTCRtpSenderId,
    pub track_id: String,
    pub ssrc: u32,
}

/// Indexes into the engine's tables.
pub type PeerKey = usize;
pub type SourceKey = usize;

pub struct Peer {
    pub participant: ParticipantId,
    pub ufrag: String,
    pub pc: RTCPeerConnection,
    pub negotiation: Negotiation,
    /// The set of outgoing tracks changed since the last offer.
    pub needs_offer: bool,
    /// Whose media this peer receives (the focus's plan).
    pub plan: Vec<ParticipantId>,
    /// The sources this peer publishes.
    pub published: Vec<SourceKey>,
    /// Inbound track id → the source it feeds.
    pub track_sources: HashMap<String, SourceKey>,
    /// Source → the track carrying it to this peer.
    pub outgoing: HashMap<SourceKey, OutgoingTrack>,
    /// Outbound track id → source, to route a keyframe request back to its publisher.
    pub outgoing_by_track: HashMap<String, SourceKey>,
    pub state: RTCPeerConnectionState,
    /// When this peer's connection next needs `handle_timeout`.
    pub deadline: Option<Instant>,
    /// The local address the peer last reached us on, for replies from a wildcard bind.
    pub local_ip: Option<std::net::IpAddr>,
    pub next_track_number: u32,
    /// Whether this peer's audio and video are forwarded at all (the focus's gate).
    pub forward_audio: bool,
    pub forward_video: bool,
    /// What this peer's downlink carries, as its congestion feedback tells.
    pub downlink: Arc<DownlinkReadings>,
    /// What resends to this peer may still take of its link.
    pub repair: RepairBudget,
    pub probe: Probe,
    /// The height at which the client shows each video stream (by stream id), as it reported.
    pub shown_heights: HashMap<String, u16>,
    /// The most videos the client asked to receive.
    pub last_n: Option<usize>,
    pub allocations: u32,
    /// What the client was told about the camera layers it needs to send.
    pub camera_demand: PublisherDemand,
    /// Videos it would get (last-N and its tiles let them in) that its estimate holds back.
    pub videos_held_back: usize,
    /// Listed among the connections whose output the core has yet to take.
    pub touched: bool,
    /// The focus has been told the connection failed or closed (it is told once).
    pub gone_reported: bool,
    /// Makes the next datagram's handling panic, to show the panic ends only this connection.
    #[cfg(test)]
    pub fails_on_next_datagram: bool,
}

impl Peer {
    pub fn new(
        now: Instant,
        participant: ParticipantId,
        candidates: &super::connection::Candidates,
        credentials: &IceCredentials,
    ) -> Result<Self, RtcError> {
        let downlink = Arc::new(DownlinkReadings::default());
        let pc =
            super::connection::build_connection(now, credentials, candidates, downlink.clone())?;
        Ok(Self {
            participant,
            ufrag: credentials.ufrag.clone(),
            pc,
            negotiation: Negotiation::AwaitingClientOffer,
            needs_offer: false,
            plan: Vec::new(),
            published: Vec::new(),
            track_sources: HashMap::new(),
            outgoing: HashMap::new(),
            outgoing_by_track: HashMap::new(),
            state: RTCPeerConnectionState::New,
            deadline: Some(now),
            local_ip: None,
            next_track_number: 0,
            forward_audio: true,
            forward_video: true,
            repair: RepairBudget::new(downlink.clone()),
            downlink,
            probe: Probe::default(),
            shown_heights: HashMap::new(),
            last_n: None,
            allocations: 0,
            camera_demand: PublisherDemand::default(),
            videos_held_back: 0,
            touched: false,
            gone_reported: false,
            #[cfg(test)]
            fails_on_next_datagram: false,
        })
    }

    /// Stops sending the source's track to this peer; false if it was not receiving it.
    pub fn drop_outgoing(&mut self, source: SourceKey) -> bool {
        let Some(track) = self.outgoing.remove(&source) else {
            return false;
        };
        self.outgoing_by_track.remove(&track.track_id);
        let _ = self.pc.remove_track(track.sender);
        true
    }
}
