//! The TURN server's sockets: its UDP port, its TCP connections (on the same port number), and
//! the hand-over of relayed datagrams to the media workers. The protocol is `server.rs`'s; this
//! is only the I/O around it.
//!
//! An allocation reaches the workers the way an ICE-TCP connection does (`ice_tcp`): its first
//! relayed datagram must be a STUN request signed with a connection's ICE password, which names
//! the worker; the worker is then told of a link (the relayed address, the Zaal address the
//! client sends to, and a bounded queue for what goes back), and every further datagram goes to
//! it in order. What the worker sends to the relayed address comes back on the queue, framed as
//! RFC 4571 runs, and a small task per allocation wraps each datagram for the client. An
//! allocation that ends (expired, refreshed to zero, its TCP connection closed) closes its link.
//! Never logs; counts go to `TurnCounters`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::allocations::{ClientKey, ClientTransport};
use super::server::{Handled, TurnServer};
use crate::sfu::counters::TurnCounters;
use crate::sfu::dispatch::Dispatch;
use crate::sfu::ice_tcp::{TcpInput, WRITE_QUEUE};

/// The largest message a client may send (a relayed media datagram and TURN's few bytes).
pub const MAX_MESSAGE: usize = 2048 + 64;
/// The arena relayed datagrams are copied into (no allocation per datagram).
const ARENA_BYTES: usize = 256 * 1024;
/// How often expired allocations are looked for when none is due sooner.
const EXPIRY_CHECK: Duration = Duration::from_secs(5);

/// What the TURN listeners share with the workers and the per-allocation tasks.
pub struct TurnEdge {
    pub server: Mutex<TurnServer>,
    pub dispatch: Arc<Dispatch>,
    /// Each worker's relay input.
    pub workers: Vec<mpsc::Sender<TcpInput>>,
    pub counters: Arc<crate::sfu::counters::SfuCounters>,
    pub udp: Arc<UdpSocket>,
    links: Mutex<Links>,
    /// Where what goes to a TCP (or TLS) client is queued, by client.
    streams: Mutex<HashMap<ClientKey, mpsc::Sender<BytesMut>>>,
}

/// Which worker each relayed address's link is on.
#[derive(Default)]
struct Links {
    by_relayed: HashMap<SocketAddr, usize>,
    arena: BytesMut,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each holder does one step of a pure state machine: a poisoned lock holds a whole state.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What [`TurnEdge::handle`] did with a client's message.
pub enum Answer {
    /// Nothing to send back.
    Nothing,
    /// Send this reply to the client.
    Reply,
}

impl TurnEdge {
    pub fn new(
        server: TurnServer,
        dispatch: Arc<Dispatch>,
        workers: Vec<mpsc::Sender<TcpInput>>,
        counters: Arc<crate::sfu::counters::SfuCounters>,
        udp: Arc<UdpSocket>,
    ) -> Self {
        Self {
            server: Mutex::new(server),
            dispatch,
            workers,
            counters,
            udp,
            links: Mutex::new(Links::default()),
            streams: Mutex::new(HashMap::new()),
        }
    }

    fn turn_counters(&self) -> &TurnCounters {
        &self.counters.turn
    }

    /// Copies the server's figures into the metrics.
    fn publish(&self, server: &TurnServer) {
        let c = self.turn_counters();
        let refused = server.refusals();
        c.allocations
            .store(server.allocations() as u64, Ordering::Relaxed);
        c.unauthorized
            .store(refused.unauthorized, Ordering::Relaxed);
        c.forbidden_peer
            .store(refused.forbidden_peer, Ordering::Relaxed);
        c.quota.store(refused.quota, Ordering::Relaxed);
    }

    /// One message from `client`: relayed on to a worker, or answered in `reply`.
    pub fn handle(
        self: &Arc<Self>,
        client: ClientKey,
        message: &[u8],
        reply: &mut Vec<u8>,
    ) -> Answer {
        let handled = {
            let mut server = lock(&self.server);
            let handled = server.handle(Instant::now(), unix_now(), client, message, reply);
            self.publish(&server);
            handled
        };
        match handled {
            Handled::Reply => Answer::Reply,
            Handled::Relay {
                relayed,
                peer,
                payload,
            } => {
                self.relay(relayed, peer, &message[payload]);
                Answer::Nothing
            }
            Handled::Ignored => Answer::Nothing,
        }
    }

    /// Drops expired allocations (or, with `gone`, that client's), and closes their links.
    fn end_allocations(&self, gone: Option<&ClientKey>) {
        let ended = {
            let mut server = lock(&self.server);
            if let Some(client) = gone {
                server.client_gone(client);
            }
            let ended = server.expire(Instant::now());
            self.publish(&server);
            ended
        };
        let mut links = lock(&self.links);
        for relayed in ended {
            if let Some(worker) = links.by_relayed.remove(&relayed) {
                let _ = self.workers[worker].try_send(TcpInput::Closed { remote: relayed });
            }
        }
    }

    /// Hands a relayed datagram to its worker, opening the allocation's link on its first
    /// (which must be a STUN request of a connection this server made).
    fn relay(self: &Arc<Self>, relayed: SocketAddr, peer: SocketAddr, payload: &[u8]) {
        let counters = self.turn_counters();
        let mut links = lock(&self.links);
        let worker = match links.by_relayed.get(&relayed) {
            Some(worker) => *worker,
            None => {
                let Some(worker) = self.dispatch.worker_for_stun(payload) else {
                    counters.dropped_in.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let (writer, queued) = mpsc::channel(WRITE_QUEUE);
                let opened = TcpInput::Opened {
                    remote: relayed,
                    local_ip: Some(peer.ip()),
                    writer,
                };
                if self.workers[worker].try_send(opened).is_err() {
                    counters.dropped_in.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                links.by_relayed.insert(relayed, worker);
                tokio::spawn(write_back(self.clone(), relayed, peer, queued));
                worker
            }
        };
        if links.arena.capacity() - links.arena.len() < payload.len() {
            links.arena = BytesMut::with_capacity(ARENA_BYTES);
        }
        links.arena.extend_from_slice(payload);
        let datagram = links.arena.split();
        drop(links);
        match self.workers[worker].try_send(TcpInput::Datagram {
            remote: relayed,
            datagram,
        }) {
            Ok(()) => counters.relayed_in.fetch_add(1, Ordering::Relaxed),
            Err(_) => counters.dropped_in.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Registers a stream client's queue; what is sent to it goes there.
    pub fn stream_opened(&self, client: ClientKey, queue: mpsc::Sender<BytesMut>) {
        lock(&self.streams).insert(client, queue);
    }

    /// A stream client's connection ended: so does its allocation.
    pub fn stream_closed(&self, client: &ClientKey) {
        lock(&self.streams).remove(client);
        self.end_allocations(Some(client));
    }

    /// Queues `bytes` for a stream client; false when it is gone or its queue is full.
    fn to_stream(&self, client: &ClientKey, bytes: BytesMut) -> bool {
        lock(&self.streams)
            .get(client)
            .is_some_and(|q| q.try_send(bytes).is_ok())
    }
}

/// Serves the UDP port (and looks after expiry) until the task is aborted.
pub async fn serve_udp(edge: Arc<TurnEdge>) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut reply = Vec::with_capacity(256);
    loop {
        let next_expiry = lock(&edge.server)
            .next_expiry()
            .unwrap_or_else(|| Instant::now() + EXPIRY_CHECK)
            .min(Instant::now() + EXPIRY_CHECK);
        tokio::select! {
            received = edge.udp.recv_from(&mut buf) => {
                let Ok((len, from)) = received else { continue };
                let client = ClientKey { transport: ClientTransport::Udp, addr: from };
                if let Answer::Reply = edge.handle(client, &buf[..len], &mut reply) {
                    let _ = edge.udp.send_to(&reply, from).await;
                }
            }
            _ = tokio::time::sleep_until(next_expiry.into()) => edge.end_allocations(None),
        }
    }
}

/// What the worker sends to `relayed`, wrapped for the allocation's client, until the worker
/// closes the link.
async fn write_back(
    edge: Arc<TurnEdge>,
    relayed: SocketAddr,
    peer: SocketAddr,
    mut queued: mpsc::Receiver<BytesMut>,
) {
    let mut out = Vec::with_capacity(MAX_MESSAGE);
    let mut arena = BytesMut::new();
    while let Some(run) = queued.recv().await {
        let mut rest = &run[..];
        while rest.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            let Some(datagram) = rest.get(2..2 + len) else {
                break;
            };
            rest = &rest[2 + len..];
            let client =
                lock(&edge.server).to_client(Instant::now(), relayed, peer, datagram, &mut out);
            let Some(client) = client else { continue };
            if client.transport.is_stream() {
                if arena.capacity() < out.len() {
                    arena = BytesMut::with_capacity(ARENA_BYTES);
                }
                arena.extend_from_slice(&out);
                if !edge.to_stream(&client, arena.split()) {
                    edge.counters
                        .turn
                        .links
                        .frames_dropped
                        .fetch_add(1, Ordering::Relaxed);
                }
            } else {
                let _ = edge.udp.send_to(&out, client.addr).await;
            }
        }
    }
}
