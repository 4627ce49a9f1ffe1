//! The selective forwarding unit: every participant's audio and video, on one UDP port.
//!
//! Owns the media socket, one `rtc` peer connection per participant (ICE-lite, DTLS-SRTP
//! terminated here and re-encrypted per receiver), RTP forwarding with per-receiver rewriting,
//! keyframe relaying and the connections' renegotiation. It runs on worker threads (one per core
//! unless configured), each owning whole conferences, and is driven by [`SfuCommand`]s: the
//! focus decides who receives whom ([`SfuCommand::SetPlan`]), the SFU only carries it out. It
//! must never decide who may see what, never log a name or an address, and never allocate, lock
//! or log per forwarded packet in code of its own.

mod allocation;
mod bandwidth;
mod demux;
mod engine;
mod forward;
mod frame;
mod keyframe;
mod pause;
mod peer;
mod probe;
mod retransmit;
mod rtcp;
mod simulcast_sdp;
mod socket;
mod switch;
mod transport_cc;
mod voice;
mod workers;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::ids::{ConferenceId, ParticipantId};

pub use forward::{NegotiatedCodec, Rewrite};
pub(crate) use rtcp::FeedbackTap;

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
}

/// How often the SFU reports voice activity ([`SfuEvent::Voice`]): its maintenance cadence.
pub const VOICE_REPORT_INTERVAL: std::time::Duration = engine::MAINTENANCE_INTERVAL;

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

/// Counters the SFU keeps for metrics and benchmarks; never per participant.
#[derive(Debug, Default)]
pub struct SfuCounters {
    pub datagrams_in: AtomicU64,
    pub datagrams_unrouted: AtomicU64,
    pub rtp_in: AtomicU64,
    pub rtp_forwarded: AtomicU64,
    /// RTP payload bytes forwarded (headers excluded).
    pub rtp_bytes_forwarded: AtomicU64,
    pub datagrams_out: AtomicU64,
    /// Datagrams the reading worker could not hand to a worker that was too far behind.
    pub datagrams_dropped: AtomicU64,
    pub send_errors: AtomicU64,
    pub peers: AtomicU64,
    /// Connections on each media worker (empty until the SFU starts).
    pub worker_peers: Vec<AtomicU64>,
    pub quality: QualityFigures,
    /// How long forwarded packets spent in the SFU.
    pub forwarding_delay: DelayHistogram,
}

/// Upper bounds of the forwarding-delay buckets, in seconds (a last one holds the rest).
pub const FORWARDING_DELAY_BOUNDS_S: [f64; 8] =
    [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.05];

/// Forwarded packets by the time from the read of their batch of datagrams to the send of the
/// batch's last datagram: what the SFU added to their way, not counting the time a datagram
/// waited in the socket before the read. Updated once per batch, never per packet.
#[derive(Debug, Default)]
pub struct DelayHistogram {
    /// Per bucket, not cumulative; the last is above every bound.
    buckets: [AtomicU64; FORWARDING_DELAY_BOUNDS_S.len() + 1],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl DelayHistogram {
    /// `packets` forwarded packets each waited at most `delay`.
    pub fn record(&self, delay: std::time::Duration, packets: u64) {
        if packets == 0 {
            return;
        }
        let seconds = delay.as_secs_f64();
        let bucket = FORWARDING_DELAY_BOUNDS_S
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(FORWARDING_DELAY_BOUNDS_S.len());
        self.buckets[bucket].fetch_add(packets, Ordering::Relaxed);
        let ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns
            .fetch_add(ns.saturating_mul(packets), Ordering::Relaxed);
        self.count.fetch_add(packets, Ordering::Relaxed);
    }

    /// (sum in seconds, count, per-bucket counts with their upper bounds; infinity for the
    /// last), as the metrics encoder takes them.
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets = FORWARDING_DELAY_BOUNDS_S
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        (
            self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            self.count.load(Ordering::Relaxed),
            buckets,
        )
    }
}

/// Media quality across every receiver and source, refreshed after each allocation round
/// (twice a second): counts and sums, never who.
#[derive(Debug, Default)]
pub struct QualityFigures {
    /// Receivers by downlink estimate: up to 300 kbit/s, 1 Mbit/s, 3 Mbit/s, and above.
    pub receivers_by_estimate: [AtomicU64; 4],
    /// Receivers (with congestion feedback) by the loss it reports: under 2 %, under 10 %, more.
    pub receivers_by_loss: [AtomicU64; 3],
    /// Video streams being forwarded, by layer: the source's lowest, a middle one, its highest,
    /// or the only one of a source without simulcast.
    pub video_streams_by_layer: [AtomicU64; 4],
    /// Video streams a receiver takes (last-N and its tiles let them in) that its estimate holds
    /// back.
    pub video_streams_held_back: AtomicU64,
    /// Cameras told to pause every layer, because nobody receives them.
    pub cameras_paused: AtomicU64,
    /// The video publishers send now, and what the SFU forwards of it, in bit/s.
    pub video_published_bps: AtomicU64,
    pub video_forwarded_bps: AtomicU64,
}

impl QualityFigures {
    pub const ESTIMATE_BANDS: [(&'static str, u64); 4] = [
        ("300k", 300_000),
        ("1M", 1_000_000),
        ("3M", 3_000_000),
        ("above", u64::MAX),
    ];
    pub const LOSS_BANDS: [(&'static str, f64); 3] = [
        ("under_2pct", 0.02),
        ("under_10pct", 0.10),
        ("above", f64::INFINITY),
    ];
    pub const LAYERS: [&'static str; 4] = ["lowest", "middle", "highest", "only"];
}

impl SfuCounters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn for_workers(workers: usize) -> Self {
        Self {
            worker_peers: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            ..Self::default()
        }
    }
}

/// One worker's part of gauges that are summed over workers: setting a value adds its change
/// since this worker last set it, so every worker can report its own figures into one counter.
#[derive(Debug, Default)]
pub struct GaugeShares {
    /// By the gauge's address (the counters live as long as the SFU).
    last: HashMap<usize, u64>,
}

impl GaugeShares {
    pub fn set(&mut self, gauge: &AtomicU64, value: u64) {
        let last = self
            .last
            .entry(gauge as *const AtomicU64 as usize)
            .or_insert(0);
        gauge.fetch_add(value.wrapping_sub(*last), Ordering::Relaxed);
        *last = value;
    }
}

/// The running SFU: a handle for commands and what the socket is bound to.
pub struct Sfu {
    dispatch: Arc<Dispatch>,
    local_addr: SocketAddr,
    candidates: Vec<SocketAddr>,
    counters: Arc<SfuCounters>,
}

/// The workers' command channels, and where conferences and participants are.
struct Dispatch {
    workers: Vec<mpsc::UnboundedSender<engine::WorkerCommand>>,
    /// Locked once per command, never per packet.
    assignments: std::sync::Mutex<workers::Assignments>,
}

/// A cloneable way to send commands to the SFU.
#[derive(Clone)]
pub struct SfuHandle {
    dispatch: Arc<Dispatch>,
}

impl SfuHandle {
    /// Sends a command to the worker of its participant's conference; false if the SFU has
    /// stopped.
    pub fn send(&self, command: SfuCommand) -> bool {
        self.dispatch.send(command)
    }
}

impl Dispatch {
    fn send(&self, command: SfuCommand) -> bool {
        use engine::WorkerCommand;
        let to = |worker: usize, command: WorkerCommand| {
            self.workers
                .get(worker)
                .is_some_and(|w| w.send(command).is_ok())
        };
        if self.workers.len() == 1 {
            return to(0, WorkerCommand::Sfu(command));
        }
        let mut assignments = match self.assignments.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let forget_route = |ufrag: String| {
            to(
                0,
                WorkerCommand::Route {
                    ufrag,
                    worker: None,
                },
            )
        };
        match command {
            SfuCommand::AddPeer {
                participant,
                conference,
                signals,
            } => {
                let (placed, old) = assignments.place(&participant, &conference);
                if let Some(old) = old {
                    to(
                        old.worker,
                        WorkerCommand::Sfu(SfuCommand::RemovePeer {
                            participant: participant.clone(),
                        }),
                    );
                    forget_route(old.ufrag);
                }
                // The route first: no STUN can name the ufrag before the worker has answered
                // the client's offer with it.
                to(
                    0,
                    WorkerCommand::Route {
                        ufrag: placed.ufrag.clone(),
                        worker: Some(placed.worker),
                    },
                );
                to(
                    placed.worker,
                    WorkerCommand::AddPeer {
                        participant,
                        signals,
                        ufrag: placed.ufrag,
                    },
                )
            }
            SfuCommand::RemovePeer { participant } => match assignments.remove(&participant) {
                Some(placed) => {
                    forget_route(placed.ufrag);
                    to(
                        placed.worker,
                        WorkerCommand::Sfu(SfuCommand::RemovePeer { participant }),
                    )
                }
                None => true,
            },
            command => match assignments.worker_of(command.participant()) {
                Some(worker) => to(worker, WorkerCommand::Sfu(command)),
                None => true,
            },
        }
    }
}

impl Sfu {
    /// Binds the media port and starts the SFU thread.
    pub fn start(
        config: MediaConfig,
        events: mpsc::UnboundedSender<SfuEvent>,
    ) -> std::io::Result<Self> {
        let socket = socket::bind(config.bind, config.port)?;
        let local_addr = socket.local_addr()?;
        let ips = if config.advertise_ips.is_empty() {
            socket::interface_ips(config.bind)
        } else {
            config.advertise_ips.clone()
        };
        let candidates: Vec<SocketAddr> = ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, local_addr.port()))
            .collect();
        if candidates.is_empty() {
            return Err(std::io::Error::other(
                "no address to advertise for media: set media.advertise_ips",
            ));
        }
        let workers = match config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let counters = Arc::new(SfuCounters::for_workers(workers));
        let mut senders = Vec::with_capacity(workers);
        let mut receivers = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.push(tx);
            receivers.push(rx);
        }
        // Batches from the reading worker to each other one: a second or so of datagrams at
        // full load; beyond that the worker is not keeping up, and they are dropped (counted).
        let mut outboxes = Vec::with_capacity(workers);
        let mut batch_inputs = Vec::with_capacity(workers);
        for _ in 1..workers {
            let (tx, rx) = mpsc::channel(BATCH_QUEUE);
            outboxes.push(tx);
            batch_inputs.push(rx);
        }
        // The socket joins the first worker's runtime, which reads it; the others only send
        // on it, which takes no runtime. They get it once it exists.
        let (mut socket_forwards, followers): (Vec<_>, Vec<_>) = (1..workers)
            .map(|_| std::sync::mpsc::channel::<Arc<socket::MediaSocket>>())
            .unzip();
        let mut followers = followers.into_iter();

        let mut receivers = receivers.into_iter();
        let mut batch_inputs = batch_inputs.into_iter();
        for worker in 0..workers {
            let commands = receivers.next().expect("one command channel per worker");
            let candidates = candidates.clone();
            let counters = counters.clone();
            let events = events.clone();
            let last_n = config.last_n;
            let startup: Startup = if worker == 0 {
                let socket = socket.try_clone()?;
                let outboxes = std::mem::take(&mut outboxes);
                let forwards = std::mem::take(&mut socket_forwards);
                Startup::Reader {
                    socket,
                    outboxes,
                    forwards,
                }
            } else {
                Startup::Follower {
                    socket: followers.next().expect("one socket channel per follower"),
                    batches: batch_inputs.next().expect("one batch channel per follower"),
                }
            };
            std::thread::Builder::new()
                .name(format!("zaal-sfu-{worker}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot start the media runtime");
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        let (socket, input) = match startup {
                            Startup::Reader {
                                socket,
                                outboxes,
                                forwards,
                            } => {
                                let socket = match socket::MediaSocket::new(socket) {
                                    Ok(socket) => Arc::new(socket),
                                    Err(e) => {
                                        tracing::error!(error = %e, "cannot start the SFU");
                                        return;
                                    }
                                };
                                for forward in forwards {
                                    let _ = forward.send(socket.clone());
                                }
                                let input = engine::Input::Socket {
                                    buffers: socket::RecvBuffers::new(),
                                    router: (!outboxes.is_empty()).then(Box::default),
                                    outboxes: outboxes
                                        .into_iter()
                                        .map(engine::Outbox::new)
                                        .collect(),
                                };
                                (socket, input)
                            }
                            Startup::Follower { socket, batches } => match socket.recv() {
                                Ok(socket) => (socket, engine::Input::Batches(batches)),
                                // The reading worker did not start; neither can this one.
                                Err(_) => return,
                            },
                        };
                        engine::Engine::new(
                            worker, socket, input, candidates, events, counters, last_n,
                        )
                        .run(commands)
                        .await;
                    });
                })?;
        }
        drop(socket);
        Ok(Self {
            dispatch: Arc::new(Dispatch {
                workers: senders,
                assignments: std::sync::Mutex::new(workers::Assignments::new(workers)),
            }),
            local_addr,
            candidates,
            counters,
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

    /// The addresses put in ICE candidates.
    pub fn candidates(&self) -> &[SocketAddr] {
        &self.candidates
    }

    pub fn counters(&self) -> Arc<SfuCounters> {
        self.counters.clone()
    }
}

/// How many batches the reading worker may queue for another before dropping.
const BATCH_QUEUE: usize = 1024;

/// What a worker thread starts from.
enum Startup {
    /// The first worker: the socket to read, channels to the other workers, and where to
    /// send them the socket once it is registered.
    Reader {
        socket: std::net::UdpSocket,
        outboxes: Vec<mpsc::Sender<engine::Batch>>,
        forwards: Vec<std::sync::mpsc::Sender<Arc<socket::MediaSocket>>>,
    },
    /// Any other worker: the socket (once the first has it) and its batches.
    Follower {
        socket: std::sync::mpsc::Receiver<Arc<socket::MediaSocket>>,
        batches: mpsc::Receiver<engine::Batch>,
    },
}
