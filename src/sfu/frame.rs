//! What the SFU reads from a video payload: whether a packet starts a keyframe, and the picture
//! size a VP8 keyframe announces.
//!
//! A receiver can only be switched to another simulcast layer at a keyframe of that layer, and
//! the SFU needs to know where one starts. It reads the few header bytes that say so (RFC 7741
//! for VP8, RFC 6184 for H.264) and nothing else of the media: it never decodes, never copies a
//! payload and never allocates. Pure, so it is tested without a connection.

/// The codecs whose keyframes the SFU recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    H264,
    /// Anything else: treated as never starting a keyframe, so it is never switched.
    Other,
}

impl VideoCodec {
    pub fn from_mime(mime: &str) -> Self {
        if mime.eq_ignore_ascii_case("video/vp8") {
            Self::Vp8
        } else if mime.eq_ignore_ascii_case("video/h264") {
            Self::H264
        } else {
            Self::Other
        }
    }
}

/// A keyframe's first packet, and what it says about the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyframeStart {
    /// The coded height in pixels, when the codec says it in the first packet (VP8 does).
    pub height: Option<u16>,
}

/// Whether `payload` is the first packet of a keyframe.
pub fn keyframe_start(codec: VideoCodec, payload: &[u8]) -> Option<KeyframeStart> {
    match codec {
        VideoCodec::Vp8 => vp8_keyframe_start(payload),
        VideoCodec::H264 => h264_keyframe_start(payload),
        VideoCodec::Other => None,
    }
}

/// RFC 7741 section 4.2: the payload descriptor, then (at the start of partition 0) the VP8
/// frame tag whose lowest bit is 0 for a keyframe, followed by the start code and the size.
fn vp8_keyframe_start(payload: &[u8]) -> Option<KeyframeStart> {
    let first = *payload.first()?;
    let extended = first & 0x80 != 0;
    let start_of_partition = first & 0x10 != 0;
    let partition = first & 0x07;
    if !start_of_partition || partition != 0 {
        return None;
    }
    let mut at = 1;
    if extended {
        let x = *payload.get(at)?;
        at += 1;
        if x & 0x80 != 0 {
            // Picture id: 7 bits, or 15 when its first bit is set.
            let long = *payload.get(at)? & 0x80 != 0;
            at += if long { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            at += 1; // TID / KEYIDX
        }
    }
    let frame = payload.get(at..)?;
    let tag = *frame.first()?;
    if tag & 0x01 != 0 {
        return None;
    }
    // A keyframe's tag (3 bytes) is followed by 9d 01 2a and the 14-bit width and height.
    let height = match frame.get(3..10) {
        Some([0x9d, 0x01, 0x2a, _, _, lo, hi]) => Some(u16::from_le_bytes([*lo, *hi]) & 0x3fff),
        _ => None,
    };
    Some(KeyframeStart { height })
}

/// RFC 6184: an IDR slice or a sequence parameter set at the start of a single NAL unit, inside
/// an aggregation packet (STAP-A), or in the first fragment of a fragmented unit (FU-A).
fn h264_keyframe_start(payload: &[u8]) -> Option<KeyframeStart> {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    const STAP_A: u8 = 24;
    const FU_A: u8 = 28;
    let first = *payload.first()?;
    let is_key = |nal_type: u8| nal_type == IDR || nal_type == SPS;
    let key = match first & 0x1f {
        STAP_A => {
            let mut rest = payload.get(1..)?;
            let mut found = false;
            while rest.len() > 2 {
                let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                let Some(nal) = rest.get(2..2 + len) else {
                    break;
                };
                if nal.first().is_some_and(|h| is_key(h & 0x1f)) {
                    found = true;
                    break;
                }
                rest = &rest[2 + len..];
            }
            found
        }
        FU_A => {
            let header = *payload.get(1)?;
            header & 0x80 != 0 && is_key(header & 0x1f)
        }
        nal_type => is_key(nal_type),
    };
    key.then_some(KeyframeStart { height: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframes_are_found_with_and_without_extensions() {
        // Plain descriptor, start of partition 0, keyframe 640×360.
        let key = [
            0x10, 0x50, 0x2d, 0x01, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01,
        ];
        assert_eq!(
            keyframe_start(VideoCodec::Vp8, &key),
            Some(KeyframeStart { height: Some(360) })
        );
        // Extended with a 15-bit picture id, TL0PICIDX and TID.
        let key = [
            0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x50, 0x2d, 0x01, 0x9d, 0x01, 0x2a, 0x00, 0x05,
            0xd0, 0x02,
        ];
        assert_eq!(
            keyframe_start(VideoCodec::Vp8, &key),
            Some(KeyframeStart { height: Some(720) })
        );
        // A delta frame, and a packet in the middle of a frame.
        assert_eq!(keyframe_start(VideoCodec::Vp8, &[0x10, 0x51, 0, 0]), None);
        assert_eq!(keyframe_start(VideoCodec::Vp8, &[0x00, 0x50, 0, 0]), None);
        // Truncated input never panics.
        for len in 0..key.len() {
            let _ = keyframe_start(VideoCodec::Vp8, &key[..len]);
        }
    }

    #[test]
    fn h264_keyframes_are_found_in_single_aggregated_and_fragmented_units() {
        assert!(keyframe_start(VideoCodec::H264, &[0x65, 0x88]).is_some());
        assert!(keyframe_start(VideoCodec::H264, &[0x41, 0x9a]).is_none());
        // STAP-A holding SPS, PPS.
        let stap = [0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce];
        assert!(keyframe_start(VideoCodec::H264, &stap).is_some());
        // FU-A: start of an IDR, then a middle fragment of it.
        assert!(keyframe_start(VideoCodec::H264, &[0x7c, 0x85, 0x88]).is_some());
        assert!(keyframe_start(VideoCodec::H264, &[0x7c, 0x05, 0x88]).is_none());
        for len in 0..stap.len() {
            let _ = keyframe_start(VideoCodec::H264, &stap[..len]);
        }
        assert!(keyframe_start(VideoCodec::Other, &[0x65]).is_none());
    }
}
