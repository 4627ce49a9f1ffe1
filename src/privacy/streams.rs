//! The log streams as JSON-lines files, one file per stream per hour.
//!
//! A record's stream is its `tracing` target; warnings and errors of any other target belong to
//! `technical`. Files roll every hour (`<stream>.YYYY-MM-DD-HH.jsonl`, see `logfile`) so that
//! retention can delete whole files. Writing is non-blocking: a background thread does the file
//! I/O, so a slow disk never stalls a request or a packet, and a full one costs the records that
//! do not fit (counted, see [`write_errors`]) and nothing else.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use tracing::Level;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;

use super::pii::{IP_FIELDS, NAME_FIELDS};
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

    /// The stream's position in [`Stream::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Stream::Access => ACCESS,
            Stream::Technical => TECHNICAL,
            Stream::Focus => FOCUS,
            Stream::Bridge => BRIDGE,
        }
    }

    /// Whether a record with this target, level and fields belongs to this stream. A record
    /// carrying a personal-data field (`pii::IP_FIELDS`, `pii::NAME_FIELDS`) is refused by every
    /// stream that may not hold it (SPEC §2, P2 and P3), whatever its target.
    fn accepts(self, target: &str, level: &Level, fields: &[&str]) -> bool {
        let has = |names: &[&str]| fields.iter().any(|f| names.contains(f));
        let allowed = match self {
            Stream::Technical => true,
            Stream::Access => !has(NAME_FIELDS),
            Stream::Focus | Stream::Bridge => !has(NAME_FIELDS) && !has(IP_FIELDS),
        };
        allowed && self.accepts_target(target, level)
    }

    fn accepts_target(self, target: &str, level: &Level) -> bool {
        match self {
            Stream::Technical => {
                target == TECHNICAL
                    || (*level <= Level::WARN && ![ACCESS, FOCUS, BRIDGE].contains(&target))
            }
            stream => target == stream.name(),
        }
    }
}

/// Records each stream could not write (a full or failing disk), since the process started:
/// `zaal_log_write_errors_total{stream}`. Kept here, beside the writer, because the writer runs
/// on a thread of its own that nothing else can ask.
static WRITE_ERRORS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// How many records `stream` has failed to write since the process started.
pub fn write_errors(stream: Stream) -> u64 {
    WRITE_ERRORS[stream.index()].load(Ordering::Relaxed)
}

/// Appends one stream's records to the file of the current hour, taking the file's lock for
/// each record so that a concurrent rewrite (retention, erasure) never loses one.
///
/// A record that cannot be written (`logs.dir` full, say) is dropped and counted, and whatever
/// part of it reached the file is cut off again, so the file holds whole records only; the
/// server goes on, and the next record tries again, so writing resumes by itself when space
/// returns. The operator hears of the change once each way on stderr, without the record.
struct HourlyWriter {
    dir: PathBuf,
    stream: Stream,
    open: Option<(String, File)>,
    /// Whether the last record failed: the notice is printed on the change, not per record.
    failing: bool,
}

impl HourlyWriter {
    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        let name = super::logfile::file_name(self.stream, SystemTime::now());
        let path = self.dir.join(&name);
        let file = loop {
            if !matches!(&self.open, Some((open, _)) if *open == name) {
                // Drop the old handle first, so a failed open leaves none to be reused.
                self.open = None;
                self.open = Some((name.clone(), super::logfile::open_append(&path)?));
            }
            let (_, file) = self.open.as_mut().expect("opened just above");
            file.lock()?;
            // A rewrite may have replaced the file while we waited for the lock.
            if super::logfile::is_current(file, &path) {
                break file;
            }
            file.unlock()?;
            self.open = None;
        };
        let written = file.metadata().and_then(|meta| {
            let before = meta.len();
            file.write_all(record).inspect_err(|_| {
                // A short write (the disk filled up mid-record) leaves half a line; without
                // it the file stays a sequence of whole JSON lines. Shrinking frees space, so
                // this succeeds on a full disk.
                let _ = file.set_len(before);
            })
        });
        let unlocked = file.unlock();
        written?;
        unlocked
    }
}

impl Write for HourlyWriter {
    fn write(&mut self, record: &[u8]) -> io::Result<usize> {
        match self.append(record) {
            Ok(()) => {
                if std::mem::take(&mut self.failing) {
                    eprintln!(
                        "zaal: the {} log stream is written again under {}",
                        self.stream.name(),
                        self.dir.display()
                    );
                }
                Ok(record.len())
            }
            Err(e) => {
                WRITE_ERRORS[self.stream.index()].fetch_add(1, Ordering::Relaxed);
                if !std::mem::replace(&mut self.failing, true) {
                    eprintln!(
                        "zaal: cannot write the {} log stream under {}: {e}; its records are \
                         dropped and counted in zaal_log_write_errors_total until a write succeeds",
                        self.stream.name(),
                        self.dir.display()
                    );
                }
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Keeps the background writers alive; dropping it flushes every stream.
pub struct LogGuard {
    _guards: Vec<WorkerGuard>,
}

/// Installs the process-wide subscriber writing the four streams under `dir`.
pub fn init_logging(dir: &Path) -> std::io::Result<LogGuard> {
    // The streams hold personal data: only the service may read them. A folder the operator
    // made keeps its mode (`private_fs`); `zaal serve` says so when it is open to others.
    crate::private_fs::create_dir_all(dir)?;
    let mut guards = Vec::new();
    let mut layers = Vec::new();
    for stream in Stream::ALL {
        let appender = HourlyWriter {
            dir: dir.to_path_buf(),
            stream,
            open: None,
            failing: false,
        };
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
                let fields: Vec<&str> = meta.fields().iter().map(|f| f.name()).collect();
                stream.accepts(meta.target(), meta.level(), &fields)
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
    fn each_stream_has_its_own_error_counter() {
        for (i, stream) in Stream::ALL.into_iter().enumerate() {
            assert_eq!(stream.index(), i);
        }
    }

    #[test]
    fn records_go_to_their_stream_only() {
        assert!(Stream::Access.accepts(ACCESS, &Level::INFO, &[]));
        assert!(!Stream::Technical.accepts(ACCESS, &Level::ERROR, &[]));
        assert!(Stream::Technical.accepts("zaal::sfu", &Level::WARN, &[]));
        assert!(!Stream::Technical.accepts("zaal::sfu", &Level::INFO, &[]));
        assert!(Stream::Focus.accepts(FOCUS, &Level::INFO, &[]));
        assert!(!Stream::Bridge.accepts(FOCUS, &Level::INFO, &[]));
    }

    #[test]
    fn personal_fields_never_reach_a_stream_that_may_not_hold_them() {
        let ip = &["event", "client_ip"][..];
        let name = &["event", "name"][..];
        assert!(Stream::Access.accepts(ACCESS, &Level::INFO, ip));
        assert!(!Stream::Access.accepts(ACCESS, &Level::INFO, name));
        assert!(!Stream::Focus.accepts(FOCUS, &Level::INFO, ip));
        assert!(!Stream::Focus.accepts(FOCUS, &Level::INFO, name));
        assert!(!Stream::Bridge.accepts(BRIDGE, &Level::WARN, ip));
        assert!(!Stream::Bridge.accepts(BRIDGE, &Level::INFO, name));
        assert!(Stream::Technical.accepts(TECHNICAL, &Level::INFO, name));
        assert!(Stream::Technical.accepts(TECHNICAL, &Level::INFO, ip));
    }
}
