//! Which layer of each video a receiver gets, what each camera is asked to send, and the
//! quality figures for metrics and the bridge stream.
//!
//! Twice a second the core measures every layer's rate, then chooses for every receiver
//! (`crate::sfu::allocation`: its estimate, its tiles' sizes, last-N, the focus's order) and
//! tells each publisher the tallest camera layer anyone takes (`crate::sfu::pause`). Figures
//! are counts and sums; the bridge stream gets them by participant identifier, never by name.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use tracing::info;

use super::Core;
use super::tables::Layer;
use crate::privacy::BRIDGE;
use crate::sfu::PeerSignal;
use crate::sfu::allocation::{Candidate, LayerOffer, allocate};
use crate::sfu::counters::QualityFigures;
use crate::sfu::pause::Demand;
use crate::sfu::peer::{PeerKey, SourceKey};

/// What one forwarded audio stream is assumed to take of a receiver's bandwidth.
const AUDIO_BPS: u64 = 40_000;
/// A layer that sent nothing for this long is not offered to receivers.
const LAYER_IDLE: Duration = Duration::from_secs(1);
/// Every this many allocations (of half a second), a receiver's figures go to the bridge stream.
const DOWNLINK_REPORT_EVERY: u32 = 20;

impl Core {
    /// Turns the bytes each layer carried since the last call into a bitrate.
    pub(super) fn measure_layers(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last_allocation);
        self.last_allocation = now;
        if elapsed.is_zero() {
            return;
        }
        for (_, source) in &mut self.sources {
            for layer in &mut source.layers {
                // A layer that began within this window is measured over its own time.
                let span = elapsed.min(now.saturating_duration_since(layer.since));
                if span.is_zero() {
                    continue;
                }
                let bps = (layer.bytes as f64 * 8.0 / span.as_secs_f64()) as u64;
                // Smoothed: a keyframe makes one window several times the average.
                layer.bitrate_bps = if layer.bitrate_bps == 0 {
                    bps
                } else {
                    (layer.bitrate_bps * 3 + bps) / 4
                };
                layer.bytes = 0;
            }
        }
    }

    /// Chooses the layer of every video source `key` receives, from its bandwidth estimate, the
    /// sizes it shows them at and its last-N; judges the last probe and starts one when it wants
    /// more than the estimate allows.
    pub(super) fn allocate_layers(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get(key) else {
            return;
        };
        let mut order: Vec<(bool, usize, SourceKey)> = peer
            .outgoing
            .keys()
            .filter_map(|&source_key| {
                let source = self.sources.get(source_key)?;
                if !source.is_video() {
                    return None;
                }
                // A screen no longer shared, or a camera switched off, takes no last-N place; a
                // camera this server paused (or is resuming) keeps its place, or it could never
                // be wanted again.
                let live = source
                    .layers
                    .iter()
                    .any(|l| now.saturating_duration_since(l.last_packet) < LAYER_IDLE);
                let paused_here = !source.screen
                    && self
                        .peers
                        .get(source.publisher)
                        .is_some_and(|p| p.camera_demand.paused_or_resuming(now));
                if !live && !paused_here {
                    return None;
                }
                let position = peer
                    .plan
                    .iter()
                    .position(|p| *p == source.participant)
                    .unwrap_or(usize::MAX);
                Some((!source.screen, position, source_key))
            })
            .collect();
        order.sort_unstable();
        let audio_streams = peer
            .outgoing
            .keys()
            .filter(|&&k| self.sources.get(k).is_some_and(|s| !s.is_video()))
            .count();
        let candidates: Vec<Candidate> = order
            .iter()
            .map(|&(_, _, source_key)| {
                let source = &self.sources[source_key];
                let shown_height = if peer.shown_heights.is_empty() {
                    None
                } else {
                    peer.shown_heights.get(&source.stream_id()).copied()
                };
                Candidate {
                    layers: offered_layers(&source.layers, now),
                    shown_height,
                    current: source.subscriber(key).and_then(|s| s.switch.current()),
                }
            })
            .collect();
        let last_n = match (self.last_n, peer.last_n) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let estimate = peer.downlink.target_bps();
        let audio = audio_streams as u64 * AUDIO_BPS;
        let by_estimate = allocate(estimate.saturating_sub(audio), &candidates, last_n);
        let unconstrained = allocate(u64::MAX / 4, &candidates, last_n);
        let rate_of = |choice: &[Option<u32>]| -> u64 {
            choice
                .iter()
                .zip(&candidates)
                .filter_map(|(c, cand)| {
                    let ssrc = (*c)?;
                    cand.layers
                        .iter()
                        .find(|l| l.ssrc == ssrc)
                        .map(|l| l.bitrate_bps)
                })
                .sum()
        };
        let (sending, wanted) = (rate_of(&by_estimate), rate_of(&unconstrained));
        let held_back = by_estimate
            .iter()
            .zip(&unconstrained)
            .filter(|(by_estimate, unconstrained)| by_estimate.is_none() && unconstrained.is_some())
            .count();
        if let Some(peer) = self.peers.get_mut(key) {
            // A receiver that wants more than its estimate allows is probed for more.
            if let Some(window) = peer
                .probe
                .update(now, estimate, sending + audio, wanted + audio)
            {
                peer.downlink.mark_probe(window.start, window.end);
            }
            peer.videos_held_back = held_back;
        }
        let chosen = by_estimate;
        let mut keyframes = Vec::new();
        let mut layer_switches = 0;
        for (rank, (&(_, _, source_key), choice)) in order.iter().zip(&chosen).enumerate() {
            if let Some(subscriber) = self
                .sources
                .get_mut(source_key)
                .and_then(|s| s.subscriber_mut(key))
            {
                subscriber.demand = Demand::of_receiver(
                    last_n.is_none_or(|n| rank < n),
                    candidates[rank].shown_height,
                );
                layer_switches += subscriber.switch.switches();
                if subscriber.switch.target() != *choice {
                    subscriber.switch.set_target(now, *choice);
                }
                // Asked again every round until it comes (the throttle keeps it to one per layer
                // per half second): a keyframe request can be lost, or come while the encoder
                // restarts, and a switch without its keyframe never happens.
                if subscriber.switch.waiting_for_keyframe() {
                    keyframes.push(source_key);
                }
            }
        }
        for source_key in keyframes {
            self.request_keyframe(now, source_key, Some(key));
        }
        if let Some(peer) = self.peers.get_mut(key) {
            peer.allocations += 1;
            if peer.allocations.is_multiple_of(DOWNLINK_REPORT_EVERY) {
                let (probes_ok, probes_failed) = peer.probe.outcomes();
                let videos = chosen.iter().filter(|c| c.is_some()).count();
                info!(
                    target: BRIDGE,
                    event = "downlink",
                    participant = %peer.participant,
                    estimate_bps = estimate,
                    delivered_bps = peer.downlink.delivered_bps(),
                    loss = peer.downlink.loss(),
                    feedback = peer.downlink.has_feedback(),
                    video_bps = sending,
                    wanted_bps = wanted,
                    videos,
                    layer_switches,
                    probes_ok,
                    probes_failed,
                    probe_result_bps = peer.downlink.probe_result_bps(),
                );
            }
        }
    }

    /// Tells a publisher's client when the camera layers its receivers take change, so that it
    /// pauses the ones nobody takes (all of them when last-N, hidden tiles or a moderator's
    /// video mute leave nobody).
    pub(super) fn tell_camera_demand(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get(key) else {
            return;
        };
        let camera = peer.published.iter().find_map(|&source_key| {
            let source = self.sources.get(source_key)?;
            (source.is_video() && !source.screen).then_some(source)
        });
        let Some(camera) = camera else {
            return;
        };
        let demand = if peer.forward_video {
            camera
                .subscribers
                .iter()
                .map(|s| s.demand)
                .max()
                .unwrap_or(Demand::Nothing)
        } else {
            Demand::Nothing
        };
        let told = self
            .peers
            .get_mut(key)
            .and_then(|peer| peer.camera_demand.update(now, demand));
        if let Some(told) = told {
            self.signal(
                key,
                PeerSignal::SendVideo {
                    max_height: told.max_height(),
                },
            );
        }
    }

    /// Counts receivers and forwarded streams into the figures `/metrics` shows (no identifiers);
    /// now and then, each camera's figures go to the bridge stream by participant id.
    pub(super) fn refresh_quality_figures(&mut self) {
        let figures = &self.counters.quality;
        let mut by_estimate = [0u64; 4];
        let mut by_loss = [0u64; 3];
        let (mut cameras_paused, mut held_back) = (0, 0);
        for (_, peer) in &self.peers {
            let estimate = peer.downlink.target_bps();
            let band = QualityFigures::ESTIMATE_BANDS
                .iter()
                .position(|(_, limit)| estimate <= *limit)
                .unwrap_or(3);
            by_estimate[band] += 1;
            if peer.downlink.has_feedback() {
                let loss = peer.downlink.loss();
                let band = QualityFigures::LOSS_BANDS
                    .iter()
                    .position(|(_, limit)| loss < *limit)
                    .unwrap_or(2);
                by_loss[band] += 1;
            }
            if peer.camera_demand.told() == Some(Demand::Nothing) {
                cameras_paused += 1;
            }
            held_back += peer.videos_held_back as u64;
        }
        let mut by_layer = [0u64; 4];
        let (mut published, mut forwarded) = (0, 0);
        for (_, source) in &self.sources {
            if !source.is_video() {
                continue;
            }
            published += source.layers.iter().map(|l| l.bitrate_bps).sum::<u64>();
            for subscriber in &source.subscribers {
                let Some(current) = subscriber.switch.current() else {
                    continue;
                };
                let Some(layer) = source.layers.iter().find(|l| l.ssrc == current) else {
                    continue;
                };
                forwarded += layer.bitrate_bps;
                let below = source
                    .layers
                    .iter()
                    .filter(|l| (l.height, l.bitrate_bps) < (layer.height, layer.bitrate_bps))
                    .count();
                let rank = match (source.layers.len(), below) {
                    (1, _) => 3,
                    (_, 0) => 0,
                    (n, b) if b + 1 == n => 2,
                    _ => 1,
                };
                by_layer[rank] += 1;
            }
        }
        let shares = &mut self.shares;
        let mut store = |counter: &AtomicU64, value: u64| shares.set(counter, value);
        for (counter, value) in figures.receivers_by_estimate.iter().zip(by_estimate) {
            store(counter, value);
        }
        for (counter, value) in figures.receivers_by_loss.iter().zip(by_loss) {
            store(counter, value);
        }
        for (counter, value) in figures.video_streams_by_layer.iter().zip(by_layer) {
            store(counter, value);
        }
        store(&figures.video_streams_held_back, held_back);
        store(&figures.cameras_paused, cameras_paused);
        store(&figures.video_published_bps, published);
        store(&figures.video_forwarded_bps, forwarded);

        self.quality_rounds += 1;
        if self.quality_rounds.is_multiple_of(DOWNLINK_REPORT_EVERY) {
            self.report_uplinks();
        }
    }

    /// Each camera's and screen's layers, to the bridge stream by participant id.
    fn report_uplinks(&self) {
        for (_, source) in &self.sources {
            if !source.is_video() {
                continue;
            }
            let mut layers: Vec<(Option<u16>, u64)> = source
                .layers
                .iter()
                .map(|l| (l.height, l.bitrate_bps))
                .collect();
            layers.sort_unstable();
            let Some(peer) = self.peers.get(source.publisher) else {
                continue;
            };
            let told = if source.screen {
                None
            } else {
                peer.camera_demand.told()
            };
            info!(
                target: BRIDGE,
                event = "uplink",
                participant = %source.participant,
                screen = source.screen,
                layer_heights = ?layers.iter().map(|l| l.0.unwrap_or(0)).collect::<Vec<_>>(),
                layer_bps = ?layers.iter().map(|l| l.1).collect::<Vec<_>>(),
                receivers = source.subscribers.iter().filter(|s| s.switch.current().is_some()).count(),
                max_height_told = ?told.map(Demand::max_height),
            );
        }
    }
}

/// The layers of a source a receiver may be given: those sending now whose rate is known. Until
/// a rate is known (the first half second of a source), only the lowest layer, so that nobody
/// starts on a layer their link may not carry.
fn offered_layers(layers: &[Layer], now: Instant) -> Vec<LayerOffer> {
    let live = || {
        layers
            .iter()
            .filter(|l| now.saturating_duration_since(l.last_packet) < LAYER_IDLE)
    };
    let offer = |l: &Layer| LayerOffer {
        ssrc: l.ssrc,
        bitrate_bps: l.bitrate_bps,
        height: l.height,
    };
    if live().any(|l| l.bitrate_bps > 0) {
        return live().filter(|l| l.bitrate_bps > 0).map(offer).collect();
    }
    // Without heights, the first layer seen: simulcast encoders start their lowest first.
    live()
        .min_by_key(|l| l.height.unwrap_or(0))
        .map(offer)
        .into_iter()
        .collect()
}
