//! ICE over TCP (RFC 6544): media for participants whose network lets no UDP through.
//!
//! The server advertises a passive TCP candidate on `media.tcp_port` beside its UDP ones, at a
//! lower priority; a browser that cannot reach the UDP port connects there and sends its STUN,
//! DTLS and SRTP as RFC 4571 frames ([`framing`]). [`listener`] accepts the connections: a
//! connection must open with a STUN request that proves it knows a connection's ICE password,
//! within a few seconds, before its datagrams reach any worker; then every frame goes, in order,
//! to the worker that owns that connection, as [`TcpInput`]s, and the worker's core handles them
//! as it handles UDP datagrams (`Transport::Tcp`). What the core sends back the worker frames
//! and queues on the connection's writer. The core knows nothing of sockets; this module knows
//! nothing of media, and never logs a participant's address.

pub mod framing;
pub(crate) mod links;
pub(crate) mod listener;

use std::net::{IpAddr, SocketAddr};

use bytes::BytesMut;
use tokio::sync::mpsc;

/// What an ICE-TCP connection hands its worker, in the order it happened.
#[derive(Debug)]
pub enum TcpInput {
    /// A connection proved itself: what the worker sends to `remote` goes to `writer`, already
    /// framed.
    Opened {
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        writer: mpsc::Sender<BytesMut>,
    },
    /// One datagram that arrived on it.
    Datagram {
        remote: SocketAddr,
        datagram: BytesMut,
    },
    /// It ended (the client closed it, it broke, or it was idle too long).
    Closed { remote: SocketAddr },
}

/// How many inputs a worker may have waiting from all its ICE-TCP connections; a connection
/// whose worker is behind waits (TCP's own back-pressure) instead of growing a queue.
pub const WORKER_INPUT_QUEUE: usize = 1024;
/// How many framed runs of datagrams may wait for one connection's socket; beyond, the worker
/// drops what it would send (as a full UDP socket buffer would) and counts it.
pub const WRITE_QUEUE: usize = 128;
