//! Rewriting a publisher's RTP header for one subscriber's connection.
//!
//! Each connection negotiates its own payload types and header-extension ids, and each outgoing
//! track has its own SSRC, so a forwarded packet gets the subscriber's SSRC, the subscriber's
//! payload type for the same codec, and only the header extensions that make sense end to end,
//! renumbered. Hop-by-hop extensions (transport-wide sequence numbers, mid, rid) are dropped:
//! they describe the publisher's connection, not the subscriber's. Pure; per packet and
//! subscriber its one allocation is the new header's extension list (a webrtc-rs header owns it).

use rtc::rtp;

/// Header extensions that describe the media itself and so survive forwarding.
pub const END_TO_END_EXTENSIONS: &[&str] = &[
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "urn:3gpp:video-orientation",
    "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
];

const NO_PAYLOAD_TYPE: u8 = 0xFF;

/// A codec as negotiated on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedCodec {
    pub payload_type: u8,
    /// Lower case, e.g. `video/vp8`.
    pub mime_type: String,
    pub fmtp: String,
}

/// The per-subscriber rewrite of one forwarded stream.
#[derive(Clone)]
pub struct Rewrite {
    ssrc: u32,
    payload_types: [u8; 128],
    extension_ids: [u8; 256],
}

impl std::fmt::Debug for Rewrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewrite").field("ssrc", &self.ssrc).finish()
    }
}

impl Rewrite {
    /// Builds the rewrite from what the publisher's and the subscriber's connections negotiated.
    /// `extensions` are `(id, uri)` pairs.
    pub fn new(
        ssrc: u32,
        publisher_codecs: &[NegotiatedCodec],
        subscriber_codecs: &[NegotiatedCodec],
        publisher_extensions: &[(u8, String)],
        subscriber_extensions: &[(u8, String)],
    ) -> Self {
        let mut rewrite = Self {
            ssrc,
            payload_types: [NO_PAYLOAD_TYPE; 128],
            extension_ids: [0; 256],
        };
        for codec in publisher_codecs {
            let same_mime = |c: &&NegotiatedCodec| c.mime_type == codec.mime_type;
            let target = subscriber_codecs
                .iter()
                .filter(same_mime)
                .find(|c| c.fmtp == codec.fmtp)
                .or_else(|| subscriber_codecs.iter().find(same_mime));
            if let Some(target) = target
                && codec.payload_type < 128
            {
                rewrite.payload_types[codec.payload_type as usize] = target.payload_type;
            }
        }
        for (id, uri) in publisher_extensions {
            if !END_TO_END_EXTENSIONS.contains(&uri.as_str()) {
                continue;
            }
            if let Some((target, _)) = subscriber_extensions.iter().find(|(_, u)| u == uri) {
                rewrite.extension_ids[*id as usize] = *target;
            }
        }
        rewrite
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The header `header` gets on the subscriber's connection, or `None` when the subscriber
    /// cannot receive this packet's payload type (the packet must then not be sent). Built
    /// afresh rather than cloned and trimmed, with its extensions in `extensions`: a list the
    /// connection hands back from a packet it has sent (`take_extension_list`), so that a
    /// copy costs no allocation once the first few have gone. Room is made for the
    /// transport-wide sequence number stamped on the way out.
    pub fn rewritten(
        &self,
        header: &rtp::header::Header,
        mut extensions: Vec<rtp::header::Extension>,
    ) -> Option<rtp::header::Header> {
        let pt = self
            .payload_types
            .get(header.payload_type as usize)
            .copied()
            .unwrap_or(NO_PAYLOAD_TYPE);
        if pt == NO_PAYLOAD_TYPE {
            return None;
        }
        extensions.clear();
        extensions.reserve(header.extensions.len() + 1);
        extensions.extend(header.extensions.iter().filter_map(|ext| {
            let id = self.extension_ids[ext.id as usize];
            (id != 0).then(|| rtp::header::Extension {
                id,
                payload: ext.payload.clone(),
            })
        }));
        let mut out = rtp::header::Header {
            version: header.version,
            padding: header.padding,
            extension: !extensions.is_empty(),
            marker: header.marker,
            payload_type: pt,
            sequence_number: header.sequence_number,
            timestamp: header.timestamp,
            ssrc: self.ssrc,
            // The SFU is not a mixer: what it sends has no contributing sources (browsers send
            // none either), and its retransmissions keep none.
            csrc: Vec::new(),
            extension_profile: header.extension_profile,
            extensions,
            extensions_padding: 0,
        };
        if out.extension {
            // Marshalling sizes the packet with this padding: it must match what is left, or
            // the packet grows by stale padding bytes that receivers read as payload.
            let used = out.get_extension_payload_len();
            out.extensions_padding = (4 - used % 4) % 4;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn codec(pt: u8, mime: &str, fmtp: &str) -> NegotiatedCodec {
        NegotiatedCodec {
            payload_type: pt,
            mime_type: mime.into(),
            fmtp: fmtp.into(),
        }
    }

    fn header(pt: u8, exts: &[(u8, &'static [u8])]) -> rtp::header::Header {
        rtp::header::Header {
            version: 2,
            payload_type: pt,
            ssrc: 1111,
            sequence_number: 7,
            timestamp: 99,
            extension: !exts.is_empty(),
            extension_profile: 0xBEDE,
            extensions: exts
                .iter()
                .map(|(id, p)| rtp::header::Extension {
                    id: *id,
                    payload: Bytes::from_static(p),
                })
                .collect(),
            ..Default::default()
        }
    }

    const LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
    const TWCC: &str = rtc::sdp::description::media::EXT_MAP_VALUE_TRANSPORT_CC_URI;

    #[test]
    fn maps_payload_type_ssrc_and_extensions() {
        let rewrite = Rewrite::new(
            4242,
            &[codec(111, "audio/opus", "minptime=10;useinbandfec=1")],
            &[codec(109, "audio/opus", "minptime=10;useinbandfec=1")],
            &[(1, LEVEL.into()), (3, TWCC.into())],
            &[(5, LEVEL.into()), (2, TWCC.into())],
        );
        let h = rewrite
            .rewritten(&header(111, &[(1, b"\x80"), (3, b"\x00\x01")]), Vec::new())
            .unwrap();
        assert_eq!(h.payload_type, 109);
        assert_eq!(h.ssrc, 4242);
        assert_eq!(h.sequence_number, 7, "sequence numbers pass through");
        assert_eq!(h.timestamp, 99);
        assert_eq!(h.extensions.len(), 1, "transport-cc is hop-by-hop");
        assert_eq!(h.extensions[0].id, 5);
        assert!(h.extension);

        // A list handed back from a sent packet brings its room, not its contents.
        let mut used = Vec::with_capacity(4);
        used.push(rtp::header::Extension {
            id: 9,
            payload: bytes::Bytes::from_static(b"old"),
        });
        let room = used.as_ptr();
        let h = rewrite
            .rewritten(&header(111, &[(1, b"\x80")]), used)
            .unwrap();
        assert_eq!(h.extensions.len(), 1);
        assert_eq!(
            (h.extensions[0].id, &h.extensions[0].payload[..]),
            (5, &b"\x80"[..])
        );
        assert_eq!(h.extensions.as_ptr(), room, "the list's own room is used");
    }

    #[test]
    fn removing_extensions_keeps_the_packet_size_exact() {
        use rtc::shared::marshal::{Marshal, MarshalSize, Unmarshal};
        let rewrite = Rewrite::new(
            9,
            &[codec(111, "audio/opus", "")],
            &[codec(111, "audio/opus", "")],
            &[(1, LEVEL.into()), (3, TWCC.into())],
            &[(1, LEVEL.into())],
        );
        // As a browser sends it: transport-cc (2 bytes) and audio level (1 byte), padded.
        for wire_exts in [vec![(3u8, 2usize), (1, 1)], vec![(3, 2), (4, 1), (1, 1)]] {
            let mut raw = vec![0x90, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 5, 0xBE, 0xDE];
            let mut block = Vec::new();
            for (id, len) in &wire_exts {
                block.push((id << 4) | (*len as u8 - 1));
                block.extend(std::iter::repeat_n(0x11, *len));
            }
            while block.len() % 4 != 0 {
                block.push(0);
            }
            raw.extend_from_slice(&((block.len() / 4) as u16).to_be_bytes());
            raw.extend_from_slice(&block);
            raw.extend_from_slice(&[0xF8, 0xFF, 0xFE]);
            let mut packet = rtp::Packet::unmarshal(&mut raw.as_slice()).unwrap();
            packet.header = rewrite.rewritten(&packet.header, Vec::new()).unwrap();
            let bytes = packet.marshal().unwrap();
            assert_eq!(bytes.len(), packet.marshal_size());
            let again = rtp::Packet::unmarshal(&mut &bytes[..]).unwrap();
            assert_eq!(&again.payload[..], &[0xF8, 0xFF, 0xFE], "payload intact");
            assert_eq!(again.header.extensions.len(), 1);
        }
    }

    #[test]
    fn prefers_the_codec_with_the_same_parameters() {
        let rewrite = Rewrite::new(
            1,
            &[codec(102, "video/h264", "profile-level-id=42e01f")],
            &[
                codec(100, "video/h264", "profile-level-id=640c1f"),
                codec(106, "video/h264", "profile-level-id=42e01f"),
            ],
            &[],
            &[],
        );
        let h = rewrite.rewritten(&header(102, &[]), Vec::new()).unwrap();
        assert_eq!(h.payload_type, 106);
    }

    #[test]
    fn unknown_payload_types_are_not_forwarded() {
        let rewrite = Rewrite::new(
            1,
            &[codec(96, "video/vp8", "")],
            &[codec(96, "video/vp8", "")],
            &[],
            &[],
        );
        assert!(rewrite.rewritten(&header(97, &[]), Vec::new()).is_none());
        assert!(rewrite.rewritten(&header(127, &[]), Vec::new()).is_none());
        let h = rewrite
            .rewritten(&header(96, &[(4, b"mid")]), Vec::new())
            .unwrap();
        assert!(h.extensions.is_empty());
        assert!(!h.extension);
    }
}
