//! TURN clients on a byte stream (TCP on the TURN port, later TLS): splitting the stream into
//! STUN messages and ChannelData (RFC 8656 §12.5: ChannelData padded to four bytes), holding
//! each connection to the limits, and writing back what is queued for it. A connection that
//! sends something that is neither, or a message beyond the largest a client may send, is
//! closed; so is one that says nothing for [`IDLE_AFTER`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::allocations::{ClientKey, ClientTransport};
use super::edge::{Answer, MAX_MESSAGE, TurnEdge};
use crate::occupancy::{Full, Occupancy};
use crate::privacy::pii::canonical_ip;
use crate::sfu::ice_tcp::WRITE_QUEUE;

/// The first message must come within this.
pub const FIRST_MESSAGE_WITHIN: Duration = Duration::from_secs(5);
/// A connection that sends nothing for this long is closed: a client keeps its allocation by
/// refreshing it well within its lifetime (at most an hour, ten minutes by default).
pub const IDLE_AFTER: Duration = Duration::from_secs(11 * 60);

/// The length of the next whole message at the front of `buf`, if it is one a client may send;
/// `Err` when the stream holds something else.
pub fn next_message_len(buf: &[u8]) -> Result<Option<usize>, ()> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let total = match buf[0] {
        0x00..=0x03 => 20 + len,
        0x40..=0x4F => (4 + len).next_multiple_of(4),
        _ => return Err(()),
    };
    if total > MAX_MESSAGE {
        return Err(());
    }
    Ok((buf.len() >= total).then_some(total))
}

/// Accepts TURN clients on TCP until the task is aborted.
pub async fn serve_tcp(listener: TcpListener, edge: Arc<TurnEdge>, occupancy: Arc<Occupancy>) {
    loop {
        let Ok((stream, remote)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let remote = std::net::SocketAddr::new(canonical_ip(remote.ip()), remote.port());
        let seat = match occupancy.take(Some(remote.ip())) {
            Ok(seat) => seat,
            Err(Full::Total | Full::Address) => {
                edge.counters.turn.quota.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let client = ClientKey {
            transport: ClientTransport::Tcp,
            addr: remote,
        };
        let edge = edge.clone();
        tokio::spawn(async move {
            serve_stream(stream, client, &edge).await;
            edge.stream_closed(&client);
            drop(seat);
        });
    }
}

/// One stream client, until it closes, misbehaves or falls silent.
pub async fn serve_stream<S>(stream: S, client: ClientKey, edge: &Arc<TurnEdge>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut read, mut write) = tokio::io::split(stream);
    let (queue, mut queued) = mpsc::channel::<BytesMut>(WRITE_QUEUE);
    edge.stream_opened(client, queue.clone());
    let writer = tokio::spawn(async move {
        while let Some(bytes) = queued.recv().await {
            if write.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut buf = BytesMut::with_capacity(4 * MAX_MESSAGE);
    let mut reply = Vec::with_capacity(256);
    let mut wait = FIRST_MESSAGE_WITHIN;
    'reading: loop {
        match tokio::time::timeout(wait, read.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
        wait = IDLE_AFTER;
        loop {
            match next_message_len(&buf) {
                Ok(Some(len)) => {
                    let message = buf.split_to(len);
                    if let Answer::Reply = edge.handle(client, &message, &mut reply)
                        && queue.try_send(BytesMut::from(&reply[..])).is_err()
                    {
                        break 'reading;
                    }
                }
                Ok(None) => break,
                Err(()) => break 'reading,
            }
        }
        if buf.capacity() - buf.len() < MAX_MESSAGE {
            buf.reserve(4 * MAX_MESSAGE);
        }
    }
    drop(queue);
    writer.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_splits_into_stun_messages_and_padded_channel_data() {
        let mut stun = vec![0x00, 0x01, 0x00, 0x04];
        stun.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        stun.extend_from_slice(&[0; 12]);
        stun.extend_from_slice(&[0; 4]);
        assert_eq!(next_message_len(&stun), Ok(Some(24)));
        assert_eq!(next_message_len(&stun[..23]), Ok(None), "not all there yet");
        let channel = [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0];
        assert_eq!(next_message_len(&channel), Ok(Some(12)), "padded to four");
        assert_eq!(next_message_len(&channel[..9]), Ok(None));
        assert_eq!(next_message_len(b"GET / HTTP/1.1"), Err(()));
        assert_eq!(
            next_message_len(&[0x40, 0x00, 0xff, 0xff]),
            Err(()),
            "too long"
        );
    }
}

/// TURN clients that arrive on another listener (TLS on the HTTPS port): what that listener
/// hands a connection to once it knows the connection speaks TURN.
#[derive(Clone)]
pub struct TurnStreams {
    pub(crate) edge: Arc<TurnEdge>,
    pub(crate) occupancy: Arc<Occupancy>,
}

impl TurnStreams {
    /// Serves one TURN-over-TLS client until it ends; it takes a seat like a TCP client.
    pub async fn serve_tls<S>(&self, stream: S, remote: std::net::SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let remote = std::net::SocketAddr::new(canonical_ip(remote.ip()), remote.port());
        let Ok(seat) = self.occupancy.take(Some(remote.ip())) else {
            self.edge
                .counters
                .turn
                .quota
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let client = ClientKey {
            transport: ClientTransport::Tls,
            addr: remote,
        };
        serve_stream(stream, client, &self.edge).await;
        self.edge.stream_closed(&client);
        drop(seat);
    }
}
