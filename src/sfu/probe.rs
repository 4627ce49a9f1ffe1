//! Bandwidth probes: how a receiver's estimate learns that its downlink carries more than it is
//! being sent.
//!
//! The estimate only credits what a path demonstrably delivered (see `bandwidth`), so a receiver
//! held on a low layer would stay there. When a receiver wants more than it is being sent,
//! the SFU sends it a short cluster of padding-only RTP packets on top of its media: for 50 ms the
//! receiver gets up to three times its estimate. The estimator measures how fast the cluster arrived;
//! a path that carried it lets the estimate jump there, and the layers follow. A cluster is a few
//! kilobytes: on a narrow link it queues for a moment and is gone, it never replaces media, and
//! a failed probe is retried less and less often.
//!
//! (Duplicated media packets would be a cheaper probe, but SRTP's replay protection drops them
//! before the receiver's congestion feedback sees them. Trying a better layer on trial costs a
//! keyframe, far larger than a cluster, on exactly the links that cannot take it.) Pure: the
//! engine asks it when to send how much, and tells it what the estimate did.

use std::time::{Duration, Instant};

/// The bursts of one cluster, this far apart: the cluster lasts `(BURSTS - 1) * BURST_GAP`.
pub const BURSTS: u32 = 6;
pub const BURST_GAP: Duration = Duration::from_millis(10);
/// How far above the estimate one probe reaches.
const REACH: f64 = 3.0;
/// Enough for the receiver's feedback on the cluster to come back.
const FEEDBACK_WAIT: Duration = Duration::from_millis(600);
/// A probe succeeded when the estimate rose at least this much, or covered this share of the way
/// to the cluster's goal (a goal close to the estimate asks for less than a 25 % rise).
const SUCCESS_RISE: f64 = 1.25;
const SUCCESS_SHARE_OF_GOAL: f64 = 0.5;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const AFTER_SUCCESS: Duration = Duration::from_millis(300);
/// The most padding one burst may carry, whatever the goal.
const MAX_BURST_BYTES: u64 = 16_000;

/// The departure window of one probe cluster, for the estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeWindow {
    pub start: Instant,
    pub end: Instant,
    /// The total rate the cluster aims at, in bit/s.
    pub goal_bps: u64,
}

#[derive(Debug, Clone)]
struct Running {
    next_burst: Instant,
    bursts_left: u32,
    burst_bytes: u64,
    judge_at: Instant,
    estimate_at_start: u64,
    goal: u64,
}

#[derive(Debug, Clone)]
pub struct Probe {
    running: Option<Running>,
    next_allowed: Option<Instant>,
    backoff: Duration,
    succeeded: u64,
    failed: u64,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            running: None,
            next_allowed: None,
            backoff: FIRST_BACKOFF,
            succeeded: 0,
            failed: 0,
        }
    }
}

impl Probe {
    /// (succeeded, failed) probes so far.
    pub fn outcomes(&self) -> (u64, u64) {
        (self.succeeded, self.failed)
    }

    /// When the next burst of padding is due.
    pub fn next_burst(&self) -> Option<Instant> {
        self.running
            .as_ref()
            .filter(|r| r.bursts_left > 0)
            .map(|r| r.next_burst)
    }

    /// The padding bytes to send now, if a burst is due.
    pub fn take_burst(&mut self, now: Instant) -> Option<u64> {
        let running = self.running.as_mut()?;
        if running.bursts_left == 0 || now < running.next_burst {
            return None;
        }
        running.bursts_left -= 1;
        running.next_burst += BURST_GAP;
        Some(running.burst_bytes)
    }

    /// After each allocation: judges a cluster whose feedback is in, and starts one when the
    /// receiver wants more than it gets. Rates in bit/s, audio included; `sending` is what the
    /// receiver is being sent now. Returns the window of a cluster that starts now.
    pub fn update(
        &mut self,
        now: Instant,
        estimate: u64,
        sending: u64,
        wanted: u64,
    ) -> Option<ProbeWindow> {
        if let Some(running) = &self.running {
            if now < running.judge_at {
                return None;
            }
            let start = running.estimate_at_start as f64;
            let rise_needed = ((SUCCESS_RISE - 1.0) * start)
                .min(SUCCESS_SHARE_OF_GOAL * (running.goal as f64 - start));
            self.finish(now, estimate as f64 - start >= rise_needed);
        }
        // Wanting more than it gets is what counts, not wanting more than the estimate: the
        // allocator adds a layer only with a margin to spare, so an estimate just above what
        // the receiver wants can still hold a video back. And any shortfall counts: both rates
        // come from the same measured layers, so they differ only when a layer is held back,
        // and one video of fifteen is a small share of the rate but a whole tile.
        let wants_more = wanted > sending;
        if !wants_more || sending == 0 || self.next_allowed.is_some_and(|t| now < t) {
            return None;
        }
        let goal = (REACH * estimate as f64).min(1.5 * wanted as f64) as u64;
        if goal as f64 <= SUCCESS_RISE * estimate as f64 {
            // Nothing a cluster could show would change the allocation.
            return None;
        }
        let extra_bps = goal.saturating_sub(sending);
        let length = BURST_GAP * (BURSTS - 1);
        // The padding of the whole cluster, spread over its bursts: a cluster of n bursts lasts
        // n - 1 gaps, so the rate is measured over that span.
        let total_bytes = extra_bps as f64 / 8.0 * length.as_secs_f64();
        let burst_bytes = ((total_bytes / (BURSTS - 1) as f64) as u64).min(MAX_BURST_BYTES);
        if burst_bytes == 0 {
            return None;
        }
        let end = now + length;
        self.running = Some(Running {
            next_burst: now,
            bursts_left: BURSTS,
            burst_bytes,
            judge_at: end + FEEDBACK_WAIT,
            estimate_at_start: estimate,
            goal,
        });
        Some(ProbeWindow {
            start: now,
            end,
            goal_bps: goal,
        })
    }

    fn finish(&mut self, now: Instant, success: bool) {
        self.running = None;
        if success {
            self.succeeded += 1;
            self.backoff = FIRST_BACKOFF;
            self.next_allowed = Some(now + AFTER_SUCCESS);
        } else {
            self.failed += 1;
            self.next_allowed = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bursts(p: &mut Probe, from: Instant) -> Vec<u64> {
        let mut sent = Vec::new();
        while let Some(at) = p.next_burst() {
            assert!(at >= from);
            assert_eq!(p.take_burst(at - Duration::from_millis(1)), None, "early");
            sent.push(p.take_burst(at).unwrap());
        }
        sent
    }

    #[test]
    fn a_receiver_that_wants_more_gets_a_cluster_of_three_times_its_estimate() {
        let t = Instant::now();
        let mut p = Probe::default();
        let window = p.update(t, 300_000, 190_000, 1_040_000).unwrap();
        assert_eq!(window.goal_bps, 900_000);
        assert_eq!(window.end - window.start, BURST_GAP * (BURSTS - 1));
        let sent = bursts(&mut p, t);
        assert_eq!(sent.len(), BURSTS as usize);
        // 710 kbit/s of padding over the 50 ms between the first burst and the last: 4.4 kB
        // before the last burst.
        let before_last: u64 = sent[..sent.len() - 1].iter().sum();
        assert!((4_400..=4_500).contains(&before_last), "{before_last}");
        assert_eq!(p.next_burst(), None);
        assert_eq!(p.update(window.end, 300_000, 190_000, 1_040_000), None);
    }

    #[test]
    fn a_success_allows_the_next_probe_soon_and_a_failure_backs_off() {
        let t = Instant::now();
        let mut p = Probe::default();
        let w = p.update(t, 300_000, 190_000, 1_040_000).unwrap();
        bursts(&mut p, t);
        let judged = w.end + FEEDBACK_WAIT;
        // The estimate doubled: success, and the next probe reaches higher, up to half again
        // what the receiver wants.
        assert_eq!(p.update(judged, 600_000, 400_000, 1_040_000), None);
        assert_eq!(p.outcomes(), (1, 0));
        let again = judged + AFTER_SUCCESS;
        let w = p.update(again, 600_000, 400_000, 1_040_000).unwrap();
        assert_eq!(w.goal_bps, 1_560_000);
        bursts(&mut p, again);
        // Nothing gained: a failure, and the next try waits.
        let judged = w.end + FEEDBACK_WAIT;
        assert_eq!(p.update(judged, 610_000, 400_000, 1_040_000), None);
        assert_eq!(p.outcomes(), (1, 1));
        assert_eq!(
            p.update(judged + FIRST_BACKOFF / 2, 610_000, 400_000, 1_040_000),
            None
        );
        let w = p
            .update(judged + FIRST_BACKOFF, 610_000, 400_000, 1_040_000)
            .unwrap();
        bursts(&mut p, judged + FIRST_BACKOFF);
        let judged = w.end + FEEDBACK_WAIT;
        p.update(judged, 610_000, 400_000, 1_040_000);
        assert_eq!(p.outcomes(), (1, 2));
        // The second failure in a row waits twice as long.
        assert_eq!(
            p.update(judged + FIRST_BACKOFF, 610_000, 400_000, 1_040_000),
            None
        );
        assert!(
            p.update(judged + FIRST_BACKOFF * 2, 610_000, 400_000, 1_040_000)
                .is_some()
        );
    }

    /// An estimate (741 kbit/s) above what the receiver wants (646 kbit/s) but short of the
    /// margin the allocator needs to add the second of two videos.
    #[test]
    fn a_receiver_held_back_by_the_margin_is_probed_and_reaching_near_the_goal_is_success() {
        let t = Instant::now();
        let mut p = Probe::default();
        let w = p.update(t, 741_000, 363_000, 646_000).unwrap();
        assert_eq!(w.goal_bps, 969_000);
        bursts(&mut p, t);
        // 0.9 of the goal: less than a 25 % rise, but the video fits now.
        assert_eq!(
            p.update(w.end + FEEDBACK_WAIT, 872_000, 363_000, 646_000),
            None
        );
        assert_eq!(p.outcomes(), (1, 0));
    }

    #[test]
    fn a_receiver_one_video_of_fifteen_short_is_probed() {
        let t = Instant::now();
        let mut p = Probe::default();
        let w = p.update(t, 7_900_000, 7_560_000, 8_100_000).unwrap();
        assert_eq!(w.goal_bps, 12_150_000);
    }

    #[test]
    fn a_receiver_that_has_what_it_wants_is_left_alone() {
        let t = Instant::now();
        let mut p = Probe::default();
        assert_eq!(p.update(t, 5_000_000, 1_400_000, 1_400_000), None);
        assert_eq!(p.update(t, 5_000_000, 0, 1_400_000), None, "nothing to pad");
        assert_eq!(
            p.update(t, 5_000_000, 400_000, 1_400_000),
            None,
            "held back by something a probe cannot change"
        );
        assert_eq!(p.next_burst(), None);
    }
}
