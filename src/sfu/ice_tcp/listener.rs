//! The ICE-TCP port: accepts connections, holds each to the limits, and moves its frames
//! between the socket and the worker that owns its media connection.
//!
//! A connection takes a seat (`limits.media_tcp_connections`, in all and per address) before
//! anything is read. Its first datagram must be a STUN request whose MESSAGE-INTEGRITY proves
//! it knows the ICE password of a connection the server made, and must come within
//! [`FIRST_DATAGRAM_WITHIN`]: anything else closes it, counted, and no worker hears of it.
//! After that it reads frames and hands them on, and writes what its worker queued, until
//! either side ends: the client closes, a frame is malformed, nothing arrives for
//! [`IDLE_AFTER`] (a live ICE connection sends consent checks every few seconds), or the
//! worker drops its writer (the media connection is gone). Never logs an address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::framing::FrameReader;
use super::{TcpInput, WRITE_QUEUE};
use crate::occupancy::{Full, Occupancy, Seat};
use crate::privacy::pii::canonical_ip;
use crate::sfu::counters::SfuCounters;
use crate::sfu::demux::is_stun;
use crate::sfu::dispatch::Dispatch;

/// A new connection's first STUN request must arrive within this.
pub const FIRST_DATAGRAM_WITHIN: Duration = Duration::from_secs(5);
/// A connection on which nothing arrives for this long is closed (ICE consent checks come
/// every few seconds, and the connection fails after 6 s without them).
pub const IDLE_AFTER: Duration = Duration::from_secs(15);

/// What the port's connections share.
pub struct TcpEdge {
    pub dispatch: Arc<Dispatch>,
    /// Each worker's input, by worker index.
    pub workers: Vec<mpsc::Sender<TcpInput>>,
    pub occupancy: Arc<Occupancy>,
    pub counters: Arc<SfuCounters>,
}

/// Accepts connections until the task is aborted (the SFU stops).
pub async fn serve(listener: TcpListener, edge: Arc<TcpEdge>) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors or a connection reset before it was accepted: the port
            // itself is fine; wait a moment rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // An IPv4 client of a dual-stack port is named by its IPv4 address, as on UDP.
        let remote = SocketAddr::new(canonical_ip(remote.ip()), remote.port());
        let seat = match edge.occupancy.take(Some(remote.ip())) {
            Ok(seat) => seat,
            Err(full) => {
                let counter = match full {
                    Full::Total => &edge.counters.tcp.refused_total,
                    Full::Address => &edge.counters.tcp.refused_per_address,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        tokio::spawn(connection(stream, remote, seat, edge.clone()));
    }
}

/// One connection, from its first datagram to its end.
async fn connection(stream: TcpStream, remote: SocketAddr, _seat: Seat, edge: Arc<TcpEdge>) {
    let _ = stream.set_nodelay(true);
    let local_ip = stream.local_addr().ok().map(|a| canonical_ip(a.ip()));
    let (mut read, write) = stream.into_split();
    let mut frames = FrameReader::default();
    let first = tokio::time::timeout(FIRST_DATAGRAM_WITHIN, next_datagram(&mut read, &mut frames))
        .await
        .ok()
        .flatten();
    let worker = first
        .as_ref()
        .filter(|datagram| is_stun(datagram))
        .and_then(|request| edge.dispatch.worker_for_stun(request));
    let (Some(first), Some(worker)) = (first, worker) else {
        edge.counters
            .tcp
            .refused_unproven
            .fetch_add(1, Ordering::Relaxed);
        return;
    };
    let Some(input) = edge.workers.get(worker) else {
        return;
    };
    let (writer, queued) = mpsc::channel(WRITE_QUEUE);
    edge.counters
        .tcp
        .connections
        .fetch_add(1, Ordering::Relaxed);
    let opened = input
        .send(TcpInput::Opened {
            remote,
            local_ip,
            writer,
        })
        .await
        .is_ok();
    if opened {
        let reading = async {
            let mut datagram = Some(first);
            while let Some(next) = datagram.take() {
                edge.counters.tcp.frames_in.fetch_add(1, Ordering::Relaxed);
                let sent = input.send(TcpInput::Datagram {
                    remote,
                    datagram: next,
                });
                if sent.await.is_err() {
                    return;
                }
                datagram = tokio::time::timeout(IDLE_AFTER, next_datagram(&mut read, &mut frames))
                    .await
                    .ok()
                    .flatten();
            }
        };
        tokio::select! {
            () = reading => {}
            () = write_queued(write, queued) => {}
        }
        let _ = input.send(TcpInput::Closed { remote }).await;
    }
    edge.counters
        .tcp
        .connections
        .fetch_sub(1, Ordering::Relaxed);
}

/// The next datagram on the connection; `None` when it ended, broke or sent a frame that is
/// no datagram of ours.
async fn next_datagram(read: &mut OwnedReadHalf, frames: &mut FrameReader) -> Option<BytesMut> {
    loop {
        if let Some(datagram) = frames.next_frame().ok()? {
            return Some(datagram);
        }
        match read.read_buf(frames.buffer()).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Writes what the worker queued until it drops the writer or the socket fails.
async fn write_queued(mut write: OwnedWriteHalf, mut queued: mpsc::Receiver<BytesMut>) {
    while let Some(run) = queued.recv().await {
        if write.write_all(&run).await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}
