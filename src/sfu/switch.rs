//! One receiver's view of a simulcast source: which layer it is on, and the sequence numbers and
//! timestamps that make every layer switch invisible to it.
//!
//! Each simulcast layer is a separate RTP stream with its own SSRC, sequence numbers and
//! timestamp base. A receiver gets exactly one of them on one outgoing SSRC, so the SFU rewrites
//! numbers: at a switch, the new layer's first keyframe packet continues one after the last
//! sequence number sent, and its timestamp continues by the wall-clock time elapsed. Pure and
//! allocation-free: called per forwarded packet and per receiver.

use std::time::Instant;

const VIDEO_CLOCK_HZ: u64 = 90_000;

/// Whether sequence number `a` comes after `b`, modulo 2^16.
fn seq_after(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// The rewritten numbers of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numbers {
    pub sequence: u16,
    pub timestamp: u32,
}

#[derive(Debug, Clone, Default)]
pub struct LayerSwitch {
    /// The SSRC of the layer being forwarded now.
    current: Option<u32>,
    /// The layer this receiver should be on; when it differs from `current`, the switch happens
    /// at that layer's next keyframe.
    target: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    /// The current layer's first forwarded sequence number: anything older belongs to a time
    /// before the switch and is dropped.
    first_seq: u16,
    highest_out: Option<Numbers>,
    highest_out_at: Option<Instant>,
    /// Whether the newest packet sent ended a frame: padding may follow only then, since a
    /// padding packet inside a frame's sequence numbers would break it.
    frame_complete: bool,
    switches: u64,
}

impl LayerSwitch {
    /// The layer to switch to (`None`: this receiver gets none of the source's video).
    pub fn set_target(&mut self, target: Option<u32>) {
        self.target = target;
        if target.is_none() {
            self.current = None;
        }
    }

    pub fn target(&self) -> Option<u32> {
        self.target
    }

    pub fn current(&self) -> Option<u32> {
        self.current
    }

    /// True while the receiver waits for a keyframe of its target layer.
    pub fn waiting_for_keyframe(&self) -> bool {
        self.target.is_some() && self.target != self.current
    }

    /// How many times the receiver was moved from one layer to another.
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// Decides one packet of layer `ssrc`: its numbers for this receiver, or `None` to drop it.
    pub fn map(
        &mut self,
        now: Instant,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        keyframe_start: bool,
        frame_end: bool,
    ) -> Option<Numbers> {
        if self.current != Some(ssrc) {
            if self.target != Some(ssrc) || !keyframe_start {
                return None;
            }
            self.switch_to(now, ssrc, sequence, timestamp);
        } else if sequence != self.first_seq && !seq_after(sequence, self.first_seq) {
            return None;
        }
        let numbers = Numbers {
            sequence: sequence.wrapping_add(self.seq_offset),
            timestamp: timestamp.wrapping_add(self.ts_offset),
        };
        self.note_sent(now, numbers, frame_end);
        Some(numbers)
    }

    /// The numbers of a padding-only packet to send now between two frames (a bandwidth probe),
    /// or `None` in the middle of a frame or before the first. The layer's later packets move up
    /// by one, and anything older than what was sent is dropped from here on.
    pub fn pad(&mut self) -> Option<Numbers> {
        self.current?;
        let last = self.highest_out.filter(|_| self.frame_complete)?;
        let newest_in = last.sequence.wrapping_sub(self.seq_offset);
        self.first_seq = newest_in.wrapping_add(1);
        self.seq_offset = self.seq_offset.wrapping_add(1);
        let numbers = Numbers {
            sequence: last.sequence.wrapping_add(1),
            timestamp: last.timestamp,
        };
        self.highest_out = Some(numbers);
        Some(numbers)
    }

    fn switch_to(&mut self, now: Instant, ssrc: u32, sequence: u16, timestamp: u32) {
        match (self.highest_out, self.highest_out_at) {
            (Some(last), Some(at)) => {
                let elapsed = now.saturating_duration_since(at);
                let ticks = (elapsed.as_micros() as u64 * VIDEO_CLOCK_HZ / 1_000_000).max(1);
                let next_ts = last.timestamp.wrapping_add(ticks as u32);
                self.seq_offset = last.sequence.wrapping_add(1).wrapping_sub(sequence);
                self.ts_offset = next_ts.wrapping_sub(timestamp);
                self.switches += 1;
            }
            _ => {
                self.seq_offset = 0;
                self.ts_offset = 0;
            }
        }
        self.current = Some(ssrc);
        self.first_seq = sequence;
    }

    fn note_sent(&mut self, now: Instant, numbers: Numbers, frame_end: bool) {
        let newer = self
            .highest_out
            .is_none_or(|h| seq_after(numbers.sequence, h.sequence));
        if newer {
            self.highest_out = Some(numbers);
            self.highest_out_at = Some(now);
            self.frame_complete = frame_end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_first_layer_passes_through_from_its_first_keyframe() {
        let t = Instant::now();
        let mut s = LayerSwitch::default();
        s.set_target(Some(10));
        assert!(s.waiting_for_keyframe());
        assert_eq!(
            s.map(t, 10, 100, 5000, false, true),
            None,
            "no keyframe yet"
        );
        assert_eq!(s.map(t, 20, 7, 1, true, true), None, "not the target layer");
        let n = s.map(t, 10, 101, 6000, true, true).unwrap();
        assert_eq!((n.sequence, n.timestamp), (101, 6000));
        assert_eq!(s.map(t, 10, 102, 6000, false, true).unwrap().sequence, 102);
        assert_eq!(
            s.map(t, 10, 100, 5000, false, true),
            None,
            "older than the switch"
        );
        assert!(!s.waiting_for_keyframe());
    }

    #[test]
    fn a_switch_continues_sequence_numbers_and_timestamps() {
        let t = Instant::now();
        let mut s = LayerSwitch::default();
        s.set_target(Some(10));
        for i in 0..5u16 {
            s.map(
                t,
                10,
                65_533u16.wrapping_add(i),
                3000 * u32::from(i),
                i == 0,
                true,
            );
        }
        let last = s.map(t, 10, 2, 15_000, false, true).unwrap();
        s.set_target(Some(20));
        // The old layer keeps flowing until the new one has a keyframe.
        let t2 = t + Duration::from_millis(40);
        assert_eq!(s.map(t2, 20, 900, 77, false, true), None);
        assert!(s.map(t2, 10, 3, 18_000, false, true).is_some());
        let first = s.map(t2, 20, 901, 80_000, true, true).unwrap();
        assert_eq!(first.sequence, last.sequence.wrapping_add(2));
        assert_eq!(
            first.timestamp,
            18_000 + 1,
            "no time passed since the last packet"
        );
        assert_eq!(
            s.map(t2, 10, 4, 21_000, false, true),
            None,
            "the old layer is dropped"
        );
        let next = s.map(t2, 20, 902, 83_000, false, true).unwrap();
        assert_eq!(next.sequence, first.sequence.wrapping_add(1));
        assert_eq!(next.timestamp, first.timestamp + 3000);
        assert_eq!(s.switches(), 1);
        // Time that passes between layers becomes timestamp distance.
        s.set_target(Some(10));
        let t3 = t2 + Duration::from_millis(100);
        let back = s.map(t3, 10, 50, 0, true, true).unwrap();
        assert_eq!(back.sequence, next.sequence.wrapping_add(1));
        assert_eq!(back.timestamp, next.timestamp + 9000);
    }

    #[test]
    fn no_target_means_nothing_is_forwarded() {
        let t = Instant::now();
        let mut s = LayerSwitch::default();
        s.set_target(Some(1));
        s.map(t, 1, 10, 500, true, true);
        s.set_target(None);
        assert_eq!(s.map(t, 1, 11, 500, true, true), None);
        assert!(!s.waiting_for_keyframe());
        s.set_target(Some(1));
        assert_eq!(
            s.map(t, 1, 12, 500, false, true),
            None,
            "resumes at a keyframe"
        );
        assert_eq!(s.map(t, 1, 13, 600, true, true).unwrap().sequence, 11);
    }

    #[test]
    fn padding_goes_between_frames_and_later_packets_move_up() {
        let t = Instant::now();
        let mut s = LayerSwitch::default();
        assert_eq!(s.pad(), None, "nothing sent yet");
        s.set_target(Some(1));
        s.map(t, 1, 10, 500, true, false);
        assert_eq!(s.pad(), None, "inside a frame");
        s.map(t, 1, 11, 500, false, true);
        let p1 = s.pad().unwrap();
        let p2 = s.pad().unwrap();
        assert_eq!((p1.sequence, p1.timestamp), (12, 500));
        assert_eq!((p2.sequence, p2.timestamp), (13, 500));
        assert_eq!(s.map(t, 1, 12, 3500, false, false).unwrap().sequence, 14);
        assert_eq!(
            s.map(t, 1, 11, 500, false, true),
            None,
            "late: its number is taken"
        );
        assert_eq!(s.pad(), None, "inside a frame");
        assert_eq!(s.map(t, 1, 13, 3500, false, true).unwrap().sequence, 15);
    }
}
