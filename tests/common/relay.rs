//! A shaping relay on loopback: sits between one simulated participant and the server's media
//! port and shapes what the server sends that participant (a rate limit with a bounded queue,
//! random loss), the way a poor downlink would. What the participant sends passes unchanged.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

/// What the relay has done, and its settings (changeable while it runs).
#[derive(Debug, Default)]
pub struct Shaping {
    /// Bits per second towards the participant; 0: unlimited.
    pub rate_bps: AtomicU64,
    /// Random loss towards the participant, in millionths.
    pub loss_ppm: AtomicU64,
    /// RTP datagrams towards the participant dropped at random, and dropped by a full queue.
    pub rtp_dropped_at_random: AtomicU64,
    pub dropped_by_queue: AtomicU64,
    pub forwarded: AtomicU64,
}

/// The most the downlink queue holds before it drops (about 400 ms at 300 kbit/s).
const QUEUE_BYTES: usize = 16_000;

pub struct ShapingRelay {
    pub addr: SocketAddr,
    pub shaping: Arc<Shaping>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ShapingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// RTP, not RTCP (RFC 5761: RTCP packet types 64–95 after the marker bit).
fn is_rtp(datagram: &[u8]) -> bool {
    datagram.len() > 12 && datagram[0] & 0xC0 == 0x80 && !(64..96).contains(&(datagram[1] & 0x7F))
}

impl ShapingRelay {
    /// A relay in front of the server's media port `server`.
    pub async fn start(server: SocketAddr) -> Self {
        let client_side = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server_side = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = client_side.local_addr().unwrap();
        let shaping = Arc::new(Shaping::default());
        let task = tokio::spawn(run(client_side, server_side, server, shaping.clone()));
        Self {
            addr,
            shaping,
            task,
        }
    }
}

async fn run(
    client_side: UdpSocket,
    server_side: UdpSocket,
    server: SocketAddr,
    shaping: Arc<Shaping>,
) {
    let mut client: Option<SocketAddr> = None;
    let mut queue: VecDeque<Vec<u8>> = VecDeque::new();
    let mut queued_bytes = 0usize;
    // When the link is free to send the next datagram.
    let mut free_at = Instant::now();
    let mut up = vec![0u8; 2048];
    let mut down = vec![0u8; 2048];
    loop {
        let rate = shaping.rate_bps.load(Ordering::Relaxed);
        // Send whatever the link has capacity for by now.
        while !queue.is_empty() {
            let now = Instant::now();
            if rate > 0 && free_at > now {
                break;
            }
            let Some(datagram) = queue.pop_front() else {
                break;
            };
            queued_bytes -= datagram.len();
            if let Some(client) = client {
                let _ = client_side.send_to(&datagram, client).await;
                shaping.forwarded.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(nanos) =
                ((datagram.len() as u64 + 28) * 8 * 1_000_000_000).checked_div(rate)
            {
                free_at = free_at.max(now) + Duration::from_nanos(nanos);
            }
        }
        let wake = if queue.is_empty() {
            Instant::now() + Duration::from_secs(1)
        } else {
            free_at
        };
        tokio::select! {
            got = client_side.recv_from(&mut up) => {
                if let Ok((n, from)) = got {
                    client = Some(from);
                    let _ = server_side.send_to(&up[..n], server).await;
                }
            }
            got = server_side.recv_from(&mut down) => {
                if let Ok((n, _)) = got {
                    let datagram = &down[..n];
                    let loss = shaping.loss_ppm.load(Ordering::Relaxed);
                    if loss > 0 && rand::random_range(0..1_000_000) < loss {
                        if is_rtp(datagram) {
                            shaping.rtp_dropped_at_random.fetch_add(1, Ordering::Relaxed);
                        }
                        continue;
                    }
                    if queued_bytes + n > QUEUE_BYTES {
                        shaping.dropped_by_queue.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    queued_bytes += n;
                    queue.push_back(datagram.to_vec());
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}
