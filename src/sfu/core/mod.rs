//! The media core, sans I/O: one worker's peer connections, sources and subscriptions.
//!
//! The core is driven from outside, in the manner of str0m and of `focus/state.rs`: the caller
//! hands it the current instant with every input — a datagram that reached a media address
//! ([`Core::handle_datagram`]), a command of the focus ([`Core::add_peer`],
//! [`Core::handle_signal`], [`Core::set_plan`], ...), a timer that came due
//! ([`Core::handle_timeout`]) — and then takes what it produced: datagrams to send
//! ([`Core::poll_transmit`]), events for the focus and signals for one participant
//! ([`Core::poll_output`]), and when it next wants to be woken ([`Core::poll_timeout`]). It
//! never touches a socket, a thread, a channel or the clock; `super::runtime` does. Everything
//! here runs on one worker thread and is locked by nothing. The forwarding path (datagram →
//! decrypt → rewrite per subscriber → encrypt → queue) allocates nothing of its own and logs
//! nothing.
//!
//! The parts: [`tables`] (sources, layers, subscribers), `forwarding` (RTP to subscribers, NACK,
//! keyframe requests, probe padding), `negotiation` (offers, answers, who receives which track),
//! `quality` (layer choice, camera demand, figures for metrics), `lifecycle` (peers coming and
//! going, connection events, timers).

mod forwarding;
mod lifecycle;
mod negotiation;
mod quality;
pub mod tables;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use slab::Slab;

pub use super::connection::Candidates;
use super::counters::{GaugeShares, SfuCounters};
use super::demux::{Directory, IceCredentials};
use super::peer::{Peer, PeerKey};
use super::rtcp::{as_nack, is_keyframe_request};
use super::{PeerSignal, SfuEvent};
use crate::ids::ParticipantId;
use tables::Source;

/// The arena that received datagrams are copied into before the connection takes them.
const ARENA_BYTES: usize = 256 * 1024;
const MAX_DATAGRAM: usize = 2048;
/// Keyframe retries, voice reports and (every few ticks) layer choices run at this cadence.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_millis(100);

/// How a datagram travels between a participant and the SFU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    /// ICE-TCP (RFC 6544): each datagram one RFC 4571 frame on a TCP connection the client
    /// opened to the server's passive candidate; `to` and `from` name that connection.
    Tcp,
    /// Through Zaal's own TURN server: `to` and `from` name an allocation's relayed address, and
    /// the TURN edge frames the datagram for its client. To ICE this is UDP (a relayed
    /// candidate is a UDP candidate, whatever carries it to the TURN server).
    Relay,
}

impl Transport {
    fn protocol(self) -> TransportProtocol {
        match self {
            Transport::Udp | Transport::Relay => TransportProtocol::UDP,
            Transport::Tcp => TransportProtocol::TCP,
        }
    }

    /// The transport of a connection's output: that of its selected candidate pair.
    fn of(protocol: TransportProtocol) -> Self {
        match protocol {
            TransportProtocol::TCP => Transport::Tcp,
            // The server advertises UDP and TCP candidates only.
            _ => Transport::Udp,
        }
    }
}

/// One routing table per transport: a UDP source, a TCP connection's remote address and a TURN
/// allocation's relayed address are different things even when they are equal, and each is
/// bound only by its own STUN.
#[derive(Default)]
struct Routes {
    udp: Directory<PeerKey>,
    tcp: Directory<PeerKey>,
    relay: Directory<PeerKey>,
}

impl Routes {
    fn of(&mut self, transport: Transport) -> &mut Directory<PeerKey> {
        match transport {
            Transport::Udp => &mut self.udp,
            Transport::Tcp => &mut self.tcp,
            Transport::Relay => &mut self.relay,
        }
    }

    fn insert_peer(&mut self, credentials: IceCredentials, key: PeerKey) {
        self.udp.insert_peer(credentials.clone(), key);
        self.tcp.insert_peer(credentials.clone(), key);
        self.relay.insert_peer(credentials, key);
    }

    fn remove_peer(&mut self, ufrag: &str, key: PeerKey) {
        self.udp.remove_peer(ufrag, key);
        self.tcp.remove_peer(ufrag, key);
        self.relay.remove_peer(ufrag, key);
    }

    /// How a connection's output to `to` travels: by its selected pair's protocol, and through
    /// TURN when `to` is one of the connection's relayed addresses (ICE sees those as UDP).
    fn transport_to(&self, key: PeerKey, protocol: TransportProtocol, to: SocketAddr) -> Transport {
        match Transport::of(protocol) {
            Transport::Udp
                if self.relay.bound_to(to) == Some(key) && self.udp.bound_to(to) != Some(key) =>
            {
                Transport::Relay
            }
            transport => transport,
        }
    }
}

/// A datagram for the edge to send.
#[derive(Debug)]
pub struct Transmit {
    pub transport: Transport,
    /// The local address to send from: the one the participant last reached (with a wildcard
    /// bind, replies must leave from it); `None` until it is known.
    pub from: Option<IpAddr>,
    pub to: SocketAddr,
    /// An encrypted packet; hand it back with `rtc::peer_connection::recycle_write_buffer` once
    /// sent, so that forwarding allocates nothing per packet.
    pub contents: BytesMut,
}

/// What the core has for the world beyond its datagrams.
#[derive(Debug, PartialEq)]
pub enum Output {
    /// For the focus.
    Event(SfuEvent),
    /// For one participant's client, carried by signalling.
    Signal {
        participant: ParticipantId,
        signal: PeerSignal,
    },
}

/// The peers that may have output or a new deadline, each listed once (the flag is the peer's).
#[derive(Default)]
struct Touched(Vec<PeerKey>);

impl Touched {
    fn mark(&mut self, key: PeerKey, peer: &mut Peer) {
        if !peer.touched {
            peer.touched = true;
            self.0.push(key);
        }
    }
}

/// One worker's media: every connection of its conferences, and what flows between them.
pub struct Core {
    candidates: Candidates,
    peers: Slab<Peer>,
    sources: Slab<Source>,
    by_participant: HashMap<ParticipantId, PeerKey>,
    directory: Routes,
    counters: Arc<SfuCounters>,
    touched: Touched,
    /// Datagrams of connections that were closed before their last output was sent.
    orphans: VecDeque<Transmit>,
    outputs: VecDeque<Output>,
    arena: BytesMut,
    scratch_keys: Vec<PeerKey>,
    scratch_events: Vec<RTCPeerConnectionEvent>,
    /// The most videos any receiver gets (`media.last_n`); a client may ask for fewer.
    last_n: Option<usize>,
    next_maintenance: Instant,
    maintenance_ticks: u32,
    last_allocation: Instant,
    /// Allocation rounds since the start, for reports every so many.
    quality_rounds: u32,
    /// Packets forwarded since the edge last asked ([`Core::take_forwarded`]).
    forwarded: u64,
    /// This worker's part of the gauges that sum over workers.
    shares: GaugeShares,
    /// This worker's connection count in `SfuCounters::worker_peers`.
    worker: usize,
}

impl Core {
    /// An empty core for worker `worker`, advertising `candidates` to every connection.
    pub fn new(
        now: Instant,
        worker: usize,
        candidates: Candidates,
        counters: Arc<SfuCounters>,
        last_n: Option<usize>,
    ) -> Self {
        Self {
            candidates,
            peers: Slab::new(),
            sources: Slab::new(),
            by_participant: HashMap::new(),
            directory: Routes::default(),
            counters,
            touched: Touched::default(),
            orphans: VecDeque::new(),
            outputs: VecDeque::new(),
            arena: BytesMut::with_capacity(ARENA_BYTES),
            scratch_keys: Vec::new(),
            scratch_events: Vec::new(),
            last_n,
            next_maintenance: now + MAINTENANCE_INTERVAL,
            maintenance_ticks: 0,
            last_allocation: now,
            quality_rounds: 0,
            forwarded: 0,
            shares: GaugeShares::default(),
            worker,
        }
    }

    /// A datagram from `from` that reached `local_ip` (when the socket says which), copied into
    /// the core's arena for the connection to keep.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        transport: Transport,
        from: SocketAddr,
        local_ip: Option<IpAddr>,
        data: &[u8],
    ) {
        let Some(key) = self.route(transport, from, data) else {
            return;
        };
        if self.arena.capacity() - self.arena.len() < data.len() {
            self.arena = BytesMut::with_capacity(ARENA_BYTES);
        }
        self.arena.extend_from_slice(data);
        let message = self.arena.split();
        self.deliver(now, key, transport, from, local_ip, message);
    }

    /// [`Self::handle_datagram`] for a datagram already in a buffer of its own (handed over by
    /// the worker that read it, or framed on an ICE-TCP connection); whether a connection
    /// took it.
    pub fn handle_owned_datagram(
        &mut self,
        now: Instant,
        transport: Transport,
        from: SocketAddr,
        local_ip: Option<IpAddr>,
        data: BytesMut,
    ) -> bool {
        let Some(key) = self.route(transport, from, &data) else {
            return false;
        };
        self.deliver(now, key, transport, from, local_ip, data);
        true
    }

    /// A participant's ICE-TCP connection from `remote` closed: its address routes nothing
    /// more until a STUN request proves it again.
    pub fn tcp_closed(&mut self, remote: SocketAddr) {
        self.directory.tcp.unbind(remote);
    }

    /// Whether datagrams from the ICE-TCP connection at `remote` reach a media connection.
    pub fn tcp_bound(&self, remote: SocketAddr) -> bool {
        self.directory.tcp.is_bound(remote)
    }

    /// Whether datagrams from the TURN allocation at `relayed` reach a media connection.
    pub fn relay_bound(&self, relayed: SocketAddr) -> bool {
        self.directory.relay.is_bound(relayed)
    }

    /// A TURN allocation with the relayed address `relayed` ended: it routes nothing more.
    pub fn relay_closed(&mut self, relayed: SocketAddr) {
        self.directory.relay.unbind(relayed);
    }

    /// Runs what is due at `now`: probe bursts, the connections' timers, maintenance.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.peer_deadline().is_some_and(|d| d <= now) {
            self.on_peer_timeouts(now);
        }
        if self.next_maintenance <= now {
            self.on_maintenance(now);
            self.next_maintenance = now + MAINTENANCE_INTERVAL;
        }
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        self.peer_deadline()
            .map_or(self.next_maintenance, |d| d.min(self.next_maintenance))
    }

    /// The next datagram to send: connections' output, one connection after another (so that
    /// the edge can send each one's run in as few system calls as possible).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(transmit) = self.orphans.pop_front() {
            return Some(transmit);
        }
        while let Some(&key) = self.touched.0.last() {
            if let Some(peer) = self.peers.get_mut(key) {
                if let Some(out) = peer.pc.poll_write() {
                    return Some(Transmit {
                        transport: self.directory.transport_to(
                            key,
                            out.transport.transport_protocol,
                            out.transport.peer_addr,
                        ),
                        from: peer.local_ip,
                        to: out.transport.peer_addr,
                        contents: out.message,
                    });
                }
                peer.touched = false;
                peer.deadline = peer.pc.poll_timeout();
            }
            self.touched.0.pop();
        }
        None
    }

    /// The next event for the focus or signal for a participant.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// RTP packets forwarded since the last call, for the forwarding-delay figures.
    pub fn take_forwarded(&mut self) -> u64 {
        std::mem::take(&mut self.forwarded)
    }

    fn peer_deadline(&self) -> Option<Instant> {
        self.peers
            .iter()
            .flat_map(|(_, p)| [p.deadline, p.probe.next_burst()])
            .flatten()
            .min()
    }

    fn touch(&mut self, key: PeerKey) {
        if let Some(peer) = self.peers.get_mut(key) {
            self.touched.mark(key, peer);
        }
    }

    fn signal(&mut self, key: PeerKey, signal: PeerSignal) {
        if let Some(peer) = self.peers.get(key) {
            self.outputs.push_back(Output::Signal {
                participant: peer.participant.clone(),
                signal,
            });
        }
    }

    fn event(&mut self, event: SfuEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    /// The candidate address a datagram reached: ICE must be told the advertised address, which
    /// behind 1:1 NAT is not the local one.
    fn local_addr_for(
        &self,
        transport: Transport,
        local_ip: Option<IpAddr>,
        from: SocketAddr,
    ) -> SocketAddr {
        let candidates = match transport {
            Transport::Udp | Transport::Relay => &self.candidates.udp,
            Transport::Tcp => &self.candidates.tcp,
        };
        if let Some(ip) = local_ip
            && let Some(c) = candidates.iter().find(|c| c.ip() == ip)
        {
            return *c;
        }
        candidates
            .iter()
            .find(|c| c.is_ipv4() == from.is_ipv4())
            .or(candidates.first())
            .copied()
            .unwrap_or(from)
    }

    /// The connection a datagram is for, counting what is unroutable.
    fn route(&mut self, transport: Transport, from: SocketAddr, data: &[u8]) -> Option<PeerKey> {
        self.counters.datagrams_in.fetch_add(1, Ordering::Relaxed);
        let key = if data.is_empty() || data.len() > MAX_DATAGRAM {
            None
        } else {
            self.directory.of(transport).route(from, data)
        };
        if key.is_none() {
            self.counters
                .datagrams_unrouted
                .fetch_add(1, Ordering::Relaxed);
        }
        key
    }

    fn deliver(
        &mut self,
        now: Instant,
        key: PeerKey,
        transport: Transport,
        from: SocketAddr,
        local_ip: Option<IpAddr>,
        message: BytesMut,
    ) {
        // A panic while handling one connection's datagram (a bug the datagram found in a
        // protocol stack) ends that connection, not the worker and everyone on it.
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.deliver_to(now, key, transport, from, local_ip, message);
        }));
        if handled.is_err() {
            self.on_peer_panic(now, key);
        }
    }

    fn deliver_to(
        &mut self,
        now: Instant,
        key: PeerKey,
        transport: Transport,
        from: SocketAddr,
        local_ip: Option<IpAddr>,
        message: BytesMut,
    ) {
        let local_addr = self.local_addr_for(transport, local_ip, from);
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        #[cfg(test)]
        if peer.fails_on_next_datagram {
            panic!("a connection's protocol stack failed (test)");
        }
        // Where UDP replies leave from; a TCP connection's replies go back on it.
        if local_ip.is_some() && transport == Transport::Udp {
            peer.local_ip = local_ip;
        }
        // A datagram the connection rejects (bad SRTP tag, stray DTLS) concerns only this
        // connection; there is nothing to do about it.
        let _ = peer.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: transport.protocol(),
            },
            message,
        });
        self.touched.mark(key, peer);
        self.drain_peer(now, key);
    }

    /// Takes everything a connection has for the application: media, feedback, events.
    fn drain_peer(&mut self, now: Instant, key: PeerKey) {
        loop {
            let Some(peer) = self.peers.get_mut(key) else {
                return;
            };
            let Some(TaggedRTCMessage { message, .. }) = peer.pc.poll_read() else {
                break;
            };
            match message {
                RTCMessage::RtpPacket(track_id, packet) => {
                    self.forward(now, key, &track_id, packet)
                }
                RTCMessage::RtcpPacket(track_id, packets) => {
                    for nack in packets.iter().filter_map(|p| as_nack(p.as_ref())) {
                        self.on_nack(now, key, nack);
                    }
                    if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
                        let source = self
                            .peers
                            .get(key)
                            .and_then(|p| p.outgoing_by_track.get(&track_id))
                            .copied();
                        if let Some(source) = source {
                            self.request_keyframe(now, source, Some(key));
                        }
                    }
                }
                _ => {}
            }
        }
        let mut events = std::mem::take(&mut self.scratch_events);
        if let Some(peer) = self.peers.get_mut(key) {
            while let Some(event) = peer.pc.poll_event() {
                events.push(event);
            }
        }
        for event in events.drain(..) {
            self.on_peer_event(now, key, event);
        }
        self.scratch_events = events;
    }
}
