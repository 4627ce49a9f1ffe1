//! Usage: how many conferences, with how many people, for how long (SPEC P11).
//!
//! Kept in `data.dir/usage.sqlite3` as one anonymous row per ended conference (its UTC day, size,
//! peak, participant-seconds, duration) and one row per day with the server-wide peak of
//! concurrent participants. No identifier, name, room name or address is ever written here, so
//! this file may be kept indefinitely. Reports aggregate the rows by day, ISO week or month.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use rusqlite::{Connection, params};
use serde::Serialize;
use time::{Date, OffsetDateTime};

use crate::config::UsagePeriod;

pub const USAGE_DB_FILE: &str = "usage.sqlite3";

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Database(#[from] crate::store::OpenError),
    #[error("usage database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
}

/// One ended conference, as usage counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConferenceUsage {
    /// When it started (only its UTC day is kept).
    pub started: SystemTime,
    /// Joins over its life.
    pub participants: u32,
    /// The most participants at once.
    pub peak: u32,
    /// The sum of every participant's time in it.
    pub participant_seconds: u64,
    /// From the first join to the last leave.
    pub duration_seconds: u64,
}

/// The usage database.
pub struct Usage {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conferences (
    day TEXT NOT NULL,
    participants INTEGER NOT NULL,
    peak INTEGER NOT NULL,
    participant_seconds INTEGER NOT NULL,
    duration_seconds INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS conferences_day ON conferences(day);
CREATE TABLE IF NOT EXISTS daily_peaks (
    day TEXT PRIMARY KEY,
    peak INTEGER NOT NULL
);
";

/// The UTC day of a moment, as `YYYY-MM-DD`.
pub fn utc_day(at: SystemTime) -> Date {
    OffsetDateTime::from(at).date()
}

fn day_key(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Parses `YYYY-MM-DD`.
pub fn parse_day(value: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(value, &format).ok()
}

/// The label of the period a day belongs to: `2026-11-23`, `2026-W48` or `2026-11`.
pub fn period_label(date: Date, period: UsagePeriod) -> String {
    match period {
        UsagePeriod::Day => day_key(date),
        UsagePeriod::Week => {
            let (year, week, _) = date.to_iso_week_date();
            format!("{year:04}-W{week:02}")
        }
        UsagePeriod::Month => format!("{:04}-{:02}", date.year(), u8::from(date.month())),
    }
}

/// Conference sizes as the report buckets them.
pub const SIZE_BUCKETS: [(&str, u32, u32); 7] = [
    ("1", 1, 1),
    ("2", 2, 2),
    ("3-5", 3, 5),
    ("6-10", 6, 10),
    ("11-20", 11, 20),
    ("21-50", 21, 50),
    ("51+", 51, u32::MAX),
];

/// Conference durations as the report buckets them (upper bounds exclusive, in minutes).
pub const DURATION_BUCKETS: [(&str, u64, u64); 6] = [
    ("<5m", 0, 5),
    ("5-15m", 5, 15),
    ("15-30m", 15, 30),
    ("30-60m", 30, 60),
    ("1-2h", 60, 120),
    ("2h+", 120, u64::MAX),
];

/// One period of a usage report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodUsage {
    pub period: String,
    pub conferences: u64,
    pub participants: u64,
    pub peak_concurrent_participants: u64,
    pub participant_minutes: u64,
    pub conference_sizes: BTreeMap<&'static str, u64>,
    pub conference_durations: BTreeMap<&'static str, u64>,
}

impl PeriodUsage {
    fn empty(period: String) -> Self {
        Self {
            period,
            conferences: 0,
            participants: 0,
            peak_concurrent_participants: 0,
            participant_minutes: 0,
            conference_sizes: SIZE_BUCKETS.iter().map(|(k, ..)| (*k, 0)).collect(),
            conference_durations: DURATION_BUCKETS.iter().map(|(k, ..)| (*k, 0)).collect(),
        }
    }
}

impl Usage {
    pub fn open(data_dir: &Path) -> Result<Self, UsageError> {
        crate::private_fs::create_dir_all(data_dir).map_err(|source| UsageError::Open {
            path: data_dir.display().to_string(),
            source,
        })?;
        let conn = crate::store::database::open(&data_dir.join(USAGE_DB_FILE), SCHEMA, false)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn record_conference(&self, usage: &ConferenceUsage) -> Result<(), UsageError> {
        self.conn().execute(
            "INSERT INTO conferences (day, participants, peak, participant_seconds, duration_seconds)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                day_key(utc_day(usage.started)),
                usage.participants,
                usage.peak,
                usage.participant_seconds as i64,
                usage.duration_seconds as i64
            ],
        )?;
        Ok(())
    }

    /// Notes how many participants are connected now; keeps the day's maximum.
    pub fn observe_concurrent(&self, at: SystemTime, participants: u64) -> Result<(), UsageError> {
        self.conn().execute(
            "INSERT INTO daily_peaks (day, peak) VALUES (?1, ?2)
             ON CONFLICT(day) DO UPDATE SET peak = MAX(peak, excluded.peak)",
            params![day_key(utc_day(at)), participants as i64],
        )?;
        Ok(())
    }

    /// Usage from `from` to `to` (inclusive UTC days), grouped by `period`.
    pub fn report(
        &self,
        from: Option<Date>,
        to: Option<Date>,
        period: UsagePeriod,
    ) -> Result<Vec<PeriodUsage>, UsageError> {
        let from = from.map(day_key).unwrap_or_else(|| "0000-00-00".into());
        let to = to.map(day_key).unwrap_or_else(|| "9999-99-99".into());
        let conn = self.conn();
        let mut rows: BTreeMap<String, PeriodUsage> = BTreeMap::new();
        fn entry<'a>(
            rows: &'a mut BTreeMap<String, PeriodUsage>,
            day: &str,
            period: UsagePeriod,
        ) -> Option<&'a mut PeriodUsage> {
            let label = period_label(parse_day(day)?, period);
            Some(
                rows.entry(label.clone())
                    .or_insert_with(|| PeriodUsage::empty(label)),
            )
        }
        let mut stmt = conn.prepare(
            "SELECT day, participants, peak, participant_seconds, duration_seconds
             FROM conferences WHERE day >= ?1 AND day <= ?2",
        )?;
        let conferences = stmt.query_map(params![from, to], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut participant_seconds: BTreeMap<String, u64> = BTreeMap::new();
        for row in conferences {
            let (day, participants, peak, seconds, duration) = row?;
            let Some(usage) = entry(&mut rows, &day, period) else {
                continue;
            };
            usage.conferences += 1;
            usage.participants += participants.max(0) as u64;
            *participant_seconds.entry(usage.period.clone()).or_default() += seconds.max(0) as u64;
            let size = peak.max(0) as u32;
            if let Some((key, ..)) = SIZE_BUCKETS
                .iter()
                .find(|(_, lo, hi)| size >= *lo && size <= *hi)
            {
                *usage.conference_sizes.entry(key).or_default() += 1;
            }
            let minutes = duration.max(0) as u64 / 60;
            if let Some((key, ..)) = DURATION_BUCKETS
                .iter()
                .find(|(_, lo, hi)| minutes >= *lo && minutes < *hi)
            {
                *usage.conference_durations.entry(key).or_default() += 1;
            }
        }
        let mut stmt =
            conn.prepare("SELECT day, peak FROM daily_peaks WHERE day >= ?1 AND day <= ?2")?;
        let peaks = stmt.query_map(params![from, to], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in peaks {
            let (day, peak) = row?;
            if let Some(usage) = entry(&mut rows, &day, period) {
                usage.peak_concurrent_participants =
                    usage.peak_concurrent_participants.max(peak.max(0) as u64);
            }
        }
        for (period, seconds) in participant_seconds {
            if let Some(usage) = rows.get_mut(&period) {
                usage.participant_minutes = seconds.div_ceil(60);
            }
        }
        Ok(rows.into_values().collect())
    }
}

/// The report as CSV, one line per period.
pub fn to_csv(rows: &[PeriodUsage]) -> String {
    let mut out = String::from(
        "period,conferences,participants,peak_concurrent_participants,participant_minutes",
    );
    for (key, ..) in SIZE_BUCKETS {
        out.push_str(&format!(",size_{key}"));
    }
    for (key, ..) in DURATION_BUCKETS {
        out.push_str(&format!(",duration_{key}"));
    }
    out.push('\n');
    for row in rows {
        out.push_str(&format!(
            "{},{},{},{},{}",
            row.period,
            row.conferences,
            row.participants,
            row.peak_concurrent_participants,
            row.participant_minutes
        ));
        for (key, ..) in SIZE_BUCKETS {
            out.push_str(&format!(",{}", row.conference_sizes.get(key).unwrap_or(&0)));
        }
        for (key, ..) in DURATION_BUCKETS {
            out.push_str(&format!(
                ",{}",
                row.conference_durations.get(key).unwrap_or(&0)
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn periods_are_labelled() {
        let d = parse_day("2026-11-23").unwrap();
        assert_eq!(period_label(d, UsagePeriod::Day), "2026-11-23");
        assert_eq!(period_label(d, UsagePeriod::Week), "2026-W48");
        assert_eq!(period_label(d, UsagePeriod::Month), "2026-11");
        assert_eq!(
            period_label(parse_day("2027-01-01").unwrap(), UsagePeriod::Week),
            "2026-W53"
        );
        assert!(parse_day("2026-13-01").is_none());
    }

    #[test]
    fn a_day_is_reported_as_it_happened() {
        let dir = std::env::temp_dir().join(format!(
            "zaal-usage-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let usage = Usage::open(&dir).unwrap();
        usage
            .record_conference(&ConferenceUsage {
                started: at("2026-11-23T09:00:00Z"),
                participants: 3,
                peak: 3,
                participant_seconds: 3 * 1800,
                duration_seconds: 1800,
            })
            .unwrap();
        usage
            .record_conference(&ConferenceUsage {
                started: at("2026-11-23T13:00:00Z"),
                participants: 2,
                peak: 2,
                participant_seconds: 2 * 240,
                duration_seconds: 240,
            })
            .unwrap();
        usage
            .record_conference(&ConferenceUsage {
                started: at("2026-11-24T13:00:00Z"),
                participants: 7,
                peak: 6,
                participant_seconds: 10,
                duration_seconds: 3 * 3600,
            })
            .unwrap();
        usage
            .observe_concurrent(at("2026-11-23T09:10:00Z"), 3)
            .unwrap();
        usage
            .observe_concurrent(at("2026-11-23T13:01:00Z"), 2)
            .unwrap();
        let day = parse_day("2026-11-23").unwrap();
        let rows = usage
            .report(Some(day), Some(day), UsagePeriod::Day)
            .unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.period, "2026-11-23");
        assert_eq!(r.conferences, 2);
        assert_eq!(r.participants, 5);
        assert_eq!(r.peak_concurrent_participants, 3);
        assert_eq!(r.participant_minutes, 98);
        assert_eq!(r.conference_sizes["2"], 1);
        assert_eq!(r.conference_sizes["3-5"], 1);
        assert_eq!(r.conference_durations["<5m"], 1);
        assert_eq!(r.conference_durations["30-60m"], 1);
        let month = usage.report(None, None, UsagePeriod::Month).unwrap();
        assert_eq!(month.len(), 1);
        assert_eq!(month[0].conferences, 3);
        assert_eq!(month[0].conference_durations["2h+"], 1);
        let csv = to_csv(&rows);
        assert!(csv.starts_with("period,conferences,participants,"));
        assert!(csv.contains("\n2026-11-23,2,5,3,98,"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
