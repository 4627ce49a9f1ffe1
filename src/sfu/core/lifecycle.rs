//! Peers coming and going, the focus's commands for them, their connection events, and the
//! core's timers.
//!
//! A connection is created when the focus admits a participant, with the ICE username fragment
//! its worker was given (so the demux finds it by STUN); it goes when the focus says so, and
//! when ICE or DTLS fail the focus is told ([`SfuEvent::PeerGone`]) once. The bridge stream gets
//! state changes by participant identifier only.

use std::sync::atomic::Ordering;
use std::time::Instant;

use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::sansio::Protocol;
use tracing::{info, warn};

use super::tables::Layer;
use super::{Core, Transmit};
use crate::ids::ParticipantId;
use crate::privacy::BRIDGE;
use crate::sfu::demux::IceCredentials;
use crate::sfu::peer::{Peer, PeerKey, SourceKey};
use crate::sfu::{ClientSignal, SfuEvent};

/// Layer rates are measured, and layers chosen, every this many maintenance ticks.
const ALLOCATION_TICKS: u32 = 5;

impl Core {
    /// Creates a participant's connection with the ICE username fragment it was given; a
    /// connection the participant had here before is closed first.
    pub fn add_peer(
        &mut self,
        now: Instant,
        participant: ParticipantId,
        credentials: IceCredentials,
    ) {
        if let Some(&old) = self.by_participant.get(&participant) {
            self.remove_peer(now, old);
        }
        match Peer::new(now, participant.clone(), &self.candidates, &credentials) {
            Ok(peer) => {
                info!(
                    target: BRIDGE,
                    event = "peer-created",
                    participant = %peer.participant,
                );
                let key = self.peers.insert(peer);
                self.directory.insert_peer(credentials, key);
                self.by_participant.insert(participant, key);
                self.count_peers();
                self.touch(key);
            }
            Err(e) => {
                warn!(error = %e, "cannot create a peer connection");
                self.event(SfuEvent::PeerGone { participant });
            }
        }
    }

    /// Closes the participant's connection and stops forwarding their media to anyone.
    pub fn remove_participant(&mut self, now: Instant, participant: &ParticipantId) {
        if let Some(&key) = self.by_participant.get(participant) {
            self.remove_peer(now, key);
        }
    }

    /// Closes every connection (the worker is stopping).
    pub fn close_all(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self.peers.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.remove_peer(now, key);
        }
    }

    /// SDP, a candidate or the shown tile sizes from the participant's client.
    pub fn handle_signal(
        &mut self,
        now: Instant,
        participant: &ParticipantId,
        signal: ClientSignal,
    ) {
        let Some(&key) = self.by_participant.get(participant) else {
            return;
        };
        match signal {
            ClientSignal::Offer(sdp) => self.on_client_offer(now, key, sdp),
            ClientSignal::Answer(sdp) => self.on_client_answer(now, key, sdp),
            ClientSignal::ReceiveVideo { heights, last_n } => {
                if let Some(peer) = self.peers.get_mut(key) {
                    peer.shown_heights = heights;
                    peer.last_n = last_n;
                }
                self.allocate_layers(now, key);
            }
            ClientSignal::Candidate(candidate) => {
                if candidate.candidate.is_empty() {
                    return;
                }
                if let Some(peer) = self.peers.get_mut(key) {
                    // ICE-lite learns addresses from checks; a bad candidate is harmless.
                    let _ = peer.pc.add_remote_candidate(RTCIceCandidateInit {
                        candidate: candidate.candidate,
                        sdp_mid: candidate.sdp_mid,
                        sdp_mline_index: candidate.sdp_mline_index,
                        ..Default::default()
                    });
                }
            }
        }
    }

    /// Whether a participant's audio and video are forwarded to anyone at all (a moderator's
    /// hard mute closes the gate, whatever the client does).
    pub fn set_forwarding(
        &mut self,
        now: Instant,
        participant: &ParticipantId,
        audio: bool,
        video: bool,
    ) {
        let Some(peer) = self
            .by_participant
            .get(participant)
            .and_then(|&key| self.peers.get_mut(key))
        else {
            return;
        };
        let reopened_video = video && !peer.forward_video;
        peer.forward_audio = audio;
        peer.forward_video = video;
        if reopened_video {
            // Receivers' decoders have been starved: start them on a keyframe.
            let sources = peer.published.clone();
            for source in sources {
                self.request_keyframe(now, source, None);
            }
        }
    }

    /// Whose media the participant receives, most relevant first.
    pub fn set_plan(
        &mut self,
        now: Instant,
        participant: &ParticipantId,
        publishers: Vec<ParticipantId>,
    ) {
        let Some(&key) = self.by_participant.get(participant) else {
            return;
        };
        if let Some(peer) = self.peers.get_mut(key) {
            peer.plan = publishers;
        }
        self.sync_subscriptions(now, key);
        // The order may have changed (a new speaker): their video first.
        self.allocate_layers(now, key);
    }

    /// The connection count, as this worker's part of the total and on its own.
    fn count_peers(&mut self) {
        let peers = self.peers.len() as u64;
        self.shares.set(&self.counters.peers, peers);
        if let Some(mine) = self.counters.worker_peers.get(self.worker) {
            mine.store(peers, Ordering::Relaxed);
        }
    }

    pub(super) fn remove_peer(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get(key) else {
            return;
        };
        let published = peer.published.clone();
        let outgoing: Vec<SourceKey> = peer.outgoing.keys().copied().collect();
        let mut renegotiate = Vec::new();
        for source_key in published {
            let Some(source) = self.sources.try_remove(source_key) else {
                continue;
            };
            for subscriber in source.subscribers {
                if let Some(other) = self.peers.get_mut(subscriber.peer) {
                    if other.drop_outgoing(source_key) {
                        other.needs_offer = true;
                    }
                    renegotiate.push(subscriber.peer);
                }
            }
        }
        for source_key in outgoing {
            if let Some(source) = self.sources.get_mut(source_key) {
                source.subscribers.retain(|s| s.peer != key);
            }
        }
        let mut peer = self.peers.remove(key);
        let _ = peer.pc.close();
        while let Some(out) = peer.pc.poll_write() {
            self.orphans.push_back(Transmit {
                transport: self.directory.transport_to(
                    key,
                    out.transport.transport_protocol,
                    out.transport.peer_addr,
                ),
                from: peer.local_ip,
                to: out.transport.peer_addr,
                contents: out.message,
            });
        }
        self.directory.remove_peer(&peer.ufrag, key);
        if self.by_participant.get(&peer.participant) == Some(&key) {
            self.by_participant.remove(&peer.participant);
        }
        // The slot may be reused by the next peer, which must not inherit the listing.
        self.touched.0.retain(|k| *k != key);
        self.count_peers();
        info!(
            target: BRIDGE,
            event = "peer-closed",
            participant = %peer.participant,
        );
        for other in renegotiate {
            self.maybe_offer(now, other);
        }
    }

    pub(super) fn on_peer_event(
        &mut self,
        now: Instant,
        key: PeerKey,
        event: RTCPeerConnectionEvent,
    ) {
        match event {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                let Some(peer) = self.peers.get_mut(key) else {
                    return;
                };
                peer.state = state;
                info!(
                    target: BRIDGE,
                    event = "connection-state",
                    participant = %peer.participant,
                    state = %state,
                );
                match state {
                    RTCPeerConnectionState::Connected => {
                        let sources: Vec<SourceKey> = peer.outgoing.keys().copied().collect();
                        for source in sources {
                            self.request_keyframe(now, source, Some(key));
                        }
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
                        if !peer.gone_reported =>
                    {
                        peer.gone_reported = true;
                        let participant = peer.participant.clone();
                        self.event(SfuEvent::PeerGone { participant });
                    }
                    _ => {}
                }
            }
            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(state) => {
                if let Some(peer) = self.peers.get(key) {
                    info!(
                        target: BRIDGE,
                        event = "ice-state",
                        participant = %peer.participant,
                        state = %state,
                    );
                }
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                // A track becomes a source when its first packet arrives, not when the client
                // offers it: a class of thirty with cameras off offers sixty silent tracks, and
                // nobody should receive an m-line for each of them.
                let find = |core: &Self| {
                    core.peers.get(key).and_then(|peer| {
                        peer.published.iter().copied().find(|s| {
                            core.sources
                                .get(*s)
                                .is_some_and(|s| s.receiver == init.receiver_id)
                        })
                    })
                };
                let source = match find(self) {
                    Some(source) => Some(source),
                    None => {
                        self.create_source(key, init.receiver_id);
                        let created = find(self);
                        if created.is_some() {
                            self.offer_new_source(now, key);
                        }
                        created
                    }
                };
                if let (Some(source), Some(peer)) = (source, self.peers.get_mut(key)) {
                    peer.track_sources.insert(init.track_id, source);
                    if let Some(s) = self.sources.get_mut(source)
                        && !s.layers.iter().any(|l| l.ssrc == init.ssrc)
                    {
                        s.layers.push(Layer::new(init.ssrc, now));
                    }
                }
            }
            _ => {}
        }
    }

    /// Probe bursts and connection timers that are due.
    pub(super) fn on_peer_timeouts(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.scratch_keys);
        // Probe bursts first, so the connections' timers below send them at once.
        due.extend(
            self.peers
                .iter()
                .filter(|(_, p)| p.probe.next_burst().is_some_and(|d| d <= now))
                .map(|(k, _)| k),
        );
        for &key in &due {
            let burst = self
                .peers
                .get_mut(key)
                .and_then(|peer| peer.probe.take_burst(now));
            if let Some(bytes) = burst {
                self.send_padding(now, key, bytes);
            }
        }
        due.clear();
        due.extend(
            self.peers
                .iter()
                .filter(|(_, p)| p.deadline.is_some_and(|d| d <= now))
                .map(|(k, _)| k),
        );
        for &key in &due {
            // As for a datagram: a panic in one connection's timers ends that connection only.
            let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if let Some(peer) = self.peers.get_mut(key) {
                    let _ = peer.pc.handle_timeout(now);
                    // Until its output is taken, the old deadline would wake the loop again.
                    peer.deadline = None;
                }
                self.touch(key);
                self.drain_peer(now, key);
            }));
            if handled.is_err() {
                self.on_peer_panic(now, key);
            }
        }
        due.clear();
        self.scratch_keys = due;
    }

    pub(super) fn on_maintenance(&mut self, now: Instant) {
        // A source that stopped sending (paused, gone quiet) keeps no payloads past their age.
        for (_, source) in self.sources.iter_mut() {
            for layer in &mut source.layers {
                layer.history.expire(now);
            }
        }
        let due: Vec<(SourceKey, u32)> = self
            .sources
            .iter_mut()
            .flat_map(|(k, s)| {
                s.layers
                    .iter_mut()
                    .filter_map(move |l| l.keyframes.poll(now).then_some((k, l.ssrc)))
            })
            .collect();
        for (source, ssrc) in due {
            self.send_pli(now, source, ssrc);
        }
        self.maintenance_ticks += 1;
        if self.maintenance_ticks.is_multiple_of(ALLOCATION_TICKS) {
            self.measure_layers(now);
            let keys: Vec<PeerKey> = self.peers.iter().map(|(k, _)| k).collect();
            for &key in &keys {
                self.allocate_layers(now, key);
            }
            for key in keys {
                self.tell_camera_demand(now, key);
            }
            self.refresh_quality_figures();
        }
        let voices: Vec<(ParticipantId, f32)> = self
            .sources
            .iter_mut()
            .filter_map(|(_, s)| Some((s.participant.clone(), s.voice.as_mut()?.take_share())))
            .collect();
        if !voices.is_empty() {
            self.event(SfuEvent::Voice(voices));
        }
    }
}

impl Core {
    /// A connection's handling panicked: it is dropped (the focus is told it is gone), counted
    /// and logged without anything that names the participant; the worker goes on. Its state
    /// may be half-changed, so even its closing is guarded, and if that fails too the
    /// connection is taken out of the tables without a word to the browser.
    pub(super) fn on_peer_panic(&mut self, now: Instant, key: PeerKey) {
        self.counters.peer_panics.fetch_add(1, Ordering::Relaxed);
        tracing::error!(target: crate::privacy::TECHNICAL, event = "peer-panic");
        let Some(participant) = self.peers.get(key).map(|p| p.participant.clone()) else {
            return;
        };
        let closed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.remove_peer(now, key);
        }));
        if closed.is_err()
            && let Some(peer) = self.peers.try_remove(key)
        {
            self.directory.remove_peer(&peer.ufrag, key);
            if self.by_participant.get(&peer.participant) == Some(&key) {
                self.by_participant.remove(&peer.participant);
            }
            self.touched.0.retain(|k| *k != key);
            self.count_peers();
        }
        self.event(SfuEvent::PeerGone { participant });
    }
}
