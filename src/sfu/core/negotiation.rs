//! Offers and answers, and which tracks each connection carries.
//!
//! Negotiation follows docs/protocol.md: the client offers once to publish, then only the
//! server offers, one offer at a time. A published track becomes a source when its first packet
//! arrives; every receiver whose plan names its publisher then gets an outgoing track for it,
//! and a new server offer. SDP errors are answered to that one participant
//! ([`PeerSignal::NegotiationFailed`]) and touch nobody else.

use std::time::Instant;

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{
    RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit,
};
use tracing::warn;

use super::Core;
use super::tables::{Source, Subscriber};
use crate::sfu::PeerSignal;
use crate::sfu::connection::AUDIO_LEVEL_URI;
use crate::sfu::forward::{NegotiatedCodec, Rewrite};
use crate::sfu::frame::VideoCodec;
use crate::sfu::peer::{Negotiation, OutgoingTrack, PeerKey, SourceKey};
use crate::sfu::simulcast_sdp::keep_simulcast_bindings;
use crate::sfu::voice::VoiceMeter;

/// The position of the screen-sharing transceiver in a client's publishing offer.
const SCREEN_TRANSCEIVER: usize = 2;

impl Core {
    pub(super) fn on_client_offer(&mut self, now: Instant, key: PeerKey, sdp: String) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if peer.negotiation != Negotiation::AwaitingClientOffer {
            self.signal(
                key,
                PeerSignal::NegotiationFailed("the client offers once, after joining".into()),
            );
            return;
        }
        let answer = (|| {
            let offer = RTCSessionDescription::offer(sdp)?;
            peer.pc.set_remote_description(now, offer)?;
            let answer = peer.pc.create_answer(None)?;
            let sdp = answer.sdp.clone();
            peer.pc.set_local_description(now, answer)?;
            Ok::<_, rtc::shared::error::Error>(sdp)
        })();
        match answer {
            Ok(answer) => {
                peer.negotiation = Negotiation::Stable;
                self.signal(key, PeerSignal::Answer(answer));
                self.touch(key);
                self.sync_subscriptions(now, key);
            }
            Err(e) => self.signal(key, PeerSignal::NegotiationFailed(e.to_string())),
        }
    }

    pub(super) fn on_client_answer(&mut self, now: Instant, key: PeerKey, sdp: String) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if peer.negotiation != Negotiation::AwaitingAnswer {
            self.signal(
                key,
                PeerSignal::NegotiationFailed("no offer is waiting for an answer".into()),
            );
            return;
        }
        let applied = RTCSessionDescription::answer(keep_simulcast_bindings(&sdp))
            .and_then(|answer| peer.pc.set_remote_description(now, answer));
        if let Err(e) = applied {
            self.signal(key, PeerSignal::NegotiationFailed(e.to_string()));
            return;
        }
        peer.negotiation = Negotiation::Stable;
        self.touch(key);
        // Every new outgoing track is now negotiated: learn its payload types and extension
        // ids, start forwarding, and ask the publisher for a keyframe.
        let pending: Vec<(SourceKey, RTCRtpSenderId, u32)> = self.peers[key]
            .outgoing
            .iter()
            .map(|(s, t)| (*s, t.sender, t.ssrc))
            .collect();
        for (source_key, sender_id, ssrc) in pending {
            let Some(source) = self.sources.get(source_key) else {
                continue;
            };
            if source.subscriber(key).is_some_and(|s| s.rewrite.is_some()) {
                continue;
            }
            let Some(mut sender) = self.peers[key].pc.rtp_sender(sender_id) else {
                continue;
            };
            let parameters = sender.get_parameters();
            let codecs = negotiated_codecs(&parameters.rtp_parameters.codecs);
            let extensions = negotiated_extensions(&parameters.rtp_parameters.header_extensions);
            let rewrite = Rewrite::new(
                ssrc,
                &source.codecs,
                &codecs,
                &source.extensions,
                &extensions,
            );
            if let Some(entry) = self
                .sources
                .get_mut(source_key)
                .and_then(|s| s.subscriber_mut(key))
            {
                entry.rewrite = Some(rewrite);
            }
            self.allocate_layers(now, key);
            self.request_keyframe(now, source_key, Some(key));
        }
        self.maybe_offer(now, key);
    }

    /// Turns a track whose media has started into a source others can receive.
    pub(super) fn create_source(&mut self, key: PeerKey, receiver_id: RTCRtpReceiverId) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        // The publishing offer has audio, camera and (optionally) screen, in that order.
        let transceivers: Vec<_> = peer.pc.get_transceivers().collect();
        let position = transceivers.iter().position(|id| {
            peer.pc
                .rtp_transceiver(*id)
                .and_then(|t| t.receiver())
                .is_some_and(|r| r == receiver_id)
        });
        let Some(mut receiver) = peer.pc.rtp_receiver(receiver_id) else {
            return;
        };
        let kind = receiver.track().kind();
        let screen = kind == RtpCodecKind::Video && position == Some(SCREEN_TRANSCEIVER);
        let track_id = receiver.track().track_id().clone();
        let parameters = receiver.get_parameters().rtp_parameters.clone();
        let Some(first) = parameters.codecs.first() else {
            return;
        };
        if kind != RtpCodecKind::Audio && kind != RtpCodecKind::Video {
            return;
        }
        let extensions = negotiated_extensions(&parameters.header_extensions);
        let voice = (kind == RtpCodecKind::Audio)
            .then(|| extensions.iter().find(|(_, uri)| uri == AUDIO_LEVEL_URI))
            .flatten()
            .map(|(id, _)| VoiceMeter::new(*id));
        let source = Source {
            publisher: key,
            participant: peer.participant.clone(),
            kind,
            screen,
            receiver: receiver_id,
            codec: first.rtp_codec.clone(),
            video_codec: VideoCodec::from_mime(&first.rtp_codec.mime_type),
            codecs: negotiated_codecs(&parameters.codecs),
            extensions,
            layers: Vec::new(),
            voice,
            subscribers: Vec::new(),
        };
        let source_key = self.sources.insert(source);
        peer.published.push(source_key);
        peer.track_sources.insert(track_id, source_key);
    }

    /// Everyone whose plan includes this publisher gets its new source.
    pub(super) fn offer_new_source(&mut self, now: Instant, publisher: PeerKey) {
        let Some(participant) = self.peers.get(publisher).map(|p| p.participant.clone()) else {
            return;
        };
        let interested: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(k, p)| *k != publisher && p.plan.contains(&participant))
            .map(|(k, _)| k)
            .collect();
        for other in interested {
            self.sync_subscriptions(now, other);
        }
    }

    /// Makes a peer's outgoing tracks match its plan, and renegotiates if they changed.
    pub(super) fn sync_subscriptions(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get(key) else {
            return;
        };
        if peer.negotiation == Negotiation::AwaitingClientOffer {
            // Outgoing transceivers added now would be matched to the client's own m-lines;
            // they are added once the client's offer has been answered.
            return;
        }
        let desired: Vec<SourceKey> = peer
            .plan
            .iter()
            .filter_map(|p| self.by_participant.get(p))
            .filter(|&&publisher| publisher != key)
            .filter_map(|&publisher| self.peers.get(publisher))
            .flat_map(|publisher| publisher.published.iter().copied())
            .collect();
        let current: Vec<SourceKey> = peer.outgoing.keys().copied().collect();
        let mut changed = false;
        for source in current {
            if !desired.contains(&source) {
                self.unsubscribe(key, source);
                changed = true;
            }
        }
        for source in desired {
            if !self.peers[key].outgoing.contains_key(&source) {
                changed |= self.subscribe(key, source);
            }
        }
        if changed {
            self.peers[key].needs_offer = true;
            self.maybe_offer(now, key);
        }
    }

    fn subscribe(&mut self, key: PeerKey, source_key: SourceKey) -> bool {
        let (Some(peer), Some(source)) =
            (self.peers.get_mut(key), self.sources.get_mut(source_key))
        else {
            return false;
        };
        let ssrc = loop {
            let candidate: u32 = rand::random();
            if candidate != 0 {
                break candidate;
            }
        };
        peer.next_track_number += 1;
        let stream_id = source.stream_id();
        let kind_name = if source.kind == RtpCodecKind::Audio {
            "audio"
        } else {
            "video"
        };
        let track_id = format!("{stream_id}-{kind_name}-{}", peer.next_track_number);
        let track = MediaStreamTrack::new(
            stream_id.clone(),
            track_id.clone(),
            track_id.clone(),
            source.kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                active: true,
                codec: source.codec.clone(),
                ..Default::default()
            }],
        );
        let added = peer.pc.add_transceiver_from_track(
            track,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![stream_id],
                send_encodings: vec![],
            }),
        );
        let sender = added
            .ok()
            .and_then(|id| peer.pc.rtp_transceiver(id))
            .and_then(|t| t.sender());
        let Some(sender) = sender else {
            warn!("cannot add an outgoing track");
            return false;
        };
        peer.outgoing.insert(
            source_key,
            OutgoingTrack {
                sender,
                track_id: track_id.clone(),
                ssrc,
            },
        );
        peer.outgoing_by_track.insert(track_id, source_key);
        source.subscribers.push(Subscriber::new(key, sender));
        true
    }

    fn unsubscribe(&mut self, key: PeerKey, source_key: SourceKey) {
        if let Some(source) = self.sources.get_mut(source_key) {
            source.subscribers.retain(|s| s.peer != key);
        }
        if let Some(peer) = self.peers.get_mut(key) {
            peer.drop_outgoing(source_key);
        }
    }

    /// Sends the peer a new offer if its tracks changed and no offer is outstanding.
    pub(super) fn maybe_offer(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if peer.negotiation != Negotiation::Stable || !peer.needs_offer {
            return;
        }
        let offer = (|| {
            let offer = peer.pc.create_offer(None)?;
            // Kept before it is applied: the offer already lists the local candidates, and
            // `local_description()` would parse it and write it out again to add them.
            let sdp = offer.sdp.clone();
            peer.pc.set_local_description(now, offer)?;
            Ok::<_, rtc::shared::error::Error>(sdp)
        })();
        match offer {
            Ok(sdp) => {
                peer.needs_offer = false;
                peer.negotiation = Negotiation::AwaitingAnswer;
                self.signal(key, PeerSignal::Offer(sdp));
                self.touch(key);
            }
            Err(e) => {
                warn!(error = %e, "cannot create an offer");
                self.signal(key, PeerSignal::NegotiationFailed(e.to_string()));
            }
        }
    }
}

fn negotiated_codecs(codecs: &[RTCRtpCodecParameters]) -> Vec<NegotiatedCodec> {
    codecs
        .iter()
        .map(|c| NegotiatedCodec {
            payload_type: c.payload_type,
            mime_type: c.rtp_codec.mime_type.to_ascii_lowercase(),
            fmtp: c.rtp_codec.sdp_fmtp_line.clone(),
        })
        .collect()
}

fn negotiated_extensions(extensions: &[RTCRtpHeaderExtensionParameters]) -> Vec<(u8, String)> {
    extensions
        .iter()
        .filter(|e| e.id > 0 && e.id < 256)
        .map(|e| (e.id as u8, e.uri.clone()))
        .collect()
}
