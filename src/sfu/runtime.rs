//! One media worker's loop: the edge between its [`Core`] and the world.
//!
//! Each turn waits for a command from the focus, datagrams (read from the socket by the first
//! worker, which hands the other workers theirs), or the core's next deadline; feeds what came
//! to the core with the current instant; then sends what the core has to send and delivers its
//! events and signals. This is the only place a worker touches the socket, channels and the
//! clock. Under load the socket is readable on almost every turn, so timers run whenever they
//! are due, not only when nothing else is ready.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::BytesMut;
use tokio::sync::mpsc;

use super::core::{Core, Output, Transmit, Transport};
use super::counters::SfuCounters;
use super::demux::IceCredentials;
use super::ice_tcp::TcpInput;
use super::ice_tcp::links::TcpLinks;
use super::socket::{MediaSocket, RecvBuffers};
use super::workers::Router;
use super::{SfuCommand, SfuEvent, SignalSink};
use crate::ids::ParticipantId;

/// The arena a handed-over batch's datagrams are copied into.
const ARENA_BYTES: usize = 256 * 1024;
/// Batches read per wake-up before commands and timers get a turn.
const MAX_BATCHES_PER_WAKE: usize = 16;
/// ICE-TCP (or TURN) inputs taken per wake-up, likewise.
const MAX_TCP_INPUTS_PER_WAKE: usize = 256;

/// What a worker is told: the focus's commands for its connections, and, for the first worker,
/// where every connection is.
pub enum WorkerCommand {
    /// A connection placed on this worker, with the ICE username fragment it was given.
    AddPeer {
        participant: ParticipantId,
        signals: SignalSink,
        credentials: IceCredentials,
    },
    /// Any other command about a connection on this worker (never `AddPeer`, which the
    /// dispatch turns into the variant above).
    Peer(SfuCommand),
    /// For the first worker's router: the connection with these credentials is on `worker`,
    /// or gone.
    Route {
        credentials: IceCredentials,
        worker: Option<usize>,
    },
}

/// Where a worker's datagrams come from.
#[expect(
    clippy::large_enum_variant,
    reason = "one per worker, held for its life: the size costs nothing"
)]
pub enum Input {
    /// The first worker reads the port: its own connections' datagrams it handles, the others'
    /// it hands to their workers (there are no outboxes with one worker).
    Socket {
        buffers: RecvBuffers,
        router: Router,
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

/// One worker thread's state: its core, and the edge around it.
pub struct Worker {
    socket: Arc<MediaSocket>,
    input: Input,
    core: Core,
    /// Where each participant's signals go.
    sinks: HashMap<ParticipantId, SignalSink>,
    events: mpsc::UnboundedSender<SfuEvent>,
    counters: Arc<SfuCounters>,
    /// One destination's datagrams on their way to the socket (reused).
    out_queue: Vec<BytesMut>,
    /// Where runs of datagrams are coalesced for segmentation offload (reused).
    gso_scratch: Vec<u8>,
    /// The ICE-TCP connections' datagrams for this worker (`None`: the port is off).
    tcp_input: Option<mpsc::Receiver<TcpInput>>,
    tcp: TcpLinks,
    /// The TURN allocations' relayed datagrams, as links like ICE-TCP connections' (`None`:
    /// TURN is off).
    relay_input: Option<mpsc::Receiver<TcpInput>>,
    relay: TcpLinks,
}

impl Worker {
    pub fn new(
        socket: Arc<MediaSocket>,
        input: Input,
        core: Core,
        events: mpsc::UnboundedSender<SfuEvent>,
        counters: Arc<SfuCounters>,
        tcp_input: Option<mpsc::Receiver<TcpInput>>,
        relay_input: Option<mpsc::Receiver<TcpInput>>,
    ) -> Self {
        Self {
            socket,
            input,
            core,
            sinks: HashMap::new(),
            events,
            counters,
            out_queue: Vec::with_capacity(64),
            gso_scratch: Vec::with_capacity(64 * 1024),
            tcp_input,
            tcp: TcpLinks::default(),
            relay_input,
            relay: TcpLinks::default(),
        }
    }

    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<WorkerCommand>) {
        loop {
            let deadline = self.core.poll_timeout();
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
                batch = next_batch(&mut self.input) => match batch {
                    Some(batch) => self.on_batch(batch),
                    // The first worker is gone: the SFU is shutting down.
                    None => break,
                },
                input = next_tcp_input(&mut self.tcp_input) => match input {
                    Some(input) => self.on_link_inputs(Transport::Tcp, input),
                    // The ICE-TCP port stopped; UDP goes on.
                    None => self.tcp_input = None,
                },
                input = next_tcp_input(&mut self.relay_input) => match input {
                    Some(input) => self.on_link_inputs(Transport::Relay, input),
                    // TURN stopped; the rest goes on.
                    None => self.relay_input = None,
                },
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
            let now = Instant::now();
            if deadline <= now {
                self.core.handle_timeout(now);
            }
            self.flush();
        }
        self.core.close_all(Instant::now());
        self.flush();
    }

    fn on_command(&mut self, now: Instant, command: WorkerCommand) {
        match command {
            WorkerCommand::AddPeer {
                participant,
                signals,
                credentials,
            } => {
                self.sinks.insert(participant.clone(), signals);
                self.core.add_peer(now, participant, credentials);
            }
            WorkerCommand::Peer(command) => match command {
                SfuCommand::RemovePeer { participant } => {
                    self.core.remove_participant(now, &participant);
                    // What the core still had for the participant goes nowhere.
                    self.deliver_outputs();
                    self.sinks.remove(&participant);
                    self.prune_tcp();
                }
                SfuCommand::Signal {
                    participant,
                    signal,
                } => self.core.handle_signal(now, &participant, signal),
                SfuCommand::SetForwarding {
                    participant,
                    audio,
                    video,
                } => self.core.set_forwarding(now, &participant, audio, video),
                SfuCommand::SetPlan {
                    participant,
                    publishers,
                } => self.core.set_plan(now, &participant, publishers),
                SfuCommand::AddPeer { .. } => {}
            },
            WorkerCommand::Route {
                credentials,
                worker,
            } => {
                if let Input::Socket { router, .. } = &mut self.input {
                    match worker {
                        Some(worker) => router.add(credentials, worker),
                        None => router.remove(&credentials.ufrag),
                    }
                }
            }
        }
    }

    fn on_batch(&mut self, batch: Batch) {
        let now = Instant::now();
        for (from, dst, datagram) in batch.datagrams {
            self.core
                .handle_owned_datagram(now, Transport::Udp, from, dst, datagram);
        }
        self.flush_timed(batch.read);
    }

    /// Inputs of ICE-TCP connections or TURN allocations (`transport`): this one and whatever
    /// else is waiting, up to a bound.
    fn on_link_inputs(&mut self, transport: Transport, first: TcpInput) {
        let now = Instant::now();
        let mut input = Some(first);
        let mut taken = 0;
        while let Some(next) = input.take() {
            let links = match transport {
                Transport::Relay => &mut self.relay,
                _ => &mut self.tcp,
            };
            match next {
                TcpInput::Opened {
                    remote,
                    local_ip,
                    writer,
                } => links.open(remote, local_ip, writer),
                TcpInput::Datagram { remote, datagram } => {
                    let local_ip = links.local_ip(remote);
                    let routed = self
                        .core
                        .handle_owned_datagram(now, transport, remote, local_ip, datagram);
                    links.confirm(remote, routed);
                }
                TcpInput::Closed { remote } => {
                    links.close(remote);
                    match transport {
                        Transport::Relay => self.core.relay_closed(remote),
                        _ => self.core.tcp_closed(remote),
                    }
                }
            }
            taken += 1;
            if taken < MAX_TCP_INPUTS_PER_WAKE {
                let queue = match transport {
                    Transport::Relay => &mut self.relay_input,
                    _ => &mut self.tcp_input,
                };
                input = queue.as_mut().and_then(|i| i.try_recv().ok());
            }
        }
        self.flush_timed(now);
    }

    /// Closes the ICE-TCP connections and TURN links of media connections that are gone.
    fn prune_tcp(&mut self) {
        let core = &self.core;
        if !self.tcp.is_empty() {
            self.tcp.prune(|remote| core.tcp_bound(remote));
        }
        if !self.relay.is_empty() {
            self.relay.prune(|relayed| core.relay_bound(relayed));
        }
    }

    fn drain_socket(&mut self) {
        for _ in 0..MAX_BATCHES_PER_WAKE {
            let Input::Socket {
                buffers,
                router,
                outboxes,
            } = &mut self.input
            else {
                return;
            };
            let now = Instant::now();
            let core = &mut self.core;
            match self.socket.try_recv_batch(buffers, |from, dst, datagram| {
                let worker = router.route(from, datagram).unwrap_or(0);
                // Outboxes are for the workers after the first.
                match worker.checked_sub(1).and_then(|w| outboxes.get_mut(w)) {
                    Some(outbox) => outbox.push(from, dst, datagram),
                    None => core.handle_datagram(now, Transport::Udp, from, dst, datagram),
                }
            }) {
                Ok(_) => {
                    for outbox in outboxes.iter_mut() {
                        outbox.send(now, &self.counters);
                    }
                    self.flush_timed(now);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors and the like concern one remote address, not the port.
                Err(_) => continue,
            }
        }
    }

    /// [`Self::flush`], and the packets forwarded since the last one counted as having waited
    /// since `read` (when their datagrams were read).
    fn flush_timed(&mut self, read: Instant) {
        self.flush();
        self.counters
            .forwarding_delay
            .record(read.elapsed(), self.core.take_forwarded());
    }

    /// Sends what the core has to send and delivers its events and signals.
    fn flush(&mut self) {
        // A connection's output all goes to its one remote address: gather each run to one
        // destination and send it in as few system calls as possible.
        let mut destination: Option<Destination> = None;
        while let Some(Transmit {
            transport,
            from,
            to,
            contents,
        }) = self.core.poll_transmit()
        {
            let next = (transport, to, from);
            if destination.is_some_and(|d| d != next) {
                self.send_queued(destination);
            }
            destination = Some(next);
            self.out_queue.push(contents);
        }
        self.send_queued(destination);
        self.deliver_outputs();
    }

    fn send_queued(&mut self, destination: Option<Destination>) {
        if let Some((Transport::Tcp, to, _)) = destination {
            self.tcp.send(to, &self.out_queue, &self.counters.tcp);
        } else if let Some((Transport::Relay, to, _)) = destination {
            self.relay
                .send(to, &self.out_queue, &self.counters.turn.links);
        } else if let Some((Transport::Udp, to, from)) = destination
            && !self.out_queue.is_empty()
        {
            let (sent, dropped) =
                self.socket
                    .send_many(to, from, &self.out_queue, &mut self.gso_scratch);
            self.counters
                .datagrams_out
                .fetch_add(sent, Ordering::Relaxed);
            if dropped > 0 {
                self.counters
                    .send_errors
                    .fetch_add(dropped, Ordering::Relaxed);
            }
        }
        // Sent: the buffers go back to webrtc-rs for the next packets this worker encrypts, so
        // that forwarding allocates nothing per packet.
        for datagram in self.out_queue.drain(..) {
            rtc::peer_connection::recycle_write_buffer(datagram);
        }
    }

    fn deliver_outputs(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Event(event) => {
                    if matches!(event, SfuEvent::PeerGone { .. }) {
                        self.prune_tcp();
                    }
                    let _ = self.events.send(event);
                }
                Output::Signal {
                    participant,
                    signal,
                } => {
                    if let Some(sink) = self.sinks.get(&participant) {
                        sink(signal);
                    }
                }
            }
        }
    }
}

/// Where a run of datagrams goes: its transport, remote address, and local address.
type Destination = (Transport, SocketAddr, Option<IpAddr>);

/// The next input of the worker's ICE-TCP connections; never, with the port off.
async fn next_tcp_input(input: &mut Option<mpsc::Receiver<TcpInput>>) -> Option<TcpInput> {
    match input {
        Some(input) => input.recv().await,
        None => std::future::pending().await,
    }
}

/// The next batch from the first worker; never, for the first worker itself.
async fn next_batch(input: &mut Input) -> Option<Batch> {
    match input {
        Input::Batches(batches) => batches.recv().await,
        Input::Socket { .. } => std::future::pending().await,
    }
}
