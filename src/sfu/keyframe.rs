//! Keyframe requests towards a publisher, throttled.
//!
//! Every new subscriber and every decoder error on a receiver asks for a keyframe; a room of
//! thirty joining at once must not make the publisher encode thirty. A request inside the
//! cool-down is remembered and sent when it ends, so the last asker is never left waiting.

use std::time::{Duration, Instant};

/// The shortest gap between two keyframe requests to one publisher's stream.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
pub struct KeyframeThrottle {
    last_sent: Option<Instant>,
    pending: bool,
}

impl KeyframeThrottle {
    /// Asks for a keyframe; true if a request should go out now.
    pub fn request(&mut self, now: Instant) -> bool {
        match self.last_sent {
            Some(last) if now.duration_since(last) < KEYFRAME_INTERVAL => {
                self.pending = true;
                false
            }
            _ => {
                self.last_sent = Some(now);
                self.pending = false;
                true
            }
        }
    }

    /// True if a postponed request is due now (and marks it sent).
    pub fn poll(&mut self, now: Instant) -> bool {
        if self.pending
            && self
                .last_sent
                .is_none_or(|last| now.duration_since(last) >= KEYFRAME_INTERVAL)
        {
            self.pending = false;
            self.last_sent = Some(now);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_inside_the_interval_are_merged_and_delayed() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::default();
        assert!(k.request(t0));
        assert!(!k.request(t0 + Duration::from_millis(10)));
        assert!(!k.request(t0 + Duration::from_millis(20)));
        assert!(!k.poll(t0 + Duration::from_millis(400)));
        assert!(k.poll(t0 + Duration::from_millis(500)));
        assert!(!k.poll(t0 + Duration::from_millis(600)), "sent once");
        assert!(k.request(t0 + Duration::from_millis(1000)));
    }
}
