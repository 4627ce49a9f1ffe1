//! The one UDP media port: binding, batched receive, and send.
//!
//! Receives with `recvmmsg` (and GRO where the kernel offers it) through `quinn-udp`, which also
//! reports each datagram's destination address: with a wildcard bind, replies must leave from
//! the address the browser sent to, and ICE must be told which candidate a datagram reached.
//! Sends never block: a full socket buffer drops the datagram, as the network would.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};

use crate::privacy::pii::canonical_ip;

const SOCKET_BUFFER_BYTES: usize = 8 * 1024 * 1024;
/// Room for one GRO batch of datagrams per receive buffer.
const RECV_BUFFER_BYTES: usize = 64 * 1024;

/// Binds the media port (non-blocking, large buffers).
pub fn bind(ip: IpAddr, port: u16) -> io::Result<std::net::UdpSocket> {
    let addr = SocketAddr::new(ip, port);
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if ip.is_ipv6() {
        // "::" serves IPv4 too, as operators expect from a wildcard.
        socket.set_only_v6(false)?;
    }
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind the media port {addr}: {e}")))?;
    Ok(socket.into())
}

/// The addresses to advertise when none are configured: the bound address, or for a wildcard
/// bind every address of that family on an interface that is up (others first, loopback last).
pub fn interface_ips(bind: IpAddr) -> Vec<IpAddr> {
    if !bind.is_unspecified() {
        return vec![bind];
    }
    let mut ips: Vec<(bool, IpAddr)> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.is_oper_up() || i.is_loopback())
        .filter(|i| !i.is_link_local())
        .map(|i| (i.is_loopback(), i.ip()))
        .filter(|(_, ip)| bind.is_ipv6() || ip.is_ipv4())
        .collect();
    ips.sort_by_key(|(loopback, _)| *loopback);
    ips.dedup();
    ips.into_iter().map(|(_, ip)| ip).collect()
}

/// The media socket as the engine uses it.
pub struct MediaSocket {
    io: tokio::net::UdpSocket,
    state: UdpSocketState,
    wildcard: bool,
    ipv6: bool,
}

/// Receive buffers, reused for every batch.
pub struct RecvBuffers {
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
}

impl RecvBuffers {
    pub fn new() -> Self {
        Self {
            bufs: (0..quinn_udp::BATCH_SIZE)
                .map(|_| vec![0u8; RECV_BUFFER_BYTES])
                .collect(),
            meta: vec![RecvMeta::default(); quinn_udp::BATCH_SIZE],
        }
    }
}

impl MediaSocket {
    /// Wraps a bound socket; must run inside a tokio runtime.
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        let local = socket.local_addr()?;
        let wildcard = local.ip().is_unspecified();
        let ipv6 = local.is_ipv6();
        let state = UdpSocketState::new((&socket).into())?;
        let _ = state.set_recv_buffer_size((&socket).into(), SOCKET_BUFFER_BYTES);
        let _ = state.set_send_buffer_size((&socket).into(), SOCKET_BUFFER_BYTES);
        let io = tokio::net::UdpSocket::from_std(socket)?;
        Ok(Self {
            io,
            state,
            wildcard,
            ipv6,
        })
    }

    pub async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Receives one batch without blocking and hands each datagram to `each` as
    /// `(source, destination ip, bytes)`. Returns how many datagrams there were; `WouldBlock`
    /// when the socket is drained.
    pub fn try_recv_batch(
        &self,
        buffers: &mut RecvBuffers,
        mut each: impl FnMut(SocketAddr, Option<IpAddr>, &[u8]),
    ) -> io::Result<usize> {
        let RecvBuffers { bufs, meta } = buffers;
        let mut slices: [IoSliceMut<'_>; quinn_udp::BATCH_SIZE] =
            std::array::from_fn(|_| IoSliceMut::new(&mut []));
        for (slice, buf) in slices.iter_mut().zip(bufs.iter_mut()) {
            *slice = IoSliceMut::new(buf.as_mut_slice());
        }
        let filled = self.io.try_io(tokio::io::Interest::READABLE, || {
            self.state.recv((&self.io).into(), &mut slices, meta)
        })?;
        let mut datagrams = 0;
        for (m, buf) in meta.iter().zip(slices.iter()).take(filled) {
            let from = SocketAddr::new(canonical_ip(m.addr.ip()), m.addr.port());
            let dst = m.dst_ip.map(canonical_ip);
            let stride = m.stride.max(1);
            for chunk in buf[..m.len].chunks(stride) {
                datagrams += 1;
                each(from, dst, chunk);
            }
        }
        Ok(datagrams)
    }

    /// Sends datagrams to one destination, coalescing runs of equal size into single
    /// segmentation-offload sends (GSO): a video frame forwarded to one receiver is a handful of
    /// equal packets, and one system call for them instead of one each is most of the cost of
    /// sending. Returns (datagrams sent, datagrams dropped).
    pub fn send_many(
        &self,
        to: SocketAddr,
        src_ip: Option<IpAddr>,
        datagrams: &[bytes::BytesMut],
        scratch: &mut Vec<u8>,
    ) -> (u64, u64) {
        const MAX_GSO_BYTES: usize = 64_000;
        let max_segments = self.state.max_gso_segments().max(1);
        let (mut sent, mut dropped) = (0u64, 0u64);
        let mut start = 0;
        while start < datagrams.len() {
            let segment = datagrams[start].len();
            let mut end = start + 1;
            let mut total = segment;
            while end < datagrams.len()
                && end - start < max_segments
                && datagrams[end].len() <= segment
                && total + datagrams[end].len() <= MAX_GSO_BYTES
            {
                total += datagrams[end].len();
                end += 1;
                // Only the last segment of a run may be shorter.
                if datagrams[end - 1].len() < segment {
                    break;
                }
            }
            let count = (end - start) as u64;
            let result = if count == 1 {
                self.send(to, src_ip, &datagrams[start])
            } else {
                scratch.clear();
                for d in &datagrams[start..end] {
                    scratch.extend_from_slice(d);
                }
                self.transmit(to, src_ip, scratch, Some(segment))
            };
            match result {
                Ok(()) => sent += count,
                Err(_) => dropped += count,
            }
            start = end;
        }
        (sent, dropped)
    }

    /// Sends one datagram now or drops it. `src_ip` is the address the peer last reached us on.
    pub fn send(&self, to: SocketAddr, src_ip: Option<IpAddr>, datagram: &[u8]) -> io::Result<()> {
        self.transmit(to, src_ip, datagram, None)
    }

    fn transmit(
        &self,
        to: SocketAddr,
        src_ip: Option<IpAddr>,
        contents: &[u8],
        segment_size: Option<usize>,
    ) -> io::Result<()> {
        // Addresses are kept canonical (IPv4 as IPv4); a dual-stack socket needs them mapped.
        let destination = match to {
            SocketAddr::V4(v4) if self.ipv6 => {
                SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
            }
            other => other,
        };
        let transmit = Transmit {
            destination,
            ecn: None,
            contents,
            segment_size,
            src_ip: if self.wildcard { src_ip } else { None },
        };
        self.state.try_send((&self.io).into(), &transmit)
    }
}
