//! The SFU's event loop and its tables: peers, published sources, and who receives what.
//!
//! One worker thread owns everything here (the connections of its conferences), so nothing is
//! locked. Each turn of the loop handles a command from the focus, a batch of datagrams (read
//! from the socket by the first worker, which hands the other workers theirs), or timers;
//! then every connection that may have output is drained into the socket. The forwarding path
//! (datagram → decrypt → rewrite per subscriber → encrypt → send) allocates nothing of its own:
//! receive buffers and the datagram arena are reused, lookups are by index or borrowed key.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{
    RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit,
};
use rtc::sansio::Protocol;
use rtc::shared::marshal::MarshalSize;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use slab::Slab;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::allocation::{Candidate, LayerOffer, allocate};
use super::bandwidth::WIRE_OVERHEAD;
use super::demux::Directory;
use super::forward::{NegotiatedCodec, Rewrite};
use super::frame::{VideoCodec, keyframe_start};
use super::keyframe::KeyframeThrottle;
use super::pause::Demand;
use super::peer::{AUDIO_LEVEL_URI, Negotiation, OutgoingTrack, Peer, PeerKey, SourceKey};
use super::retransmit::{RecentResends, SourceHistory, nacked};
use super::rtcp::{as_nack, is_keyframe_request};
use super::simulcast_sdp::keep_simulcast_bindings;
use super::socket::{MediaSocket, RecvBuffers};
use super::switch::LayerSwitch;
use super::voice::VoiceMeter;
use super::workers::Router;
use super::{
    ClientSignal, GaugeShares, PeerSignal, QualityFigures, SfuCommand, SfuCounters, SfuEvent,
};
use crate::ids::ParticipantId;
use crate::privacy::BRIDGE;

/// The arena that received datagrams are copied into before the connection takes them.
const ARENA_BYTES: usize = 256 * 1024;
const MAX_DATAGRAM: usize = 2048;
/// Batches read per wake-up before commands and timers get a turn.
const MAX_BATCHES_PER_WAKE: usize = 16;
/// Keyframe retries, voice reports and (every few ticks) layer choices run at this cadence.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_millis(100);
/// Layer rates are measured, and layers chosen, every this many maintenance ticks.
const ALLOCATION_TICKS: u32 = 5;
/// What one forwarded audio stream is assumed to take of a receiver's bandwidth.
const AUDIO_BPS: u64 = 40_000;
/// What one padding-only probe packet takes on the wire: the RTP header, the transport-wide
/// sequence number, four bytes of padding, and the SRTP tag and UDP/IP headers.
const PADDING_PACKET_BYTES: u64 = 24 + WIRE_OVERHEAD as u64;
/// What a media packet takes on the wire beyond its payload: the RTP header and its extensions,
/// the SRTP tag and UDP/IP headers. Layer rates include it, as the bandwidth estimate does.
const PACKET_OVERHEAD: u64 = 12 + 12 + WIRE_OVERHEAD as u64;
/// A layer that sent nothing for this long is not offered to receivers.
const LAYER_IDLE: Duration = Duration::from_secs(1);
/// Every this many allocations (of half a second), a receiver's figures go to the bridge stream.
const DOWNLINK_REPORT_EVERY: u32 = 20;
/// The position of the screen-sharing transceiver in a client's publishing offer.
const SCREEN_TRANSCEIVER: usize = 2;
/// Appended to the publisher's id to name the media stream of their screen.
pub const SCREEN_STREAM_SUFFIX: &str = "~screen";

/// One published track (a participant's microphone, camera or screen) and everyone receiving it.
struct Source {
    publisher: PeerKey,
    participant: ParticipantId,
    kind: RtpCodecKind,
    /// The client's third transceiver: its screen, not its camera.
    screen: bool,
    receiver: RTCRtpReceiverId,
    codec: RTCRtpCodec,
    video_codec: VideoCodec,
    codecs: Vec<NegotiatedCodec>,
    extensions: Vec<(u8, String)>,
    /// The RTP streams of the track: one, or one per simulcast layer.
    layers: Vec<Layer>,
    /// A microphone whose packets carry their audio level.
    voice: Option<VoiceMeter>,
    subscribers: Vec<Subscriber>,
}

/// One RTP stream of a source: a simulcast layer, or the source's only stream.
struct Layer {
    ssrc: u32,
    keyframes: KeyframeThrottle,
    /// Payload bytes since the last rate update.
    bytes: u64,
    bitrate_bps: u64,
    /// From the layer's last keyframe, when the codec says it.
    height: Option<u16>,
    last_packet: Instant,
    since: Instant,
    /// Its video packets of the last second, for receivers' retransmission requests.
    history: SourceHistory,
}

impl Layer {
    fn new(ssrc: u32, now: Instant) -> Self {
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

struct Subscriber {
    peer: PeerKey,
    sender: RTCRtpSenderId,
    /// `None` until the subscriber's answer has been applied.
    rewrite: Option<Rewrite>,
    /// Which layer of a video source the subscriber is on, and the numbers that keep it one
    /// continuous stream.
    switch: LayerSwitch,
    /// The payload type of the last video packet sent, which padding packets carry too.
    payload_type: u8,
    /// How much of a camera this subscriber takes, for pausing layers nobody takes.
    demand: Demand,
    /// What was lately resent to it, for the retransmission hold-off.
    resends: RecentResends,
}

pub struct Engine {
    socket: Arc<MediaSocket>,
    input: Input,
    core: Core,
}

/// Where a worker's datagrams come from.
pub enum Input {
    /// The first worker reads the port: its own connections' datagrams it handles, the others'
    /// it hands to their workers (`router` and `outboxes` are empty with one worker).
    Socket {
        buffers: RecvBuffers,
        router: Option<Box<Router>>,
        outboxes: Vec<Outbox>,
    },
    /// Every other worker gets batches of datagrams from the first.
    Batches(mpsc::Receiver<Batch>),
}

/// Datagrams read together, on their way to the worker whose connections they are for.
pub struct Batch {
    read: Instant,
    datagrams: Vec<(SocketAddr, Option<IpAddr>, BytesMut)>,
}

/// What the first worker gathers for another during one read.
pub struct Outbox {
    to: mpsc::Sender<Batch>,
    pending: Vec<(SocketAddr, Option<IpAddr>, BytesMut)>,
    arena: BytesMut,
}

impl Outbox {
    pub fn new(to: mpsc::Sender<Batch>) -> Self {
        Self {
            to,
            pending: Vec::new(),
            arena: BytesMut::with_capacity(ARENA_BYTES),
        }
    }

    fn push(&mut self, from: SocketAddr, dst: Option<IpAddr>, datagram: &[u8]) {
        if self.arena.capacity() - self.arena.len() < datagram.len() {
            self.arena = BytesMut::with_capacity(ARENA_BYTES);
        }
        self.arena.extend_from_slice(datagram);
        self.pending.push((from, dst, self.arena.split()));
    }

    /// Hands what was gathered to the worker; a worker too far behind loses the batch (counted),
    /// as a full socket buffer would.
    fn send(&mut self, read: Instant, counters: &SfuCounters) {
        if self.pending.is_empty() {
            return;
        }
        let datagrams = std::mem::take(&mut self.pending);
        let lost = datagrams.len() as u64;
        if self.to.try_send(Batch { read, datagrams }).is_err() {
            counters
                .datagrams_dropped
                .fetch_add(lost, Ordering::Relaxed);
        }
    }
}

/// What a worker is told: the focus's commands for its connections, and, for the first worker,
/// where the others' connections are.
pub enum WorkerCommand {
    Sfu(SfuCommand),
    /// A connection placed on this worker, with the ICE username fragment it was given.
    AddPeer {
        participant: ParticipantId,
        signals: super::SignalSink,
        ufrag: String,
    },
    /// For the first worker's router: the connection with this ufrag is on `worker`, or gone.
    Route {
        ufrag: String,
        worker: Option<usize>,
    },
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
    /// The most videos any receiver gets (`media.last_n`); a client may ask for fewer.
    last_n: Option<usize>,
    maintenance_ticks: u32,
    last_allocation: Instant,
    /// Allocation rounds since the start, for reports every so many.
    quality_rounds: u32,
    /// Packets forwarded since the last timed flush.
    forwarded_since_flush: u64,
    /// This worker's part of the gauges that sum over workers.
    shares: GaugeShares,
    /// This worker's connection count in `SfuCounters::worker_peers`.
    worker: usize,
}

impl Engine {
    pub fn new(
        worker: usize,
        socket: Arc<MediaSocket>,
        input: Input,
        candidates: Vec<SocketAddr>,
        events: mpsc::UnboundedSender<SfuEvent>,
        counters: Arc<SfuCounters>,
        last_n: Option<usize>,
    ) -> Self {
        Self {
            socket,
            input,
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
                last_n,
                maintenance_ticks: 0,
                quality_rounds: 0,
                forwarded_since_flush: 0,
                shares: GaugeShares::default(),
                worker,
                last_allocation: Instant::now(),
            },
        }
    }

    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<WorkerCommand>) {
        let far = Duration::from_secs(3600);
        let mut next_maintenance = Instant::now() + MAINTENANCE_INTERVAL;
        loop {
            let deadline = self
                .core
                .next_deadline()
                .unwrap_or_else(|| Instant::now() + far);
            let socket = self.socket.clone();
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(command) => self.on_command(Instant::now(), command),
                    None => break,
                },
                ready = socket.readable(), if matches!(self.input, Input::Socket { .. }) => {
                    if ready.is_ok() {
                        self.drain_socket();
                    }
                }
                batch = Self::next_batch(&mut self.input) => match batch {
                    Some(batch) => self.on_batch(batch),
                    // The first worker is gone: the SFU is shutting down.
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline.min(next_maintenance).into()) => {}
            }
            // Timers run whenever they are due, not only when nothing else is ready: under load
            // the socket is readable on almost every turn, and a timer that waited for a quiet
            // turn would starve (reports, feedback, retransmission requests, layer choices).
            let now = Instant::now();
            if deadline <= now {
                self.core.on_timeouts(now);
            }
            if next_maintenance <= now {
                self.core.on_maintenance(now);
                next_maintenance = now + MAINTENANCE_INTERVAL;
            }
            self.core.flush(&self.socket);
        }
        let keys: Vec<PeerKey> = self.core.peers.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.core.remove_peer(Instant::now(), key);
        }
        self.core.flush(&self.socket);
    }

    /// The next batch from the first worker; never, for the first worker itself.
    async fn next_batch(input: &mut Input) -> Option<Batch> {
        match input {
            Input::Batches(batches) => batches.recv().await,
            Input::Socket { .. } => std::future::pending().await,
        }
    }

    fn on_command(&mut self, now: Instant, command: WorkerCommand) {
        match command {
            WorkerCommand::Sfu(command) => self.core.on_command(now, command),
            WorkerCommand::AddPeer {
                participant,
                signals,
                ufrag,
            } => self.core.add_peer(now, participant, signals, ufrag),
            WorkerCommand::Route { ufrag, worker } => {
                if let Input::Socket {
                    router: Some(router),
                    ..
                } = &mut self.input
                {
                    match worker {
                        Some(worker) => router.add(ufrag, worker),
                        None => router.remove(&ufrag),
                    }
                }
            }
        }
    }

    fn on_batch(&mut self, batch: Batch) {
        let now = Instant::now();
        for (from, dst, datagram) in batch.datagrams {
            self.core.on_handed_over(now, from, dst, datagram);
        }
        self.core.flush_timed(&self.socket, batch.read);
    }

    fn drain_socket(&mut self) {
        let Input::Socket {
            buffers,
            router,
            outboxes,
        } = &mut self.input
        else {
            return;
        };
        for _ in 0..MAX_BATCHES_PER_WAKE {
            let now = Instant::now();
            let core = &mut self.core;
            match self.socket.try_recv_batch(buffers, |from, dst, datagram| {
                let worker = match router {
                    Some(router) => router.route(from, datagram).unwrap_or(0),
                    None => 0,
                };
                // Outboxes are for the workers after the first.
                match worker.checked_sub(1).and_then(|w| outboxes.get_mut(w)) {
                    Some(outbox) => outbox.push(from, dst, datagram),
                    None => core.on_datagram(now, from, dst, datagram),
                }
            }) {
                Ok(_) => {
                    for outbox in outboxes.iter_mut() {
                        outbox.send(now, &self.core.counters);
                    }
                    self.core.flush_timed(&self.socket, now);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors and the like concern one remote address, not the port.
                Err(_) => continue,
            }
        }
    }
}

impl Core {
    fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .iter()
            .flat_map(|(_, p)| [p.deadline, p.probe.next_burst()])
            .flatten()
            .min()
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

    /// [`Self::flush`], and the packets forwarded since the last one counted as having waited
    /// since `read` (when their datagrams were read).
    fn flush_timed(&mut self, socket: &MediaSocket, read: Instant) {
        self.flush(socket);
        self.counters
            .forwarding_delay
            .record(read.elapsed(), self.forwarded_since_flush);
        self.forwarded_since_flush = 0;
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

    /// A datagram read from the socket: copied into the arena for the connection to keep.
    fn on_datagram(&mut self, now: Instant, from: SocketAddr, dst: Option<IpAddr>, data: &[u8]) {
        let Some(key) = self.route(from, data) else {
            return;
        };
        if self.arena.capacity() - self.arena.len() < data.len() {
            self.arena = BytesMut::with_capacity(ARENA_BYTES);
        }
        self.arena.extend_from_slice(data);
        let message = self.arena.split();
        self.deliver(now, key, from, dst, message);
    }

    /// A datagram the first worker handed over, already in a buffer of its own.
    fn on_handed_over(
        &mut self,
        now: Instant,
        from: SocketAddr,
        dst: Option<IpAddr>,
        data: BytesMut,
    ) {
        if let Some(key) = self.route(from, &data) {
            self.deliver(now, key, from, dst, data);
        }
    }

    /// The connection a datagram is for, counting what is unroutable.
    fn route(&mut self, from: SocketAddr, data: &[u8]) -> Option<PeerKey> {
        self.counters.datagrams_in.fetch_add(1, Ordering::Relaxed);
        let key = if data.is_empty() || data.len() > MAX_DATAGRAM {
            None
        } else {
            self.directory.route(from, data)
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
        from: SocketAddr,
        dst: Option<IpAddr>,
        message: BytesMut,
    ) {
        let local_addr = self.local_addr_for(dst, from);
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
        let ssrc = packet.header.ssrc;
        let layer = match source.layers.iter().position(|l| l.ssrc == ssrc) {
            Some(at) => at,
            None => {
                source.layers.push(Layer::new(ssrc, now));
                source.layers.len() - 1
            }
        };
        let video = source.kind == RtpCodecKind::Video;
        let keyframe = if video {
            keyframe_start(source.video_codec, &packet.payload)
        } else {
            None
        };
        {
            let layer = &mut source.layers[layer];
            layer.bytes += packet.payload.len() as u64 + PACKET_OVERHEAD;
            layer.last_packet = now;
            if let Some(height) = keyframe.and_then(|k| k.height) {
                layer.height = Some(height);
            }
        }
        let open = if video { forward_video } else { forward_audio };
        if !open {
            return;
        }
        if let Some(voice) = &mut source.voice {
            voice.observe(&packet.header);
        }
        let mut forwarded = 0u64;
        let mut kept = false;
        for subscriber in &mut source.subscribers {
            let Some(rewrite) = &subscriber.rewrite else {
                continue;
            };
            let numbers = if video {
                match subscriber.switch.map(
                    now,
                    ssrc,
                    packet.header.sequence_number,
                    packet.header.timestamp,
                    keyframe.is_some(),
                    packet.header.marker,
                ) {
                    Some(numbers) => Some(numbers),
                    None => continue,
                }
            } else {
                None
            };
            if numbers.is_some() && !kept {
                // Kept once for every receiver, and only when one receives it (a simulcast
                // layer nobody is on keeps nothing).
                source.layers[layer].history.keep(now, &packet);
                kept = true;
            }
            let Some(peer) = self.peers.get_mut(subscriber.peer) else {
                continue;
            };
            let extensions = peer.pc.take_extension_list();
            let Some(header) = rewrite.rewritten(&packet.header, extensions) else {
                continue;
            };
            let mut out = rtp::Packet {
                header,
                payload: packet.payload.clone(),
            };
            if let Some(numbers) = numbers {
                out.header.sequence_number = numbers.sequence;
                out.header.timestamp = numbers.timestamp;
                subscriber.payload_type = out.header.payload_type;
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
            self.forwarded_since_flush += forwarded;
            self.counters
                .rtp_forwarded
                .fetch_add(forwarded, Ordering::Relaxed);
            self.counters
                .rtp_bytes_forwarded
                .fetch_add(forwarded * packet.payload.len() as u64, Ordering::Relaxed);
        }
    }

    /// Resends to `key` what its NACK names, from the history of the source it is about, within
    /// the hold-off and the peer's repair budget (`super::retransmit`).
    fn on_nack(&mut self, now: Instant, key: PeerKey, nack: &TransportLayerNack) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        // A scan, not a map: a peer receives a few dozen tracks, and NACKs come a few times a
        // second at most.
        let Some(source_key) = peer
            .outgoing
            .iter()
            .find(|(_, track)| track.ssrc == nack.media_ssrc)
            .map(|(&source_key, _)| source_key)
        else {
            return;
        };
        let Some(source) = self.sources.get_mut(source_key) else {
            return;
        };
        if source.kind != RtpCodecKind::Video {
            return;
        }
        let Some(subscriber) = source.subscribers.iter_mut().find(|s| s.peer == key) else {
            return;
        };
        let Some(rewrite) = &subscriber.rewrite else {
            return;
        };
        peer.repair.top_up(now);
        for sequence in nacked(nack) {
            if !subscriber.resends.due(now, sequence) {
                continue;
            }
            let Some(origin) = subscriber.switch.origin(now, sequence) else {
                continue;
            };
            let Some(original) = source
                .layers
                .iter()
                .find(|l| l.ssrc == origin.layer)
                .and_then(|l| l.history.packet(now, origin.layer, origin.sequence))
            else {
                continue;
            };
            let extensions = peer.pc.take_extension_list();
            let Some(mut header) = rewrite.rewritten(&original.header, extensions) else {
                continue;
            };
            header.sequence_number = sequence;
            header.timestamp = original.header.timestamp.wrapping_add(origin.ts_offset);
            let resend = rtp::Packet {
                header,
                payload: original.payload,
            };
            if !peer.repair.spend(resend.marshal_size()) {
                continue;
            }
            subscriber.resends.note(now, sequence);
            if let Some(mut sender) = peer.pc.rtp_sender(subscriber.sender) {
                let _ = sender.write_rtp(now, resend);
            }
        }
        self.touch(key);
    }

    /// Asks for a keyframe of the layer `subscriber` is on or moving to (every layer when no
    /// subscriber is named), throttled per layer.
    fn request_keyframe(
        &mut self,
        now: Instant,
        source_key: SourceKey,
        subscriber: Option<PeerKey>,
    ) {
        let Some(source) = self.sources.get_mut(source_key) else {
            return;
        };
        if source.kind != RtpCodecKind::Video {
            return;
        }
        let wanted = subscriber.map(|peer| {
            source
                .subscribers
                .iter()
                .find(|s| s.peer == peer)
                .and_then(|s| s.switch.target())
        });
        let mut due = [0u32; 4];
        let mut count = 0;
        for layer in &mut source.layers {
            let asked = match wanted {
                None => true,
                Some(target) => target == Some(layer.ssrc),
            };
            if asked && layer.keyframes.request(now) && count < due.len() {
                due[count] = layer.ssrc;
                count += 1;
            }
        }
        for &ssrc in &due[..count] {
            self.send_pli(now, source_key, ssrc);
        }
    }

    fn send_pli(&mut self, now: Instant, source_key: SourceKey, media_ssrc: u32) {
        let Some(source) = self.sources.get(source_key) else {
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
                            self.request_keyframe(now, source, Some(key));
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
                    if let Some(s) = self.sources.get_mut(source)
                        && !s.layers.iter().any(|l| l.ssrc == init.ssrc)
                    {
                        s.layers.push(Layer::new(init.ssrc, now));
                    }
                }
            }
            _ => {}
        }
    }

    fn on_timeouts(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.scratch_keys);
        // Probe bursts first, so the connections' timers below send them at once.
        due.extend(
            self.peers
                .iter()
                .filter(|(_, p)| p.probe.next_burst().is_some_and(|d| d <= now))
                .map(|(k, _)| k),
        );
        for &key in &due {
            let burst = self
                .peers
                .get_mut(key)
                .and_then(|peer| peer.probe.take_burst(now));
            if let Some(bytes) = burst {
                self.send_padding(now, key, bytes);
            }
        }
        due.clear();
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

    /// Sends about `bytes` of padding-only packets to `key` on the video streams it receives
    /// (a probe burst), each between two frames.
    fn send_padding(&mut self, now: Instant, key: PeerKey, bytes: u64) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        let mut packets = bytes.div_ceil(PADDING_PACKET_BYTES);
        for &source_key in peer.outgoing.keys() {
            let Some(source) = self.sources.get_mut(source_key) else {
                continue;
            };
            if source.kind != RtpCodecKind::Video {
                continue;
            }
            let Some(subscriber) = source.subscribers.iter_mut().find(|s| s.peer == key) else {
                continue;
            };
            let Some(ssrc) = subscriber.rewrite.as_ref().map(|r| r.ssrc()) else {
                continue;
            };
            let Some(mut sender) = peer.pc.rtp_sender(subscriber.sender) else {
                continue;
            };
            while packets > 0 {
                let Some(numbers) = subscriber.switch.pad(now) else {
                    break;
                };
                let header = rtp::header::Header {
                    version: 2,
                    padding: true,
                    payload_type: subscriber.payload_type,
                    sequence_number: numbers.sequence,
                    timestamp: numbers.timestamp,
                    ssrc,
                    ..Default::default()
                };
                let padding = rtp::Packet {
                    header,
                    payload: bytes::Bytes::new(),
                };
                if sender.write_rtp(now, padding).is_err() {
                    break;
                }
                packets -= 1;
            }
            if packets == 0 {
                break;
            }
        }
        self.touch(key);
    }

    fn on_maintenance(&mut self, now: Instant) {
        // A source that stopped sending (paused, gone quiet) keeps no payloads past their age.
        for (_, source) in self.sources.iter_mut() {
            for layer in &mut source.layers {
                layer.history.expire(now);
            }
        }
        let due: Vec<(SourceKey, u32)> = self
            .sources
            .iter_mut()
            .flat_map(|(k, s)| {
                s.layers
                    .iter_mut()
                    .filter_map(move |l| l.keyframes.poll(now).then_some((k, l.ssrc)))
            })
            .collect();
        for (source, ssrc) in due {
            self.send_pli(now, source, ssrc);
        }
        self.maintenance_ticks += 1;
        if self.maintenance_ticks.is_multiple_of(ALLOCATION_TICKS) {
            self.measure_layers(now);
            let keys: Vec<PeerKey> = self.peers.iter().map(|(k, _)| k).collect();
            for &key in &keys {
                self.allocate_layers(now, key);
            }
            for key in keys {
                self.tell_camera_demand(now, key);
            }
            self.refresh_quality_figures();
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

    /// Tells a publisher's client when the camera layers its receivers take change, so that it
    /// pauses the ones nobody takes (all of them when last-N, hidden tiles or a moderator's
    /// video mute leave nobody).
    fn tell_camera_demand(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get(key) else {
            return;
        };
        let camera = peer.published.iter().find_map(|&source_key| {
            let source = self.sources.get(source_key)?;
            (source.kind == RtpCodecKind::Video && !source.screen).then_some(source)
        });
        let Some(camera) = camera else {
            return;
        };
        let demand = if peer.forward_video {
            camera
                .subscribers
                .iter()
                .map(|s| s.demand)
                .max()
                .unwrap_or(Demand::Nothing)
        } else {
            Demand::Nothing
        };
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if let Some(told) = peer.camera_demand.update(now, demand) {
            (peer.signals)(PeerSignal::SendVideo {
                max_height: told.max_height(),
            });
        }
    }

    /// Counts receivers and forwarded streams into the figures `/metrics` shows (no identifiers);
    /// now and then, each camera's figures go to the bridge stream by participant id.
    fn refresh_quality_figures(&mut self) {
        let figures = &self.counters.quality;
        let mut by_estimate = [0u64; 4];
        let mut by_loss = [0u64; 3];
        let (mut cameras_paused, mut held_back) = (0, 0);
        for (_, peer) in &self.peers {
            let estimate = peer.downlink.target_bps();
            let band = QualityFigures::ESTIMATE_BANDS
                .iter()
                .position(|(_, limit)| estimate <= *limit)
                .unwrap_or(3);
            by_estimate[band] += 1;
            if peer.downlink.has_feedback() {
                let loss = peer.downlink.loss();
                let band = QualityFigures::LOSS_BANDS
                    .iter()
                    .position(|(_, limit)| loss < *limit)
                    .unwrap_or(2);
                by_loss[band] += 1;
            }
            if peer.camera_demand.told() == Some(Demand::Nothing) {
                cameras_paused += 1;
            }
            held_back += peer.videos_held_back as u64;
        }
        let mut by_layer = [0u64; 4];
        let (mut published, mut forwarded) = (0, 0);
        for (_, source) in &self.sources {
            if source.kind != RtpCodecKind::Video {
                continue;
            }
            published += source.layers.iter().map(|l| l.bitrate_bps).sum::<u64>();
            for subscriber in &source.subscribers {
                let Some(current) = subscriber.switch.current() else {
                    continue;
                };
                let Some(layer) = source.layers.iter().find(|l| l.ssrc == current) else {
                    continue;
                };
                forwarded += layer.bitrate_bps;
                let below = source
                    .layers
                    .iter()
                    .filter(|l| (l.height, l.bitrate_bps) < (layer.height, layer.bitrate_bps))
                    .count();
                let rank = match (source.layers.len(), below) {
                    (1, _) => 3,
                    (_, 0) => 0,
                    (n, b) if b + 1 == n => 2,
                    _ => 1,
                };
                by_layer[rank] += 1;
            }
        }
        let shares = &mut self.shares;
        let mut store = |counter: &AtomicU64, value: u64| shares.set(counter, value);
        for (counter, value) in figures.receivers_by_estimate.iter().zip(by_estimate) {
            store(counter, value);
        }
        for (counter, value) in figures.receivers_by_loss.iter().zip(by_loss) {
            store(counter, value);
        }
        for (counter, value) in figures.video_streams_by_layer.iter().zip(by_layer) {
            store(counter, value);
        }
        store(&figures.video_streams_held_back, held_back);
        store(&figures.cameras_paused, cameras_paused);
        store(&figures.video_published_bps, published);
        store(&figures.video_forwarded_bps, forwarded);

        self.quality_rounds += 1;
        if !self.quality_rounds.is_multiple_of(DOWNLINK_REPORT_EVERY) {
            return;
        }
        for (_, source) in &self.sources {
            if source.kind != RtpCodecKind::Video {
                continue;
            }
            let mut layers: Vec<(Option<u16>, u64)> = source
                .layers
                .iter()
                .map(|l| (l.height, l.bitrate_bps))
                .collect();
            layers.sort_unstable();
            let Some(peer) = self.peers.get(source.publisher) else {
                continue;
            };
            let told = if source.screen {
                None
            } else {
                peer.camera_demand.told()
            };
            info!(
                target: BRIDGE,
                event = "uplink",
                participant = %source.participant,
                screen = source.screen,
                layer_heights = ?layers.iter().map(|l| l.0.unwrap_or(0)).collect::<Vec<_>>(),
                layer_bps = ?layers.iter().map(|l| l.1).collect::<Vec<_>>(),
                receivers = source.subscribers.iter().filter(|s| s.switch.current().is_some()).count(),
                max_height_told = ?told.map(Demand::max_height),
            );
        }
    }

    /// Turns the bytes each layer carried since the last call into a bitrate.
    fn measure_layers(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last_allocation);
        self.last_allocation = now;
        if elapsed.is_zero() {
            return;
        }
        for (_, source) in &mut self.sources {
            for layer in &mut source.layers {
                // A layer that began within this window is measured over its own time.
                let span = elapsed.min(now.saturating_duration_since(layer.since));
                if span.is_zero() {
                    continue;
                }
                let bps = (layer.bytes as f64 * 8.0 / span.as_secs_f64()) as u64;
                // Smoothed: a keyframe makes one window several times the average.
                layer.bitrate_bps = if layer.bitrate_bps == 0 {
                    bps
                } else {
                    (layer.bitrate_bps * 3 + bps) / 4
                };
                layer.bytes = 0;
            }
        }
    }

    /// Chooses the layer of every video source `key` receives, from its bandwidth estimate, the
    /// sizes it shows them at and its last-N; judges the last probe and starts one when it wants
    /// more than the estimate allows.
    fn allocate_layers(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get(key) else {
            return;
        };
        let mut order: Vec<(bool, usize, SourceKey)> = peer
            .outgoing
            .keys()
            .filter_map(|&source_key| {
                let source = self.sources.get(source_key)?;
                if source.kind != RtpCodecKind::Video {
                    return None;
                }
                // A screen no longer shared, or a camera switched off, takes no last-N place; a
                // camera this server paused (or is resuming) keeps its place, or it could never
                // be wanted again.
                let live = source
                    .layers
                    .iter()
                    .any(|l| now.saturating_duration_since(l.last_packet) < LAYER_IDLE);
                let paused_here = !source.screen
                    && self
                        .peers
                        .get(source.publisher)
                        .is_some_and(|p| p.camera_demand.paused_or_resuming(now));
                if !live && !paused_here {
                    return None;
                }
                let position = peer
                    .plan
                    .iter()
                    .position(|p| *p == source.participant)
                    .unwrap_or(usize::MAX);
                Some((!source.screen, position, source_key))
            })
            .collect();
        order.sort_unstable();
        let audio_streams = peer
            .outgoing
            .keys()
            .filter(|&&k| {
                self.sources
                    .get(k)
                    .is_some_and(|s| s.kind == RtpCodecKind::Audio)
            })
            .count();
        let candidates: Vec<Candidate> = order
            .iter()
            .map(|&(_, _, source_key)| {
                let source = &self.sources[source_key];
                let shown_height = if peer.shown_heights.is_empty() {
                    None
                } else {
                    let stream = if source.screen {
                        format!("{}{SCREEN_STREAM_SUFFIX}", source.participant)
                    } else {
                        source.participant.to_string()
                    };
                    peer.shown_heights.get(&stream).copied()
                };
                Candidate {
                    layers: offered_layers(&source.layers, now),
                    shown_height,
                    current: source
                        .subscribers
                        .iter()
                        .find(|s| s.peer == key)
                        .and_then(|s| s.switch.current()),
                }
            })
            .collect();
        let last_n = match (self.last_n, peer.last_n) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let estimate = peer.downlink.target_bps();
        let audio = audio_streams as u64 * AUDIO_BPS;
        let by_estimate = allocate(estimate.saturating_sub(audio), &candidates, last_n);
        let unconstrained = allocate(u64::MAX / 4, &candidates, last_n);
        let rate_of = |choice: &[Option<u32>]| -> u64 {
            choice
                .iter()
                .zip(&candidates)
                .filter_map(|(c, cand)| {
                    let ssrc = (*c)?;
                    cand.layers
                        .iter()
                        .find(|l| l.ssrc == ssrc)
                        .map(|l| l.bitrate_bps)
                })
                .sum()
        };
        let (sending, wanted) = (rate_of(&by_estimate), rate_of(&unconstrained));
        // A receiver that wants more than its estimate allows is probed for more.
        if let Some(peer) = self.peers.get_mut(key)
            && let Some(window) = peer
                .probe
                .update(now, estimate, sending + audio, wanted + audio)
        {
            peer.downlink.mark_probe(window.start, window.end);
        }
        let held_back = by_estimate
            .iter()
            .zip(&unconstrained)
            .filter(|(by_estimate, unconstrained)| by_estimate.is_none() && unconstrained.is_some())
            .count();
        if let Some(peer) = self.peers.get_mut(key) {
            peer.videos_held_back = held_back;
        }
        let chosen = by_estimate;
        let mut keyframes = Vec::new();
        let mut layer_switches = 0;
        for (rank, (&(_, _, source_key), choice)) in order.iter().zip(&chosen).enumerate() {
            if let Some(source) = self.sources.get_mut(source_key)
                && let Some(subscriber) = source.subscribers.iter_mut().find(|s| s.peer == key)
            {
                subscriber.demand = Demand::of_receiver(
                    last_n.is_none_or(|n| rank < n),
                    candidates[rank].shown_height,
                );
                layer_switches += subscriber.switch.switches();
                if subscriber.switch.target() != *choice {
                    subscriber.switch.set_target(now, *choice);
                }
                // Asked again every round until it comes (the throttle keeps it to one per layer
                // per half second): a keyframe request can be lost, or come while the encoder
                // restarts, and a switch without its keyframe never happens.
                if subscriber.switch.waiting_for_keyframe() {
                    keyframes.push(source_key);
                }
            }
        }
        for source_key in keyframes {
            self.request_keyframe(now, source_key, Some(key));
        }
        if let Some(peer) = self.peers.get_mut(key) {
            peer.allocations += 1;
            if peer.allocations.is_multiple_of(DOWNLINK_REPORT_EVERY) {
                let (probes_ok, probes_failed) = peer.probe.outcomes();
                let videos = chosen.iter().filter(|c| c.is_some()).count();
                info!(
                    target: BRIDGE,
                    event = "downlink",
                    participant = %peer.participant,
                    estimate_bps = estimate,
                    delivered_bps = peer.downlink.delivered_bps(),
                    loss = peer.downlink.loss(),
                    feedback = peer.downlink.has_feedback(),
                    video_bps = sending,
                    wanted_bps = wanted,
                    videos,
                    layer_switches,
                    probes_ok,
                    probes_failed,
                    probe_result_bps = peer.downlink.probe_result_bps(),
                );
            }
        }
    }

    /// Creates a participant's connection with the ICE username fragment it was given.
    fn add_peer(
        &mut self,
        now: Instant,
        participant: ParticipantId,
        signals: super::SignalSink,
        ufrag: String,
    ) {
        if let Some(&old) = self.by_participant.get(&participant) {
            self.remove_peer(now, old);
        }
        let created = Peer::new(now, participant.clone(), signals, &self.candidates, ufrag);
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
                self.count_peers();
                self.touch(key);
            }
            Err(e) => {
                warn!(error = %e, "cannot create a peer connection");
                let _ = self.events.send(SfuEvent::PeerGone { participant });
            }
        }
    }

    /// The connection count, as this worker's part of the total and on its own.
    fn count_peers(&mut self) {
        let peers = self.peers.len() as u64;
        self.shares.set(&self.counters.peers, peers);
        if let Some(mine) = self.counters.worker_peers.get(self.worker) {
            mine.store(peers, Ordering::Relaxed);
        }
    }

    fn on_command(&mut self, now: Instant, command: SfuCommand) {
        match command {
            SfuCommand::AddPeer {
                participant,
                signals,
                ..
            } => {
                // Placed by the handle with a ufrag of its own when there are several workers;
                // a lone worker picks one unused here.
                let peers = &self.peers;
                let ufrag = super::peer::unused_ufrag(|u| peers.iter().any(|(_, p)| p.ufrag == u));
                self.add_peer(now, participant, signals, ufrag);
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
                    ClientSignal::ReceiveVideo { heights, last_n } => {
                        if let Some(peer) = self.peers.get_mut(key) {
                            peer.shown_heights = heights;
                            peer.last_n = last_n;
                        }
                        self.allocate_layers(now, key);
                    }
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
                        self.request_keyframe(now, source, None);
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
                // The order may have changed (a new speaker): their video first.
                self.allocate_layers(now, key);
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
            let sdp = answer.sdp.clone();
            peer.pc.set_local_description(now, answer)?;
            Ok::<_, rtc::shared::error::Error>(sdp)
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
        let applied = RTCSessionDescription::answer(keep_simulcast_bindings(&sdp))
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
            self.allocate_layers(now, key);
            self.request_keyframe(now, source_key, Some(key));
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
            video_codec: VideoCodec::from_mime(&first.rtp_codec.mime_type),
            codecs: negotiated_codecs(&parameters.codecs),
            extensions,
            layers: Vec::new(),
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
            switch: LayerSwitch::default(),
            payload_type: 0,
            demand: Demand::Everything,
            resends: RecentResends::default(),
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
            // Kept before it is applied: the offer already lists the local candidates, and
            // `local_description()` would parse it and write it out again to add them.
            let sdp = offer.sdp.clone();
            peer.pc.set_local_description(now, offer)?;
            Ok::<_, rtc::shared::error::Error>(sdp)
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
        self.count_peers();
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

/// The layers of a source a receiver may be given: those sending now whose rate is known. Until
/// a rate is known (the first half second of a source), only the lowest layer, so that nobody
/// starts on a layer their link may not carry.
fn offered_layers(layers: &[Layer], now: Instant) -> Vec<LayerOffer> {
    let live = || {
        layers
            .iter()
            .filter(|l| now.saturating_duration_since(l.last_packet) < LAYER_IDLE)
    };
    let offer = |l: &Layer| LayerOffer {
        ssrc: l.ssrc,
        bitrate_bps: l.bitrate_bps,
        height: l.height,
    };
    if live().any(|l| l.bitrate_bps > 0) {
        return live().filter(|l| l.bitrate_bps > 0).map(offer).collect();
    }
    // Without heights, the first layer seen: simulcast encoders start their lowest first.
    live()
        .min_by_key(|l| l.height.unwrap_or(0))
        .map(offer)
        .into_iter()
        .collect()
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
    // Sent: the buffers go back to webrtc-rs for the next packets this worker encrypts, so
    // that forwarding allocates nothing per packet.
    for datagram in queue.drain(..) {
        rtc::peer_connection::recycle_write_buffer(datagram);
    }
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
