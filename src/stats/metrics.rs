//! `GET /metrics`: the server's load in the OpenMetrics text format.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::focus::FocusStats;
use crate::sfu::SfuCounters;

/// Renders a scrape from the focus's counts and the SFU's counters.
pub fn render(focus: &FocusStats, sfu: &SfuCounters) -> String {
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
        "media_peers",
        "Media connections open now",
        gauge(SfuCounters::get(&sfu.peers)),
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
        "udp_send_errors",
        "Datagrams the media port could not send",
        counter(&sfu.send_errors),
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
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
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
        );
        assert!(text.contains("zaal_conferences 2"), "{text}");
        assert!(text.contains("zaal_participants 5"));
        assert!(text.contains("zaal_rtp_packets_forwarded_total 42"));
        assert!(text.ends_with("# EOF\n"));
    }
}
