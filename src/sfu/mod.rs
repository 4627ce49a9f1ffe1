//! The selective forwarding unit: every participant's audio and video, on one UDP port.
//!
//! Owns the media socket, one `rtc` peer connection per participant (ICE-lite, DTLS-SRTP
//! terminated here and re-encrypted per receiver), RTP forwarding with per-receiver rewriting,
//! keyframe relaying and the connections' renegotiation. It runs on worker threads (one per core
//! unless configured), each owning whole conferences, and is driven by [`SfuCommand`]s: the
//! focus decides who receives whom ([`SfuCommand::SetPlan`]), the SFU only carries it out. It
//! must never decide who may see what, never log a name or an address, and never allocate, lock
//! or log per forwarded packet in code of its own.
//!
//! This file is the seam: what the focus sends ([`SfuCommand`]), what it hears back
//! ([`SfuEvent`], and [`PeerSignal`]s for one participant's client), and the handle. Inside,
//! `core` is the sans-I/O media core (inputs with the current instant in, datagrams, events
//! and deadlines out), `runtime` drives one core per worker thread from the socket and the
//! clock, `start` binds the port and starts the workers, `dispatch` places conferences on
//! workers. docs/architecture.md has the picture.

mod allocation;
mod bandwidth;
pub mod connection;
mod core;
mod counters;
mod demux;
mod dispatch;
mod forward;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod ice_tcp;
mod keyframe;
mod pause;
mod peer;
mod probe;
mod retransmit;
mod rtcp;
mod runtime;
mod simulcast_sdp;
mod socket;
mod start;
mod switch;
mod transport_cc;
pub mod turn;
mod voice;
mod workers;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::ids::{ConferenceId, ParticipantId};

pub use connection::Candidates;
pub use counters::{DelayHistogram, FORWARDING_DELAY_BOUNDS_S, QualityFigures, SfuCounters};
pub use forward::{NegotiatedCodec, Rewrite};
pub use rtcp::FeedbackTap;

/// Where the media port listens and what it tells browsers.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    pub bind: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    /// The addresses put in ICE candidates; empty means the bound interface's addresses.
    pub advertise_ips: Vec<IpAddr>,
    /// The most videos any receiver gets; `None`: no limit.
    pub last_n: Option<usize>,
    /// Media worker threads, each owning whole conferences; 0: one per core.
    pub workers: usize,
    /// The ICE-TCP port (passive candidates, RFC 6544); 0: off.
    pub tcp_port: u16,
    /// ICE-TCP connections at once, in all and from one address.
    pub tcp_connections: usize,
    pub tcp_connections_per_address: usize,
    /// Zaal's own TURN server; `None`: off.
    pub turn: Option<TurnOptions>,
}

/// What Zaal's own TURN server is started with.
#[derive(Debug, Clone)]
pub struct TurnOptions {
    /// Its UDP address; port 0 picks a free one.
    pub listen: SocketAddr,
    pub realm: String,
    /// The secret its credentials are made with (shared with the signalling, which mints them).
    pub secret: turn::TurnSecret,
    pub limits: turn::AllocationLimits,
}

/// How often the SFU reports voice activity ([`SfuEvent::Voice`]): its maintenance cadence.
pub const VOICE_REPORT_INTERVAL: std::time::Duration = core::MAINTENANCE_INTERVAL;

/// A message from the SFU to one participant's client, carried by signalling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSignal {
    /// The server's answer to the client's publishing offer.
    Answer(String),
    /// A server-initiated offer (the set of received tracks changed).
    Offer(String),
    /// Negotiation could not proceed; the reason is for developers.
    NegotiationFailed(String),
    /// The tallest camera picture any receiver takes: the client encodes layers up to the
    /// first at least this tall and pauses the rest; `Some(0)`: nobody receives the camera,
    /// `None`: every layer.
    SendVideo { max_height: Option<u16> },
}

/// A trickled ICE candidate from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCandidate {
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_mline_index: Option<u16>,
}

/// A message from one participant's client to the SFU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSignal {
    Offer(String),
    Answer(String),
    Candidate(ClientCandidate),
    /// What the client shows: the height in pixels of each video stream's tile (by stream id;
    /// 0 = not shown) and the most videos it wants.
    ReceiveVideo {
        heights: std::collections::HashMap<String, u16>,
        last_n: Option<usize>,
    },
}

/// Where the SFU delivers a participant's [`PeerSignal`]s.
pub type SignalSink = Box<dyn Fn(PeerSignal) + Send>;

/// What the focus tells the SFU.
pub enum SfuCommand {
    /// Create the participant's peer connection; it waits for the client's publishing offer.
    AddPeer {
        participant: ParticipantId,
        /// The conference it is in: a conference's connections share one worker.
        conference: ConferenceId,
        signals: SignalSink,
    },
    /// Close the participant's connection and stop forwarding their media to anyone.
    RemovePeer { participant: ParticipantId },
    /// SDP or a candidate from the participant's client.
    Signal {
        participant: ParticipantId,
        signal: ClientSignal,
    },
    /// Whether a participant's audio and video are forwarded to anyone at all (a moderator's
    /// hard mute closes this gate, whatever the participant's client does).
    SetForwarding {
        participant: ParticipantId,
        audio: bool,
        video: bool,
    },
    /// The media plan for one receiver: whose audio and video it gets, most relevant first
    /// (the order decides who gets video first when bandwidth or last-N is short).
    SetPlan {
        participant: ParticipantId,
        publishers: Vec<ParticipantId>,
    },
}

impl SfuCommand {
    /// The participant whose connection the command is about.
    pub fn participant(&self) -> &ParticipantId {
        match self {
            Self::AddPeer { participant, .. }
            | Self::RemovePeer { participant }
            | Self::Signal { participant, .. }
            | Self::SetForwarding { participant, .. }
            | Self::SetPlan { participant, .. } => participant,
        }
    }
}

/// What the SFU tells the focus.
#[derive(Debug, Clone, PartialEq)]
pub enum SfuEvent {
    /// The participant's media connection failed or its ICE consent expired.
    PeerGone { participant: ParticipantId },
    /// Every [`VOICE_REPORT_INTERVAL`]: for each published microphone, the share
    /// of its audio frames since the last report that carried voice (0 to 1; 0 when no frame
    /// came or a moderator's mute holds it back).
    Voice(Vec<(ParticipantId, f32)>),
}

/// The running SFU: a handle for commands and what the socket is bound to.
pub struct Sfu {
    dispatch: Arc<dispatch::Dispatch>,
    local_addr: SocketAddr,
    candidates: Candidates,
    counters: Arc<SfuCounters>,
    /// The ICE-TCP port's accept loop, stopped with the SFU.
    tcp_port: Option<tokio::task::JoinHandle<()>>,
    /// The TURN port's loop and its address, stopped with the SFU.
    turn_port: Option<(tokio::task::JoinHandle<()>, SocketAddr)>,
    /// Where the HTTPS listener hands TURN-over-TLS clients.
    turn_streams: Option<turn::TurnStreams>,
}

impl Drop for Sfu {
    fn drop(&mut self) {
        if let Some(task) = &self.tcp_port {
            task.abort();
        }
        if let Some((task, _)) = &self.turn_port {
            task.abort();
        }
    }
}

/// A cloneable way to send commands to the SFU.
#[derive(Clone)]
pub struct SfuHandle {
    dispatch: Arc<dispatch::Dispatch>,
}

impl SfuHandle {
    /// Sends a command to the worker of its participant's conference; false if the SFU has
    /// stopped.
    pub fn send(&self, command: SfuCommand) -> bool {
        self.dispatch.send(command)
    }
}

impl Sfu {
    /// Binds the media port (and the ICE-TCP port, when configured) and starts the media
    /// workers. Must be called within the server's runtime, which runs the ICE-TCP port.
    pub fn start(
        config: MediaConfig,
        events: mpsc::UnboundedSender<SfuEvent>,
        health: Arc<crate::health::Health>,
    ) -> std::io::Result<Self> {
        let started = start::start(&config, events, health)?;
        Ok(Self {
            dispatch: started.dispatch,
            local_addr: started.local_addr,
            candidates: started.candidates,
            counters: started.counters,
            tcp_port: started.tcp_port,
            turn_port: started.turn_port,
            turn_streams: started.turn_streams,
        })
    }

    pub fn handle(&self) -> SfuHandle {
        SfuHandle {
            dispatch: self.dispatch.clone(),
        }
    }

    /// The address the media socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The addresses put in UDP ICE candidates.
    pub fn candidates(&self) -> &[SocketAddr] {
        &self.candidates.udp
    }

    /// The addresses put in passive ICE-TCP candidates (none with the port off).
    /// Where TURN clients that reach another listener (TLS on the HTTPS port) are served.
    pub fn turn_streams(&self) -> Option<turn::TurnStreams> {
        self.turn_streams.clone()
    }

    /// The address Zaal's own TURN server listens on, when it is on.
    pub fn turn_addr(&self) -> Option<SocketAddr> {
        self.turn_port.as_ref().map(|(_, addr)| *addr)
    }

    pub fn tcp_candidates(&self) -> &[SocketAddr] {
        &self.candidates.tcp
    }

    pub fn counters(&self) -> Arc<SfuCounters> {
        self.counters.clone()
    }
}
