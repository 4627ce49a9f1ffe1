//! RTP rewriting and header-extension remapping: a published packet as `rtc` unmarshals it after
//! SRTP, through what the forwarding path does with it for one subscriber. The layer switch
//! numbers it, the source's history keeps it, `Rewrite::rewritten` gives it the subscriber's
//! SSRC, payload type and extension ids, and it is marshalled as the sender does; a NACK for it
//! rebuilds it from the history (`SourceHistory::packet`) and rewrites it again. The voice
//! meter reads its audio level; the frame inspection its payload.
//!
//! Input: eight bytes of negotiation, then the packet. They are the publisher's ids for the
//! three end-to-end extensions (any of 1–255: the client's offer chooses them), the
//! subscriber's (distinct ids of 1–14: the server's own offer chooses them; 0 leaves one
//! out), and the publisher's payload types
//! for VP8 and Opus. Beyond not panicking: a rewritten packet marshals to exactly its size and
//! back; it carries the subscriber's SSRC, a payload type negotiated for the same codec, and
//! only end-to-end extensions, renumbered, with their payloads intact; a resend is the same
//! packet.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rtc::rtp;
use rtc::shared::marshal::{Marshal, MarshalSize, Unmarshal};
use zaal::sfu::fuzzing::{
    END_TO_END_EXTENSIONS, LayerSwitch, NegotiatedCodec, Rewrite, SourceHistory, VideoCodec,
    VoiceMeter, keyframe_start,
};

const TRANSPORT_CC: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
const MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
const SUBSCRIBER_SSRC: u32 = 0x5eed_f00d;

fn codec(payload_type: u8, mime: &str, fmtp: &str) -> NegotiatedCodec {
    NegotiatedCodec {
        payload_type,
        mime_type: mime.into(),
        fmtp: fmtp.into(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((negotiation, mut raw)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Ok(packet) = rtp::Packet::unmarshal(&mut raw) else {
        return;
    };

    let publisher_codecs = [
        codec(
            negotiation[7] & 0x7f,
            "audio/opus",
            "minptime=10;useinbandfec=1",
        ),
        codec(negotiation[6] & 0x7f, "video/vp8", ""),
        codec(
            102,
            "video/h264",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ),
    ];
    let subscriber_codecs = [
        codec(111, "audio/opus", "minptime=10;useinbandfec=1;usedtx=1"),
        codec(96, "video/vp8", ""),
        codec(
            102,
            "video/h264",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ),
        codec(
            108,
            "video/h264",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
        ),
    ];
    // Hop-by-hop extensions where browsers put them; the fuzzed ids may collide with them.
    let mut publisher_extensions = vec![
        (3, TRANSPORT_CC.to_owned()),
        (4, MID.to_owned()),
        (10, RID.to_owned()),
    ];
    // The subscriber's ids come from the server's own offer: one-byte ids, each used once.
    let mut subscriber_extensions = vec![(3, TRANSPORT_CC.to_owned())];
    let mut free: Vec<u8> = (1..=14).filter(|id| *id != 3).collect();
    for (k, uri) in END_TO_END_EXTENSIONS.iter().enumerate() {
        if negotiation[k] != 0 {
            publisher_extensions.push((negotiation[k], (*uri).to_owned()));
        }
        if negotiation[3 + k] != 0 {
            let id = free.remove(usize::from(negotiation[3 + k]) % free.len());
            subscriber_extensions.push((id, (*uri).to_owned()));
        }
    }
    let rewrite = Rewrite::new(
        SUBSCRIBER_SSRC,
        &publisher_codecs,
        &subscriber_codecs,
        &publisher_extensions,
        &subscriber_extensions,
    );

    let header = &packet.header;
    let mime = publisher_codecs
        .iter()
        .find(|c| c.payload_type == header.payload_type)
        .map(|c| c.mime_type.as_str());
    let video = mime.is_some_and(|m| m.starts_with("video/"));
    let keyframe = keyframe_start(
        VideoCodec::from_mime(mime.unwrap_or_default()),
        &packet.payload,
    );
    let mut voice = VoiceMeter::new(negotiation[0]);
    voice.observe(header);
    let share = voice.take_share();
    assert!((0.0..=1.0).contains(&share));

    let now = Instant::now();
    let mut switch = LayerSwitch::default();
    switch.set_target(now, Some(header.ssrc));
    // Video goes through the receiver's layer switch, which drops it until a keyframe.
    let numbers = if video {
        let numbers = switch.map(
            now,
            header.ssrc,
            header.sequence_number,
            header.timestamp,
            keyframe.is_some(),
            header.marker,
        );
        if numbers.is_none() {
            return;
        }
        numbers
    } else {
        None
    };
    let mut history = SourceHistory::default();
    if numbers.is_some() {
        history.keep(now, &packet);
    }

    let Some(mut rewritten) = rewrite.rewritten(header, Vec::new()) else {
        assert!(
            mime.is_none(),
            "a negotiated codec the subscriber also has is forwarded"
        );
        return;
    };
    if let Some(numbers) = numbers {
        rewritten.sequence_number = numbers.sequence;
        rewritten.timestamp = numbers.timestamp;
    }
    holds_the_rewrite(
        &rewritten,
        header,
        &publisher_extensions,
        &subscriber_extensions,
    );
    let forwarded = rtp::Packet {
        header: rewritten,
        payload: packet.payload.clone(),
    };
    round_trips(&forwarded);

    // A NACK for the forwarded packet, answered as `Core::on_nack` does.
    let later = now + Duration::from_millis(30);
    let Some(numbers) = numbers else {
        return;
    };
    let Some(origin) = switch.origin(later, numbers.sequence) else {
        return;
    };
    assert_eq!(
        (origin.layer, origin.sequence),
        (header.ssrc, header.sequence_number)
    );
    let Some(original) = history.packet(later, origin.layer, origin.sequence) else {
        assert!(
            packet.payload.is_empty() || header.padding,
            "a kept packet is found"
        );
        return;
    };
    let mut resent = rewrite
        .rewritten(&original.header, Vec::new())
        .expect("what was forwarded can be resent");
    resent.sequence_number = numbers.sequence;
    resent.timestamp = original.header.timestamp.wrapping_add(origin.ts_offset);
    assert_eq!(resent.timestamp, forwarded.header.timestamp);
    assert_eq!(resent.payload_type, forwarded.header.payload_type);
    assert_eq!(resent.marker, forwarded.header.marker);
    assert_eq!(resent.extensions, forwarded.header.extensions);
    let resend = rtp::Packet {
        header: resent,
        payload: original.payload,
    };
    assert_eq!(resend.payload, forwarded.payload);
    round_trips(&resend);
});

fn holds_the_rewrite(
    rewritten: &rtp::header::Header,
    original: &rtp::header::Header,
    publisher_extensions: &[(u8, String)],
    subscriber_extensions: &[(u8, String)],
) {
    assert_eq!(rewritten.ssrc, SUBSCRIBER_SSRC);
    assert!(rewritten.csrc.is_empty());
    assert_eq!(rewritten.extension, !rewritten.extensions.is_empty());
    for extension in &rewritten.extensions {
        let uri = subscriber_extensions
            .iter()
            .find(|(id, _)| *id == extension.id)
            .map(|(_, uri)| uri.as_str())
            .expect("an id the subscriber negotiated");
        assert!(END_TO_END_EXTENSIONS.contains(&uri), "{uri} is hop-by-hop");
        let from = original.extensions.iter().find(|e| {
            e.payload == extension.payload
                && publisher_extensions
                    .iter()
                    .any(|(id, u)| *id == e.id && u == uri)
        });
        assert!(from.is_some(), "extension {} has no source", extension.id);
    }
}

fn round_trips(packet: &rtp::Packet) {
    let bytes = packet.marshal().expect("a rewritten packet marshals");
    assert_eq!(bytes.len(), packet.marshal_size(), "marshalled size");
    let again = rtp::Packet::unmarshal(&mut &bytes[..]).expect("and unmarshals");
    assert_eq!(again.payload, packet.payload);
    assert_eq!(again.header.ssrc, packet.header.ssrc);
    assert_eq!(again.header.payload_type, packet.header.payload_type);
    assert_eq!(again.header.sequence_number, packet.header.sequence_number);
    assert_eq!(again.header.extensions, packet.header.extensions);
}
