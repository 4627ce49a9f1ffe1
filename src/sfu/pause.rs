//! Which camera layers a publisher needs to send: the tallest picture any receiver will take,
//! told to the publisher's client so it stops encoding and uploading layers nobody gets.
//!
//! A receiver takes a camera when last-N lets it in and its tile is shown; it takes layers up to
//! the first as tall as its tile (all of them when it has not said how big its tiles are). The
//! publisher needs the largest of those demands, or nothing at all when nobody takes its camera.
//! A demand that grows is told at once (a receiver is waiting for a picture); one that shrinks
//! only once it has held for [`SHRINK_AFTER`], so a speaker change or a resized window that is
//! undone a moment later does not make a publisher stop and restart an encoder, which costs a
//! keyframe each time. Pure: the engine feeds it demands and a clock, it returns what to tell.

use std::time::{Duration, Instant};

/// How long a smaller demand must hold before the publisher is told.
pub const SHRINK_AFTER: Duration = Duration::from_secs(2);

/// How much of a camera the receivers take, ordered from nothing to everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Demand {
    /// Nobody receives it: every layer can pause.
    Nothing,
    /// Layers up to the first that is at least this tall.
    UpTo(u16),
    /// Every layer.
    Everything,
}

impl Demand {
    /// The demand of one receiver: `shown_height` as the receiver reported it (`None`: not
    /// reported, `Some(0)`: not shown); `eligible` when last-N lets the source in.
    pub fn of_receiver(eligible: bool, shown_height: Option<u16>) -> Self {
        match (eligible, shown_height) {
            (false, _) | (true, Some(0)) => Demand::Nothing,
            (true, Some(height)) => Demand::UpTo(height),
            (true, None) => Demand::Everything,
        }
    }

    /// The tallest picture the publisher should encode: `Some(0)` for none, `None` for no limit.
    pub fn max_height(self) -> Option<u16> {
        match self {
            Demand::Nothing => Some(0),
            Demand::UpTo(height) => Some(height),
            Demand::Everything => None,
        }
    }
}

/// What one publisher's client was told about its camera, and a smaller demand waiting to be.
#[derive(Debug, Clone, Default)]
pub struct PublisherDemand {
    /// `None` until the first notice: a client starts sending every layer.
    told: Option<Demand>,
    told_at: Option<Instant>,
    /// Since when the demand has stayed below what was told, and the largest it was meanwhile.
    shrinking: Option<(Demand, Instant)>,
}

impl PublisherDemand {
    /// What the client was told last (`None`: nothing yet, so it sends every layer).
    pub fn told(&self) -> Option<Demand> {
        self.told
    }

    /// Whether the camera is paused on this server's word, or was told to resume so recently
    /// that its first packets may not be in yet.
    pub fn paused_or_resuming(&self, now: Instant) -> bool {
        self.told == Some(Demand::Nothing)
            || self
                .told_at
                .is_some_and(|at| now.saturating_duration_since(at) < SHRINK_AFTER)
    }

    /// Takes the receivers' combined demand now; returns a demand to tell the client, if any.
    pub fn update(&mut self, now: Instant, demand: Demand) -> Option<Demand> {
        let told = self.told.unwrap_or(Demand::Everything);
        if demand >= told {
            self.shrinking = None;
            if demand == told {
                return None;
            }
            self.told = Some(demand);
            self.told_at = Some(now);
            return Some(demand);
        }
        let (largest, since) = match self.shrinking {
            Some((waiting, since)) => (waiting.max(demand), since),
            None => (demand, now),
        };
        if now.saturating_duration_since(since) < SHRINK_AFTER {
            self.shrinking = Some((largest, since));
            return None;
        }
        // The largest demand of the whole wait has held for its length: that much can go. A
        // smaller one now starts a wait of its own.
        self.told = Some(largest);
        self.told_at = Some(now);
        self.shrinking = (demand < largest).then_some((demand, now));
        Some(largest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receivers_demand_follows_last_n_and_its_tile() {
        assert_eq!(Demand::of_receiver(false, None), Demand::Nothing);
        assert_eq!(Demand::of_receiver(true, Some(0)), Demand::Nothing);
        assert_eq!(Demand::of_receiver(true, Some(200)), Demand::UpTo(200));
        assert_eq!(Demand::of_receiver(true, None), Demand::Everything);
        let combined = [Demand::Nothing, Demand::UpTo(120), Demand::UpTo(300)]
            .into_iter()
            .max();
        assert_eq!(combined, Some(Demand::UpTo(300)));
        assert!(Demand::UpTo(u16::MAX) < Demand::Everything);
        assert_eq!(Demand::Nothing.max_height(), Some(0));
        assert_eq!(Demand::Everything.max_height(), None);
    }

    #[test]
    fn a_smaller_demand_is_told_once_it_has_held_and_a_larger_one_at_once() {
        let t = Instant::now();
        let mut p = PublisherDemand::default();
        assert_eq!(
            p.update(t, Demand::Everything),
            None,
            "the client's default"
        );
        assert_eq!(p.update(t, Demand::Nothing), None);
        assert_eq!(p.update(t + SHRINK_AFTER / 2, Demand::Nothing), None);
        assert_eq!(
            p.update(t + SHRINK_AFTER, Demand::Nothing),
            Some(Demand::Nothing)
        );
        assert_eq!(
            p.update(t + SHRINK_AFTER * 2, Demand::Nothing),
            None,
            "told"
        );
        let later = t + SHRINK_AFTER * 3;
        assert_eq!(p.update(later, Demand::UpTo(180)), Some(Demand::UpTo(180)));
        assert_eq!(
            p.update(later, Demand::Everything),
            Some(Demand::Everything)
        );
    }

    #[test]
    fn a_dip_shorter_than_the_wait_is_never_told() {
        let t = Instant::now();
        let mut p = PublisherDemand::default();
        assert_eq!(p.update(t, Demand::UpTo(360)), None);
        assert_eq!(p.update(t + SHRINK_AFTER / 2, Demand::Everything), None);
        // The wait starts again with the next dip.
        assert_eq!(p.update(t + SHRINK_AFTER, Demand::UpTo(360)), None);
        assert_eq!(
            p.update(t + SHRINK_AFTER * 2, Demand::UpTo(360)),
            Some(Demand::UpTo(360))
        );
    }

    #[test]
    fn what_is_told_after_a_wait_is_the_largest_demand_during_it() {
        let t = Instant::now();
        let mut p = PublisherDemand::default();
        assert_eq!(p.update(t, Demand::UpTo(360)), None);
        // Nobody at all, just before the wait ends: the 360 of the whole wait goes first.
        assert_eq!(p.update(t + SHRINK_AFTER * 9 / 10, Demand::Nothing), None);
        assert_eq!(
            p.update(t + SHRINK_AFTER, Demand::Nothing),
            Some(Demand::UpTo(360))
        );
        // The pause waits its own full time from when it began.
        let began = t + SHRINK_AFTER;
        assert_eq!(p.update(began + SHRINK_AFTER / 2, Demand::Nothing), None);
        assert_eq!(
            p.update(began + SHRINK_AFTER, Demand::Nothing),
            Some(Demand::Nothing)
        );
    }

    #[test]
    fn a_demand_that_grows_back_below_what_was_told_waits_with_the_rest() {
        let t = Instant::now();
        let mut p = PublisherDemand::default();
        assert_eq!(p.update(t, Demand::UpTo(180)), None);
        assert_eq!(p.update(t + SHRINK_AFTER / 2, Demand::UpTo(360)), None);
        assert_eq!(
            p.update(t + SHRINK_AFTER, Demand::UpTo(180)),
            Some(Demand::UpTo(360))
        );
        assert_eq!(
            p.update(t + SHRINK_AFTER * 2, Demand::UpTo(180)),
            Some(Demand::UpTo(180))
        );
    }
}
