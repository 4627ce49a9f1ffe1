//! The forwarding path: an inbound RTP packet to every subscriber of its source, rewritten for
//! each; retransmissions answered from the source's history; keyframe requests relayed to
//! publishers; padding-only probe packets. Per packet it allocates nothing of its own and logs
//! nothing.

use std::sync::atomic::Ordering;
use std::time::Instant;

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp;
use rtc::shared::marshal::MarshalSize;

use super::Core;
use crate::sfu::bandwidth::WIRE_OVERHEAD;
use crate::sfu::frame::keyframe_start;
use crate::sfu::peer::{PeerKey, SourceKey};
use crate::sfu::retransmit::nacked;

/// What one padding-only probe packet takes on the wire: the RTP header, the transport-wide
/// sequence number, four bytes of padding, and the SRTP tag and UDP/IP headers.
pub(super) const PADDING_PACKET_BYTES: u64 = 24 + WIRE_OVERHEAD as u64;
/// What a media packet takes on the wire beyond its payload: the RTP header and its extensions,
/// the SRTP tag and UDP/IP headers. Layer rates include it, as the bandwidth estimate does.
const PACKET_OVERHEAD: u64 = 12 + 12 + WIRE_OVERHEAD as u64;

impl Core {
    /// The hot path: one inbound RTP packet to every subscriber of its source.
    pub(super) fn forward(
        &mut self,
        now: Instant,
        publisher: PeerKey,
        track_id: &str,
        packet: rtp::Packet,
    ) {
        self.counters.rtp_in.fetch_add(1, Ordering::Relaxed);
        let Some(publisher_peer) = self.peers.get(publisher) else {
            return;
        };
        let Some(&source_key) = publisher_peer.track_sources.get(track_id) else {
            return;
        };
        let (forward_audio, forward_video) =
            (publisher_peer.forward_audio, publisher_peer.forward_video);
        let Some(source) = self.sources.get_mut(source_key) else {
            return;
        };
        let ssrc = packet.header.ssrc;
        let layer = source.layer_index(ssrc, now);
        let video = source.is_video();
        let keyframe = if video {
            keyframe_start(source.video_codec, &packet.payload)
        } else {
            None
        };
        {
            let layer = &mut source.layers[layer];
            layer.bytes += packet.payload.len() as u64 + PACKET_OVERHEAD;
            layer.last_packet = now;
            if let Some(height) = keyframe.and_then(|k| k.height) {
                layer.height = Some(height);
            }
        }
        let open = if video { forward_video } else { forward_audio };
        if !open {
            return;
        }
        if let Some(voice) = &mut source.voice {
            voice.observe(&packet.header);
        }
        let mut forwarded = 0u64;
        let mut kept = false;
        for subscriber in &mut source.subscribers {
            let Some(rewrite) = &subscriber.rewrite else {
                continue;
            };
            let numbers = if video {
                match subscriber.switch.map(
                    now,
                    ssrc,
                    packet.header.sequence_number,
                    packet.header.timestamp,
                    keyframe.is_some(),
                    packet.header.marker,
                ) {
                    Some(numbers) => Some(numbers),
                    None => continue,
                }
            } else {
                None
            };
            if numbers.is_some() && !kept {
                // Kept once for every receiver, and only when one receives it (a simulcast
                // layer nobody is on keeps nothing).
                source.layers[layer].history.keep(now, &packet);
                kept = true;
            }
            let Some(peer) = self.peers.get_mut(subscriber.peer) else {
                continue;
            };
            let extensions = peer.pc.take_extension_list();
            let Some(header) = rewrite.rewritten(&packet.header, extensions) else {
                continue;
            };
            let mut out = rtp::Packet {
                header,
                payload: packet.payload.clone(),
            };
            if let Some(numbers) = numbers {
                out.header.sequence_number = numbers.sequence;
                out.header.timestamp = numbers.timestamp;
                subscriber.payload_type = out.header.payload_type;
            }
            if let Some(mut sender) = peer.pc.rtp_sender(subscriber.sender)
                && sender.write_rtp(now, out).is_ok()
            {
                forwarded += 1;
            }
            self.touched.mark(subscriber.peer, peer);
        }
        if forwarded > 0 {
            self.forwarded += forwarded;
            self.counters
                .rtp_forwarded
                .fetch_add(forwarded, Ordering::Relaxed);
            self.counters
                .rtp_bytes_forwarded
                .fetch_add(forwarded * packet.payload.len() as u64, Ordering::Relaxed);
        }
    }

    /// Resends to `key` what its NACK names, from the history of the source it is about, within
    /// the hold-off and the peer's repair budget (`crate::sfu::retransmit`).
    pub(super) fn on_nack(&mut self, now: Instant, key: PeerKey, nack: &TransportLayerNack) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        // A scan, not a map: a peer receives a few dozen tracks, and NACKs come a few times a
        // second at most.
        let Some(source_key) = peer
            .outgoing
            .iter()
            .find(|(_, track)| track.ssrc == nack.media_ssrc)
            .map(|(&source_key, _)| source_key)
        else {
            return;
        };
        let Some(source) = self.sources.get_mut(source_key) else {
            return;
        };
        if !source.is_video() {
            return;
        }
        let layers = &source.layers;
        let Some(subscriber) = source.subscribers.iter_mut().find(|s| s.peer == key) else {
            return;
        };
        let Some(rewrite) = &subscriber.rewrite else {
            return;
        };
        peer.repair.top_up(now);
        for sequence in nacked(nack) {
            if !subscriber.resends.due(now, sequence) {
                continue;
            }
            let Some(origin) = subscriber.switch.origin(now, sequence) else {
                continue;
            };
            let Some(original) = layers
                .iter()
                .find(|l| l.ssrc == origin.layer)
                .and_then(|l| l.history.packet(now, origin.layer, origin.sequence))
            else {
                continue;
            };
            let extensions = peer.pc.take_extension_list();
            let Some(mut header) = rewrite.rewritten(&original.header, extensions) else {
                continue;
            };
            header.sequence_number = sequence;
            header.timestamp = original.header.timestamp.wrapping_add(origin.ts_offset);
            let resend = rtp::Packet {
                header,
                payload: original.payload,
            };
            if !peer.repair.spend(resend.marshal_size()) {
                continue;
            }
            subscriber.resends.note(now, sequence);
            if let Some(mut sender) = peer.pc.rtp_sender(subscriber.sender) {
                let _ = sender.write_rtp(now, resend);
            }
        }
        self.touched.mark(key, peer);
    }

    /// Asks for a keyframe of the layer `subscriber` is on or moving to (every layer when no
    /// subscriber is named), throttled per layer.
    pub(super) fn request_keyframe(
        &mut self,
        now: Instant,
        source_key: SourceKey,
        subscriber: Option<PeerKey>,
    ) {
        let Some(source) = self.sources.get_mut(source_key) else {
            return;
        };
        if !source.is_video() {
            return;
        }
        let wanted = subscriber.map(|peer| source.subscriber(peer).and_then(|s| s.switch.target()));
        let mut due = [0u32; 4];
        let mut count = 0;
        for layer in &mut source.layers {
            let asked = match wanted {
                None => true,
                Some(target) => target == Some(layer.ssrc),
            };
            if asked && layer.keyframes.request(now) && count < due.len() {
                due[count] = layer.ssrc;
                count += 1;
            }
        }
        for &ssrc in &due[..count] {
            self.send_pli(now, source_key, ssrc);
        }
    }

    pub(super) fn send_pli(&mut self, now: Instant, source_key: SourceKey, media_ssrc: u32) {
        let Some(source) = self.sources.get(source_key) else {
            return;
        };
        let (publisher, receiver) = (source.publisher, source.receiver);
        if let Some(peer) = self.peers.get_mut(publisher)
            && let Some(mut rtp_receiver) = peer.pc.rtp_receiver(receiver)
        {
            let _ = rtp_receiver.write_rtcp(
                now,
                vec![Box::new(PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc,
                })],
            );
            self.touch(publisher);
        }
    }

    /// Sends about `bytes` of padding-only packets to `key` on the video streams it receives
    /// (a probe burst), each between two frames.
    pub(super) fn send_padding(&mut self, now: Instant, key: PeerKey, bytes: u64) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        let mut packets = bytes.div_ceil(PADDING_PACKET_BYTES);
        for &source_key in peer.outgoing.keys() {
            let Some(source) = self.sources.get_mut(source_key) else {
                continue;
            };
            if !source.is_video() {
                continue;
            }
            let Some(subscriber) = source.subscriber_mut(key) else {
                continue;
            };
            let Some(ssrc) = subscriber.rewrite.as_ref().map(|r| r.ssrc()) else {
                continue;
            };
            let Some(mut sender) = peer.pc.rtp_sender(subscriber.sender) else {
                continue;
            };
            while packets > 0 {
                let Some(numbers) = subscriber.switch.pad(now) else {
                    break;
                };
                let header = rtp::header::Header {
                    version: 2,
                    padding: true,
                    payload_type: subscriber.payload_type,
                    sequence_number: numbers.sequence,
                    timestamp: numbers.timestamp,
                    ssrc,
                    ..Default::default()
                };
                let padding = rtp::Packet {
                    header,
                    payload: bytes::Bytes::new(),
                };
                if sender.write_rtp(now, padding).is_err() {
                    break;
                }
                packets -= 1;
            }
            if packets == 0 {
                break;
            }
        }
        self.touched.mark(key, peer);
    }
}
