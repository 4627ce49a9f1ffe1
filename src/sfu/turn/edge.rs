//! The TURN server's sockets: its UDP port, and the hand-over of relayed datagrams to the media
//! workers. The protocol is `server.rs`'s; this is only the I/O around it.
//!
//! An allocation reaches the workers the way an ICE-TCP connection does (`ice_tcp`): its first
//! relayed datagram must be a STUN request signed with a connection's ICE password, which names
//! the worker; the worker is then told of a link (the relayed address, the Zaal address the
//! client sends to, and a bounded queue for what goes back), and every further datagram goes to
//! it in order. What the worker sends to the relayed address comes back on the queue, framed as
//! RFC 4571 runs, and a small task per allocation wraps each datagram for the client. An
//! allocation that ends closes its link. Never logs; counts go to `TurnCounters`.

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

/// The largest datagram a client may send (a relayed media datagram and TURN's few bytes).
const MAX_DATAGRAM: usize = 2048 + 64;
/// The arena relayed datagrams are copied into for the workers (no allocation per datagram).
const ARENA_BYTES: usize = 256 * 1024;
/// How often expired allocations are looked for when none is due sooner.
const EXPIRY_CHECK: Duration = Duration::from_secs(5);

/// What the TURN port shares with the workers and its per-allocation tasks.
pub struct TurnEdge {
    pub server: Mutex<TurnServer>,
    pub dispatch: Arc<Dispatch>,
    /// Each worker's relay input.
    pub workers: Vec<mpsc::Sender<TcpInput>>,
    pub counters: Arc<crate::sfu::counters::SfuCounters>,
}

impl TurnEdge {
    fn server(&self) -> MutexGuard<'_, TurnServer> {
        // Each call is one step of a pure state machine: a poisoned lock holds a whole state.
        self.server.lock().unwrap_or_else(|p| p.into_inner())
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
}

/// Which worker each relayed address's link is on.
#[derive(Default)]
struct Links {
    by_relayed: HashMap<SocketAddr, usize>,
    arena: BytesMut,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Serves the UDP port until the task is aborted.
pub async fn serve_udp(socket: UdpSocket, edge: Arc<TurnEdge>) {
    let socket = Arc::new(socket);
    let mut links = Links::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut reply = Vec::with_capacity(256);
    loop {
        let next_expiry = edge
            .server()
            .next_expiry()
            .unwrap_or_else(|| Instant::now() + EXPIRY_CHECK)
            .min(Instant::now() + EXPIRY_CHECK);
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((len, from)) = received else { continue };
                let client = ClientKey { transport: ClientTransport::Udp, addr: from };
                let handled = {
                    let mut server = edge.server();
                    let handled = server.handle(Instant::now(), unix_now(), client, &buf[..len], &mut reply);
                    edge.publish(&server);
                    handled
                };
                match handled {
                    Handled::Reply => {
                        let _ = socket.send_to(&reply, from).await;
                    }
                    Handled::Relay { relayed, peer, payload } => {
                        relay(&edge, &socket, &mut links, relayed, peer, &buf[payload]);
                    }
                    Handled::Ignored => {}
                }
            }
            _ = tokio::time::sleep_until(next_expiry.into()) => {
                let ended = {
                    let mut server = edge.server();
                    let ended = server.expire(Instant::now());
                    edge.publish(&server);
                    ended
                };
                for relayed in ended {
                    if let Some(worker) = links.by_relayed.remove(&relayed) {
                        let _ = edge.workers[worker].try_send(TcpInput::Closed { remote: relayed });
                    }
                }
            }
        }
    }
}

/// Hands a relayed datagram to its worker, opening the allocation's link on its first (which
/// must be a STUN request of a connection this server made).
fn relay(
    edge: &Arc<TurnEdge>,
    socket: &Arc<UdpSocket>,
    links: &mut Links,
    relayed: SocketAddr,
    peer: SocketAddr,
    payload: &[u8],
) {
    let counters = edge.turn_counters();
    let worker = match links.by_relayed.get(&relayed) {
        Some(worker) => *worker,
        None => {
            let Some(worker) = edge.dispatch.worker_for_stun(payload) else {
                counters.dropped_in.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let (writer, queued) = mpsc::channel(WRITE_QUEUE);
            let opened = TcpInput::Opened {
                remote: relayed,
                local_ip: Some(peer.ip()),
                writer,
            };
            if edge.workers[worker].try_send(opened).is_err() {
                counters.dropped_in.fetch_add(1, Ordering::Relaxed);
                return;
            }
            links.by_relayed.insert(relayed, worker);
            tokio::spawn(write_back(
                edge.clone(),
                socket.clone(),
                relayed,
                peer,
                queued,
            ));
            worker
        }
    };
    if links.arena.capacity() - links.arena.len() < payload.len() {
        links.arena = BytesMut::with_capacity(ARENA_BYTES);
    }
    links.arena.extend_from_slice(payload);
    let datagram = links.arena.split();
    match edge.workers[worker].try_send(TcpInput::Datagram {
        remote: relayed,
        datagram,
    }) {
        Ok(()) => counters.relayed_in.fetch_add(1, Ordering::Relaxed),
        Err(_) => counters.dropped_in.fetch_add(1, Ordering::Relaxed),
    };
}

/// What the worker sends to `relayed`, wrapped for the allocation's client, until the worker
/// closes the link.
async fn write_back(
    edge: Arc<TurnEdge>,
    socket: Arc<UdpSocket>,
    relayed: SocketAddr,
    peer: SocketAddr,
    mut queued: mpsc::Receiver<BytesMut>,
) {
    let mut out = Vec::with_capacity(MAX_DATAGRAM);
    while let Some(run) = queued.recv().await {
        let mut rest = &run[..];
        while rest.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            let Some(datagram) = rest.get(2..2 + len) else {
                break;
            };
            rest = &rest[2 + len..];
            let client = edge
                .server()
                .to_client(Instant::now(), relayed, peer, datagram, &mut out);
            if let Some(client) = client {
                let _ = socket.send_to(&out, client.addr).await;
            }
        }
    }
}
