//! The log streams as JSON-lines files, one file per stream per hour.
//!
//! A record's stream is its `tracing` target; warnings and errors of any other target belong to
//! `technical`. Files roll every hour (`<stream>.YYYY-MM-DD-HH.jsonl`) so that retention can
//! delete whole files. Writing is non-blocking: a slow disk never stalls a request or a packet.

use std::path::Path;

use tracing::Level;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;

use super::{ACCESS, BRIDGE, FOCUS, TECHNICAL};

/// One log stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Access,
    Technical,
    Focus,
    Bridge,
}

impl Stream {
    pub const ALL: [Stream; 4] = [
        Stream::Access,
        Stream::Technical,
        Stream::Focus,
        Stream::Bridge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stream::Access => ACCESS,
            Stream::Technical => TECHNICAL,
            Stream::Focus => FOCUS,
            Stream::Bridge => BRIDGE,
        }
    }

    /// Whether a record with this target and level belongs to this stream.
    fn accepts(self, target: &str, level: &Level) -> bool {
        match self {
            Stream::Technical => {
                target == TECHNICAL
                    || (*level <= Level::WARN && ![ACCESS, FOCUS, BRIDGE].contains(&target))
            }
            stream => target == stream.name(),
        }
    }
}

/// Keeps the background writers alive; dropping it flushes every stream.
pub struct LogGuard {
    _guards: Vec<WorkerGuard>,
}

/// Installs the process-wide subscriber writing the four streams under `dir`.
pub fn init_logging(dir: &Path) -> std::io::Result<LogGuard> {
    std::fs::create_dir_all(dir)?;
    let mut guards = Vec::new();
    let mut layers = Vec::new();
    for stream in Stream::ALL {
        let appender = RollingFileAppender::builder()
            .rotation(Rotation::HOURLY)
            .filename_prefix(stream.name())
            .filename_suffix("jsonl")
            .build(dir)
            .map_err(std::io::Error::other)?;
        let (writer, guard) = tracing_appender::non_blocking(appender);
        guards.push(guard);
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(false)
            .with_ansi(false)
            .with_writer(writer)
            .with_filter(filter_fn(move |meta| {
                stream.accepts(meta.target(), meta.level())
            }))
            .boxed();
        layers.push(layer);
    }
    let subscriber = tracing_subscriber::registry().with(layers);
    // A second installation (tests running several servers in one process) keeps the first one.
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(LogGuard { _guards: guards })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_go_to_their_stream_only() {
        assert!(Stream::Access.accepts(ACCESS, &Level::INFO));
        assert!(!Stream::Technical.accepts(ACCESS, &Level::ERROR));
        assert!(Stream::Technical.accepts("zaal::sfu", &Level::WARN));
        assert!(!Stream::Technical.accepts("zaal::sfu", &Level::INFO));
        assert!(Stream::Focus.accepts(FOCUS, &Level::INFO));
        assert!(!Stream::Bridge.accepts(FOCUS, &Level::INFO));
    }
}
