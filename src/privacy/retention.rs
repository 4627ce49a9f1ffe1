//! Retention: deleting every record older than its stream's retention, and nothing younger.
//!
//! After a purge at time T, no record written before T − retention remains in its stream, and
//! every record written at or after it does. Files whose whole hour lies before the cutoff are
//! deleted whole; the few files that straddle it are rewritten atomically without the expired
//! records (see `logfile`). What to do with a file and with a record is decided by pure functions,
//! tested at the boundary; the I/O is in [`purge`].

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::Stream;
use super::logfile::{self, StreamFile};
use crate::config::RetentionSettings;

const HOUR: Duration = Duration::from_secs(3600);

/// How often the running server applies retention (the privacy statement says so).
pub const PURGE_INTERVAL: Duration = Duration::from_secs(300);
/// A record is filed by the hour it was *written*, a moment after its timestamp; files starting
/// this soon after the cutoff are still checked record by record.
const WRITE_LAG: Duration = Duration::from_secs(60);

/// How long a stream keeps its records.
pub fn retention_of(stream: Stream, settings: &RetentionSettings) -> Duration {
    match stream {
        Stream::Access => settings.access,
        Stream::Technical => settings.technical,
        Stream::Focus => settings.focus,
        Stream::Bridge => settings.bridge,
    }
}

/// What a purge does with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAction {
    /// Every record in it is older than the cutoff.
    Delete,
    /// Some records may be older than the cutoff: check each.
    Filter,
    /// Every record in it is younger.
    Keep,
}

pub fn file_action(hour: SystemTime, cutoff: SystemTime) -> FileAction {
    if hour + HOUR <= cutoff {
        FileAction::Delete
    } else if hour <= cutoff + WRITE_LAG {
        FileAction::Filter
    } else {
        FileAction::Keep
    }
}

/// Whether one record (a line of a file of `hour`) survives `cutoff`. A line that cannot be
/// dated is taken to be as old as its file.
pub fn keeps(line: &str, hour: SystemTime, cutoff: SystemTime) -> bool {
    let written = serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .as_ref()
        .and_then(logfile::record_time)
        .unwrap_or(hour);
    written >= cutoff
}

/// What a purge removed from one stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamPurge {
    pub files_deleted: usize,
    pub files_rewritten: usize,
    pub records_removed: usize,
}

/// What a purge removed, per stream.
#[derive(Debug, Default, Clone)]
pub struct PurgeReport {
    pub streams: Vec<(Stream, StreamPurge)>,
}

impl PurgeReport {
    pub fn get(&self, stream: Stream) -> StreamPurge {
        self.streams
            .iter()
            .find(|(s, _)| *s == stream)
            .map(|(_, p)| *p)
            .unwrap_or_default()
    }
}

/// Applies every stream's retention to the files under `dir`, as if it were `now`.
pub fn purge(dir: &Path, now: SystemTime, settings: &RetentionSettings) -> io::Result<PurgeReport> {
    // A purge killed half-way leaves a partial copy that no later purge would look at.
    logfile::remove_unfinished_rewrites(dir)?;
    let mut report = PurgeReport {
        streams: Stream::ALL
            .into_iter()
            .map(|s| (s, StreamPurge::default()))
            .collect(),
    };
    for StreamFile { stream, hour, path } in logfile::list(dir)? {
        let cutoff = now
            .checked_sub(retention_of(stream, settings))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let entry = &mut report
            .streams
            .iter_mut()
            .find(|(s, _)| *s == stream)
            .expect("every stream is in the report")
            .1;
        match file_action(hour, cutoff) {
            FileAction::Keep => {}
            FileAction::Delete => {
                let records = logfile::read_lines(&path)
                    .map(|l| l.iter().filter(|l| !l.is_empty()).count())
                    .unwrap_or(0);
                logfile::delete(&path)?;
                entry.files_deleted += 1;
                entry.records_removed += records;
            }
            FileAction::Filter => {
                let rewritten = logfile::rewrite(&path, |line| keeps(line, hour, cutoff))?;
                if rewritten.removed > 0 {
                    entry.records_removed += rewritten.removed;
                    if rewritten.deleted {
                        entry.files_deleted += 1;
                    } else {
                        entry.files_rewritten += 1;
                    }
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn files_are_deleted_filtered_or_kept() {
        let cutoff = at("2026-11-10T12:30:00Z");
        assert_eq!(
            file_action(at("2026-11-10T11:00:00Z"), cutoff),
            FileAction::Delete
        );
        assert_eq!(
            file_action(at("2026-11-10T12:00:00Z"), cutoff),
            FileAction::Filter
        );
        assert_eq!(
            file_action(at("2026-11-10T13:00:00Z"), cutoff),
            FileAction::Keep
        );
        let on_the_hour = at("2026-11-10T12:00:00Z");
        assert_eq!(
            file_action(at("2026-11-10T11:00:00Z"), on_the_hour),
            FileAction::Delete
        );
        assert_eq!(
            file_action(at("2026-11-10T12:00:00Z"), on_the_hour),
            FileAction::Filter,
            "a record stamped just before the hour may have been filed in it"
        );
    }

    #[test]
    fn records_exactly_at_the_cutoff_stay() {
        let hour = at("2026-11-10T12:00:00Z");
        let cutoff = at("2026-11-10T12:30:00Z");
        let line = |ts: &str| format!(r#"{{"timestamp":"{ts}","event":"x"}}"#);
        assert!(!keeps(&line("2026-11-10T12:29:59.999999Z"), hour, cutoff));
        assert!(keeps(&line("2026-11-10T12:30:00Z"), hour, cutoff));
        assert!(keeps(&line("2026-11-10T12:30:00.000001Z"), hour, cutoff));
        assert!(
            !keeps("not json", hour, cutoff),
            "undated lines are as old as the file"
        );
    }

    #[test]
    fn purge_removes_exactly_the_expired_records() {
        let dir = std::env::temp_dir().join(format!(
            "zaal-retention-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, stamps: &[&str]| {
            let body: String = stamps
                .iter()
                .map(|ts| format!("{{\"timestamp\":\"{ts}\",\"event\":\"x\"}}\n"))
                .collect();
            std::fs::write(dir.join(name), body).unwrap();
        };
        write("bridge.2026-11-09-10.jsonl", &["2026-11-09T10:15:00Z"]);
        write(
            "bridge.2026-11-09-11.jsonl",
            &[
                "2026-11-09T11:00:00Z",
                "2026-11-09T11:29:59Z",
                "2026-11-09T11:30:00Z",
            ],
        );
        write("bridge.2026-11-09-12.jsonl", &["2026-11-09T12:01:00Z"]);
        write("access.2026-11-09-10.jsonl", &["2026-11-09T10:15:00Z"]);
        let settings = RetentionSettings {
            access: Duration::from_secs(14 * 86400),
            technical: Duration::from_secs(14 * 86400),
            focus: Duration::from_secs(7 * 86400),
            bridge: Duration::from_secs(86400),
        };
        // Bridge keeps 24 h: at 11:30 the next day, the cutoff is 11:30.
        let report = purge(&dir, at("2026-11-10T11:30:00Z"), &settings).unwrap();
        let bridge = report.get(Stream::Bridge);
        assert_eq!(bridge.files_deleted, 1);
        assert_eq!(bridge.files_rewritten, 1);
        assert_eq!(bridge.records_removed, 3);
        assert!(!dir.join("bridge.2026-11-09-10.jsonl").exists());
        let left = std::fs::read_to_string(dir.join("bridge.2026-11-09-11.jsonl")).unwrap();
        assert_eq!(
            left,
            "{\"timestamp\":\"2026-11-09T11:30:00Z\",\"event\":\"x\"}\n"
        );
        assert!(dir.join("bridge.2026-11-09-12.jsonl").exists());
        assert_eq!(report.get(Stream::Access), StreamPurge::default());
        assert!(dir.join("access.2026-11-09-10.jsonl").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
