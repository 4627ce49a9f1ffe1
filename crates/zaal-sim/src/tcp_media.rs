//! A simulated participant's ICE-TCP connection, for a participant that reaches the server
//! only over TCP (`SimOptions::media_tcp`): the active side of RFC 6544, connecting to the
//! server's passive candidate the first time the peer connection sends there, and RFC 4571
//! frames both ways (the server's own framing code). What the connection sends in one turn is
//! written in one system call, as a browser's TCP socket would coalesce it.

use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use zaal::sfu::ice_tcp::framing::{FrameReader, write_frame};

/// Datagrams read from the server and not yet handed to the connection.
const INBOUND_QUEUE: usize = 4096;

#[derive(Default)]
pub(crate) struct TcpMedia {
    link: Option<Link>,
    /// Frames gathered in this turn, for one write.
    pending: BytesMut,
    pending_to: Option<SocketAddr>,
}

struct Link {
    server: SocketAddr,
    write: OwnedWriteHalf,
    inbound: mpsc::Receiver<BytesMut>,
}

impl TcpMedia {
    /// Gathers a datagram for `to` (the server's passive candidate).
    pub(crate) fn queue(&mut self, to: SocketAddr, datagram: &[u8]) {
        self.pending_to = Some(to);
        write_frame(&mut self.pending, datagram);
    }

    /// Writes what was gathered, connecting first if this is the first of it; a connection
    /// that fails is dropped (the peer connection's ICE sees its checks go unanswered).
    pub(crate) async fn flush(&mut self) {
        let Some(to) = self.pending_to.take() else {
            return;
        };
        if self.link.as_ref().is_none_or(|l| l.server != to) {
            self.link = connect(to).await;
        }
        if let Some(link) = &mut self.link
            && link.write.write_all(&self.pending).await.is_err()
        {
            self.link = None;
        }
        self.pending.clear();
    }

    /// The next datagram from the server, and where it came from; never, unconnected.
    pub(crate) async fn next(&mut self) -> Option<(SocketAddr, BytesMut)> {
        match &mut self.link {
            Some(link) => match link.inbound.recv().await {
                Some(datagram) => Some((link.server, datagram)),
                None => {
                    self.link = None;
                    None
                }
            },
            None => std::future::pending().await,
        }
    }
}

async fn connect(server: SocketAddr) -> Option<Link> {
    let stream = TcpStream::connect(server).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (mut read, write) = stream.into_split();
    let (to, inbound) = mpsc::channel(INBOUND_QUEUE);
    tokio::spawn(async move {
        let mut frames = FrameReader::default();
        loop {
            loop {
                match frames.next_frame() {
                    Ok(Some(datagram)) => {
                        if to.send(datagram).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    // Not the server's framing: nothing more on this connection is media.
                    Err(_) => return,
                }
            }
            match read.read_buf(frames.buffer()).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    Some(Link {
        server,
        write,
        inbound,
    })
}
