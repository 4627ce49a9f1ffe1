//! Answering a receiver's NACKs: resending lost packets from what was sent to it, without letting
//! repair make the loss worse.
//!
//! Every media packet the SFU sends to a receiver is kept for a second (at most 256 per outgoing
//! stream). A NACK names packets the receiver misses; each is resent if it is still kept, has
//! not been resent in the last `HOLD_OFF` (a receiver that asks again before the first resend can
//! have arrived would otherwise double it), and the stream's repair budget allows: resends may
//! take at most a share of the receiver's bandwidth estimate, or of what its link delivered
//! lately if that is more (loss alone pulls the estimate down, just when repair is needed).
//! Without that cap a lossy narrow link is a feedback loop: loss brings NACKs, resends fill the
//! link, more is lost. Padding (bandwidth probes) is never kept or resent.
//!
//! Sits in the `rtc` interceptor chain in place of its NACK responder, which resends without
//! either limit. Keeping a packet allocates nothing unless it carries end-to-end header
//! extensions (browsers' video rarely does).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::{
    Attribute, AttributedPacket, Interceptor, Packet, StreamInfo, TaggedPacket,
};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp;
use rtc::sansio::Protocol;
use rtc::shared::TransportContext;
use rtc::shared::marshal::MarshalSize;

use super::bandwidth::DownlinkReadings;

/// The most packets kept per outgoing stream: a second of a 2.5 Mbit/s video.
const HISTORY: usize = 256;
/// How long a packet is kept: a resend later than this comes after the receiver's jitter buffer
/// has given the packet up. Each kept packet holds its payload's buffer, so keeping by time (a
/// 500 kbit/s camera needs about 60) rather than by count is most of a receiver's memory.
const HISTORY_AGE: Duration = Duration::from_secs(1);
/// How many packets a history grows by at least when full.
const GROWTH: usize = 16;
/// A packet is not resent again sooner than this after its last resend.
const HOLD_OFF: Duration = Duration::from_millis(100);
/// Resends may use this share of the receiver's bandwidth estimate, or of what its link
/// delivered lately if that is more (loss alone lowers the estimate, and repair is most needed
/// exactly then)...
const BUDGET_SHARE: f64 = 0.3;
/// ...and this much in any case.
const MIN_BUDGET_BPS: f64 = 30_000.0;
/// How much unused budget may accumulate, in time at the budget's rate.
const BUDGET_DEPTH: Duration = Duration::from_millis(250);

/// One packet as sent, kept in as few bytes as will rebuild it (48): the stream's SSRC is the
/// history's key, times are milliseconds since the history's first packet, the payload is a
/// reference to the buffer every receiver of the packet shares, and header extensions, which
/// forwarded video rarely carries, are kept apart ([`Extended`]). (A webrtc-rs packet takes 112
/// bytes, and a full room keeps thousands per receiver.) CSRCs are not kept: the SFU forwards
/// none.
struct Kept {
    payload: bytes::Bytes,
    sent_ms: u32,
    /// `NEVER` until resent.
    resent_ms: u32,
    timestamp: u32,
    sequence: u16,
    payload_type: u8,
    /// [`MARKER`], [`PADDING`], [`EXTENDED`].
    flags: u8,
}

const MARKER: u8 = 1;
const PADDING: u8 = 2;
/// The packet carried header extensions: they are in the history's `extended`.
const EXTENDED: u8 = 4;

/// The header extensions a kept packet carried before the transport-wide number was stamped on
/// the way out (a resend gets a number of its own).
struct Extended {
    sequence: u16,
    profile: u16,
    extensions: Vec<rtp::header::Extension>,
}

const NEVER: u32 = u32::MAX;

/// The packets sent on one stream within the last [`HISTORY_AGE`], oldest first.
#[derive(Default)]
struct History {
    /// When the first packet was kept: the zero of the millisecond times.
    epoch: Option<Instant>,
    kept: VecDeque<Kept>,
    /// The extensions of the kept packets flagged [`EXTENDED`], in the same order.
    extended: VecDeque<Extended>,
}

impl History {
    fn millis(&mut self, now: Instant) -> u32 {
        let epoch = *self.epoch.get_or_insert(now);
        now.saturating_duration_since(epoch)
            .as_millis()
            .min(u128::from(NEVER - 1)) as u32
    }

    fn keep(&mut self, now: Instant, packet: &rtp::Packet) {
        let now_ms = self.millis(now);
        let max_age = HISTORY_AGE.as_millis() as u32;
        while let Some(oldest) = self.kept.front() {
            if self.kept.len() < HISTORY && now_ms.saturating_sub(oldest.sent_ms) <= max_age {
                break;
            }
            if oldest.flags & EXTENDED != 0 {
                self.extended.pop_front();
            }
            self.kept.pop_front();
        }
        if self.kept.len() == self.kept.capacity() {
            // A stream's second of packets settles at a few dozen to a couple of hundred; grown
            // by doubling, a history would stand up to half empty in every receiver's memory.
            self.kept.reserve_exact(GROWTH.max(self.kept.len() / 4));
        }
        let header = &packet.header;
        let mut flags = 0;
        if header.marker {
            flags |= MARKER;
        }
        if header.padding {
            flags |= PADDING;
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
            sent_ms: now_ms,
            resent_ms: NEVER,
            timestamp: header.timestamp,
            sequence: header.sequence_number,
            payload_type: header.payload_type,
            flags,
        });
    }

    /// Where the packet numbered `sequence` is kept.
    fn find(&self, sequence: u16) -> Option<usize> {
        // Sequence numbers run on one by one, so the place is a subtraction away; a gap (padding
        // is never kept) sends the search through the rest.
        let newest = self.kept.back()?.sequence;
        let behind = newest.wrapping_sub(sequence) as usize;
        let guess = self.kept.len().checked_sub(behind + 1);
        match guess {
            Some(at) if self.kept[at].sequence == sequence => Some(at),
            _ => self.kept.iter().rposition(|k| k.sequence == sequence),
        }
    }

    /// The packet kept at `at`, rebuilt to be sent again on the stream `ssrc`.
    fn packet(&self, at: usize, ssrc: u32) -> rtp::Packet {
        let kept = &self.kept[at];
        let extended = (kept.flags & EXTENDED != 0)
            .then(|| {
                self.extended
                    .iter()
                    .rev()
                    .find(|e| e.sequence == kept.sequence)
            })
            .flatten();
        let extensions = extended.map_or(&[][..], |e| &e.extensions[..]);
        let mut header = rtp::header::Header {
            version: 2,
            padding: kept.flags & PADDING != 0,
            extension: !extensions.is_empty(),
            marker: kept.flags & MARKER != 0,
            payload_type: kept.payload_type,
            sequence_number: kept.sequence,
            timestamp: kept.timestamp,
            ssrc,
            csrc: Vec::new(),
            extension_profile: extended.map_or(0, |e| e.profile),
            extensions: Vec::with_capacity(extensions.len() + 1),
            extensions_padding: 0,
        };
        header.extensions.extend_from_slice(extensions);
        if header.extension {
            let used = header.get_extension_payload_len();
            header.extensions_padding = (4 - used % 4) % 4;
        }
        rtp::Packet {
            header,
            payload: kept.payload.clone(),
        }
    }
}

/// Resends what receivers report lost, within a hold-off and a budget.
pub struct Retransmitter {
    /// By the server's own SSRCs, looked up for every packet sent: foldhash rather than SipHash,
    /// whose flooding resistance keys chosen here do not need.
    streams: HashMap<u32, History, foldhash::fast::RandomState>,
    downlink: Arc<DownlinkReadings>,
    /// Bytes the budget allows now, and when it was last topped up.
    allowance: f64,
    topped_up: Option<Instant>,
    resent: u64,
    refused: u64,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl Retransmitter {
    pub fn new(downlink: Arc<DownlinkReadings>) -> Self {
        Self {
            streams: HashMap::default(),
            downlink,
            allowance: 0.0,
            topped_up: None,
            resent: 0,
            refused: 0,
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }

    fn top_up(&mut self, now: Instant) {
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

    fn on_nack(&mut self, now: Instant, nack: &TransportLayerNack) {
        self.top_up(now);
        let Some(history) = self.streams.get_mut(&nack.media_ssrc) else {
            return;
        };
        for pair in &nack.nacks {
            let lost = std::iter::once(pair.packet_id).chain(
                (0..16u16)
                    .filter(|i| pair.lost_packets & (1 << i) != 0)
                    .map(|i| pair.packet_id.wrapping_add(i + 1)),
            );
            for sequence in lost {
                let now_ms = history.millis(now);
                let Some(at) = history.find(sequence) else {
                    continue;
                };
                let resent_ms = history.kept[at].resent_ms;
                if resent_ms != NEVER
                    && now_ms.saturating_sub(resent_ms) < HOLD_OFF.as_millis() as u32
                {
                    continue;
                }
                let packet = history.packet(at, nack.media_ssrc);
                let size = packet.marshal_size() as f64;
                if size > self.allowance {
                    self.refused += 1;
                    continue;
                }
                self.allowance -= size;
                history.kept[at].resent_ms = now_ms;
                self.resent += 1;
                self.write_queue.push_back(TaggedPacket {
                    now,
                    transport: TransportContext::default(),
                    message: AttributedPacket::new(Packet::Rtp(packet))
                        .with(Attribute::Retransmission),
                });
            }
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for Retransmitter {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for packet in packets {
                if let Some(nack) = packet.as_any().downcast_ref::<TransportLayerNack>() {
                    self.on_nack(msg.now, nack);
                }
            }
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_in_place(&mut msg)?;
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for Retransmitter {
    /// Outbound packets are only copied into the history.
    fn writes_in_place(&self) -> bool {
        true
    }

    fn write_in_place(&mut self, msg: &mut TaggedPacket) -> Result<(), rtc::shared::error::Error> {
        if let Packet::Rtp(packet) = &msg.message.packet
            && !packet.payload.is_empty()
            && let Some(history) = self.streams.get_mut(&packet.header.ssrc)
        {
            history.keep(msg.now, packet);
        }
        Ok(())
    }

    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if info
            .rtcp_feedback
            .iter()
            .any(|fb| fb.typ == "nack" && fb.parameter.is_empty())
        {
            self.streams.insert(info.ssrc, History::default());
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.streams.remove(&info.ssrc);
    }

    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair;

    fn media(sequence: u16, bytes: usize) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtp(rtp::Packet {
                header: rtp::header::Header {
                    version: 2,
                    ssrc: 7,
                    sequence_number: sequence,
                    ..Default::default()
                },
                payload: vec![0u8; bytes].into(),
            })),
        }
    }

    fn nack(now: Instant, first: u16, bitmap: u16) -> TaggedPacket {
        TaggedPacket {
            now,
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(TransportLayerNack {
                sender_ssrc: 1,
                media_ssrc: 7,
                nacks: vec![NackPair {
                    packet_id: first,
                    lost_packets: bitmap,
                }],
            })])),
        }
    }

    fn resent(r: &mut Retransmitter) -> Vec<u16> {
        let mut out = Vec::new();
        while let Some(msg) = r.poll_write() {
            if let Packet::Rtp(p) = &msg.message.packet
                && msg.message.has(&Attribute::Retransmission)
            {
                out.push(p.header.sequence_number);
            }
        }
        out
    }

    fn retransmitter(estimate_bps: u64) -> Retransmitter {
        let readings = Arc::new(DownlinkReadings::default());
        readings.set_target_for_test(estimate_bps);
        let mut r = Retransmitter::new(readings);
        r.bind_local_stream(&StreamInfo {
            ssrc: 7,
            rtcp_feedback: vec![rtc::interceptor::RTCPFeedback {
                typ: "nack".into(),
                parameter: String::new(),
            }],
            ..Default::default()
        });
        r
    }

    #[test]
    fn a_lost_packet_is_resent_once_per_hold_off() {
        let mut r = retransmitter(2_000_000);
        for sequence in 100..110 {
            r.handle_write(media(sequence, 1000)).unwrap();
        }
        let _ = resent(&mut r);
        let t = Instant::now();
        // 101, and 103 by the bitmap (bit 1 = 101 + 2).
        r.handle_read(nack(t, 101, 0b10)).unwrap();
        assert_eq!(resent(&mut r), vec![101, 103]);
        r.handle_read(nack(t + Duration::from_millis(20), 101, 0))
            .unwrap();
        assert_eq!(resent(&mut r), Vec::<u16>::new(), "asked again too soon");
        r.handle_read(nack(t + HOLD_OFF, 101, 0)).unwrap();
        assert_eq!(resent(&mut r), vec![101]);
        r.handle_read(nack(t + HOLD_OFF, 300, 0)).unwrap();
        assert_eq!(resent(&mut r), Vec::<u16>::new(), "never sent");
    }

    /// In webrtc-rs's chain the history is written in place (`write_in_place`), not through
    /// `handle_write`: what it keeps that way is what it resends.
    #[test]
    fn in_the_interceptor_chain_packets_are_kept_in_place_and_resent() {
        use rtc::interceptor::{Registry, Slot};
        let mut chain = Registry::new()
            .with(Slot::NackResponder, retransmitter(2_000_000))
            .build();
        assert!(retransmitter(2_000_000).writes_in_place());
        for sequence in 100..110 {
            chain.handle_write(media(sequence, 1000)).unwrap();
        }
        let mut passed = 0;
        while let Some(msg) = chain.poll_write() {
            assert!(!msg.message.has(&Attribute::Retransmission));
            passed += 1;
        }
        assert_eq!(passed, 10, "every packet went on");
        chain.handle_read(nack(Instant::now(), 101, 0b10)).unwrap();
        let mut again = Vec::new();
        while let Some(msg) = chain.poll_write() {
            if let Packet::Rtp(p) = &msg.message.packet
                && msg.message.has(&Attribute::Retransmission)
            {
                again.push(p.header.sequence_number);
            }
        }
        assert_eq!(again, vec![101, 103]);
    }

    #[test]
    fn resends_stay_within_a_share_of_the_estimate() {
        // 600 kbit/s: 30 % is 180 kbit/s; 250 ms of that is 5.6 kB, five packets of 1000 bytes
        // and their headers.
        let mut r = retransmitter(600_000);
        for sequence in 0..40 {
            r.handle_write(media(sequence, 1000)).unwrap();
        }
        let _ = resent(&mut r);
        let t = Instant::now();
        r.handle_read(nack(t, 0, 0xFFFF)).unwrap();
        assert_eq!(resent(&mut r).len(), 5);
        assert_eq!(r.refused, 12);
        // A second later the budget has refilled, to its depth again.
        r.handle_read(nack(t + Duration::from_secs(1), 20, 0xFFFF))
            .unwrap();
        assert_eq!(resent(&mut r).len(), 5);
    }

    #[test]
    fn under_loss_the_budget_follows_what_the_link_delivers_not_the_fallen_estimate() {
        // Loss has pulled the estimate down to 100 kbit/s while the link still delivers
        // 600 kbit/s: repair gets 30 % of the 600, as in the test above.
        let mut r = retransmitter(100_000);
        r.downlink.set_delivered_for_test(600_000);
        for sequence in 0..40 {
            r.handle_write(media(sequence, 1000)).unwrap();
        }
        let _ = resent(&mut r);
        r.handle_read(nack(Instant::now(), 0, 0xFFFF)).unwrap();
        assert_eq!(resent(&mut r).len(), 5);
    }

    #[test]
    fn packets_are_kept_for_a_second_and_at_most_a_few_hundred() {
        let mut r = retransmitter(50_000_000);
        let t = Instant::now();
        let at = |sequence: u16, when: Instant| {
            let mut m = media(sequence, 100);
            m.now = when;
            m
        };
        r.handle_write(at(1, t)).unwrap();
        r.handle_write(at(2, t + HISTORY_AGE / 2)).unwrap();
        // Past the age, the first goes when the next is kept.
        r.handle_write(at(3, t + HISTORY_AGE + Duration::from_millis(1)))
            .unwrap();
        let _ = resent(&mut r);
        let later = t + HISTORY_AGE * 2;
        r.handle_read(nack(later, 1, 0b11)).unwrap();
        assert_eq!(resent(&mut r), vec![2, 3]);
        // Never more than HISTORY, however fast they come; across a wrap of the numbers too.
        let now = Instant::now();
        for i in 0..(HISTORY as u16 + 10) {
            r.handle_write(at(65_500u16.wrapping_add(i), now)).unwrap();
        }
        let _ = resent(&mut r);
        assert_eq!(r.streams[&7].kept.len(), HISTORY);
        r.handle_read(nack(now, 65_500, 0)).unwrap();
        assert!(resent(&mut r).is_empty(), "the oldest were let go");
        r.handle_read(nack(now, 65_500u16.wrapping_add(HISTORY as u16 + 9), 0))
            .unwrap();
        assert_eq!(resent(&mut r).len(), 1);
    }

    #[test]
    fn a_resent_packet_is_the_packet_sent_byte_for_byte() {
        use rtc::shared::marshal::Marshal;
        let mut r = retransmitter(2_000_000);
        let mut sent = media(42, 300);
        if let Packet::Rtp(p) = &mut sent.message.packet {
            p.header.marker = true;
            p.header.payload_type = 96;
            p.header.timestamp = 123_456;
            p.header.extension = true;
            p.header.extension_profile = 0xBEDE;
            p.header
                .set_extension(3, Bytes::from_static(&[0x12]))
                .unwrap();
        }
        let Packet::Rtp(original) = sent.message.packet.clone() else {
            unreachable!()
        };
        r.handle_write(sent).unwrap();
        let _ = r.poll_write();
        r.handle_read(nack(Instant::now(), 42, 0)).unwrap();
        let _ = r.poll_read();
        let again = r.poll_write().expect("resent");
        let Packet::Rtp(again) = again.message.packet else {
            panic!("not RTP")
        };
        assert_eq!(again.marshal().unwrap(), original.marshal().unwrap());
    }

    #[test]
    fn extensions_kept_apart_leave_with_their_packets_and_come_back_with_them() {
        use rtc::shared::marshal::Marshal;
        let mut r = retransmitter(50_000_000);
        let now = Instant::now();
        let mut originals = HashMap::new();
        // Every third packet carries an extension; more packets than the history keeps.
        for sequence in 0..(HISTORY as u16 + 40) {
            let mut sent = media(sequence, 200);
            sent.now = now;
            if let Packet::Rtp(p) = &mut sent.message.packet
                && sequence % 3 == 0
            {
                p.header.extension = true;
                p.header.extension_profile = 0xBEDE;
                p.header
                    .set_extension(3, Bytes::copy_from_slice(&sequence.to_be_bytes()))
                    .unwrap();
            }
            if let Packet::Rtp(p) = &sent.message.packet {
                originals.insert(sequence, p.marshal().unwrap());
            }
            r.handle_write(sent).unwrap();
        }
        let _ = resent(&mut r);
        let history = &r.streams[&7];
        assert_eq!(
            history.extended.len(),
            history
                .kept
                .iter()
                .filter(|k| k.flags & EXTENDED != 0)
                .count(),
            "the extensions left with their packets"
        );
        for sequence in [
            HISTORY as u16 + 39,
            HISTORY as u16 + 38,
            HISTORY as u16 + 36,
        ] {
            r.handle_read(nack(now, sequence, 0)).unwrap();
            let _ = r.poll_read();
            let Packet::Rtp(again) = r.poll_write().expect("resent").message.packet else {
                panic!("not RTP")
            };
            assert_eq!(again.marshal().unwrap(), originals[&sequence], "{sequence}");
        }
    }

    #[test]
    fn padding_is_never_kept() {
        let mut r = retransmitter(2_000_000);
        r.handle_write(media(5, 0)).unwrap();
        let _ = resent(&mut r);
        r.handle_read(nack(Instant::now(), 5, 0)).unwrap();
        assert!(resent(&mut r).is_empty());
    }

    #[test]
    fn a_kept_packet_takes_48_bytes() {
        // Thousands are kept per receiver in a full room (see `Kept`).
        assert!(std::mem::size_of::<Kept>() <= 48);
    }
}
