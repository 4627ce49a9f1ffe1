//! Answering a receiver's NACKs: resending lost packets from what its sources sent, without
//! letting repair make the loss worse.
//!
//! Every video packet a source sends is kept once, for the source, for a second (at most
//! [`HISTORY`] packets): every receiver of it got the same payload, and a receiver's outgoing
//! sequence number leads back to the packet through its layer switch
//! ([`super::switch::LayerSwitch::origin`]). A NACK names packets the receiver misses; each is
//! resent if it is still kept, has not been resent to that receiver in the last `HOLD_OFF` (a
//! receiver that asks again before the first resend can have arrived would otherwise double
//! it), and the receiver's repair budget allows: resends may take at most a share of its
//! bandwidth estimate, or of what its link delivered lately if that is more (loss alone pulls
//! the estimate down, just when repair is needed). Without that cap a lossy narrow link is a
//! feedback loop: loss brings NACKs, resends fill the link, more is lost. Padding (bandwidth
//! probes) is never kept or resent; neither is audio (Opus repairs loss with in-band FEC).
//!
//! Kept once per source rather than once per receiver, a room of sixteen cameras keeps a
//! sixteenth of the records it would, and a receiver whose video is held back holds no payloads
//! of its own. Pure: no I/O; the engine sends what it builds. Keeping a packet allocates nothing
//! unless it carries header extensions (browsers' video rarely does).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp;

use super::bandwidth::DownlinkReadings;

/// The most packets kept per source stream: a second of a 5 Mbit/s video.
const HISTORY: usize = 512;
/// How long a packet is kept: a resend later than this comes after the receiver's jitter buffer
/// has given the packet up. Each kept packet holds its payload, so this is most of what a
/// source costs in memory. (The layer switches keep their number mappings as long.)
pub const HISTORY_AGE: Duration = Duration::from_secs(1);
/// How many packets a history grows by at least when full.
const GROWTH: usize = 16;
/// A packet is not resent again sooner than this after its last resend.
const HOLD_OFF: Duration = Duration::from_millis(100);
/// The most lost packets one NACK packet is answered for. A receiver names a few dozen at a time
/// at most; each name costs a lookup, and a NACK packet may name thousands (a pair per four
/// bytes, sixteen packets per pair).
const MOST_NACKED_AT_ONCE: usize = 256;
/// The most resends a receiver's stream remembers for the hold-off.
const RECENT_RESENDS: usize = 256;
/// Resends may use this share of the receiver's bandwidth estimate, or of what its link
/// delivered lately if that is more (loss alone lowers the estimate, and repair is most needed
/// exactly then)...
const BUDGET_SHARE: f64 = 0.3;
/// ...and this much in any case.
const MIN_BUDGET_BPS: f64 = 30_000.0;
/// How much unused budget may accumulate, in time at the budget's rate.
const BUDGET_DEPTH: Duration = Duration::from_millis(250);

/// One packet as it arrived, kept in as few bytes as will rebuild it (48): the stream's SSRC is
/// the history's, times are milliseconds since the history's first packet, the payload is a
/// reference to the buffer it was decrypted into, and header extensions, which video rarely
/// carries, are kept apart ([`Extended`]). (A webrtc-rs packet takes 112 bytes.) CSRCs are not
/// kept: the SFU forwards none.
struct Kept {
    payload: bytes::Bytes,
    arrived_ms: u32,
    timestamp: u32,
    sequence: u16,
    payload_type: u8,
    /// [`MARKER`], [`EXTENDED`].
    flags: u8,
}

const MARKER: u8 = 1;
/// The packet carried header extensions: they are in the history's `extended`.
const EXTENDED: u8 = 2;

/// The header extensions of a kept packet, as the source sent them.
struct Extended {
    sequence: u16,
    profile: u16,
    extensions: Vec<rtp::header::Extension>,
}

/// The packets one source stream (a layer) sent within the last [`HISTORY_AGE`], oldest first.
#[derive(Default)]
pub struct SourceHistory {
    /// When the first packet was kept: the zero of the millisecond times.
    epoch: Option<Instant>,
    kept: VecDeque<Kept>,
    /// The extensions of the kept packets flagged [`EXTENDED`], in the same order.
    extended: VecDeque<Extended>,
}

impl SourceHistory {
    fn millis(&self, now: Instant) -> u32 {
        self.epoch.map_or(0, |epoch| {
            now.saturating_duration_since(epoch)
                .as_millis()
                .min(u128::from(u32::MAX)) as u32
        })
    }

    /// Keeps a packet the source sent (padding is not kept).
    pub fn keep(&mut self, now: Instant, packet: &rtp::Packet) {
        if packet.payload.is_empty() || packet.header.padding {
            return;
        }
        self.epoch.get_or_insert(now);
        self.expire(now);
        if self.kept.len() >= HISTORY {
            self.pop_oldest();
        }
        if self.kept.len() == self.kept.capacity() {
            // A stream's second of packets settles at a few dozen to a couple of hundred; grown
            // by doubling, a history would stand up to half empty.
            self.kept.reserve_exact(GROWTH.max(self.kept.len() / 4));
        }
        let header = &packet.header;
        let mut flags = 0;
        if header.marker {
            flags |= MARKER;
        }
        if !header.extensions.is_empty() {
            flags |= EXTENDED;
            self.extended.push_back(Extended {
                sequence: header.sequence_number,
                profile: header.extension_profile,
                extensions: header.extensions.clone(),
            });
        }
        self.kept.push_back(Kept {
            payload: packet.payload.clone(),
            arrived_ms: self.millis(now),
            timestamp: header.timestamp,
            sequence: header.sequence_number,
            payload_type: header.payload_type,
            flags,
        });
    }

    /// Lets go of what is older than [`HISTORY_AGE`]: called for every packet kept, and now and
    /// then for a source that stopped sending.
    pub fn expire(&mut self, now: Instant) {
        let now_ms = self.millis(now);
        let max_age = HISTORY_AGE.as_millis() as u32;
        while self
            .kept
            .front()
            .is_some_and(|oldest| now_ms.saturating_sub(oldest.arrived_ms) > max_age)
        {
            self.pop_oldest();
        }
        if self.kept.is_empty() && self.kept.capacity() > 0 {
            // A source that stopped gives its history back.
            self.kept = VecDeque::new();
            self.extended = VecDeque::new();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some(oldest) = self.kept.pop_front()
            && oldest.flags & EXTENDED != 0
        {
            self.extended.pop_front();
        }
    }

    /// Where the packet numbered `sequence` is kept.
    fn find(&self, sequence: u16) -> Option<usize> {
        // Sequence numbers run on one by one, so the place is a subtraction away; a gap (loss
        // on the way in, padding) sends the search through the rest, unless the number is
        // outside the first and last kept (a packet that arrived late, behind the first, is
        // then not found: a NACK costs a lookup of at most a few hundred entries this way).
        let newest = self.kept.back()?.sequence;
        let oldest = self.kept.front()?.sequence;
        if sequence.wrapping_sub(oldest) > newest.wrapping_sub(oldest) {
            return None;
        }
        let behind = newest.wrapping_sub(sequence) as usize;
        let guess = self.kept.len().checked_sub(behind + 1);
        match guess {
            Some(at) if self.kept[at].sequence == sequence => Some(at),
            _ => self.kept.iter().rposition(|k| k.sequence == sequence),
        }
    }

    /// The packet numbered `sequence` as the source sent it on stream `ssrc`, if it is kept and
    /// not older than [`HISTORY_AGE`].
    pub fn packet(&self, now: Instant, ssrc: u32, sequence: u16) -> Option<rtp::Packet> {
        let kept = &self.kept[self.find(sequence)?];
        if self.millis(now).saturating_sub(kept.arrived_ms) > HISTORY_AGE.as_millis() as u32 {
            return None;
        }
        let extended = (kept.flags & EXTENDED != 0)
            .then(|| {
                self.extended
                    .iter()
                    .rev()
                    .find(|e| e.sequence == kept.sequence)
            })
            .flatten();
        let extensions = extended.map_or(&[][..], |e| &e.extensions[..]);
        let header = rtp::header::Header {
            version: 2,
            padding: false,
            extension: !extensions.is_empty(),
            marker: kept.flags & MARKER != 0,
            payload_type: kept.payload_type,
            sequence_number: kept.sequence,
            timestamp: kept.timestamp,
            ssrc,
            csrc: Vec::new(),
            extension_profile: extended.map_or(0, |e| e.profile),
            extensions: extensions.to_vec(),
            extensions_padding: 0,
        };
        Some(rtp::Packet {
            header,
            payload: kept.payload.clone(),
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.kept.len()
    }
}

/// The sequence numbers one NACK names, each pair's first and those its bitmap adds, up to
/// [`MOST_NACKED_AT_ONCE`].
pub fn nacked(nack: &TransportLayerNack) -> impl Iterator<Item = u16> + '_ {
    nack.nacks
        .iter()
        .flat_map(|pair| {
            std::iter::once(pair.packet_id).chain(
                (0..16u16)
                    .filter(|i| pair.lost_packets & (1 << i) != 0)
                    .map(|i| pair.packet_id.wrapping_add(i + 1)),
            )
        })
        .take(MOST_NACKED_AT_ONCE)
}

/// What one receiver may spend on resends: a share of its link, topped up as time passes.
pub struct RepairBudget {
    downlink: Arc<DownlinkReadings>,
    /// Bytes the budget allows now, and when it was last topped up.
    allowance: f64,
    topped_up: Option<Instant>,
    pub resent: u64,
    pub refused: u64,
}

impl RepairBudget {
    pub fn new(downlink: Arc<DownlinkReadings>) -> Self {
        Self {
            downlink,
            allowance: 0.0,
            topped_up: None,
            resent: 0,
            refused: 0,
        }
    }

    /// Adds what the time since the last top-up earned, up to the budget's depth.
    pub fn top_up(&mut self, now: Instant) {
        let link_bps = self
            .downlink
            .target_bps()
            .max(self.downlink.delivered_bps());
        let rate_bytes = (BUDGET_SHARE * link_bps as f64).max(MIN_BUDGET_BPS) / 8.0;
        let elapsed = self
            .topped_up
            .map_or(BUDGET_DEPTH, |at| now.saturating_duration_since(at));
        self.allowance = (self.allowance + rate_bytes * elapsed.as_secs_f64())
            .min(rate_bytes * BUDGET_DEPTH.as_secs_f64());
        self.topped_up = Some(now);
    }

    /// Takes `bytes` from the budget if it has them.
    pub fn spend(&mut self, bytes: usize) -> bool {
        if bytes as f64 > self.allowance {
            self.refused += 1;
            return false;
        }
        self.allowance -= bytes as f64;
        self.resent += 1;
        true
    }
}

/// The packets lately resent on one receiver's stream, for the hold-off. Allocates only once a
/// packet has been resent to it.
#[derive(Default)]
pub struct RecentResends {
    recent: VecDeque<(u16, Instant)>,
}

impl RecentResends {
    /// Whether the outgoing packet `sequence` may be resent now.
    pub fn due(&self, now: Instant, sequence: u16) -> bool {
        !self
            .recent
            .iter()
            .any(|&(s, at)| s == sequence && now.saturating_duration_since(at) < HOLD_OFF)
    }

    pub fn note(&mut self, now: Instant, sequence: u16) {
        while self
            .recent
            .front()
            .is_some_and(|&(_, at)| now.saturating_duration_since(at) >= HOLD_OFF)
            || self.recent.len() >= RECENT_RESENDS
        {
            self.recent.pop_front();
        }
        self.recent.push_back((sequence, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair;
    use rtc::shared::marshal::Marshal;

    fn media(sequence: u16, bytes: usize) -> rtp::Packet {
        rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                ssrc: 7,
                sequence_number: sequence,
                ..Default::default()
            },
            payload: vec![1u8; bytes].into(),
        }
    }

    fn budget(estimate_bps: u64) -> RepairBudget {
        let readings = Arc::new(DownlinkReadings::default());
        readings.set_target_for_test(estimate_bps);
        RepairBudget::new(readings)
    }

    #[test]
    fn a_nack_names_its_first_packet_and_those_of_its_bitmap() {
        let nack = TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 7,
            nacks: vec![
                NackPair {
                    packet_id: 65_535,
                    lost_packets: 0b101,
                },
                NackPair {
                    packet_id: 10,
                    lost_packets: 0,
                },
            ],
        };
        assert_eq!(nacked(&nack).collect::<Vec<_>>(), vec![65_535, 0, 2, 10]);
        // A NACK naming thousands is answered for the first few hundred.
        let flood = TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 7,
            nacks: (0..300u16)
                .map(|i| NackPair {
                    packet_id: i * 17,
                    lost_packets: 0xFFFF,
                })
                .collect(),
        };
        assert_eq!(nacked(&flood).count(), MOST_NACKED_AT_ONCE);
    }

    #[test]
    fn a_kept_packet_comes_back_as_the_source_sent_it_byte_for_byte() {
        let mut h = SourceHistory::default();
        let mut sent = media(42, 300);
        sent.header.marker = true;
        sent.header.payload_type = 96;
        sent.header.timestamp = 123_456;
        sent.header.extension = true;
        sent.header.extension_profile = 0xBEDE;
        sent.header
            .set_extension(3, Bytes::from_static(&[0x12]))
            .unwrap();
        let now = Instant::now();
        h.keep(now, &sent);
        h.keep(now, &media(43, 300));
        let again = h.packet(now, 7, 42).expect("kept");
        assert_eq!(again.marshal().unwrap(), sent.marshal().unwrap());
        assert_eq!(
            h.packet(now, 7, 43).unwrap().marshal().unwrap(),
            media(43, 300).marshal().unwrap()
        );
        assert!(h.packet(now, 7, 44).is_none(), "never sent");
        assert!(h.packet(now, 7, 41).is_none(), "before the first");
        // After a gap (a packet lost on the way in) the rest are found all the same.
        h.keep(now, &media(45, 300));
        assert!(h.packet(now, 7, 43).is_some());
        assert!(h.packet(now, 7, 45).is_some());
        assert!(h.packet(now, 7, 44).is_none(), "lost on the way in");
    }

    #[test]
    fn packets_are_kept_for_a_second_and_at_most_a_few_hundred() {
        let mut h = SourceHistory::default();
        let t = Instant::now();
        h.keep(t, &media(1, 100));
        h.keep(t + HISTORY_AGE / 2, &media(2, 100));
        let past = t + HISTORY_AGE + Duration::from_millis(1);
        assert!(
            h.packet(past, 7, 1).is_none(),
            "too old to be worth resending"
        );
        assert!(h.packet(past, 7, 2).is_some());
        h.keep(past, &media(3, 100));
        assert_eq!(h.len(), 2, "the first went when the next was kept");
        // A source that stops gives its history back.
        h.expire(t + HISTORY_AGE * 3);
        assert_eq!((h.len(), h.kept.capacity()), (0, 0));
        // Never more than HISTORY, however fast they come; across a wrap of the numbers too.
        let now = t + HISTORY_AGE * 4;
        for i in 0..(HISTORY as u16 + 10) {
            h.keep(now, &media(65_500u16.wrapping_add(i), 10));
        }
        assert_eq!(h.len(), HISTORY);
        assert!(h.packet(now, 7, 65_500).is_none(), "the oldest were let go");
        assert!(
            h.packet(now, 7, 65_500u16.wrapping_add(HISTORY as u16 + 9))
                .is_some()
        );
    }

    #[test]
    fn extensions_kept_apart_leave_with_their_packets_and_come_back_with_them() {
        let mut h = SourceHistory::default();
        let now = Instant::now();
        let mut originals = std::collections::HashMap::new();
        // Every third packet carries an extension; more packets than the history keeps.
        for sequence in 0..(HISTORY as u16 + 40) {
            let mut sent = media(sequence, 200);
            if sequence % 3 == 0 {
                sent.header.extension = true;
                sent.header.extension_profile = 0xBEDE;
                sent.header
                    .set_extension(3, Bytes::copy_from_slice(&sequence.to_be_bytes()))
                    .unwrap();
            }
            originals.insert(sequence, sent.marshal().unwrap());
            h.keep(now, &sent);
        }
        assert_eq!(
            h.extended.len(),
            h.kept.iter().filter(|k| k.flags & EXTENDED != 0).count(),
            "the extensions left with their packets"
        );
        for sequence in [
            HISTORY as u16 + 39,
            HISTORY as u16 + 38,
            HISTORY as u16 + 36,
        ] {
            let again = h.packet(now, 7, sequence).expect("kept");
            assert_eq!(again.marshal().unwrap(), originals[&sequence], "{sequence}");
        }
    }

    #[test]
    fn padding_is_never_kept() {
        let mut h = SourceHistory::default();
        let now = Instant::now();
        h.keep(now, &media(5, 0));
        let mut padded = media(6, 40);
        padded.header.padding = true;
        h.keep(now, &padded);
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn a_packet_is_resent_to_a_receiver_once_per_hold_off() {
        let mut r = RecentResends::default();
        let t = Instant::now();
        assert!(r.due(t, 101));
        r.note(t, 101);
        assert!(
            !r.due(t + Duration::from_millis(20), 101),
            "asked again too soon"
        );
        assert!(r.due(t + Duration::from_millis(20), 102));
        assert!(r.due(t + HOLD_OFF, 101));
        // Bounded, and what is past the hold-off goes.
        for i in 0..1000u16 {
            r.note(t + HOLD_OFF, i);
        }
        assert_eq!(r.recent.len(), RECENT_RESENDS);
        r.note(t + HOLD_OFF * 2, 5);
        assert_eq!(r.recent.len(), 1);
    }

    #[test]
    fn resends_stay_within_a_share_of_the_estimate() {
        // 600 kbit/s: 30 % is 180 kbit/s; 250 ms of that is 5.6 kB, five packets of 1000 bytes
        // and their headers.
        let mut b = budget(600_000);
        let t = Instant::now();
        b.top_up(t);
        let sent = (0..17).filter(|_| b.spend(1012)).count();
        assert_eq!((sent, b.refused), (5, 12));
        // A second later the budget has refilled, to its depth again.
        b.top_up(t + Duration::from_secs(1));
        assert_eq!((0..17).filter(|_| b.spend(1012)).count(), 5);
    }

    #[test]
    fn under_loss_the_budget_follows_what_the_link_delivers_not_the_fallen_estimate() {
        // Loss has pulled the estimate down to 100 kbit/s while the link still delivers
        // 600 kbit/s: repair gets 30 % of the 600, as in the test above.
        let mut b = budget(100_000);
        b.downlink.set_delivered_for_test(600_000);
        b.top_up(Instant::now());
        assert_eq!((0..17).filter(|_| b.spend(1012)).count(), 5);
    }

    #[test]
    fn a_kept_packet_takes_48_bytes() {
        // Hundreds are kept per source stream (see `Kept`).
        assert!(std::mem::size_of::<Kept>() <= 48);
    }
}
