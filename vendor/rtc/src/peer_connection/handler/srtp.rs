use crate::peer_connection::event::{RTCEventInternal, TaggedRTCEventInternal};
use crate::peer_connection::message::internal::{
    RTCMessageInternal, RTPMessage, TaggedRTCMessageInternal,
};

use interceptor::Packet;
use log::debug;
use shared::error::{Error, Result};
use bytes::BytesMut;
use shared::marshal::{Marshal, MarshalSize, Unmarshal};
use shared::util::is_rtcp;
use srtp::context::Context;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Default)]
pub(crate) struct SrtpHandlerContext {
    pub(crate) local_srtp_context: Option<Context>,
    pub(crate) remote_srtp_context: Option<Context>,
    /// Where an outbound RTP packet is marshalled before it is encrypted into a buffer of its
    /// own, kept so that the plaintext costs no allocation per packet.
    pub(crate) marshal_scratch: Vec<u8>,

    pub(crate) read_outs: VecDeque<TaggedRTCMessageInternal>,
    pub(crate) write_outs: VecDeque<TaggedRTCMessageInternal>,
    pub(crate) event_outs: VecDeque<TaggedRTCEventInternal>,
}

/// Encrypts one outbound RTP or RTCP packet with the local context.
///
/// RTP is marshalled into `scratch` and encrypted with the header it was marshalled from, so the
/// plaintext is neither allocated nor parsed again to find its header. Shared by the handler
/// pipeline and [`RTCPeerConnection::write_rtp_direct`](crate::peer_connection::RTCPeerConnection).
pub(crate) fn protect(
    context: &mut Context,
    scratch: &mut Vec<u8>,
    packet: &Packet,
) -> Result<BytesMut> {
    match packet {
        Packet::Rtcp(rtcp_packets) => {
            if rtcp_packets.is_empty() {
                return Err(Error::Other("empty rtcp_packets".to_string()));
            }
            let packet = rtcp::packet::marshal(rtcp_packets)?;
            context.encrypt_rtcp(&packet)
        }
        Packet::Rtp(rtp_packet) => {
            let size = rtp_packet.marshal_size();
            if scratch.len() < size {
                scratch.resize(size, 0);
            }
            let written = rtp_packet.marshal_to(&mut scratch[..size])?;
            let mut encrypted = spare_write_buffer();
            context.encrypt_rtp_with_header_into(
                &scratch[..written],
                &rtp_packet.header,
                &mut encrypted,
            )?;
            Ok(encrypted)
        }
        _ => Err(Error::Other(
            "unsupported packet kind for srtp write".to_string(),
        )),
    }
}

thread_local! {
    /// Buffers of datagrams already sent, handed back by the application
    /// ([`recycle_write_buffer`]), for the next RTP packets encrypted on this thread. Per
    /// thread, so that a server running its connections on several threads shares no lock.
    static SPARE_WRITE_BUFFERS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// How many sent datagrams' buffers a thread keeps for reuse (a few hundred kilobytes).
const SPARE_WRITE_BUFFERS_KEPT: usize = 256;
/// Buffers with more room than this are not kept: RTP datagrams are far smaller.
const SPARE_WRITE_BUFFER_MAX_CAPACITY: usize = 4096;

/// Hands back the buffer of a datagram taken from
/// [`poll_write`](sansio::Protocol::poll_write) once it is sent, so that the next RTP packet
/// encrypted on this thread goes into it instead of a new allocation. Optional: a buffer not
/// handed back is simply freed.
pub fn recycle_write_buffer(mut buffer: BytesMut) {
    if buffer.capacity() > SPARE_WRITE_BUFFER_MAX_CAPACITY {
        return;
    }
    buffer.clear();
    SPARE_WRITE_BUFFERS.with_borrow_mut(|spare| {
        if spare.len() < SPARE_WRITE_BUFFERS_KEPT {
            spare.push(buffer);
        }
    });
}

fn spare_write_buffer() -> BytesMut {
    SPARE_WRITE_BUFFERS
        .with_borrow_mut(Vec::pop)
        .unwrap_or_default()
}

/// SrtpHandler implements SRTP/RTP/RTCP Protocols handling
pub(crate) struct SrtpHandler<'a> {
    ctx: &'a mut SrtpHandlerContext,
}

impl<'a> SrtpHandler<'a> {
    pub(crate) fn new(ctx: &'a mut SrtpHandlerContext) -> Self {
        SrtpHandler { ctx }
    }

    pub(crate) fn name(&self) -> &'static str {
        "SrtpHandler"
    }
}

impl<'a>
    sansio::Protocol<TaggedRTCMessageInternal, TaggedRTCMessageInternal, TaggedRTCEventInternal>
    for SrtpHandler<'a>
{
    type Rout = TaggedRTCMessageInternal;
    type Wout = TaggedRTCMessageInternal;
    type Eout = TaggedRTCEventInternal;
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedRTCMessageInternal) -> Result<()> {
        if let RTCMessageInternal::Rtp(RTPMessage::Raw(message)) = msg.message {
            debug!("srtp read {:?}", msg.transport.peer_addr);

            #[allow(clippy::collapsible_else_if)]
            if is_rtcp(&message) {
                if let Some(context) = self.ctx.remote_srtp_context.as_mut() {
                    let mut decrypted = context.decrypt_rtcp(&message)?;
                    let rtcp_packets = rtcp::packet::unmarshal(&mut decrypted)?;
                    if rtcp_packets.is_empty() {
                        return Err(Error::Other("empty rtcp_packets".to_string()));
                    }

                    self.ctx.read_outs.push_back(TaggedRTCMessageInternal {
                        now: msg.now,
                        transport: msg.transport,
                        message: RTCMessageInternal::Rtp(RTPMessage::Packet(Packet::Rtcp(
                            rtcp_packets,
                        ))),
                    });
                } else {
                    return Err(Error::Other(format!(
                        "remote_srtp_context is not set yet for rtcp_packet {:?}",
                        msg.transport.peer_addr
                    )));
                }
            } else {
                if let Some(context) = self.ctx.remote_srtp_context.as_mut() {
                    let mut decrypted = context.decrypt_rtp(&message)?;
                    let rtp_packet = rtp::Packet::unmarshal(&mut decrypted)?;

                    self.ctx.read_outs.push_back(TaggedRTCMessageInternal {
                        now: msg.now,
                        transport: msg.transport,
                        message: RTCMessageInternal::Rtp(RTPMessage::Packet(Packet::Rtp(
                            rtp_packet,
                        ))),
                    });
                } else {
                    return Err(Error::Other(format!(
                        "remote_srtp_context is not set yet for rtp_packet {:?}",
                        msg.transport.peer_addr
                    )));
                }
            }
        } else {
            debug!("bypass srtp read {:?}", msg.transport.peer_addr);
            self.ctx.read_outs.push_back(msg);
        }
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.ctx.read_outs.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedRTCMessageInternal) -> Result<()> {
        if let RTCMessageInternal::Rtp(message) = msg.message {
            debug!("srtp write {:?}", msg.transport.peer_addr);

            let encrypted = match message {
                RTPMessage::Packet(packet) => {
                    let Some(context) = self.ctx.local_srtp_context.as_mut() else {
                        return Err(Error::Other(format!(
                            "local_srtp_context is not set yet for {} packet {:?}",
                            if matches!(packet, Packet::Rtcp(_)) {
                                "rtcp"
                            } else {
                                "rtp"
                            },
                            msg.transport.peer_addr
                        )));
                    };
                    protect(context, &mut self.ctx.marshal_scratch, &packet)?
                }
                RTPMessage::Raw(raw_packet) => {
                    // Bypass
                    debug!("Bypass srtp write {:?}", msg.transport.peer_addr);
                    raw_packet
                }
                RTPMessage::TrackPacket(_) => {
                    return Err(Error::Other(
                        "application level track message should never reach here".to_string(),
                    ));
                }
            };

            self.ctx.write_outs.push_back(TaggedRTCMessageInternal {
                now: msg.now,
                transport: msg.transport,
                message: RTCMessageInternal::Rtp(RTPMessage::Raw(encrypted)),
            });
        } else {
            // Bypass
            debug!("Bypass srtp write {:?}", msg.transport.peer_addr);
            self.ctx.write_outs.push_back(msg);
        }
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.ctx.write_outs.pop_front()
    }

    fn handle_event(&mut self, mut evt: TaggedRTCEventInternal) -> Result<()> {
        if let RTCEventInternal::DTLSHandshakeComplete(local_srtp_context, remote_srtp_context) =
            &mut evt.event
        {
            debug!("srtp recv dtls handshake complete");

            self.ctx.local_srtp_context = local_srtp_context.take();
            self.ctx.remote_srtp_context = remote_srtp_context.take()
        }

        self.ctx.event_outs.push_back(evt);

        Ok(())
    }

    fn poll_event(&mut self) -> Option<Self::Eout> {
        self.ctx.event_outs.pop_front()
    }

    fn handle_timeout(&mut self, _now: Instant) -> Result<()> {
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }

    fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_write_buffer_is_the_next_one_handed_out_on_its_thread() {
        let mut sent = BytesMut::with_capacity(1500);
        sent.extend_from_slice(&[1; 1200]);
        let room = sent.as_ptr();
        recycle_write_buffer(sent);
        let next = spare_write_buffer();
        assert!(next.is_empty(), "handed out empty");
        assert_eq!(next.as_ptr(), room, "with the room of the one handed back");
        assert!(
            std::thread::spawn(|| spare_write_buffer().capacity() == 0)
                .join()
                .unwrap(),
            "another thread has its own"
        );
        // A buffer far larger than a datagram is freed, not kept.
        recycle_write_buffer(BytesMut::with_capacity(2 * SPARE_WRITE_BUFFER_MAX_CAPACITY));
        assert_eq!(spare_write_buffer().capacity(), 0);
    }
}
