//! The SFU's entry points for the fuzz targets in `fuzz/`: the code that reads what a client
//! sends on the media port or in SDP, named from outside the crate.
//!
//! Re-exports, and one constructor the server otherwise keeps to itself: the targets must
//! exercise exactly the functions the server runs, so nothing here may wrap, copy or change
//! them. Hidden from the documentation; the server itself never uses this path.

pub use super::bandwidth::{DownlinkEstimator, DownlinkReadings};
pub use super::core::{Core, Output, Transmit, Transport};
pub use super::demux::{
    Directory, IceCredentials, is_stun, stun_integrity_holds, stun_target_ufrag,
};
pub use super::forward::{END_TO_END_EXTENSIONS, NegotiatedCodec, Rewrite};
pub use super::frame::{KeyframeStart, VideoCodec, keyframe_start};
pub use super::ice_tcp::framing::{FrameReader, FramingError, MAX_FRAME, write_frame};
pub use super::retransmit::{SourceHistory, nacked};
pub use super::rtcp::{FeedbackTap, as_nack, is_keyframe_request};
pub use super::simulcast_sdp::keep_simulcast_bindings;
pub use super::switch::LayerSwitch;
pub use super::transport_cc::{SendHistory, TransportCc};
pub use super::voice::VoiceMeter;
pub use super::workers::Router;

/// The counters `start.rs` gives `workers` workers, for a [`Core`] of one of them.
pub fn counters_for_workers(workers: usize) -> super::SfuCounters {
    super::SfuCounters::for_workers(workers)
}
