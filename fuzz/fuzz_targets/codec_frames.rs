//! VP8 and H.264 frame inspection: `keyframe_start` on the payload of a published video packet,
//! which the forwarding path calls for every one (RFC 7741, RFC 6184).
//!
//! The first byte picks the codec, the rest is the payload. Beyond not panicking: a VP8
//! keyframe start is the start of partition 0 and names a 14-bit height; H.264 names none.

#![no_main]

use libfuzzer_sys::fuzz_target;
use zaal::sfu::fuzzing::{VideoCodec, keyframe_start};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let mime = ["video/VP8", "video/h264", "video/AV1"][usize::from(selector % 3)];
    let codec = VideoCodec::from_mime(mime);
    let found = keyframe_start(codec, payload);
    match codec {
        VideoCodec::Vp8 => {
            if let Some(start) = found {
                assert_eq!(payload[0] & 0x17, 0x10, "not the start of partition 0");
                assert!(start.height.is_none_or(|h| h <= 0x3fff));
            }
        }
        VideoCodec::H264 => assert!(found.is_none_or(|start| start.height.is_none())),
        VideoCodec::Other => assert!(found.is_none()),
    }
});
