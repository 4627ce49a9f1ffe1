//! A worker's side of its ICE-TCP connections: where the datagrams its core sends to a TCP
//! remote go. Each run of datagrams to one connection is framed into the worker's arena and
//! queued on the connection's writer as one buffer, so a burst costs one queue entry and no
//! allocation of its own; a connection whose queue is full loses the run (counted), as a UDP
//! socket with a full buffer would, rather than hold the worker up.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tokio::sync::mpsc;

use super::framing::write_frame;
use crate::sfu::counters::TcpCounters;

const ARENA_BYTES: usize = 256 * 1024;

struct Link {
    writer: mpsc::Sender<BytesMut>,
    local_ip: Option<IpAddr>,
    /// Whether the core has bound the connection's address to a media connection (after its
    /// first datagram); a link that is not, or no longer, is dropped, which closes it.
    bound: bool,
}

#[derive(Default)]
pub struct TcpLinks {
    links: HashMap<SocketAddr, Link>,
    arena: BytesMut,
}

impl TcpLinks {
    pub fn open(
        &mut self,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        writer: mpsc::Sender<BytesMut>,
    ) {
        self.links.insert(
            remote,
            Link {
                writer,
                local_ip,
                bound: false,
            },
        );
    }

    pub fn close(&mut self, remote: SocketAddr) {
        self.links.remove(&remote);
    }

    /// The local address the connection from `remote` reached.
    pub fn local_ip(&self, remote: SocketAddr) -> Option<IpAddr> {
        self.links.get(&remote).and_then(|l| l.local_ip)
    }

    /// After a datagram from `remote` was handled: whether the core routes it. The first
    /// datagram binds the address or the connection is of no use, and is closed.
    pub fn confirm(&mut self, remote: SocketAddr, routed: bool) {
        if routed {
            if let Some(link) = self.links.get_mut(&remote) {
                link.bound = true;
            }
        } else if self.links.get(&remote).is_some_and(|l| !l.bound) {
            self.links.remove(&remote);
        }
    }

    /// Closes every bound connection whose address the core no longer routes (its media
    /// connection was removed).
    pub fn prune(&mut self, routed: impl Fn(SocketAddr) -> bool) {
        self.links
            .retain(|remote, link| !link.bound || routed(*remote));
    }

    /// Frames `datagrams` and queues them, as one buffer, for the connection from `to`.
    pub fn send(&mut self, to: SocketAddr, datagrams: &[BytesMut], counters: &TcpCounters) {
        let count = datagrams.len() as u64;
        let Some(link) = self.links.get(&to) else {
            counters.frames_dropped.fetch_add(count, Ordering::Relaxed);
            return;
        };
        let bytes: usize = datagrams.iter().map(|d| d.len() + 2).sum();
        if self.arena.capacity() - self.arena.len() < bytes {
            self.arena = BytesMut::with_capacity(ARENA_BYTES.max(bytes));
        }
        for datagram in datagrams {
            write_frame(&mut self.arena, datagram);
        }
        let run = self.arena.split();
        match link.writer.try_send(run) {
            Ok(()) => counters.frames_out.fetch_add(count, Ordering::Relaxed),
            Err(_) => counters.frames_dropped.fetch_add(count, Ordering::Relaxed),
        };
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sfu::ice_tcp::framing::FrameReader;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn a_run_of_datagrams_is_queued_framed_as_one_buffer() {
        let counters = TcpCounters::default();
        let mut links = TcpLinks::default();
        let (writer, mut queued) = mpsc::channel(4);
        links.open(addr(1), None, writer);
        let run = [BytesMut::from(&b"one"[..]), BytesMut::from(&b"two"[..])];
        links.send(addr(1), &run, &counters);
        let buffer = queued.try_recv().unwrap();
        let mut reader = FrameReader::default();
        reader.buffer().extend_from_slice(&buffer);
        assert_eq!(&reader.next_frame().unwrap().unwrap()[..], b"one");
        assert_eq!(&reader.next_frame().unwrap().unwrap()[..], b"two");
        assert_eq!(counters.frames_out.load(Ordering::Relaxed), 2);
        // Nobody at that address: dropped, counted.
        links.send(addr(2), &run, &counters);
        assert_eq!(counters.frames_dropped.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_full_queue_loses_the_run_instead_of_waiting() {
        let counters = TcpCounters::default();
        let mut links = TcpLinks::default();
        let (writer, _queued) = mpsc::channel(1);
        links.open(addr(1), None, writer);
        let run = [BytesMut::from(&b"x"[..])];
        links.send(addr(1), &run, &counters);
        links.send(addr(1), &run, &counters);
        assert_eq!(counters.frames_out.load(Ordering::Relaxed), 1);
        assert_eq!(counters.frames_dropped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_connection_the_core_does_not_route_is_closed() {
        let mut links = TcpLinks::default();
        let (writer, mut closed_unrouted) = mpsc::channel(1);
        links.open(addr(1), None, writer);
        links.confirm(addr(1), false);
        assert!(links.is_empty());
        assert_eq!(
            closed_unrouted.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected),
            "the writer dropped: the connection closes"
        );
        // A bound one stays until its media connection goes.
        let (writer, _kept) = mpsc::channel(1);
        links.open(addr(2), None, writer);
        links.confirm(addr(2), true);
        links.prune(|_| true);
        assert_eq!(links.len(), 1);
        links.prune(|_| false);
        assert!(links.is_empty());
    }
}
