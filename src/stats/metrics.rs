//! `GET /metrics`: the server's load in the OpenMetrics text format.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::focus::FocusStats;
use crate::sfu::{QualityFigures, SfuCounters};
use crate::stats::refusals::{Limit, Refusals};

/// Renders a scrape from the focus's counts and the SFU's counters.
pub fn render(
    focus: &FocusStats,
    sfu: &SfuCounters,
    refusals: &Refusals,
    runtime_tasks: u64,
) -> String {
    let mut registry = Registry::with_prefix("zaal");
    let gauge = |value: u64| {
        let g = Gauge::<i64>::default();
        g.set(i64::try_from(value).unwrap_or(i64::MAX));
        g
    };
    let counter = |value: &AtomicU64| {
        let c = Counter::<u64>::default();
        c.inc_by(SfuCounters::get(value));
        c
    };
    registry.register(
        "conferences",
        "Conferences running now",
        gauge(focus.conferences as u64),
    );
    registry.register(
        "participants",
        "Participants in a conference now",
        gauge(focus.participants as u64),
    );
    registry.register(
        "runtime_tasks",
        "Tasks alive in the server's async runtime (sessions, connections, timers)",
        gauge(runtime_tasks),
    );
    registry.register(
        "media_peers",
        "Media connections open now",
        gauge(SfuCounters::get(&sfu.peers)),
    );
    let per_worker = Family::<[(&'static str, String); 1], Gauge<i64>>::default();
    for (worker, peers) in sfu.worker_peers.iter().enumerate() {
        per_worker
            .get_or_create(&[("worker", worker.to_string())])
            .set(i64::try_from(SfuCounters::get(peers)).unwrap_or(i64::MAX));
    }
    registry.register(
        "media_worker_peers",
        "Media connections open now on each media worker thread",
        per_worker,
    );
    registry.register(
        "udp_datagrams_received",
        "Datagrams received on the media port",
        counter(&sfu.datagrams_in),
    );
    registry.register(
        "udp_datagrams_unrouted",
        "Datagrams on the media port that matched no connection",
        counter(&sfu.datagrams_unrouted),
    );
    registry.register(
        "udp_datagrams_sent",
        "Datagrams sent from the media port",
        counter(&sfu.datagrams_out),
    );
    registry.register(
        "udp_datagrams_dropped",
        "Datagrams dropped because their media worker was too far behind",
        counter(&sfu.datagrams_dropped),
    );
    registry.register(
        "udp_send_errors",
        "Datagrams the media port could not send",
        counter(&sfu.send_errors),
    );
    registry.register(
        "media_peer_panics",
        "Media connections dropped because handling them panicked (the worker went on)",
        counter(&sfu.peer_panics),
    );
    registry.register(
        "media_workers_failed",
        "Media worker threads that stopped unexpectedly (the server then exits for a restart)",
        counter(&sfu.workers_failed),
    );
    registry.register(
        "rtp_packets_received",
        "RTP packets received from publishers",
        counter(&sfu.rtp_in),
    );
    registry.register(
        "rtp_packets_forwarded",
        "RTP packets forwarded to subscribers",
        counter(&sfu.rtp_forwarded),
    );
    registry.register(
        "rtp_payload_bytes_forwarded",
        "RTP payload bytes forwarded to subscribers",
        counter(&sfu.rtp_bytes_forwarded),
    );
    registry.register(
        "media_tcp_connections",
        "ICE-TCP connections open now (media.tcp_port)",
        gauge(SfuCounters::get(&sfu.tcp.connections)),
    );
    registry.register(
        "media_tcp_frames_received",
        "Datagrams received as frames on ICE-TCP connections",
        counter(&sfu.tcp.frames_in),
    );
    registry.register(
        "media_tcp_frames_sent",
        "Datagrams queued as frames on ICE-TCP connections",
        counter(&sfu.tcp.frames_out),
    );
    registry.register(
        "media_tcp_frames_dropped",
        "Datagrams for an ICE-TCP connection dropped because its send queue was full or it had closed",
        counter(&sfu.tcp.frames_dropped),
    );
    registry.register(
        "turn_allocations",
        "TURN allocations held now (turn.listen)",
        gauge(SfuCounters::get(&sfu.turn.allocations)),
    );
    registry.register(
        "turn_relayed_received",
        "Datagrams relayed from TURN clients to the media workers",
        counter(&sfu.turn.relayed_in),
    );
    registry.register(
        "turn_relayed_dropped",
        "Datagrams from TURN clients dropped: a worker too far behind, or an allocation's first datagram not a STUN request of a media connection",
        counter(&sfu.turn.dropped_in),
    );
    registry.register(
        "turn_relayed_sent",
        "Datagrams queued for TURN clients by the media workers",
        counter(&sfu.turn.links.frames_out),
    );
    registry.register(
        "turn_relayed_send_dropped",
        "Datagrams for a TURN client dropped because its allocation's queue was full or had closed",
        counter(&sfu.turn.links.frames_dropped),
    );
    let refused = Family::<[(&'static str, &'static str); 1], Counter<u64>>::default();
    for limit in Limit::ALL {
        refused
            .get_or_create(&[("limit", limit.label())])
            .inc_by(refusals.get(limit));
    }
    for (label, count) in [
        ("media_tcp_connections", &sfu.tcp.refused_total),
        (
            "media_tcp_connections_per_address",
            &sfu.tcp.refused_per_address,
        ),
        ("media_tcp_unproven", &sfu.tcp.refused_unproven),
        ("turn_credential", &sfu.turn.unauthorized),
        ("turn_peer", &sfu.turn.forbidden_peer),
        ("turn_allocations", &sfu.turn.quota),
    ] {
        refused
            .get_or_create(&[("limit", label)])
            .inc_by(SfuCounters::get(count));
    }
    registry.register(
        "refused",
        "Connections and requests refused because a limit held (see [limits])",
        refused,
    );
    register_quality(&mut registry, &sfu.quality);
    let log_errors = Family::<[(&'static str, String); 1], Counter<u64>>::default();
    for stream in crate::privacy::Stream::ALL {
        log_errors
            .get_or_create(&[("stream", stream.name().to_string())])
            .inc_by(crate::privacy::streams::write_errors(stream));
    }
    registry.register(
        "log_write_errors",
        "Log records that could not be written (logs.dir full or failing), by stream",
        log_errors,
    );
    let (sum, count, buckets) = sfu.forwarding_delay.snapshot();
    registry.register(
        "forwarding_delay_seconds",
        "Forwarded packets by the time they spent in the SFU, from the read of their datagram to \
         the send of the copies",
        Histogram {
            sum,
            count,
            buckets,
        },
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

/// A histogram whose counts were kept elsewhere (atomics the SFU updates without a lock),
/// rendered as one.
#[derive(Debug)]
struct Histogram {
    sum: f64,
    count: u64,
    /// Per bucket, with upper bounds; the last infinite (rendered `+Inf`).
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Media quality across receivers and sources: counts by band and layer, and sums; the bridge
/// stream has the same figures per participant.
fn register_quality(registry: &mut Registry, q: &QualityFigures) {
    let gauge = |value: &AtomicU64| {
        let g = Gauge::<i64>::default();
        g.set(i64::try_from(SfuCounters::get(value)).unwrap_or(i64::MAX));
        g
    };
    let family = |label: &'static str, bands: &mut dyn Iterator<Item = (&str, &AtomicU64)>| {
        let f = Family::<[(&'static str, String); 1], Gauge<i64>>::default();
        for (band, value) in bands {
            f.get_or_create(&[(label, band.to_string())])
                .set(i64::try_from(SfuCounters::get(value)).unwrap_or(i64::MAX));
        }
        f
    };
    registry.register(
        "receivers_by_downlink_estimate",
        "Receivers by their downlink estimate, up to the band's bit/s",
        family(
            "up_to",
            &mut QualityFigures::ESTIMATE_BANDS
                .iter()
                .map(|(name, _)| *name)
                .zip(&q.receivers_by_estimate),
        ),
    );
    registry.register(
        "receivers_by_downlink_loss",
        "Receivers with congestion feedback, by the loss it reports",
        family(
            "loss",
            &mut QualityFigures::LOSS_BANDS
                .iter()
                .map(|(name, _)| *name)
                .zip(&q.receivers_by_loss),
        ),
    );
    registry.register(
        "video_streams_forwarded",
        "Video streams forwarded now, by the simulcast layer each receiver gets",
        family(
            "layer",
            &mut QualityFigures::LAYERS
                .into_iter()
                .zip(&q.video_streams_by_layer),
        ),
    );
    registry.register(
        "video_streams_held_back",
        "Video streams receivers would show that their downlink estimate holds back",
        gauge(&q.video_streams_held_back),
    );
    registry.register(
        "cameras_paused",
        "Cameras told to pause, because nobody receives them",
        gauge(&q.cameras_paused),
    );
    registry.register(
        "video_published_bps",
        "Video bitrate publishers send now, in bit/s",
        gauge(&q.video_published_bps),
    );
    registry.register(
        "password_hashes",
        "Password hashes computed (argon2: host logins, checks and new passwords)",
        {
            let c = Counter::<u64>::default();
            c.inc_by(crate::store::password_hashes());
            c
        },
    );
    registry.register(
        "video_forwarded_bps",
        "Video bitrate forwarded to receivers now, in bit/s",
        gauge(&q.video_forwarded_bps),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn renders_counts_without_identifiers() {
        let sfu = SfuCounters::default();
        sfu.rtp_forwarded.store(42, Ordering::Relaxed);
        let text = render(
            &FocusStats {
                conferences: 2,
                participants: 5,
            },
            &sfu,
            &{
                let refusals = Refusals::default();
                refusals.count(Limit::WebsocketsPerAddress);
                refusals
            },
            7,
        );
        assert!(text.contains("zaal_runtime_tasks 7"), "{text}");
        assert!(text.contains("zaal_conferences 2"), "{text}");
        assert!(
            text.contains(r#"zaal_refused_total{limit="websockets_per_address"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"zaal_refused_total{limit="origin"} 0"#));
        assert!(text.contains("zaal_participants 5"));
        assert!(text.contains("zaal_rtp_packets_forwarded_total 42"));
        assert!(
            text.contains(r#"zaal_video_streams_forwarded{layer="highest"} 0"#),
            "{text}"
        );
        assert!(text.contains(r#"zaal_receivers_by_downlink_estimate{up_to="300k"} 0"#));
        assert!(
            text.contains(r#"zaal_log_write_errors_total{stream="bridge"} 0"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn forwarding_delay_is_a_cumulative_histogram_counted_per_packet() {
        let sfu = SfuCounters::default();
        // A batch of 30 packets sent 0.3 ms after its read, and one of 5 after 20 ms.
        sfu.forwarding_delay
            .record(std::time::Duration::from_micros(300), 30);
        sfu.forwarding_delay
            .record(std::time::Duration::from_millis(20), 5);
        let text = render(&FocusStats::default(), &sfu, &Refusals::default(), 0);
        for line in [
            "# TYPE zaal_forwarding_delay_seconds histogram",
            r#"zaal_forwarding_delay_seconds_bucket{le="0.00025"} 0"#,
            r#"zaal_forwarding_delay_seconds_bucket{le="0.0005"} 30"#,
            r#"zaal_forwarding_delay_seconds_bucket{le="0.01"} 30"#,
            r#"zaal_forwarding_delay_seconds_bucket{le="0.05"} 35"#,
            r#"zaal_forwarding_delay_seconds_bucket{le="+Inf"} 35"#,
            "zaal_forwarding_delay_seconds_count 35",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
