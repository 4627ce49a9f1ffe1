//! The SFU's counters and gauges for `/metrics` and the load tool: counts and sums across every
//! connection, never per participant. Updated with relaxed atomics by the media workers, read
//! by the metrics encoder; the forwarding-delay histogram once per batch, never per packet.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters the SFU keeps for metrics and benchmarks; never per participant.
#[derive(Debug, Default)]
pub struct SfuCounters {
    pub datagrams_in: AtomicU64,
    pub datagrams_unrouted: AtomicU64,
    pub rtp_in: AtomicU64,
    pub rtp_forwarded: AtomicU64,
    /// RTP payload bytes forwarded (headers excluded).
    pub rtp_bytes_forwarded: AtomicU64,
    pub datagrams_out: AtomicU64,
    /// Datagrams the reading worker could not hand to a worker that was too far behind.
    pub datagrams_dropped: AtomicU64,
    pub send_errors: AtomicU64,
    /// Connections dropped because their handling panicked.
    pub peer_panics: AtomicU64,
    /// Media worker threads that stopped unexpectedly (the SFU is then broken: see /healthz).
    pub workers_failed: AtomicU64,
    pub peers: AtomicU64,
    /// ICE-TCP (`super::ice_tcp`): connections open now, frames in and out, frames dropped
    /// because the connection's send queue was full, and connections refused by a limit.
    pub tcp: TcpCounters,
    /// Zaal's own TURN server (`super::turn`).
    pub turn: TurnCounters,
    /// Connections on each media worker (empty until the SFU starts).
    pub worker_peers: Vec<AtomicU64>,
    pub quality: QualityFigures,
    /// How long forwarded packets spent in the SFU.
    pub forwarding_delay: DelayHistogram,
}

#[derive(Debug, Default)]
pub struct TcpCounters {
    pub connections: AtomicU64,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub frames_dropped: AtomicU64,
    /// Refused: `limits.media_tcp_connections` held.
    pub refused_total: AtomicU64,
    /// Refused: `limits.media_tcp_connections_per_address` held.
    pub refused_per_address: AtomicU64,
    /// Closed: no STUN request proving a connection's credentials came first, in time.
    pub refused_unproven: AtomicU64,
}

#[derive(Debug, Default)]
pub struct TurnCounters {
    /// Allocations held now.
    pub allocations: AtomicU64,
    /// Datagrams relayed from clients to the media core, and dropped on the way (a worker too
    /// far behind, or the first datagram of an allocation not a STUN request of a connection).
    pub relayed_in: AtomicU64,
    pub dropped_in: AtomicU64,
    /// The workers' side: datagrams framed back to clients (`frames_out`) and dropped because
    /// an allocation's queue was full (`frames_dropped`).
    pub links: TcpCounters,
    /// Refused: a credential that is forged or expired (401), a peer that is not Zaal (403),
    /// an allocation beyond a limit (486, 508).
    pub unauthorized: AtomicU64,
    pub forbidden_peer: AtomicU64,
    pub quota: AtomicU64,
}

/// Upper bounds of the forwarding-delay buckets, in seconds (a last one holds the rest).
pub const FORWARDING_DELAY_BOUNDS_S: [f64; 8] =
    [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.05];

/// Forwarded packets by the time from the read of their batch of datagrams to the send of the
/// batch's last datagram: what the SFU added to their way, not counting the time a datagram
/// waited in the socket before the read. Updated once per batch, never per packet.
#[derive(Debug, Default)]
pub struct DelayHistogram {
    /// Per bucket, not cumulative; the last is above every bound.
    buckets: [AtomicU64; FORWARDING_DELAY_BOUNDS_S.len() + 1],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl DelayHistogram {
    /// `packets` forwarded packets each waited at most `delay`.
    pub fn record(&self, delay: std::time::Duration, packets: u64) {
        if packets == 0 {
            return;
        }
        let seconds = delay.as_secs_f64();
        let bucket = FORWARDING_DELAY_BOUNDS_S
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(FORWARDING_DELAY_BOUNDS_S.len());
        self.buckets[bucket].fetch_add(packets, Ordering::Relaxed);
        let ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns
            .fetch_add(ns.saturating_mul(packets), Ordering::Relaxed);
        self.count.fetch_add(packets, Ordering::Relaxed);
    }

    /// (sum in seconds, count, per-bucket counts with their upper bounds; infinity for the
    /// last), as the metrics encoder takes them.
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets = FORWARDING_DELAY_BOUNDS_S
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        (
            self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            self.count.load(Ordering::Relaxed),
            buckets,
        )
    }
}

/// Media quality across every receiver and source, refreshed after each allocation round
/// (twice a second): counts and sums, never who.
#[derive(Debug, Default)]
pub struct QualityFigures {
    /// Receivers by downlink estimate: up to 300 kbit/s, 1 Mbit/s, 3 Mbit/s, and above.
    pub receivers_by_estimate: [AtomicU64; 4],
    /// Receivers (with congestion feedback) by the loss it reports: under 2 %, under 10 %, more.
    pub receivers_by_loss: [AtomicU64; 3],
    /// Video streams being forwarded, by layer: the source's lowest, a middle one, its highest,
    /// or the only one of a source without simulcast.
    pub video_streams_by_layer: [AtomicU64; 4],
    /// Video streams a receiver takes (last-N and its tiles let them in) that its estimate holds
    /// back.
    pub video_streams_held_back: AtomicU64,
    /// Cameras told to pause every layer, because nobody receives them.
    pub cameras_paused: AtomicU64,
    /// The video publishers send now, and what the SFU forwards of it, in bit/s.
    pub video_published_bps: AtomicU64,
    pub video_forwarded_bps: AtomicU64,
}

impl QualityFigures {
    pub const ESTIMATE_BANDS: [(&'static str, u64); 4] = [
        ("300k", 300_000),
        ("1M", 1_000_000),
        ("3M", 3_000_000),
        ("above", u64::MAX),
    ];
    pub const LOSS_BANDS: [(&'static str, f64); 3] = [
        ("under_2pct", 0.02),
        ("under_10pct", 0.10),
        ("above", f64::INFINITY),
    ];
    pub const LAYERS: [&'static str; 4] = ["lowest", "middle", "highest", "only"];
}

impl SfuCounters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(super) fn for_workers(workers: usize) -> Self {
        Self {
            worker_peers: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            ..Self::default()
        }
    }
}

/// One worker's part of gauges that are summed over workers: setting a value adds its change
/// since this worker last set it, so every worker can report its own figures into one counter.
#[derive(Debug, Default)]
pub struct GaugeShares {
    /// By the gauge's address (the counters live as long as the SFU).
    last: HashMap<usize, u64>,
}

impl GaugeShares {
    pub fn set(&mut self, gauge: &AtomicU64, value: u64) {
        let last = self
            .last
            .entry(gauge as *const AtomicU64 as usize)
            .or_insert(0);
        gauge.fetch_add(value.wrapping_sub(*last), Ordering::Relaxed);
        *last = value;
    }
}
