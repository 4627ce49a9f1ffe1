//! Binding the media port and starting the media workers: one thread per core unless
//! configured, each with a current-thread runtime and a [`Core`] of its own.
//!
//! The first worker registers the socket with its runtime and reads it for all; the others only
//! send on it (which takes no runtime) and get their datagrams in batches from the first. One
//! worker is the same start-up with no followers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::core::{Candidates, Core};
use super::counters::SfuCounters;
use super::dispatch::Dispatch;
use super::ice_tcp::listener::TcpEdge;
use super::ice_tcp::{TcpInput, WORKER_INPUT_QUEUE};
use super::runtime::{Batch, Input, Outbox, Worker, WorkerCommand};
use super::socket::{self, MediaSocket, RecvBuffers};
use super::turn::edge::TurnEdge;
use super::turn::{TurnConfig, TurnServer};
use super::workers::Router;
use super::{MediaConfig, SfuEvent};

/// How many batches the reading worker may queue for another before dropping: a second or so
/// of datagrams at full load; beyond that the worker is not keeping up.
const BATCH_QUEUE: usize = 1024;

/// What a started SFU consists of.
pub struct Started {
    pub dispatch: Arc<Dispatch>,
    pub local_addr: SocketAddr,
    pub candidates: Candidates,
    pub counters: Arc<SfuCounters>,
    pub tcp_port: Option<tokio::task::JoinHandle<()>>,
    pub turn_port: Option<(tokio::task::JoinHandle<()>, SocketAddr)>,
    pub turn_streams: Option<super::turn::TurnStreams>,
}

/// What a worker thread starts from.
enum Startup {
    /// The first worker: the socket to read, channels to the other workers, and where to
    /// send them the socket once it is registered.
    Reader {
        socket: std::net::UdpSocket,
        outboxes: Vec<mpsc::Sender<Batch>>,
        forwards: Vec<std::sync::mpsc::Sender<Arc<MediaSocket>>>,
    },
    /// Any other worker: the socket (once the first has it) and its batches.
    Follower {
        socket: std::sync::mpsc::Receiver<Arc<MediaSocket>>,
        batches: mpsc::Receiver<Batch>,
    },
}

pub fn start(
    config: &MediaConfig,
    events: mpsc::UnboundedSender<SfuEvent>,
    health: Arc<crate::health::Health>,
) -> std::io::Result<Started> {
    let socket = socket::bind(config.bind, config.port)?;
    let local_addr = socket.local_addr()?;
    let ips = if config.advertise_ips.is_empty() {
        socket::interface_ips(config.bind)
    } else {
        config.advertise_ips.clone()
    };
    let tcp_listener = match config.tcp_port {
        0 => None,
        port => Some(bind_tcp(SocketAddr::new(config.bind, port))?),
    };
    let tcp_port = match &tcp_listener {
        Some(listener) => Some(listener.local_addr()?.port()),
        None => None,
    };
    let candidates = Candidates {
        udp: ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, local_addr.port()))
            .collect(),
        tcp: tcp_port
            .map(|port| ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
            .unwrap_or_default(),
    };
    if candidates.udp.is_empty() {
        return Err(std::io::Error::other(
            "no address to advertise for media: set media.advertise_ips",
        ));
    }
    let workers = match config.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let counters = Arc::new(SfuCounters::for_workers(workers));
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..workers).map(|_| mpsc::unbounded_channel()).unzip();
    let (mut outboxes, batch_inputs): (Vec<_>, Vec<_>) =
        (1..workers).map(|_| mpsc::channel(BATCH_QUEUE)).unzip();
    let (mut socket_forwards, followers): (Vec<_>, Vec<_>) = (1..workers)
        .map(|_| std::sync::mpsc::channel::<Arc<MediaSocket>>())
        .unzip();
    let mut followers = followers.into_iter();
    let mut batch_inputs = batch_inputs.into_iter();
    let (tcp_senders, tcp_receivers): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| match tcp_listener {
            Some(_) => {
                let (to, from) = mpsc::channel::<TcpInput>(WORKER_INPUT_QUEUE);
                (Some(to), Some(from))
            }
            None => (None, None),
        })
        .unzip();
    let mut tcp_receivers = tcp_receivers.into_iter();
    let turn_sockets = match &config.turn {
        Some(turn) => Some(bind_turn(turn.listen)?),
        None => None,
    };
    let (relay_senders, relay_receivers): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| match turn_sockets {
            Some(_) => {
                let (to, from) = mpsc::channel::<TcpInput>(WORKER_INPUT_QUEUE);
                (Some(to), Some(from))
            }
            None => (None, None),
        })
        .unzip();
    let mut relay_receivers = relay_receivers.into_iter();
    for (worker, commands) in receivers.into_iter().enumerate() {
        let startup = if worker == 0 {
            Startup::Reader {
                socket: socket.try_clone()?,
                outboxes: std::mem::take(&mut outboxes),
                forwards: std::mem::take(&mut socket_forwards),
            }
        } else {
            Startup::Follower {
                socket: followers.next().expect("one socket channel per follower"),
                batches: batch_inputs.next().expect("one batch channel per follower"),
            }
        };
        let (events, counters) = (events.clone(), counters.clone());
        let (candidates, last_n) = (candidates.clone(), config.last_n);
        let health = health.clone();
        let tcp_input = tcp_receivers.next().flatten();
        let relay_input = relay_receivers.next().flatten();
        std::thread::Builder::new()
            .name(format!("zaal-sfu-{worker}"))
            .spawn(move || {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // Made on its own thread: a core's connections never leave it.
                    let core =
                        Core::new(Instant::now(), worker, candidates, counters.clone(), last_n);
                    let channels = WorkerChannels {
                        events,
                        commands,
                        tcp_input,
                        relay_input,
                    };
                    run_worker(workers, startup, core, counters.clone(), channels)
                }));
                // A connection's panic is the core's to isolate; one that gets here took the
                // worker, and every conference on it, down.
                if ran.is_err() {
                    counters.workers_failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::error!(target: crate::privacy::TECHNICAL, event = "media-worker-failed");
                    health.fail("media worker");
                }
            })?;
    }
    drop(socket);
    let dispatch = Arc::new(Dispatch::new(senders));
    let tcp_port = tcp_listener.map(|listener| {
        let edge = Arc::new(TcpEdge {
            dispatch: dispatch.clone(),
            workers: tcp_senders.into_iter().flatten().collect(),
            occupancy: crate::occupancy::Occupancy::new(
                config.tcp_connections,
                config.tcp_connections_per_address,
            ),
            counters: counters.clone(),
        });
        tokio::spawn(super::ice_tcp::listener::serve(listener, edge))
    });
    let mut turn_streams = None;
    let turn_port = match (turn_sockets, &config.turn) {
        (Some((socket, tcp)), Some(turn)) => {
            let addr = socket.local_addr()?;
            let mut nonce_key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce_key);
            let server = TurnServer::new(TurnConfig {
                realm: turn.realm.clone(),
                secret: turn.secret.clone(),
                peers: candidates.udp.clone(),
                limits: turn.limits,
                nonce_key,
            });
            let udp = Arc::new(tokio::net::UdpSocket::from_std(socket)?);
            let edge = Arc::new(TurnEdge::new(
                server,
                dispatch.clone(),
                relay_senders.into_iter().flatten().collect(),
                counters.clone(),
                udp,
            ));
            let occupancy =
                crate::occupancy::Occupancy::new(turn.limits.total, turn.limits.per_address);
            turn_streams = Some(super::turn::TurnStreams {
                edge: edge.clone(),
                occupancy: occupancy.clone(),
            });
            let udp_task = tokio::spawn(super::turn::edge::serve_udp(edge.clone()));
            let tcp_task = tokio::spawn(super::turn::stream::serve_tcp(tcp, edge, occupancy));
            // One handle for both: the TCP side stops with the UDP side.
            let both = tokio::spawn(async move {
                let _stop_tcp = AbortOnDrop(tcp_task);
                let mut udp = AbortOnDrop(udp_task);
                let _ = (&mut udp.0).await;
            });
            Some((both, addr))
        }
        _ => None,
    };
    Ok(Started {
        dispatch,
        local_addr,
        candidates,
        counters,
        tcp_port,
        turn_port,
        turn_streams,
    })
}

/// The ICE-TCP port, listening (with address reuse, so that a restart finds it free).
fn bind_tcp(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Aborts a task when dropped (when the task holding it is aborted).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The TURN port, UDP and TCP on the same number (non-blocking, for the main runtime).
///
/// Port 0 asks the system for a UDP port, and that number may already be in use for TCP
/// (it keeps its own ephemeral ports): then another number is tried, a bounded few times.
fn bind_turn(addr: SocketAddr) -> std::io::Result<(std::net::UdpSocket, tokio::net::TcpListener)> {
    const ATTEMPTS_FOR_ANY_PORT: usize = 16;
    let attempts = if addr.port() == 0 {
        ATTEMPTS_FOR_ANY_PORT
    } else {
        1
    };
    let mut last_error = None;
    for _ in 0..attempts {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        match bind_tcp(socket.local_addr()?) {
            Ok(tcp) => return Ok((socket, tcp)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::AddrInUse)))
}

/// What a worker thread is handed besides its core: the focus's commands, where its events
/// go, and its ICE-TCP connections' and TURN allocations' datagrams.
struct WorkerChannels {
    events: mpsc::UnboundedSender<SfuEvent>,
    commands: mpsc::UnboundedReceiver<WorkerCommand>,
    tcp_input: Option<mpsc::Receiver<TcpInput>>,
    relay_input: Option<mpsc::Receiver<TcpInput>>,
}

/// A worker thread's body: its runtime, its socket, then its loop until the SFU stops.
fn run_worker(
    workers: usize,
    startup: Startup,
    core: Core,
    counters: Arc<SfuCounters>,
    channels: WorkerChannels,
) {
    let WorkerChannels {
        events,
        commands,
        tcp_input,
        relay_input,
    } = channels;
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
                let socket = match MediaSocket::new(socket) {
                    Ok(socket) => Arc::new(socket),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the SFU");
                        return;
                    }
                };
                for forward in forwards {
                    let _ = forward.send(socket.clone());
                }
                let input = Input::Socket {
                    buffers: RecvBuffers::new(),
                    router: Router::new(workers),
                    outboxes: outboxes.into_iter().map(Outbox::new).collect(),
                };
                (socket, input)
            }
            Startup::Follower { socket, batches } => match socket.recv() {
                Ok(socket) => (socket, Input::Batches(batches)),
                // The reading worker did not start; neither can this one.
                Err(_) => return,
            },
        };
        Worker::new(
            socket,
            input,
            core,
            events,
            counters,
            tcp_input,
            relay_input,
        )
        .run(commands)
        .await;
    });
}
