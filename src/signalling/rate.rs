//! A token bucket per WebSocket: how many messages a client may send.
//!
//! Pure (the caller passes the instant). The default (`limits.messages_per_second` 40 with
//! bursts of `limits.message_burst` 80) is far above what a browser needs (a renegotiation is
//! two messages, a candidate burst a dozen) and far below what could load the server.

use std::time::Instant;

/// Consecutive refused messages after which the client is disconnected.
pub const MAX_REFUSED_IN_A_ROW: u32 = 100;

#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    refused_in_a_row: u32,
}

/// What to do with one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Refuse,
    Disconnect,
}

impl RateLimiter {
    pub fn new(now: Instant, per_second: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            per_second: f64::from(per_second),
            burst,
            tokens: burst,
            last: now,
            refused_in_a_row: 0,
        }
    }

    pub fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused_in_a_row = 0;
            Verdict::Accept
        } else {
            self.refused_in_a_row += 1;
            if self.refused_in_a_row >= MAX_REFUSED_IN_A_ROW {
                Verdict::Disconnect
            } else {
                Verdict::Refuse
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_steady_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(t0, 40, 80);
        for _ in 0..80 {
            assert_eq!(r.check(t0), Verdict::Accept);
        }
        assert_eq!(r.check(t0), Verdict::Refuse);
        // A quarter of a second later, ten more.
        let t1 = t0 + Duration::from_millis(250);
        for _ in 0..10 {
            assert_eq!(r.check(t1), Verdict::Accept);
        }
        assert_eq!(r.check(t1), Verdict::Refuse);
    }

    #[test]
    fn a_flood_is_disconnected() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(t0, 40, 80);
        let verdicts: Vec<Verdict> = (0..300).map(|_| r.check(t0)).collect();
        assert_eq!(verdicts.last(), Some(&Verdict::Disconnect));
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Accept).count(),
            80
        );
    }
}
