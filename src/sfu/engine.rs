//! The SFU's event loop and its tables: peers, published sources, and who receives what.
//!
//! One thread owns everything here, so nothing is locked. Each turn of the loop handles a
//! command from the focus, a batch of datagrams from the socket, or the connections' timers;
//! then every connection that may have output is drained into the socket. The forwarding path
//! (datagram → decrypt → rewrite per subscriber → encrypt → send) allocates nothing of its own:
//! receive buffers and the datagram arena are reused, lookups are by index or borrowed key.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{
    RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use slab::Slab;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::demux::Directory;
use super::forward::{NegotiatedCodec, Rewrite};
use super::keyframe::KeyframeThrottle;
use super::peer::{AUDIO_LEVEL_URI, Negotiation, OutgoingTrack, Peer, PeerKey, SourceKey};
use super::rtcp::is_keyframe_request;
use super::socket::{MediaSocket, RecvBuffers};
use super::voice::VoiceMeter;
use super::{ClientSignal, PeerSignal, SfuCommand, SfuCounters, SfuEvent};
use crate::focus::ParticipantId;
use crate::privacy::BRIDGE;

/// The arena that received datagrams are copied into before the connection takes them.
const ARENA_BYTES: usize = 256 * 1024;
const MAX_DATAGRAM: usize = 2048;
/// Batches read per wake-up before commands and timers get a turn.
const MAX_BATCHES_PER_WAKE: usize = 16;
const MAINTENANCE_INTERVAL: Duration = crate::focus::VOICE_REPORT_INTERVAL;
/// The position of the screen-sharing transceiver in a client's publishing offer.
const SCREEN_TRANSCEIVER: usize = 2;
/// Appended to the publisher's id to name the media stream of their screen.
pub const SCREEN_STREAM_SUFFIX: &str = "~screen";

/// One published track (a participant's microphone or camera) and everyone receiving it.
struct Source {
    publisher: PeerKey,
    participant: ParticipantId,
    kind: RtpCodecKind,
    /// The client's third transceiver: its screen, not its camera.
    screen: bool,
    receiver: RTCRtpReceiverId,
    codec: RTCRtpCodec,
    codecs: Vec<NegotiatedCodec>,
    extensions: Vec<(u8, String)>,
    last_ssrc: Option<u32>,
    keyframes: KeyframeThrottle,
    /// A microphone whose packets carry their audio level.
    voice: Option<VoiceMeter>,
    subscribers: Vec<Subscriber>,
}

struct Subscriber {
    peer: PeerKey,
    sender: RTCRtpSenderId,
    /// `None` until the subscriber's answer has been applied.
    rewrite: Option<Rewrite>,
}

pub struct Engine {
    socket: MediaSocket,
    buffers: RecvBuffers,
    core: Core,
}

struct Core {
    candidates: Vec<SocketAddr>,
    peers: Slab<Peer>,
    sources: Slab<Source>,
    by_participant: HashMap<ParticipantId, PeerKey>,
    directory: Directory<PeerKey>,
    events: mpsc::UnboundedSender<SfuEvent>,
    counters: Arc<SfuCounters>,
    /// Peers that may have output or a new deadline, each once.
    touched: Vec<PeerKey>,
    touched_flag: Vec<bool>,
    /// Datagrams of connections that were closed before their last output was sent.
    orphan_output: Vec<(SocketAddr, Option<IpAddr>, BytesMut)>,
    arena: BytesMut,
    scratch_keys: Vec<PeerKey>,
    scratch_events: Vec<RTCPeerConnectionEvent>,
    /// One connection's output on its way to the socket (reused).
    out_queue: Vec<BytesMut>,
    /// Where runs of datagrams are coalesced for segmentation offload (reused).
    gso_scratch: Vec<u8>,
    gone_reported: Vec<bool>,
}

impl Engine {
    pub fn new(
        socket: std::net::UdpSocket,
        candidates: Vec<SocketAddr>,
        events: mpsc::UnboundedSender<SfuEvent>,
        counters: Arc<SfuCounters>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            socket: MediaSocket::new(socket)?,
            buffers: RecvBuffers::new(),
            core: Core {
                candidates,
                peers: Slab::new(),
                sources: Slab::new(),
                by_participant: HashMap::new(),
                directory: Directory::default(),
                events,
                counters,
                touched: Vec::new(),
                touched_flag: Vec::new(),
                orphan_output: Vec::new(),
                arena: BytesMut::with_capacity(ARENA_BYTES),
                scratch_keys: Vec::new(),
                scratch_events: Vec::new(),
                out_queue: Vec::with_capacity(64),
                gso_scratch: Vec::with_capacity(64 * 1024),
                gone_reported: Vec::new(),
            },
        })
    }

    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<SfuCommand>) {
        let mut maintenance = tokio::time::interval(MAINTENANCE_INTERVAL);
        maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let far = Duration::from_secs(3600);
        loop {
            let deadline = self
                .core
                .next_deadline()
                .unwrap_or_else(|| Instant::now() + far);
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(command) => self.core.on_command(Instant::now(), command),
                    None => break,
                },
                ready = self.socket.readable() => {
                    if ready.is_ok() {
                        self.drain_socket();
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.core.on_timeouts(Instant::now());
                }
                _ = maintenance.tick() => self.core.on_maintenance(Instant::now()),
            }
            self.core.flush(&self.socket);
        }
        let keys: Vec<PeerKey> = self.core.peers.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.core.remove_peer(Instant::now(), key);
        }
        self.core.flush(&self.socket);
    }

    fn drain_socket(&mut self) {
        for _ in 0..MAX_BATCHES_PER_WAKE {
            let now = Instant::now();
            let core = &mut self.core;
            match self
                .socket
                .try_recv_batch(&mut self.buffers, |from, dst, datagram| {
                    core.on_datagram(now, from, dst, datagram)
                }) {
                Ok(_) => self.core.flush(&self.socket),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors and the like concern one remote address, not the port.
                Err(_) => continue,
            }
        }
    }
}

impl Core {
    fn next_deadline(&self) -> Option<Instant> {
        self.peers.iter().filter_map(|(_, p)| p.deadline).min()
    }

    fn touch(&mut self, key: PeerKey) {
        if self.touched_flag.len() <= key {
            self.touched_flag.resize(key + 1, false);
        }
        if !self.touched_flag[key] {
            self.touched_flag[key] = true;
            self.touched.push(key);
        }
    }

    /// Sends everything the touched connections want to send and refreshes their deadlines.
    fn flush(&mut self, socket: &MediaSocket) {
        for (to, src, datagram) in self.orphan_output.drain(..) {
            send(socket, &self.counters, to, src, &datagram);
        }
        while let Some(key) = self.touched.pop() {
            self.touched_flag[key] = false;
            let Some(peer) = self.peers.get_mut(key) else {
                continue;
            };
            // A connection's output all goes to its one remote address: gather it and send it
            // in as few system calls as possible. The address is the remote candidate of the
            // selected pair; during ICE checks the rare datagram to another address goes alone.
            let mut destination = None;
            while let Some(out) = peer.pc.poll_write() {
                let to = out.transport.peer_addr;
                if destination.is_some_and(|d| d != to) {
                    send_queued(
                        socket,
                        &self.counters,
                        &mut self.out_queue,
                        &mut self.gso_scratch,
                        destination,
                        peer.local_ip,
                    );
                }
                destination = Some(to);
                self.out_queue.push(out.message);
            }
            send_queued(
                socket,
                &self.counters,
                &mut self.out_queue,
                &mut self.gso_scratch,
                destination,
                peer.local_ip,
            );
            peer.deadline = peer.pc.poll_timeout();
        }
    }

    /// The candidate address a datagram reached: ICE must be told the advertised address, which
    /// behind 1:1 NAT is not the local one.
    fn local_addr_for(&self, dst: Option<IpAddr>, from: SocketAddr) -> SocketAddr {
        if let Some(dst) = dst
            && let Some(c) = self.candidates.iter().find(|c| c.ip() == dst)
        {
            return *c;
        }
        self.candidates
            .iter()
            .find(|c| c.is_ipv4() == from.is_ipv4())
            .or(self.candidates.first())
            .copied()
            .unwrap_or(from)
    }

    fn on_datagram(&mut self, now: Instant, from: SocketAddr, dst: Option<IpAddr>, data: &[u8]) {
        self.counters.datagrams_in.fetch_add(1, Ordering::Relaxed);
        if data.is_empty() || data.len() > MAX_DATAGRAM {
            self.counters
                .datagrams_unrouted
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(key) = self.directory.route(from, data) else {
            self.counters
                .datagrams_unrouted
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let local_addr = self.local_addr_for(dst, from);
        if self.arena.capacity() - self.arena.len() < data.len() {
            self.arena = BytesMut::with_capacity(ARENA_BYTES);
        }
        self.arena.extend_from_slice(data);
        let message = self.arena.split();
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if dst.is_some() {
            peer.local_ip = dst;
        }
        // A datagram the connection rejects (bad SRTP tag, stray DTLS) concerns only this
        // connection; there is nothing to do about it.
        let _ = peer.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message,
        });
        self.touch(key);
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
                RTCMessage::RtcpPacket(track_id, packets)
                    if packets.iter().any(|p| is_keyframe_request(p.as_ref())) =>
                {
                    let source = self
                        .peers
                        .get(key)
                        .and_then(|p| p.outgoing_by_track.get(&track_id))
                        .copied();
                    if let Some(source) = source {
                        self.request_keyframe(now, source);
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

    /// The hot path: one inbound RTP packet to every subscriber of its source.
    fn forward(&mut self, now: Instant, publisher: PeerKey, track_id: &str, packet: rtp::Packet) {
        self.counters.rtp_in.fetch_add(1, Ordering::Relaxed);
        let Some(publisher_peer) = self.peers.get(publisher) else {
            return;
        };
        let Some(&source_key) = publisher_peer.track_sources.get(track_id) else {
            return;
        };
        let (forward_audio, forward_video) =
            (publisher_peer.forward_audio, publisher_peer.forward_video);
        let Some(source) = self.sources.get_mut(source_key) else {
            return;
        };
        source.last_ssrc = Some(packet.header.ssrc);
        let open = match source.kind {
            RtpCodecKind::Audio => forward_audio,
            _ => forward_video,
        };
        if !open {
            return;
        }
        if let Some(voice) = &mut source.voice {
            voice.observe(&packet.header);
        }
        let mut forwarded = 0u64;
        for subscriber in &source.subscribers {
            let Some(rewrite) = &subscriber.rewrite else {
                continue;
            };
            let Some(peer) = self.peers.get_mut(subscriber.peer) else {
                continue;
            };
            let mut out = packet.clone();
            if !rewrite.apply(&mut out.header) {
                continue;
            }
            if let Some(mut sender) = peer.pc.rtp_sender(subscriber.sender)
                && sender.write_rtp(now, out).is_ok()
            {
                forwarded += 1;
            }
            if self.touched_flag.len() <= subscriber.peer {
                self.touched_flag.resize(subscriber.peer + 1, false);
            }
            if !self.touched_flag[subscriber.peer] {
                self.touched_flag[subscriber.peer] = true;
                self.touched.push(subscriber.peer);
            }
        }
        if forwarded > 0 {
            self.counters
                .rtp_forwarded
                .fetch_add(forwarded, Ordering::Relaxed);
            self.counters
                .rtp_bytes_forwarded
                .fetch_add(forwarded * packet.payload.len() as u64, Ordering::Relaxed);
        }
    }

    fn request_keyframe(&mut self, now: Instant, source_key: SourceKey) {
        let Some(source) = self.sources.get_mut(source_key) else {
            return;
        };
        if source.kind == RtpCodecKind::Video && source.keyframes.request(now) {
            self.send_pli(now, source_key);
        }
    }

    fn send_pli(&mut self, now: Instant, source_key: SourceKey) {
        let Some(source) = self.sources.get(source_key) else {
            return;
        };
        let Some(media_ssrc) = source.last_ssrc else {
            // Nothing received yet: the publisher's first frame is a keyframe anyway.
            return;
        };
        let (publisher, receiver) = (source.publisher, source.receiver);
        if let Some(peer) = self.peers.get_mut(publisher)
            && let Some(mut rtp_receiver) = peer.pc.rtp_receiver(receiver)
        {
            let _ = rtp_receiver.write_rtcp(
                now,
                vec![Box::new(PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc,
                })],
            );
            self.touch(publisher);
        }
    }

    fn on_peer_event(&mut self, now: Instant, key: PeerKey, event: RTCPeerConnectionEvent) {
        match event {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                let Some(peer) = self.peers.get_mut(key) else {
                    return;
                };
                peer.state = state;
                info!(
                    target: BRIDGE,
                    event = "connection-state",
                    participant = %peer.participant,
                    state = %state,
                );
                match state {
                    RTCPeerConnectionState::Connected => {
                        let sources: Vec<SourceKey> = peer.outgoing.keys().copied().collect();
                        for source in sources {
                            self.request_keyframe(now, source);
                        }
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        if self.gone_reported.len() <= key {
                            self.gone_reported.resize(key + 1, false);
                        }
                        if !self.gone_reported[key] {
                            self.gone_reported[key] = true;
                            let _ = self.events.send(SfuEvent::PeerGone {
                                participant: peer.participant.clone(),
                            });
                        }
                    }
                    _ => {}
                }
            }
            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(state) => {
                if let Some(peer) = self.peers.get(key) {
                    info!(
                        target: BRIDGE,
                        event = "ice-state",
                        participant = %peer.participant,
                        state = %state,
                    );
                }
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                // A track becomes a source when its first packet arrives, not when the client
                // offers it: a class of thirty with cameras off offers sixty silent tracks, and
                // nobody should receive an m-line for each of them.
                let find = |engine: &Self| {
                    engine.peers.get(key).and_then(|peer| {
                        peer.published.iter().copied().find(|s| {
                            engine
                                .sources
                                .get(*s)
                                .is_some_and(|s| s.receiver == init.receiver_id)
                        })
                    })
                };
                let source = match find(self) {
                    Some(source) => Some(source),
                    None => {
                        self.create_source(key, init.receiver_id);
                        let created = find(self);
                        if created.is_some() {
                            self.offer_new_source(now, key);
                        }
                        created
                    }
                };
                if let (Some(source), Some(peer)) = (source, self.peers.get_mut(key)) {
                    peer.track_sources.insert(init.track_id, source);
                    if let Some(s) = self.sources.get_mut(source) {
                        s.last_ssrc = Some(init.ssrc);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_timeouts(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.scratch_keys);
        due.extend(
            self.peers
                .iter()
                .filter(|(_, p)| p.deadline.is_some_and(|d| d <= now))
                .map(|(k, _)| k),
        );
        for &key in &due {
            if let Some(peer) = self.peers.get_mut(key) {
                let _ = peer.pc.handle_timeout(now);
                // Until flushed, the old deadline would wake the loop again at once.
                peer.deadline = None;
            }
            self.touch(key);
            self.drain_peer(now, key);
        }
        due.clear();
        self.scratch_keys = due;
    }

    fn on_maintenance(&mut self, now: Instant) {
        let due: Vec<SourceKey> = self
            .sources
            .iter_mut()
            .filter_map(|(k, s)| s.keyframes.poll(now).then_some(k))
            .collect();
        for source in due {
            self.send_pli(now, source);
        }
        let voices: Vec<(ParticipantId, f32)> = self
            .sources
            .iter_mut()
            .filter_map(|(_, s)| Some((s.participant.clone(), s.voice.as_mut()?.take_share())))
            .collect();
        if !voices.is_empty() {
            let _ = self.events.send(SfuEvent::Voice(voices));
        }
    }

    fn on_command(&mut self, now: Instant, command: SfuCommand) {
        match command {
            SfuCommand::AddPeer {
                participant,
                signals,
            } => {
                if let Some(&old) = self.by_participant.get(&participant) {
                    self.remove_peer(now, old);
                }
                let peers = &self.peers;
                let created = Peer::new(
                    now,
                    participant.clone(),
                    signals,
                    &self.candidates,
                    |ufrag| peers.iter().any(|(_, p)| p.ufrag == ufrag),
                );
                match created {
                    Ok(peer) => {
                        info!(
                            target: BRIDGE,
                            event = "peer-created",
                            participant = %peer.participant,
                        );
                        let ufrag = peer.ufrag.clone();
                        let key = self.peers.insert(peer);
                        if self.gone_reported.len() <= key {
                            self.gone_reported.resize(key + 1, false);
                        }
                        self.gone_reported[key] = false;
                        self.directory.insert_peer(ufrag, key);
                        self.by_participant.insert(participant, key);
                        self.counters
                            .peers
                            .store(self.peers.len() as u64, Ordering::Relaxed);
                        self.touch(key);
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot create a peer connection");
                        let _ = self.events.send(SfuEvent::PeerGone { participant });
                    }
                }
            }
            SfuCommand::RemovePeer { participant } => {
                if let Some(&key) = self.by_participant.get(&participant) {
                    self.remove_peer(now, key);
                }
            }
            SfuCommand::Signal {
                participant,
                signal,
            } => {
                let Some(&key) = self.by_participant.get(&participant) else {
                    return;
                };
                match signal {
                    ClientSignal::Offer(sdp) => self.on_client_offer(now, key, sdp),
                    ClientSignal::Answer(sdp) => self.on_client_answer(now, key, sdp),
                    ClientSignal::Candidate(candidate) => {
                        if candidate.candidate.is_empty() {
                            return;
                        }
                        if let Some(peer) = self.peers.get_mut(key) {
                            // ICE-lite learns addresses from checks; a bad candidate is harmless.
                            let _ = peer.pc.add_remote_candidate(RTCIceCandidateInit {
                                candidate: candidate.candidate,
                                sdp_mid: candidate.sdp_mid,
                                sdp_mline_index: candidate.sdp_mline_index,
                                ..Default::default()
                            });
                        }
                    }
                }
            }
            SfuCommand::SetForwarding {
                participant,
                audio,
                video,
            } => {
                let Some(&key) = self.by_participant.get(&participant) else {
                    return;
                };
                let Some(peer) = self.peers.get_mut(key) else {
                    return;
                };
                let reopened_video = video && !peer.forward_video;
                peer.forward_audio = audio;
                peer.forward_video = video;
                if reopened_video {
                    // Receivers' decoders have been starved: start them on a keyframe.
                    let sources = peer.published.clone();
                    for source in sources {
                        self.request_keyframe(now, source);
                    }
                }
            }
            SfuCommand::SetPlan {
                participant,
                publishers,
            } => {
                let Some(&key) = self.by_participant.get(&participant) else {
                    return;
                };
                if let Some(peer) = self.peers.get_mut(key) {
                    peer.plan = publishers;
                }
                self.sync_subscriptions(now, key);
            }
        }
    }

    fn signal(&self, key: PeerKey, signal: PeerSignal) {
        if let Some(peer) = self.peers.get(key) {
            (peer.signals)(signal);
        }
    }

    fn on_client_offer(&mut self, now: Instant, key: PeerKey, sdp: String) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if peer.negotiation != Negotiation::AwaitingClientOffer {
            self.signal(
                key,
                PeerSignal::NegotiationFailed("the client offers once, after joining".into()),
            );
            return;
        }
        let answer = (|| {
            let offer = RTCSessionDescription::offer(sdp)?;
            peer.pc.set_remote_description(now, offer)?;
            let answer = peer.pc.create_answer(None)?;
            peer.pc.set_local_description(now, answer)?;
            Ok::<_, rtc::shared::error::Error>(
                peer.pc
                    .local_description()
                    .map(|d| d.sdp)
                    .unwrap_or_default(),
            )
        })();
        match answer {
            Ok(answer) => {
                peer.negotiation = Negotiation::Stable;
                (peer.signals)(PeerSignal::Answer(answer));
                self.touch(key);
                self.sync_subscriptions(now, key);
            }
            Err(e) => {
                self.signal(key, PeerSignal::NegotiationFailed(e.to_string()));
            }
        }
    }

    fn on_client_answer(&mut self, now: Instant, key: PeerKey, sdp: String) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if peer.negotiation != Negotiation::AwaitingAnswer {
            self.signal(
                key,
                PeerSignal::NegotiationFailed("no offer is waiting for an answer".into()),
            );
            return;
        }
        let applied = RTCSessionDescription::answer(sdp)
            .and_then(|answer| peer.pc.set_remote_description(now, answer));
        if let Err(e) = applied {
            self.signal(key, PeerSignal::NegotiationFailed(e.to_string()));
            return;
        }
        peer.negotiation = Negotiation::Stable;
        self.touch(key);
        // Every new outgoing track is now negotiated: learn its payload types and extension
        // ids, start forwarding, and ask the publisher for a keyframe.
        let pending: Vec<(SourceKey, RTCRtpSenderId, u32)> = self.peers[key]
            .outgoing
            .iter()
            .map(|(s, t)| (*s, t.sender, t.ssrc))
            .collect();
        for (source_key, sender_id, ssrc) in pending {
            let Some(source) = self.sources.get(source_key) else {
                continue;
            };
            let ready = source
                .subscribers
                .iter()
                .any(|s| s.peer == key && s.rewrite.is_some());
            if ready {
                continue;
            }
            let Some(mut sender) = self.peers[key].pc.rtp_sender(sender_id) else {
                continue;
            };
            let parameters = sender.get_parameters();
            let codecs = negotiated_codecs(&parameters.rtp_parameters.codecs);
            let extensions = negotiated_extensions(&parameters.rtp_parameters.header_extensions);
            let rewrite = Rewrite::new(
                ssrc,
                &source.codecs,
                &codecs,
                &source.extensions,
                &extensions,
            );
            if let Some(source) = self.sources.get_mut(source_key)
                && let Some(entry) = source.subscribers.iter_mut().find(|s| s.peer == key)
            {
                entry.rewrite = Some(rewrite);
            }
            self.request_keyframe(now, source_key);
        }
        self.maybe_offer(now, key);
    }

    /// Turns a track whose media has started into a source others can receive.
    fn create_source(&mut self, key: PeerKey, receiver_id: RTCRtpReceiverId) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        // The publishing offer has audio, camera and (optionally) screen, in that order.
        let transceivers: Vec<_> = peer.pc.get_transceivers().collect();
        let position = transceivers.iter().position(|id| {
            peer.pc
                .rtp_transceiver(*id)
                .and_then(|t| t.receiver())
                .is_some_and(|r| r == receiver_id)
        });
        let Some(mut receiver) = peer.pc.rtp_receiver(receiver_id) else {
            return;
        };
        let kind = receiver.track().kind();
        let screen = kind == RtpCodecKind::Video && position == Some(SCREEN_TRANSCEIVER);
        let track_id = receiver.track().track_id().clone();
        let parameters = receiver.get_parameters().rtp_parameters.clone();
        let Some(first) = parameters.codecs.first() else {
            return;
        };
        if kind != RtpCodecKind::Audio && kind != RtpCodecKind::Video {
            return;
        }
        let extensions = negotiated_extensions(&parameters.header_extensions);
        let voice = (kind == RtpCodecKind::Audio)
            .then(|| extensions.iter().find(|(_, uri)| uri == AUDIO_LEVEL_URI))
            .flatten()
            .map(|(id, _)| VoiceMeter::new(*id));
        let source = Source {
            publisher: key,
            participant: peer.participant.clone(),
            kind,
            screen,
            receiver: receiver_id,
            codec: first.rtp_codec.clone(),
            codecs: negotiated_codecs(&parameters.codecs),
            extensions,
            last_ssrc: None,
            keyframes: KeyframeThrottle::default(),
            voice,
            subscribers: Vec::new(),
        };
        let source_key = self.sources.insert(source);
        peer.published.push(source_key);
        peer.track_sources.insert(track_id, source_key);
    }

    /// Everyone whose plan includes this publisher gets its new source.
    fn offer_new_source(&mut self, now: Instant, publisher: PeerKey) {
        let Some(participant) = self.peers.get(publisher).map(|p| p.participant.clone()) else {
            return;
        };
        let interested: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(k, p)| *k != publisher && p.plan.contains(&participant))
            .map(|(k, _)| k)
            .collect();
        for other in interested {
            self.sync_subscriptions(now, other);
        }
    }

    /// Makes a peer's outgoing tracks match its plan, and renegotiates if they changed.
    fn sync_subscriptions(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get(key) else {
            return;
        };
        if peer.negotiation == Negotiation::AwaitingClientOffer {
            // Outgoing transceivers added now would be matched to the client's own m-lines;
            // they are added once the client's offer has been answered.
            return;
        }
        let desired: Vec<SourceKey> = peer
            .plan
            .iter()
            .filter_map(|p| self.by_participant.get(p))
            .filter(|&&publisher| publisher != key)
            .filter_map(|&publisher| self.peers.get(publisher))
            .flat_map(|publisher| publisher.published.iter().copied())
            .collect();
        let current: Vec<SourceKey> = peer.outgoing.keys().copied().collect();
        let mut changed = false;
        for source in current {
            if !desired.contains(&source) {
                self.unsubscribe(key, source);
                changed = true;
            }
        }
        for source in desired {
            if !self.peers[key].outgoing.contains_key(&source) {
                changed |= self.subscribe(key, source);
            }
        }
        if changed {
            self.peers[key].needs_offer = true;
            self.maybe_offer(now, key);
        }
    }

    fn subscribe(&mut self, key: PeerKey, source_key: SourceKey) -> bool {
        let (Some(peer), Some(source)) =
            (self.peers.get_mut(key), self.sources.get_mut(source_key))
        else {
            return false;
        };
        let ssrc = loop {
            let candidate: u32 = rand::random();
            if candidate != 0 {
                break candidate;
            }
        };
        peer.next_track_number += 1;
        // The stream names the publisher; a screen is a stream of its own, so a client can show it
        // apart from the camera.
        let stream_id = if source.screen {
            format!("{}{SCREEN_STREAM_SUFFIX}", source.participant)
        } else {
            source.participant.to_string()
        };
        let kind_name = if source.kind == RtpCodecKind::Audio {
            "audio"
        } else {
            "video"
        };
        let track_id = format!("{stream_id}-{kind_name}-{}", peer.next_track_number);
        let track = MediaStreamTrack::new(
            stream_id.clone(),
            track_id.clone(),
            track_id.clone(),
            source.kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                active: true,
                codec: source.codec.clone(),
                ..Default::default()
            }],
        );
        let added = peer.pc.add_transceiver_from_track(
            track,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![stream_id],
                send_encodings: vec![],
            }),
        );
        let sender = added
            .ok()
            .and_then(|id| peer.pc.rtp_transceiver(id))
            .and_then(|t| t.sender());
        let Some(sender) = sender else {
            warn!("cannot add an outgoing track");
            return false;
        };
        peer.outgoing.insert(
            source_key,
            OutgoingTrack {
                sender,
                track_id: track_id.clone(),
                ssrc,
            },
        );
        peer.outgoing_by_track.insert(track_id, source_key);
        source.subscribers.push(Subscriber {
            peer: key,
            sender,
            rewrite: None,
        });
        true
    }

    fn unsubscribe(&mut self, key: PeerKey, source_key: SourceKey) {
        if let Some(source) = self.sources.get_mut(source_key) {
            source.subscribers.retain(|s| s.peer != key);
        }
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if let Some(track) = peer.outgoing.remove(&source_key) {
            peer.outgoing_by_track.remove(&track.track_id);
            let _ = peer.pc.remove_track(track.sender);
        }
    }

    fn maybe_offer(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if peer.negotiation != Negotiation::Stable || !peer.needs_offer {
            return;
        }
        let offer = (|| {
            let offer = peer.pc.create_offer(None)?;
            peer.pc.set_local_description(now, offer)?;
            Ok::<_, rtc::shared::error::Error>(
                peer.pc
                    .local_description()
                    .map(|d| d.sdp)
                    .unwrap_or_default(),
            )
        })();
        match offer {
            Ok(sdp) => {
                peer.needs_offer = false;
                peer.negotiation = Negotiation::AwaitingAnswer;
                (peer.signals)(PeerSignal::Offer(sdp));
                self.touch(key);
            }
            Err(e) => {
                warn!(error = %e, "cannot create an offer");
                self.signal(key, PeerSignal::NegotiationFailed(e.to_string()));
            }
        }
    }

    fn remove_peer(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get(key) else {
            return;
        };
        let published = peer.published.clone();
        let outgoing: Vec<SourceKey> = peer.outgoing.keys().copied().collect();
        let mut renegotiate = Vec::new();
        for source_key in published {
            if let Some(source) = self.sources.try_remove(source_key) {
                for subscriber in source.subscribers {
                    if let Some(other) = self.peers.get_mut(subscriber.peer) {
                        if let Some(track) = other.outgoing.remove(&source_key) {
                            other.outgoing_by_track.remove(&track.track_id);
                            let _ = other.pc.remove_track(track.sender);
                            other.needs_offer = true;
                        }
                        renegotiate.push(subscriber.peer);
                    }
                }
            }
        }
        for source_key in outgoing {
            if let Some(source) = self.sources.get_mut(source_key) {
                source.subscribers.retain(|s| s.peer != key);
            }
        }
        let mut peer = self.peers.remove(key);
        let _ = peer.pc.close();
        while let Some(out) = peer.pc.poll_write() {
            self.orphan_output
                .push((out.transport.peer_addr, peer.local_ip, out.message));
        }
        self.directory.remove_peer(&peer.ufrag, key);
        if self.by_participant.get(&peer.participant) == Some(&key) {
            self.by_participant.remove(&peer.participant);
        }
        if let Some(flag) = self.touched_flag.get_mut(key) {
            *flag = false;
        }
        self.touched.retain(|k| *k != key);
        self.counters
            .peers
            .store(self.peers.len() as u64, Ordering::Relaxed);
        info!(
            target: BRIDGE,
            event = "peer-closed",
            participant = %peer.participant,
        );
        for other in renegotiate {
            self.maybe_offer(now, other);
        }
    }
}

fn send_queued(
    socket: &MediaSocket,
    counters: &SfuCounters,
    queue: &mut Vec<BytesMut>,
    scratch: &mut Vec<u8>,
    to: Option<SocketAddr>,
    src: Option<IpAddr>,
) {
    if let Some(to) = to
        && !queue.is_empty()
    {
        let (sent, dropped) = socket.send_many(to, src, queue, scratch);
        counters.datagrams_out.fetch_add(sent, Ordering::Relaxed);
        if dropped > 0 {
            counters.send_errors.fetch_add(dropped, Ordering::Relaxed);
        }
    }
    queue.clear();
}

fn send(
    socket: &MediaSocket,
    counters: &SfuCounters,
    to: SocketAddr,
    src: Option<IpAddr>,
    datagram: &[u8],
) {
    match socket.send(to, src, datagram) {
        Ok(()) => counters.datagrams_out.fetch_add(1, Ordering::Relaxed),
        Err(_) => counters.send_errors.fetch_add(1, Ordering::Relaxed),
    };
}

fn negotiated_codecs(
    codecs: &[rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters],
) -> Vec<NegotiatedCodec> {
    codecs
        .iter()
        .map(|c| NegotiatedCodec {
            payload_type: c.payload_type,
            mime_type: c.rtp_codec.mime_type.to_ascii_lowercase(),
            fmtp: c.rtp_codec.sdp_fmtp_line.clone(),
        })
        .collect()
}

fn negotiated_extensions(
    extensions: &[rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionParameters],
) -> Vec<(u8, String)> {
    extensions
        .iter()
        .filter(|e| e.id > 0 && e.id < 256)
        .map(|e| (e.id as u8, e.uri.clone()))
        .collect()
}
