//! RTCP parsing and routing: a compound packet as `rtc` unmarshals it after SRTCP, through the
//! parts of the receiving chain that are Zaal's own. Transport-wide feedback goes to the
//! congestion controller (`TransportCc`, with a send history of numbered packets and the
//! bandwidth estimator behind it), the tap (`FeedbackTap`) marks keyframe requests and NACKs
//! for the media core, and the core's reading of them (`is_keyframe_request`, `as_nack`,
//! `nacked`) looks the NACKed packets up in a source's history, as `Core::on_nack` does.
//!
//! Input: the decrypted compound packet. Beyond not panicking: exactly the compounds holding a
//! PLI, FIR or NACK reach the core; one NACK names at most 256 packets; a looked-up packet is
//! the one named; the estimator's figures stay in range.

#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtc::interceptor::{
    Attribute, AttributedPacket, Interceptor, Packet, RTPHeaderExtension, StreamInfo, TaggedPacket,
};
use rtc::rtp;
use rtc::sansio::Protocol;
use rtc::shared::TransportContext;
use zaal::sfu::fuzzing::{
    DownlinkEstimator, DownlinkReadings, FeedbackTap, SourceHistory, TransportCc, as_nack,
    is_keyframe_request, nacked,
};

const TRANSPORT_CC: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
/// The outgoing stream the seeds' feedback and NACKs are about.
const SSRC: u32 = 0x0102_0304;
const SENT: u16 = 64;
/// `retransmit::MOST_NACKED_AT_ONCE`.
const MOST_NACKED_AT_ONCE: usize = 256;

fn tagged(now: Instant, packet: Packet) -> TaggedPacket {
    TaggedPacket {
        now,
        transport: TransportContext::default(),
        message: AttributedPacket::new(packet),
    }
}

fn media(sequence_number: u16) -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            payload_type: 96,
            ssrc: SSRC,
            sequence_number,
            timestamp: u32::from(sequence_number) * 3000,
            ..Default::default()
        },
        payload: Bytes::from_static(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut &data[..]) else {
        return;
    };
    if packets.is_empty() {
        return; // `rtc` refuses an empty compound before the chain.
    }

    let start = Instant::now();
    let readings = Arc::new(DownlinkReadings::default());
    let mut cc = TransportCc::new(start, DownlinkEstimator::new(readings.clone()));
    cc.bind_local_stream(&StreamInfo {
        ssrc: SSRC,
        rtp_header_extensions: vec![RTPHeaderExtension {
            uri: TRANSPORT_CC.into(),
            id: 3,
        }],
        ..Default::default()
    });
    let mut history = SourceHistory::default();
    for sequence in 0..SENT {
        let at = start + Duration::from_millis(u64::from(sequence) * 5);
        let packet = media(sequence);
        history.keep(at, &packet);
        let mut out = tagged(at, Packet::Rtp(packet));
        cc.write_in_place(&mut out).expect("numbering never fails");
    }

    let now = start + Duration::from_millis(u64::from(SENT) * 5 + 40);
    cc.handle_read(tagged(now, Packet::Rtcp(packets)))
        .expect("the controller takes any RTCP");
    let read = cc.poll_read().expect("the controller passes RTCP on");
    let mut tap = FeedbackTap::default();
    tap.handle_read(read).expect("the tap takes any RTCP");
    let read = tap.poll_read().expect("the tap passes RTCP on");
    assert!(cc.poll_read().is_none() && tap.poll_read().is_none());
    cc.handle_timeout(now + Duration::from_millis(100))
        .expect("the estimator's timer");
    assert!((0.0..=1.0).contains(&readings.loss()));
    let _ = (readings.target_bps(), readings.delivered_bps());

    let Packet::Rtcp(packets) = &read.message.packet else {
        panic!("RTCP came out as RTP");
    };
    let for_the_core = packets
        .iter()
        .any(|p| is_keyframe_request(p.as_ref()) || as_nack(p.as_ref()).is_some());
    assert_eq!(
        read.message.has(&Attribute::DeliverToApplication),
        for_the_core
    );
    for nack in packets.iter().filter_map(|p| as_nack(p.as_ref())) {
        let mut named = 0;
        for sequence in nacked(nack) {
            named += 1;
            if let Some(packet) = history.packet(now, nack.media_ssrc, sequence) {
                assert_eq!(packet.header.sequence_number, sequence);
                assert_eq!(packet.header.ssrc, nack.media_ssrc);
            }
        }
        assert!(named <= MOST_NACKED_AT_ONCE);
    }
});
