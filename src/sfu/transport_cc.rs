//! Transport-wide congestion control on what the SFU sends to one receiver: numbering every
//! packet, remembering when it left, and turning the receiver's feedback into reports for the
//! bandwidth estimator.
//!
//! Sits in the `rtc` interceptor chain at the wire-most slot, in place of `rtc`'s TWCC sender and
//! congestion-control interceptors, which do the same job with three hash maps per packet sent
//! and a two-second history (about a megabyte per receiver in a full room). Here the history is a
//! ring indexed by the transport-wide sequence number itself: recording a packet is a store,
//! matching feedback is a subtraction, and the ring grows only while feedback lags behind what
//! was sent. Nothing here allocates per packet; feedback (a few times a second) allocates its
//! list of acknowledgements.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::interceptor::{
    Attribute, BandwidthEstimator, Interceptor, Packet, PacketReport, StreamInfo, TaggedPacket,
    convert_twcc,
};
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::sansio::Protocol;
use rtc::sdp::description::media::EXT_MAP_VALUE_TRANSPORT_CC_URI as TRANSPORT_CC_URI;
use rtc::shared::marshal::MarshalSize;

/// The ring starts this small (a receiver of one stream needs no more)...
const INITIAL_CAPACITY: usize = 256;
/// ...and grows up to this while feedback lags (a power of two that divides 2^16, so a sequence
/// number names one slot).
const MAX_CAPACITY: usize = 16_384;
/// A packet not yet reported on is worth keeping this long. Older ones are given up: they no
/// longer make the ring grow, and feedback that resumes after a stall does not report them as
/// lost (silence is no evidence of loss).
const KEEP_UNREPORTED: Duration = Duration::from_secs(2);

/// How long the ring must have been at most half full before it is halved: feedback comes
/// every few tens of milliseconds, and right after each the ring is all but empty, so judged on
/// the moment it would shrink and grow again a few times a second (copying itself each time).
const SHRINK_AFTER: Duration = Duration::from_millis(500);

/// Room kept for the reports of one feedback packet (a tenth of a second of a full room).
const REPORTS_KEPT: usize = 256;

/// Every transport-wide sequence number as the two big-endian bytes of its header extension, so
/// that stamping a packet points into this table instead of allocating.
static SEQUENCE_BYTES: [u8; 2 * 65_536] = {
    let mut table = [0u8; 2 * 65_536];
    let mut i = 0;
    while i < 65_536 {
        table[2 * i] = (i >> 8) as u8;
        table[2 * i + 1] = i as u8;
        i += 1;
    }
    table
};

const EMPTY: Sent = Sent {
    id: u64::MAX,
    departure_ns: 0,
    arrival_ns: NOT_REPORTED,
    size: 0,
    ssrc: 0,
    rtp_sequence: 0,
    arrived: false,
};

fn sequence_extension(sequence: u16) -> Bytes {
    let at = 2 * sequence as usize;
    Bytes::from_static(&SEQUENCE_BYTES[at..at + 2])
}

/// One packet sent, in 40 bytes (times as nanoseconds: an `Instant` and an `Option<Duration>`
/// would take 32 of their own).
#[derive(Clone, Copy)]
struct Sent {
    /// The packet's place in the endless count behind the 16-bit sequence number; `u64::MAX`
    /// for a slot never used.
    id: u64,
    /// Since the history's epoch.
    departure_ns: u64,
    /// On the receiver's clock, as its feedback says; `NOT_REPORTED` until then.
    arrival_ns: u64,
    size: u32,
    ssrc: u32,
    rtp_sequence: u16,
    arrived: bool,
}

const NOT_REPORTED: u64 = u64::MAX;

/// What was sent, by transport-wide sequence number, until feedback has said what became of it.
/// Pure: no I/O, no clock of its own.
pub struct SendHistory {
    epoch: Instant,
    slots: Vec<Sent>,
    /// The id the next packet gets; its low 16 bits are its sequence number.
    next_id: u64,
    /// The newest id feedback reported as arrived.
    highest_arrived: Option<u64>,
    /// The oldest id not handed to the estimator yet.
    next_to_report: u64,
    /// The most packets that were unreported at once since `checked`.
    most_unreported: u64,
    /// When the ring's size was last judged (the history's epoch to begin with).
    checked: Instant,
}

impl SendHistory {
    pub fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            slots: vec![EMPTY; INITIAL_CAPACITY],
            next_id: 0,
            highest_arrived: None,
            next_to_report: 0,
            most_unreported: 0,
            checked: epoch,
        }
    }

    fn nanos_since_epoch(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch)
            .as_nanos()
            .min(u128::from(u64::MAX - 1)) as u64
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn mask(&self) -> u64 {
        self.slots.len() as u64 - 1
    }

    /// Records a packet leaving now; returns the transport-wide sequence number it carries.
    pub fn record(&mut self, now: Instant, ssrc: u32, rtp_sequence: u16, size: usize) -> u16 {
        let id = self.next_id;
        let now_ns = self.nanos_since_epoch(now);
        let displaced = self.slots[(id & self.mask()) as usize];
        if displaced.id != u64::MAX
            && displaced.id >= self.next_to_report
            && now_ns.saturating_sub(displaced.departure_ns) < KEEP_UNREPORTED.as_nanos() as u64
            && self.slots.len() < MAX_CAPACITY
        {
            self.grow();
        }
        let mask = self.mask();
        self.slots[(id & mask) as usize] = Sent {
            id,
            departure_ns: now_ns,
            arrival_ns: NOT_REPORTED,
            size: size.min(u32::MAX as usize) as u32,
            ssrc,
            rtp_sequence,
            arrived: false,
        };
        self.next_id += 1;
        self.most_unreported = self
            .most_unreported
            .max(self.next_id.saturating_sub(self.next_to_report));
        id as u16
    }

    fn grow(&mut self) {
        self.resize(self.slots.len() * 2);
    }

    /// Gives back what a stall made the ring grow to, once feedback has kept up for a while:
    /// at most every [`SHRINK_AFTER`], halved if no more than half of it was unreported at any
    /// time since: the half still holds the most that was (growth comes only when a packet
    /// would overwrite one unreported, so the two do not chase each other).
    fn shrink_if_idle(&mut self, now: Instant) {
        if now.saturating_duration_since(self.checked) < SHRINK_AFTER {
            return;
        }
        if self.slots.len() > INITIAL_CAPACITY && self.most_unreported < self.slots.len() as u64 / 2
        {
            self.resize(self.slots.len() / 2);
        }
        self.checked = now;
        self.most_unreported = self.next_id.saturating_sub(self.next_to_report);
    }

    /// Moves the newest `capacity` records into a ring of that size.
    fn resize(&mut self, capacity: usize) {
        let mut slots = vec![EMPTY; capacity];
        let mask = capacity as u64 - 1;
        let oldest = self.next_id.saturating_sub(capacity as u64);
        for sent in self
            .slots
            .iter()
            .filter(|s| s.id != u64::MAX && s.id >= oldest)
        {
            slots[(sent.id & mask) as usize] = *sent;
        }
        self.slots = slots;
    }

    /// Applies what feedback says of one sequence number. Feedback on a packet no longer kept
    /// (or never sent) is ignored.
    pub fn acknowledge(&mut self, sequence: u16, arrived: bool, arrival: Option<Duration>) {
        let Some(newest) = self.next_id.checked_sub(1) else {
            return;
        };
        let behind = (newest as u16).wrapping_sub(sequence) as u64;
        if behind >= self.slots.len() as u64 || behind > newest {
            return;
        }
        let id = newest - behind;
        let mask = self.mask();
        let sent = &mut self.slots[(id & mask) as usize];
        if sent.id != id || id < self.next_to_report {
            return;
        }
        sent.arrived = arrived;
        sent.arrival_ns = arrival.map_or(NOT_REPORTED, |a| {
            a.as_nanos().min(u128::from(NOT_REPORTED - 1)) as u64
        });
        if arrived {
            self.highest_arrived = Some(self.highest_arrived.map_or(id, |h| h.max(id)));
        }
    }

    /// Appends to `out`, in send order, every packet up to the newest one reported as arrived
    /// that was not reported before; those not reported as arrived count as lost, unless they
    /// left more than [`KEEP_UNREPORTED`] before `now`: after a long gap in feedback, silence
    /// about old packets is no evidence that they were lost.
    pub fn take_reports(&mut self, now: Instant, out: &mut Vec<PacketReport>) {
        let Some(highest) = self.highest_arrived else {
            return;
        };
        let oldest_kept = self.next_id.saturating_sub(self.slots.len() as u64);
        let stale_before = self
            .nanos_since_epoch(now)
            .saturating_sub(KEEP_UNREPORTED.as_nanos() as u64);
        let mask = self.mask();
        for id in self.next_to_report.max(oldest_kept)..=highest {
            let sent = self.slots[(id & mask) as usize];
            if sent.id != id || (!sent.arrived && sent.departure_ns < stale_before) {
                continue;
            }
            out.push(PacketReport {
                ssrc: sent.ssrc,
                id,
                rtp_sequence_number: sent.rtp_sequence,
                is_twcc: true,
                twcc_sequence_number: id as u16,
                size: sent.size as usize,
                arrived: sent.arrived,
                departure: self.epoch + Duration::from_nanos(sent.departure_ns),
                arrival: (sent.arrival_ns != NOT_REPORTED)
                    .then(|| Duration::from_nanos(sent.arrival_ns)),
                ecn: Default::default(),
            });
        }
        self.next_to_report = self.next_to_report.max(highest + 1);
        self.shrink_if_idle(now);
    }
}

/// The interceptor: stamps, records, and feeds the estimator.
pub struct TransportCc<E: BandwidthEstimator> {
    estimator: E,
    history: SendHistory,
    /// The transport-cc extension id of each stream this connection sends, by SSRC (sorted).
    streams: Vec<(u32, u8)>,
    /// Reused for every feedback packet.
    reports: Vec<PacketReport>,
    last_target: f64,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl<E: BandwidthEstimator> TransportCc<E> {
    pub fn new(now: Instant, estimator: E) -> Self {
        Self {
            last_target: estimator.target_bitrate(),
            estimator,
            history: SendHistory::new(now),
            streams: Vec::new(),
            reports: Vec::new(),
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }

    fn extension_id(&self, ssrc: u32) -> Option<u8> {
        self.streams
            .binary_search_by_key(&ssrc, |&(s, _)| s)
            .ok()
            .map(|at| self.streams[at].1)
    }

    /// Applies every transport-wide feedback packet of one compound RTCP packet, then hands the
    /// estimator what they settled, in one batch. Returns whether there was any.
    fn on_compound(&mut self, now: Instant, packets: &[Box<dyn rtc::rtcp::Packet>]) -> bool {
        let mut any = false;
        for packet in packets {
            if let Some(feedback) = packet.as_any().downcast_ref::<TransportLayerCc>() {
                any = true;
                for ack in convert_twcc(feedback) {
                    self.history
                        .acknowledge(ack.sequence_number, ack.arrived, ack.arrival);
                }
            }
        }
        if !any {
            return false;
        }
        self.history.take_reports(now, &mut self.reports);
        if !self.reports.is_empty() {
            self.estimator.on_reports(now, &self.reports);
        }
        self.reports.clear();
        // The first feedback after a stall can name a thousand packets; do not keep room for
        // that for the rest of the call.
        self.reports.shrink_to(REPORTS_KEPT);
        true
    }
}

impl<E: BandwidthEstimator> Protocol<TaggedPacket, TaggedPacket, ()> for TransportCc<E> {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        let fed = match &msg.message.packet {
            Packet::Rtcp(packets) => self.on_compound(msg.now, packets),
            _ => false,
        };
        // As webrtc-rs's own controller does: the connection's statistics show the estimate.
        let target = self.estimator.target_bitrate();
        if fed && target != self.last_target {
            self.last_target = target;
            msg.message.add(Attribute::TargetBitrateChanged {
                bits_per_second: target,
            });
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

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.estimator.handle_timeout(now);
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Self::Time> {
        self.estimator.poll_timeout()
    }
}

impl<E: BandwidthEstimator> Interceptor for TransportCc<E> {
    /// Outbound RTP is stamped and recorded where it lies.
    fn writes_in_place(&self) -> bool {
        true
    }

    fn write_in_place(&mut self, msg: &mut TaggedPacket) -> Result<(), rtc::shared::error::Error> {
        if let Packet::Rtp(packet) = &mut msg.message.packet
            && let Some(extension_id) = self.extension_id(packet.header.ssrc)
        {
            // The number is known only once the packet is recorded, and the size only once it
            // carries the number: stamp with a placeholder of the same length first. A packet
            // that cannot carry the extension is not recorded: it would only ever count as lost.
            if packet
                .header
                .set_extension(extension_id, sequence_extension(0))
                .is_err()
            {
                return Ok(());
            }
            let sequence = self.history.record(
                msg.now,
                packet.header.ssrc,
                packet.header.sequence_number,
                packet.marshal_size(),
            );
            let _ = packet
                .header
                .set_extension(extension_id, sequence_extension(sequence));
        }
        Ok(())
    }

    fn bind_local_stream(&mut self, info: &StreamInfo) {
        let Some(id) = info
            .rtp_header_extensions
            .iter()
            .find(|e| e.uri == TRANSPORT_CC_URI)
            .map(|e| e.id)
        else {
            return;
        };
        let Ok(id) = u8::try_from(id) else {
            return;
        };
        if id == 0 {
            return;
        }
        match self.streams.binary_search_by_key(&info.ssrc, |&(s, _)| s) {
            Ok(at) => self.streams[at].1 = id,
            Err(at) => self.streams.insert(at, (info.ssrc, id)),
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        if let Ok(at) = self.streams.binary_search_by_key(&info.ssrc, |&(s, _)| s) {
            self.streams.remove(at);
        }
    }

    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A stream that carries the transport-wide number as extension 5.
    fn numbered_stream(ssrc: u32) -> StreamInfo {
        StreamInfo {
            ssrc,
            rtp_header_extensions: vec![rtc::interceptor::RTPHeaderExtension {
                uri: TRANSPORT_CC_URI.into(),
                id: 5,
            }],
            ..Default::default()
        }
    }

    fn outbound(now: Instant, ssrc: u32, sequence_number: u16) -> TaggedPacket {
        TaggedPacket {
            now,
            transport: rtc::shared::TransportContext::default(),
            message: rtc::interceptor::AttributedPacket::new(Packet::Rtp(rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    ssrc,
                    sequence_number,
                    ..Default::default()
                },
                payload: vec![0u8; 100].into(),
            })),
        }
    }

    /// The transport-wide number a packet left with, if any.
    fn number_of(out: TaggedPacket) -> Option<Vec<u8>> {
        let Packet::Rtp(p) = out.message.packet else {
            panic!("not RTP")
        };
        p.header.get_extension(5).map(|b| b.to_vec())
    }

    #[test]
    fn a_record_takes_forty_bytes() {
        assert_eq!(std::mem::size_of::<Sent>(), 40);
    }

    #[test]
    fn the_extension_table_holds_each_number_big_endian() {
        assert_eq!(&sequence_extension(0)[..], &[0, 0]);
        assert_eq!(&sequence_extension(0x1234)[..], &[0x12, 0x34]);
        assert_eq!(&sequence_extension(u16::MAX)[..], &[0xFF, 0xFF]);
    }

    #[test]
    fn feedback_reports_in_send_order_and_what_was_not_acknowledged_is_lost() {
        let t = Instant::now();
        let mut h = SendHistory::new(t);
        for i in 0..5u16 {
            assert_eq!(h.record(t + ms(i as u64), 7, 100 + i, 1200), i);
        }
        h.acknowledge(1, true, Some(ms(40)));
        h.acknowledge(3, true, Some(ms(43)));
        h.acknowledge(2, false, None);
        let mut out = Vec::new();
        h.take_reports(t, &mut out);
        let seen: Vec<(u16, bool)> = out
            .iter()
            .map(|r| (r.rtp_sequence_number, r.arrived))
            .collect();
        assert_eq!(
            seen,
            [(100, false), (101, true), (102, false), (103, true)],
            "up to the newest arrival, oldest first"
        );
        assert_eq!(out[3].departure, t + ms(3));
        assert_eq!(out[3].arrival, Some(ms(43)));
        assert_eq!(out[3].size, 1200);
        out.clear();
        h.take_reports(t, &mut out);
        assert!(out.is_empty(), "each packet is reported once");
        h.acknowledge(4, true, Some(ms(44)));
        h.take_reports(t, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].twcc_sequence_number, 4);
    }

    #[test]
    fn feedback_on_numbers_never_sent_or_long_gone_is_ignored() {
        let t = Instant::now();
        let mut h = SendHistory::new(t);
        let mut out = Vec::new();
        h.acknowledge(0, true, Some(ms(1)));
        h.take_reports(t, &mut out);
        assert!(out.is_empty(), "nothing sent yet");
        h.record(t, 1, 0, 100);
        h.acknowledge(5, true, Some(ms(1)));
        h.take_reports(t, &mut out);
        assert!(out.is_empty(), "5 was never sent");
    }

    #[test]
    fn after_a_long_silence_old_packets_are_not_reported_as_lost() {
        let t = Instant::now();
        let mut h = SendHistory::new(t);
        for i in 0..10u16 {
            h.record(t, 1, i, 1000);
        }
        let later = t + Duration::from_secs(3);
        let last = h.record(later, 1, 10, 1000);
        h.acknowledge(last, true, Some(ms(1)));
        let mut out = Vec::new();
        h.take_reports(later, &mut out);
        assert_eq!(
            out.len(),
            1,
            "feedback stalled for 3 s says nothing of the first ten"
        );
        assert!(out[0].arrived);
    }

    #[test]
    fn sequence_numbers_wrap_and_still_match() {
        let t = Instant::now();
        let mut h = SendHistory::new(t);
        let mut out = Vec::new();
        for i in 0..70_000u32 {
            let now = t + Duration::from_micros(u64::from(i) * 500);
            let seq = h.record(now, 1, i as u16, 1000);
            assert_eq!(seq, i as u16);
            // Feedback for the packet before, as a receiver would send it.
            if i > 0 {
                h.acknowledge(seq.wrapping_sub(1), true, Some(ms(1)));
                out.clear();
                h.take_reports(t, &mut out);
                assert_eq!(out.len(), 1, "at packet {i}");
                assert_eq!(out[0].id, u64::from(i) - 1);
            }
        }
        assert_eq!(
            h.capacity(),
            INITIAL_CAPACITY,
            "prompt feedback needs no growth"
        );
    }

    #[test]
    fn the_ring_grows_while_feedback_lags_and_gives_up_packets_older_than_two_seconds() {
        let t = Instant::now();
        let mut h = SendHistory::new(t);
        // 1000 packets in 100 ms, no feedback yet: nothing may be overwritten.
        for i in 0..1000u64 {
            h.record(t + Duration::from_micros(i * 100), 1, i as u16, 1000);
        }
        assert_eq!(h.capacity(), 1024);
        h.acknowledge(999, true, Some(ms(100)));
        let mut out = Vec::new();
        h.take_reports(t, &mut out);
        assert_eq!(out.len(), 1000, "every packet sent is accounted for");
        assert_eq!(out.iter().filter(|r| r.arrived).count(), 1);

        assert_eq!(h.capacity(), 1024, "caught up, but the stall is recent");
        // Feedback keeps up for a while: a packet a millisecond, a report every 50 ms.
        let mut at = t + ms(100);
        let mut reported = 0;
        let mut id = 1000u64;
        for _ in 0..90 {
            for _ in 0..50 {
                at += ms(1);
                let seq = h.record(at, 1, id as u16, 1000);
                h.acknowledge(seq, true, Some(at - t));
                id += 1;
            }
            out.clear();
            h.take_reports(at, &mut out);
            reported += out.len();
            // The first judgement still sees the stall; the next, a while of little use.
            if at < t + SHRINK_AFTER * 2 {
                assert_eq!(h.capacity(), 1024, "too early at {:?}", at - t);
            }
        }
        assert_eq!(reported, 90 * 50, "nothing lost in the shrinking");
        assert_eq!(
            h.capacity(),
            INITIAL_CAPACITY,
            "given back, a half at a time, once the ring was little used for a while"
        );

        // A receiver that never answers: old packets are overwritten, not kept for ever.
        let mut h = SendHistory::new(t);
        for i in 0..100_000u64 {
            h.record(t + ms(i), 1, i as u16, 1000);
        }
        assert!(h.capacity() <= 4096, "ring of {} slots", h.capacity());
    }

    /// In webrtc-rs's chain outbound packets are numbered in place (`write_in_place`), not
    /// through `handle_write`.
    #[test]
    fn in_the_interceptor_chain_packets_are_numbered_in_place() {
        use rtc::interceptor::{Registry, Slot};

        struct Silent;
        impl BandwidthEstimator for Silent {
            fn on_reports(&mut self, _now: Instant, _reports: &[PacketReport]) {}
            fn target_bitrate(&self) -> f64 {
                0.0
            }
        }
        let t = Instant::now();
        assert!(TransportCc::new(t, Silent).writes_in_place());
        let mut chain = Registry::new()
            .with(Slot::CongestionControl, TransportCc::new(t, Silent))
            .build();
        chain.bind_local_stream(&numbered_stream(9));
        let mut numbers = Vec::new();
        for i in 0..3u16 {
            chain.handle_write(outbound(t, 9, 500 + i)).unwrap();
            while let Some(out) = chain.poll_write() {
                numbers.push(number_of(out));
            }
        }
        assert_eq!(
            numbers,
            [Some(vec![0, 0]), Some(vec![0, 1]), Some(vec![0, 2])]
        );
    }

    #[test]
    fn the_interceptor_stamps_numbers_and_feeds_the_estimator() {
        use rtc::interceptor::AttributedPacket;
        use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
            PacketStatusChunk, RecvDelta, RunLengthChunk, StatusChunkTypeTcc, SymbolTypeTcc,
        };
        use rtc::shared::TransportContext;
        use std::sync::{Arc, Mutex};

        #[derive(Clone, Default)]
        struct Recorder(Arc<Mutex<Vec<PacketReport>>>);
        impl BandwidthEstimator for Recorder {
            fn on_reports(&mut self, _now: Instant, reports: &[PacketReport]) {
                self.0.lock().unwrap().extend_from_slice(reports);
            }
            fn target_bitrate(&self) -> f64 {
                0.0
            }
        }

        let t = Instant::now();
        let recorder = Recorder::default();
        let mut cc = TransportCc::new(t, recorder.clone());
        cc.bind_local_stream(&numbered_stream(9));
        let mut numbers = Vec::new();
        for (i, ssrc) in [(0u16, 9u32), (1, 9), (2, 4)] {
            cc.handle_write(outbound(t, ssrc, 500 + i)).unwrap();
            numbers.push(number_of(cc.poll_write().unwrap()));
        }
        assert_eq!(
            numbers,
            [Some(vec![0, 0]), Some(vec![0, 1]), None],
            "streams without the extension are not numbered"
        );

        let feedback = TransportLayerCc {
            sender_ssrc: 1,
            media_ssrc: 9,
            base_sequence_number: 0,
            packet_status_count: 2,
            reference_time: 1,
            fb_pkt_count: 0,
            packet_chunks: vec![PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                packet_status_symbol: SymbolTypeTcc::PacketReceivedSmallDelta,
                run_length: 2,
            })],
            recv_deltas: vec![
                RecvDelta {
                    type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
                    delta: 1000,
                },
                RecvDelta {
                    type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
                    delta: 2000,
                },
            ],
        };
        cc.handle_read(TaggedPacket {
            now: t + ms(50),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(feedback)])),
        })
        .unwrap();
        assert!(cc.poll_read().is_some(), "feedback passes on");
        let reports = recorder.0.lock().unwrap().clone();
        assert_eq!(reports.len(), 2);
        assert!(reports.iter().all(|r| r.arrived && r.ssrc == 9));
        assert_eq!(
            reports[1].arrival.unwrap() - reports[0].arrival.unwrap(),
            ms(2),
            "arrival deltas carried through"
        );
        assert_eq!(
            reports[0].size,
            12 + 4 + 4 + 100,
            "size includes the stamped extension"
        );
    }
}
