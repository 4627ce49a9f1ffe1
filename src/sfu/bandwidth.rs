//! How much one receiver's downlink carries: a sender-side estimate from transport-wide
//! congestion control feedback.
//!
//! Every packet the SFU sends to a receiver carries a transport-wide sequence number; the
//! receiver reports when each arrived (or that it did not). The `rtc` congestion-control
//! interceptor joins those reports with the departures and hands them here. The delay trend (the
//! GCC slope filter and overuse detector of `rtc-interceptor`) says whether a queue is building;
//! the loss fraction says whether packets are dropped; the acknowledged rate says what the path
//! demonstrably delivered. The estimate:
//!
//! - falls to 85 % of the delivered rate when a queue builds, and in proportion to the loss when
//!   more than 10 % is lost;
//! - otherwise rises only on evidence: a delivered rate above the estimate (a burst that got
//!   through without queueing or loss) is believed at once, and so is the rate at which a probe
//!   cluster arrived (see `probe`). Nothing creeps up on its own: an estimate that grew by the
//!   clock would, on a full narrow link, sooner or later allow a layer the link cannot carry, and
//!   the receiver would see that layer's keyframe lost every few seconds. Probes are what let a
//!   receiver climb from the lowest layer to the highest in seconds.
//!
//! The estimator runs inside the connection's interceptor chain; the engine reads its figures
//! through [`DownlinkReadings`], a few atomics, so nothing is locked and nothing waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::collections::VecDeque;

use rtc::interceptor::{
    BandwidthEstimator, EstimatorStats, OveruseDetector, PacketReport, SlopeEstimator, Usage,
};

/// Where a new receiver starts: enough for a low layer and audio; probes find the rest within
/// a few seconds.
pub const INITIAL_BPS: f64 = 300_000.0;
const MIN_BPS: f64 = 100_000.0;
const MAX_BPS: f64 = 50_000_000.0;
const BACKOFF: f64 = 0.85;
const HIGH_LOSS: f64 = 0.10;
const LOW_LOSS: f64 = 0.02;
/// How much of a probe cluster's rate the estimate takes: a short cluster measures a little high.
const PROBE_BELIEF: f64 = 0.9;
const CHANGE_INTERVAL: Duration = Duration::from_millis(200);
const RATE_WINDOW: Duration = Duration::from_millis(500);

/// The estimator's latest figures, readable from the engine without a lock; and the window of
/// the engine's latest probe cluster, for the estimator.
#[derive(Debug)]
pub struct DownlinkReadings {
    epoch: Instant,
    /// The latest cluster's departure window, in microseconds since `epoch`, and its number.
    probe_start_us: AtomicU64,
    probe_end_us: AtomicU64,
    probe_number: AtomicU64,
    /// The rate the latest cluster arrived at.
    probe_result_bps: AtomicU64,
    target_bps: AtomicU64,
    delivered_bps: AtomicU64,
    /// Smoothed loss, in millionths.
    loss_ppm: AtomicU64,
    /// Feedback reports received; zero while the receiver sends none.
    reports: AtomicU64,
}

impl Default for DownlinkReadings {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            probe_start_us: AtomicU64::new(0),
            probe_end_us: AtomicU64::new(0),
            probe_number: AtomicU64::new(0),
            probe_result_bps: AtomicU64::new(0),
            target_bps: AtomicU64::new(INITIAL_BPS as u64),
            delivered_bps: AtomicU64::new(0),
            loss_ppm: AtomicU64::new(0),
            reports: AtomicU64::new(0),
        }
    }
}

impl DownlinkReadings {
    pub fn target_bps(&self) -> u64 {
        self.target_bps.load(Ordering::Relaxed)
    }

    pub fn delivered_bps(&self) -> u64 {
        self.delivered_bps.load(Ordering::Relaxed)
    }

    pub fn loss(&self) -> f64 {
        self.loss_ppm.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// Whether the receiver has ever sent congestion feedback.
    pub fn has_feedback(&self) -> bool {
        self.reports.load(Ordering::Relaxed) > 0
    }

    #[cfg(test)]
    pub fn set_target_for_test(&self, bps: u64) {
        self.target_bps.store(bps, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub fn set_delivered_for_test(&self, bps: u64) {
        self.delivered_bps.store(bps, Ordering::Relaxed);
    }

    /// The rate at which the latest probe cluster arrived (0 before the first).
    pub fn probe_result_bps(&self) -> u64 {
        self.probe_result_bps.load(Ordering::Relaxed)
    }

    /// The engine sends a probe cluster: packets departing from `start` to `end` belong to it.
    pub fn mark_probe(&self, start: Instant, end: Instant) {
        let us = |at: Instant| at.saturating_duration_since(self.epoch).as_micros() as u64;
        self.probe_start_us.store(us(start), Ordering::Relaxed);
        self.probe_end_us.store(us(end), Ordering::Relaxed);
        self.probe_number.fetch_add(1, Ordering::Release);
    }

    fn probe_window(&self) -> (u64, Instant, Instant) {
        let number = self.probe_number.load(Ordering::Acquire);
        let at = |us: &AtomicU64| self.epoch + Duration::from_micros(us.load(Ordering::Relaxed));
        (number, at(&self.probe_start_us), at(&self.probe_end_us))
    }
}

/// The rate at which packets arrived, on the receiver's clock, over the latest window: what the
/// path delivered, free of the lumps in which feedback comes back.
#[derive(Debug, Default)]
struct DeliveredRate {
    /// Each packet in the window, 8 bytes each, for the ~1500 a full room's receiver has in it.
    arrivals: VecDeque<Arrival>,
    bytes: usize,
    /// The latest arrival seen (reordered packets arrive in no particular order).
    latest: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Arrival {
    /// Microseconds on the receiver's clock, wrapping every 71 minutes: only differences within
    /// the window are ever taken.
    at_us: u32,
    /// Bytes (a datagram has fewer than 65 536).
    size: u16,
}

/// The wrapping microsecond clock of [`Arrival::at_us`].
fn wrapping_micros(at: Duration) -> u32 {
    at.as_micros() as u32
}

/// A span shorter than this is too short to call a rate.
const MIN_RATE_SPAN: Duration = Duration::from_millis(100);

impl DeliveredRate {
    fn add(&mut self, arrival: Duration, size: usize) {
        let size = size.min(usize::from(u16::MAX)) as u16;
        self.arrivals.push_back(Arrival {
            at_us: wrapping_micros(arrival),
            size,
        });
        self.bytes += usize::from(size);
        self.latest = self.latest.max(arrival);
        let latest_us = wrapping_micros(self.latest);
        while let Some(&oldest) = self.arrivals.front() {
            if u128::from(latest_us.wrapping_sub(oldest.at_us)) <= RATE_WINDOW.as_micros() {
                break;
            }
            self.arrivals.pop_front();
            self.bytes -= usize::from(oldest.size);
        }
    }

    fn rate_bps(&self) -> Option<f64> {
        let first = *self.arrivals.front()?;
        let span = Duration::from_micros(u64::from(
            wrapping_micros(self.latest).wrapping_sub(first.at_us),
        ));
        (span >= MIN_RATE_SPAN)
            .then(|| (self.bytes - usize::from(first.size)) as f64 * 8.0 / span.as_secs_f64())
    }
}

/// What arrived of one probe cluster's packets.
#[derive(Debug, Default)]
struct ClusterMeasure {
    number: u64,
    start: Option<Instant>,
    end: Option<Instant>,
    done: bool,
    packets: usize,
    lost: usize,
    bytes: usize,
    first_departure: Option<(Instant, usize)>,
    last_departure: Option<Instant>,
    first_arrival: Option<(Duration, usize)>,
    last_arrival: Option<Duration>,
}

/// What a packet takes on the wire beyond its RTP size: the SRTP tag and the UDP and IPv4
/// headers. Counted so that many small packets (probe padding) weigh what they cost the link.
pub const WIRE_OVERHEAD: usize = 10 + 8 + 20;

fn wire_size(report: &PacketReport) -> usize {
    report.size + WIRE_OVERHEAD
}

/// Fewer packets than this say nothing about a path's rate.
const MIN_CLUSTER_PACKETS: usize = 8;
/// Departures this close to the window's end still belong to the cluster's last burst.
const WINDOW_SLACK: Duration = Duration::from_millis(2);
/// A cluster whose feedback has not come back in this long is given up.
const CLUSTER_FEEDBACK_LIMIT: Duration = Duration::from_secs(2);

impl ClusterMeasure {
    fn add(&mut self, report: &PacketReport) {
        self.packets += 1;
        let (Some(arrival), true) = (report.arrival, report.arrived) else {
            self.lost += 1;
            return;
        };
        let size = wire_size(report);
        self.bytes += size;
        if self
            .first_departure
            .is_none_or(|(d, _)| report.departure < d)
        {
            self.first_departure = Some((report.departure, size));
        }
        if self.last_departure.is_none_or(|d| report.departure > d) {
            self.last_departure = Some(report.departure);
        }
        if self.first_arrival.is_none_or(|(a, _)| arrival < a) {
            self.first_arrival = Some((arrival, size));
        }
        if self.last_arrival.is_none_or(|a| arrival > a) {
            self.last_arrival = Some(arrival);
        }
    }

    /// The rate the path demonstrably carried the cluster at: the slower of how fast it was sent
    /// and how fast it arrived, each leaving out the one packet that opens its span.
    fn rate_bps(&self) -> Option<f64> {
        if self.packets < MIN_CLUSTER_PACKETS || self.lost * 10 > self.packets {
            return None;
        }
        let (first_departure, first_sent) = self.first_departure?;
        let (first_arrival, first_received) = self.first_arrival?;
        let sent_span = self
            .last_departure?
            .saturating_duration_since(first_departure);
        let received_span = self.last_arrival?.saturating_sub(first_arrival);
        if sent_span.is_zero() || received_span.is_zero() {
            return None;
        }
        let sent = (self.bytes - first_sent) as f64 * 8.0 / sent_span.as_secs_f64();
        let received = (self.bytes - first_received) as f64 * 8.0 / received_span.as_secs_f64();
        Some(sent.min(received))
    }
}

pub struct DownlinkEstimator {
    slope: SlopeEstimator,
    detector: OveruseDetector,
    delivered: DeliveredRate,
    usage: Usage,
    target: f64,
    loss: Option<f64>,
    last_change: Option<Instant>,
    cluster: ClusterMeasure,
    readings: Arc<DownlinkReadings>,
}

impl DownlinkEstimator {
    pub fn new(readings: Arc<DownlinkReadings>) -> Self {
        Self {
            slope: SlopeEstimator::new(),
            detector: OveruseDetector::new(),
            delivered: DeliveredRate::default(),
            usage: Usage::Normal,
            target: INITIAL_BPS,
            loss: None,
            last_change: None,
            cluster: ClusterMeasure::default(),
            readings,
        }
    }

    /// Feeds the reports that belong to the latest probe cluster into its measure; returns the
    /// cluster's rate once its feedback is complete.
    fn measure_cluster(&mut self, now: Instant, reports: &[PacketReport]) -> Option<f64> {
        let (number, start, end) = self.readings.probe_window();
        if number == 0 {
            return None;
        }
        if number != self.cluster.number {
            self.cluster = ClusterMeasure {
                number,
                start: Some(start),
                end: Some(end + WINDOW_SLACK),
                ..ClusterMeasure::default()
            };
        }
        let (Some(start), Some(end)) = (self.cluster.start, self.cluster.end) else {
            return None;
        };
        if self.cluster.done {
            return None;
        }
        let mut past_end = false;
        for report in reports {
            if report.departure >= start && report.departure <= end {
                self.cluster.add(report);
            } else if report.departure > end {
                past_end = true;
            }
        }
        if !past_end && now.saturating_duration_since(end) < CLUSTER_FEEDBACK_LIMIT {
            return None;
        }
        self.cluster.done = true;
        let rate = self.cluster.rate_bps();
        if let Some(rate) = rate {
            self.readings
                .probe_result_bps
                .store(rate as u64, Ordering::Relaxed);
        }
        rate
    }

    fn decide(&mut self, now: Instant, delivered: Option<f64>, probed: Option<f64>) {
        let since_change = self
            .last_change
            .map_or(Duration::MAX, |at| now.saturating_duration_since(at));
        let loss = self.loss.unwrap_or(0.0);
        let before = self.target;
        if self.usage == Usage::Over {
            if let Some(delivered) = delivered {
                self.target = self.target.min(BACKOFF * delivered);
            }
        } else if loss > HIGH_LOSS {
            if since_change >= CHANGE_INTERVAL {
                self.target *= 1.0 - 0.5 * loss;
            }
        } else if loss < LOW_LOSS
            && let Some(delivered) = delivered
            && 0.95 * delivered > self.target
        {
            self.target = 0.95 * delivered;
        }
        if let Some(probed) = probed
            && self.usage != Usage::Over
            && loss < HIGH_LOSS
            && PROBE_BELIEF * probed > self.target
        {
            self.target = PROBE_BELIEF * probed;
        }
        self.target = self.target.clamp(MIN_BPS, MAX_BPS);
        if self.target != before || self.last_change.is_none() {
            self.last_change = Some(now);
        }
    }
}

impl BandwidthEstimator for DownlinkEstimator {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        if reports.is_empty() {
            return;
        }
        let mut lost = 0usize;
        for report in reports {
            if let (true, Some(arrival)) = (report.arrived, report.arrival) {
                self.delivered.add(arrival, wire_size(report));
            } else {
                lost += 1;
            }
            if let Some(trend) = self.slope.accumulate(report) {
                self.usage = self.detector.update(trend.at, trend.estimate_ms);
            }
        }
        let sample = lost as f64 / reports.len() as f64;
        // Weighted by how much the batch says: one report of two packets must not swing it.
        let weight = (reports.len() as f64 / 50.0).clamp(0.05, 0.5);
        self.loss = Some(match self.loss {
            Some(previous) => (1.0 - weight) * previous + weight * sample,
            None => sample,
        });
        let delivered = self.delivered.rate_bps();
        let probed = self.measure_cluster(now, reports);
        self.decide(now, delivered, probed);
        let r = &self.readings;
        r.target_bps.store(self.target as u64, Ordering::Relaxed);
        r.delivered_bps
            .store(delivered.unwrap_or(0.0) as u64, Ordering::Relaxed);
        r.loss_ppm
            .store((self.loss.unwrap_or(0.0) * 1e6) as u64, Ordering::Relaxed);
        r.reports.fetch_add(1, Ordering::Relaxed);
    }

    fn target_bitrate(&self) -> f64 {
        self.target
    }

    fn stats(&self) -> EstimatorStats {
        EstimatorStats::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reports for `count` packets of 1200 bytes sent `gap` apart from `start`, arriving after
    /// a one-way delay that grows by `queue_growth` per packet from packet `growth_since` on;
    /// every `lose_every`-th is lost.
    fn batch(
        start: Instant,
        first_id: u64,
        count: u64,
        gap: Duration,
        (queue_growth, growth_since): (Duration, u64),
        lose_every: Option<u64>,
    ) -> Vec<PacketReport> {
        (0..count)
            .map(|i| {
                let id = first_id + i;
                let departure = start + gap * i as u32;
                let arrived = lose_every.is_none_or(|n| !id.is_multiple_of(n));
                let base = Duration::from_secs(1) + gap * id as u32;
                PacketReport {
                    ssrc: 1,
                    id,
                    rtp_sequence_number: id as u16,
                    is_twcc: true,
                    twcc_sequence_number: id as u16,
                    size: 1200,
                    arrived,
                    departure,
                    arrival: arrived.then(|| base + queue_growth * (id - growth_since) as u32),
                    ecn: Default::default(),
                }
            })
            .collect()
    }

    /// Feeds `seconds` of a 1200-byte stream at `pps`, in 100 ms feedback batches.
    fn run(
        e: &mut DownlinkEstimator,
        (t0, first_id): (Instant, u64),
        seconds: u64,
        pps: u64,
        queue_growth: Duration,
        lose_every: Option<u64>,
    ) -> (Instant, u64) {
        let per_batch = pps / 10;
        let gap = Duration::from_micros(1_000_000 / pps);
        let mut id = first_id;
        let mut now = t0;
        for _ in 0..seconds * 10 {
            let reports = batch(
                now,
                id,
                per_batch,
                gap,
                (queue_growth, first_id),
                lose_every,
            );
            id += per_batch;
            now += Duration::from_millis(100);
            e.on_reports(now, &reports);
        }
        (now, id)
    }

    #[test]
    fn an_idle_path_is_not_credited_with_bandwidth_nobody_tried() {
        let readings = Arc::new(DownlinkReadings::default());
        let mut e = DownlinkEstimator::new(readings.clone());
        // 50 packets/s of 1200 bytes = 480 kbit/s, clean, for 30 s.
        run(&mut e, (Instant::now(), 0), 30, 50, Duration::ZERO, None);
        let target = e.target_bitrate();
        // What was delivered (480 kbit/s and the packets' overhead on the wire), not more.
        assert!(target < 520_000.0, "{target}");
        assert!(target > 0.9 * 480_000.0, "{target}");
        assert_eq!(readings.target_bps(), target as u64);
        assert!(readings.has_feedback());
    }

    #[test]
    fn a_clean_probe_is_believed_at_once() {
        let mut e = DownlinkEstimator::new(Arc::new(DownlinkReadings::default()));
        // 250 packets/s = 2.4 Mbit/s delivered without queueing or loss.
        run(&mut e, (Instant::now(), 0), 1, 250, Duration::ZERO, None);
        assert!(e.target_bitrate() > 1_900_000.0, "{}", e.target_bitrate());
    }

    /// A probe cluster of 60 packets of 250 bytes sent over 50 ms (2.4 Mbit/s), arriving spread
    /// over `arrival_span`, and two packets sent after it, whose feedback completes the cluster.
    fn cluster(
        readings: &DownlinkReadings,
        start: Instant,
        first_id: u64,
        arrival_span: Duration,
    ) -> Vec<PacketReport> {
        let length = Duration::from_millis(50);
        readings.mark_probe(start, start + length);
        let mut reports: Vec<PacketReport> = (0..60u32)
            .map(|i| PacketReport {
                ssrc: 1,
                id: first_id + i as u64,
                rtp_sequence_number: i as u16,
                is_twcc: true,
                twcc_sequence_number: (first_id + i as u64) as u16,
                size: 250,
                arrived: true,
                departure: start + length * i / 59,
                arrival: Some(Duration::from_secs(100) + arrival_span * i / 59),
                ecn: Default::default(),
            })
            .collect();
        reports.extend(batch(
            start + Duration::from_millis(60),
            first_id + 60,
            2,
            Duration::from_millis(5),
            (Duration::ZERO, 0),
            None,
        ));
        reports
    }

    #[test]
    fn a_probe_cluster_that_arrives_as_fast_as_it_was_sent_raises_the_estimate() {
        let readings = Arc::new(DownlinkReadings::default());
        let mut e = DownlinkEstimator::new(readings.clone());
        // 20 packets/s of 1200 bytes: 192 kbit/s, clean.
        let (t, id) = run(&mut e, (Instant::now(), 0), 3, 20, Duration::ZERO, None);
        assert_eq!(e.target_bitrate(), INITIAL_BPS);
        let reports = cluster(&readings, t, id, Duration::from_millis(50));
        e.on_reports(t + Duration::from_millis(100), &reports);
        let probed = readings.probe_result_bps();
        // 2.4 Mbit/s of RTP, 2.8 with the overhead on the wire.
        assert!((2_400_000..3_000_000).contains(&probed), "{probed}");
        assert!(e.target_bitrate() > 1_800_000.0, "{}", e.target_bitrate());
    }

    #[test]
    fn a_probe_cluster_squeezed_by_a_narrow_link_raises_the_estimate_no_further_than_the_link() {
        let readings = Arc::new(DownlinkReadings::default());
        let mut e = DownlinkEstimator::new(readings.clone());
        let (t, id) = run(&mut e, (Instant::now(), 0), 3, 20, Duration::ZERO, None);
        let before = e.target_bitrate();
        // 15 kB through a 300 kbit/s link: 400 ms.
        let reports = cluster(&readings, t, id, Duration::from_millis(400));
        e.on_reports(t + Duration::from_millis(500), &reports);
        let probed = readings.probe_result_bps();
        assert!((250_000..400_000).contains(&probed), "{probed}");
        assert!(
            e.target_bitrate() <= 1.1 * probed as f64,
            "{before} → {}",
            e.target_bitrate()
        );
    }

    #[test]
    fn heavy_loss_lowers_the_estimate() {
        let mut e = DownlinkEstimator::new(Arc::new(DownlinkReadings::default()));
        let t = run(&mut e, (Instant::now(), 0), 2, 250, Duration::ZERO, None);
        let before = e.target_bitrate();
        run(&mut e, t, 3, 250, Duration::ZERO, Some(4));
        assert!(
            e.target_bitrate() < 0.7 * before,
            "{before} → {}",
            e.target_bitrate()
        );
    }

    #[test]
    fn a_growing_queue_lowers_the_estimate_below_what_was_delivered() {
        let mut e = DownlinkEstimator::new(Arc::new(DownlinkReadings::default()));
        let t = run(&mut e, (Instant::now(), 0), 2, 250, Duration::ZERO, None);
        // Each packet waits 15 ms longer than the one before: a queue growing fast (the
        // detector's threshold adapts, and starts high, so a slow one takes longer to tell).
        run(&mut e, t, 2, 250, Duration::from_millis(15), None);
        assert!(
            e.target_bitrate() < 2_400_000.0 * BACKOFF * 1.05,
            "{}",
            e.target_bitrate()
        );
    }

    #[test]
    fn the_delivered_rate_holds_across_the_wrap_of_its_microsecond_clock() {
        let mut rate = DeliveredRate::default();
        // 1 000 bytes every 10 ms, 400 ms of it, straddling the 32-bit microsecond wrap: 800
        // kbit/s, with the window's first packet not counted (it opens the span).
        let start = Duration::from_micros(u64::from(u32::MAX)) - Duration::from_millis(200);
        for i in 0..=40 {
            rate.add(start + Duration::from_millis(10 * i), 1000);
        }
        let bps = rate.rate_bps().expect("a rate over 400 ms");
        assert!((bps - 800_000.0).abs() < 1.0, "{bps}");
        // And the window still forgets what is older than it.
        rate.add(start + Duration::from_secs(2), 1000);
        assert_eq!(rate.arrivals.len(), 1);
    }
}
