//! One receiver's view of a simulcast source: which layer it is on, and the sequence numbers and
//! timestamps that make every layer switch invisible to it.
//!
//! Each simulcast layer is a separate RTP stream with its own SSRC, sequence numbers and
//! timestamp base. A receiver gets exactly one of them on one outgoing SSRC, so the SFU rewrites
//! numbers: at a switch, the new layer's first keyframe packet continues one after the last
//! sequence number sent, and its timestamp continues by the wall-clock time elapsed. Pure;
//! allocation-free per forwarded packet and receiver.
//!
//! It also answers the reverse question a retransmission request asks: which layer's packet an
//! outgoing sequence number was. The numbers map onto a layer by one offset in stretches
//! ([`Segment`]) that end at a switch, a pause or a padding packet; the stretches of the last
//! [`RETRANSMISSION_WINDOW`] are kept (a few, allocated only when one ends).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const VIDEO_CLOCK_HZ: u64 = 90_000;

/// How long an ended stretch of sequence numbers is kept for retransmission requests: as long as
/// the packets themselves are kept.
const RETRANSMISSION_WINDOW: Duration = super::retransmit::HISTORY_AGE;
/// The most ended stretches kept, however many switches and probes come within the window.
const MAX_SEGMENTS: usize = 32;

/// Whether `sequence` lies in `[start, end)`, modulo 2^16.
fn seq_within(sequence: u16, start: u16, end: u16) -> bool {
    sequence.wrapping_sub(start) < end.wrapping_sub(start)
}

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

/// Where an outgoing packet came from: its layer, its number there, and what its timestamp
/// was moved by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub layer: u32,
    pub sequence: u16,
    pub ts_offset: u32,
}

/// A stretch of outgoing sequence numbers, `[out_start, out_end)`, that were one layer's
/// numbers moved by one offset.
#[derive(Debug, Clone, Copy)]
struct Segment {
    layer: u32,
    out_start: u16,
    out_end: u16,
    seq_offset: u16,
    ts_offset: u32,
    ended: Instant,
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
    /// Whether a packet was forwarded since the current offset took effect.
    segment_used: bool,
    /// The stretches that ended within the last [`RETRANSMISSION_WINDOW`], oldest first.
    ended: VecDeque<Segment>,
}

impl LayerSwitch {
    /// The layer to switch to (`None`: this receiver gets none of the source's video).
    pub fn set_target(&mut self, now: Instant, target: Option<u32>) {
        self.target = target;
        if target.is_none() {
            self.end_segment(now);
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
    pub fn pad(&mut self, now: Instant) -> Option<Numbers> {
        self.current?;
        let last = self.highest_out.filter(|_| self.frame_complete)?;
        self.end_segment(now);
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
        self.end_segment(now);
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

    /// The layer and number the outgoing packet `sequence` was, if it was a layer's packet
    /// (not padding) forwarded within the last [`RETRANSMISSION_WINDOW`] or so.
    pub fn origin(&self, now: Instant, sequence: u16) -> Option<Origin> {
        self.open_segment(now)
            .iter()
            .chain(self.ended.iter().rev())
            .take_while(|s| now.saturating_duration_since(s.ended) <= RETRANSMISSION_WINDOW)
            .find(|s| seq_within(sequence, s.out_start, s.out_end))
            .map(|s| Origin {
                layer: s.layer,
                sequence: sequence.wrapping_sub(s.seq_offset),
                ts_offset: s.ts_offset,
            })
    }

    /// The stretch the current offset has numbered so far, as if it ended `now`; `None` before
    /// its first packet.
    fn open_segment(&self, now: Instant) -> Option<Segment> {
        match (self.current, self.highest_out) {
            (Some(layer), Some(highest)) if self.segment_used => Some(Segment {
                layer,
                out_start: self.first_seq.wrapping_add(self.seq_offset),
                out_end: highest.sequence.wrapping_add(1),
                seq_offset: self.seq_offset,
                ts_offset: self.ts_offset,
                ended: now,
            }),
            _ => None,
        }
    }

    /// Closes the stretch the current offset numbered, before the offset or the layer changes.
    fn end_segment(&mut self, now: Instant) {
        let Some(segment) = self.open_segment(now) else {
            return;
        };
        while self
            .ended
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.ended) > RETRANSMISSION_WINDOW)
            || self.ended.len() >= MAX_SEGMENTS
        {
            self.ended.pop_front();
        }
        self.ended.push_back(segment);
        self.segment_used = false;
    }

    fn note_sent(&mut self, now: Instant, numbers: Numbers, frame_end: bool) {
        self.segment_used = true;
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
        s.set_target(t, Some(10));
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
        s.set_target(t, Some(10));
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
        s.set_target(t, Some(20));
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
        s.set_target(t, Some(10));
        let t3 = t2 + Duration::from_millis(100);
        let back = s.map(t3, 10, 50, 0, true, true).unwrap();
        assert_eq!(back.sequence, next.sequence.wrapping_add(1));
        assert_eq!(back.timestamp, next.timestamp + 9000);
    }

    #[test]
    fn no_target_means_nothing_is_forwarded() {
        let t = Instant::now();
        let mut s = LayerSwitch::default();
        s.set_target(t, Some(1));
        s.map(t, 1, 10, 500, true, true);
        s.set_target(t, None);
        assert_eq!(s.map(t, 1, 11, 500, true, true), None);
        assert!(!s.waiting_for_keyframe());
        s.set_target(t, Some(1));
        assert_eq!(
            s.map(t, 1, 12, 500, false, true),
            None,
            "resumes at a keyframe"
        );
        assert_eq!(s.map(t, 1, 13, 600, true, true).unwrap().sequence, 11);
    }

    #[test]
    fn an_outgoing_number_leads_back_to_its_layer_across_padding_and_switches() {
        let t = Instant::now();
        let mut s = LayerSwitch::default();
        assert_eq!(s.origin(t, 0), None, "nothing sent yet");
        s.set_target(t, Some(10));
        s.map(t, 10, 100, 1000, true, false);
        s.map(t, 10, 101, 1000, false, true);
        let pad = s.pad(t).unwrap();
        let after_pad = s.map(t, 10, 102, 4000, false, true).unwrap();
        s.set_target(t, Some(20));
        let first = s.map(t, 20, 500, 9000, true, true).unwrap();
        assert_eq!(
            s.origin(t, 100),
            Some(Origin {
                layer: 10,
                sequence: 100,
                ts_offset: 0
            })
        );
        assert_eq!(s.origin(t, 101).unwrap().sequence, 101);
        assert_eq!(
            s.origin(t, pad.sequence),
            None,
            "padding is no layer's packet"
        );
        assert_eq!(s.origin(t, after_pad.sequence).unwrap().sequence, 102);
        let o = s.origin(t, first.sequence).unwrap();
        assert_eq!((o.layer, o.sequence), (20, 500));
        assert_eq!(9000u32.wrapping_add(o.ts_offset), first.timestamp);
        assert_eq!(
            s.origin(t, first.sequence.wrapping_add(1)),
            None,
            "not sent yet"
        );
        assert_eq!(s.origin(t, 99), None, "before the first");
        // Paused and resumed: the numbers continue, and both stretches lead back.
        s.set_target(t, None);
        s.set_target(t, Some(20));
        let resumed = s.map(t, 20, 900, 20_000, true, true).unwrap();
        assert_eq!(resumed.sequence, first.sequence.wrapping_add(1));
        assert_eq!(s.origin(t, resumed.sequence).unwrap().sequence, 900);
        assert_eq!(s.origin(t, first.sequence).unwrap().sequence, 500);
        // Past the window the ended stretches are forgotten, the open one is not.
        let later = t + RETRANSMISSION_WINDOW + Duration::from_millis(1);
        assert_eq!(s.origin(later, 100), None);
        assert_eq!(s.origin(later, resumed.sequence).unwrap().sequence, 900);
    }

    #[test]
    fn the_stretches_kept_are_bounded_however_often_padding_comes() {
        let t = Instant::now();
        let mut s = LayerSwitch::default();
        s.set_target(t, Some(1));
        for i in 0..200u16 {
            s.map(t, 1, i, u32::from(i) * 3000, i == 0, true);
            s.pad(t).unwrap();
        }
        assert_eq!(s.ended.len(), MAX_SEGMENTS);
        let last = s.highest_out.unwrap().sequence;
        // The newest packet (199, sent before the last padding) still leads back.
        assert_eq!(s.origin(t, last.wrapping_sub(1)).unwrap().sequence, 199);
    }

    #[test]
    fn padding_goes_between_frames_and_later_packets_move_up() {
        let t = Instant::now();
        let mut s = LayerSwitch::default();
        assert_eq!(s.pad(t), None, "nothing sent yet");
        s.set_target(t, Some(1));
        s.map(t, 1, 10, 500, true, false);
        assert_eq!(s.pad(t), None, "inside a frame");
        s.map(t, 1, 11, 500, false, true);
        let p1 = s.pad(t).unwrap();
        let p2 = s.pad(t).unwrap();
        assert_eq!((p1.sequence, p1.timestamp), (12, 500));
        assert_eq!((p2.sequence, p2.timestamp), (13, 500));
        assert_eq!(s.map(t, 1, 12, 3500, false, false).unwrap().sequence, 14);
        assert_eq!(
            s.map(t, 1, 11, 500, false, true),
            None,
            "late: its number is taken"
        );
        assert_eq!(s.pad(t), None, "inside a frame");
        assert_eq!(s.map(t, 1, 13, 3500, false, true).unwrap().sequence, 15);
    }
}
