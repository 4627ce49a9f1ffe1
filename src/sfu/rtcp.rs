//! Which RTCP from a browser reaches the forwarding logic.
//!
//! The `rtc` interceptor chain consumes inbound RTCP (reports, congestion feedback) and drops it
//! before the application. Two kinds from a subscriber must reach the SFU: keyframe requests
//! (PLI, FIR), which it relays to the publisher, and NACKs, which it answers from the source's
//! history ([`super::retransmit`]). This interceptor marks exactly those for delivery, and
//! leaves everything else to the chain.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;

/// Marks inbound keyframe requests and NACKs for delivery to the application.
#[derive(Default)]
pub struct FeedbackTap {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

/// Whether one RTCP packet asks for a keyframe.
pub fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// One RTCP packet as a NACK, if it is one.
pub fn as_nack(packet: &dyn rtc::rtcp::Packet) -> Option<&TransportLayerNack> {
    packet.as_any().downcast_ref::<TransportLayerNack>()
}

/// Whether one RTCP packet is something the SFU itself acts on.
fn is_for_the_sfu(packet: &dyn rtc::rtcp::Packet) -> bool {
    is_keyframe_request(packet) || as_nack(packet).is_some()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet
            && packets.iter().any(|p| is_for_the_sfu(p.as_ref()))
        {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for FeedbackTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}

    /// Outbound packets are none of its business: the chain carries them past its queue.
    fn passes_writes_through(&self) -> bool {
        true
    }
}
