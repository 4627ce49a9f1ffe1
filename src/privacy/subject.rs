//! Data-subject requests (SPEC P12): find, or erase, every retained record about a person.
//!
//! A person is known by the display name they used or by their IP address. A record is about them
//! when one of its personal-data fields (`pii::NAME_FIELDS`, `pii::IP_FIELDS`) matches: names
//! case-insensitively, addresses in full and in their truncated form (so a record written under
//! `privacy.ip_mode = "truncated"` is found too). Identifiers are deliberately not followed into
//! other streams: the `focus` and `bridge` streams hold no name and no address (P6), so nothing
//! there can be tied to a person. Erasure rewrites files atomically under their lock, so both work
//! while the server runs.

use std::io;
use std::net::IpAddr;
use std::path::Path;

use serde_json::Value;

use super::Stream;
use super::logfile;
use super::pii::{IP_FIELDS, NAME_FIELDS, canonical_ip, mask_ip};
use crate::config::IpMode;

/// Who a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Name(String),
    Ip(IpAddr),
}

impl Subject {
    /// Whether a record (one JSON line) is about this subject.
    pub fn matches(&self, record: &Value) -> bool {
        match self {
            Subject::Name(name) => {
                let wanted = name.trim().to_lowercase();
                !wanted.is_empty()
                    && NAME_FIELDS.iter().any(|field| {
                        record
                            .get(*field)
                            .and_then(Value::as_str)
                            .is_some_and(|v| v.trim().to_lowercase() == wanted)
                    })
            }
            Subject::Ip(ip) => {
                let full = canonical_ip(*ip);
                let truncated = mask_ip(full, IpMode::Truncated);
                IP_FIELDS.iter().any(|field| {
                    record
                        .get(*field)
                        .and_then(Value::as_str)
                        .and_then(|v| v.parse::<IpAddr>().ok())
                        .map(canonical_ip)
                        .is_some_and(|v| v == full || Some(v) == truncated)
                })
            }
        }
    }

    fn matches_line(&self, line: &str) -> bool {
        serde_json::from_str::<Value>(line).is_ok_and(|record| self.matches(&record))
    }
}

/// Every retained record about `subject`, per stream, oldest first.
pub fn export(dir: &Path, subject: &Subject) -> io::Result<Vec<(Stream, Vec<Value>)>> {
    let mut found: Vec<(Stream, Vec<Value>)> = Stream::ALL.map(|s| (s, Vec::new())).to_vec();
    for file in logfile::list(dir)? {
        let lines = match logfile::read_lines(&file.path) {
            Ok(lines) => lines,
            // Purged between listing and reading.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let records = &mut found
            .iter_mut()
            .find(|(s, _)| *s == file.stream)
            .expect("every stream is listed")
            .1;
        for line in lines {
            if let Ok(record) = serde_json::from_str::<Value>(&line)
                && subject.matches(&record)
            {
                records.push(record);
            }
        }
    }
    Ok(found)
}

/// Erases every retained record about `subject`; returns how many per stream.
pub fn erase(dir: &Path, subject: &Subject) -> io::Result<Vec<(Stream, usize)>> {
    // An erasure killed half-way leaves a partial copy of a file under a name no request
    // searches; this one finishes the job, so it clears those first.
    logfile::remove_unfinished_rewrites(dir)?;
    let mut erased: Vec<(Stream, usize)> = Stream::ALL.map(|s| (s, 0)).to_vec();
    for file in logfile::list(dir)? {
        let rewritten = logfile::rewrite(&file.path, |line| !subject.matches_line(line))?;
        erased
            .iter_mut()
            .find(|(s, _)| *s == file.stream)
            .expect("every stream is listed")
            .1 += rewritten.removed;
    }
    Ok(erased)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_match_without_regard_to_case() {
        let anna = Subject::Name(" Anna de Vries".into());
        assert!(anna.matches(&json!({"name": "anna de vries", "event": "x"})));
        assert!(!anna.matches(&json!({"name": "Anna"})));
        assert!(
            !anna.matches(&json!({"event": "Anna de Vries"})),
            "only name fields"
        );
        assert!(!Subject::Name("  ".into()).matches(&json!({"name": ""})));
    }

    #[test]
    fn addresses_match_in_full_and_truncated_form() {
        let ip = Subject::Ip("203.0.113.77".parse().unwrap());
        assert!(ip.matches(&json!({"client_ip": "203.0.113.77"})));
        assert!(ip.matches(&json!({"client_ip": "203.0.113.0"})));
        assert!(!ip.matches(&json!({"client_ip": "203.0.113.78"})));
        assert!(!ip.matches(&json!({"client_ip": "-"})));
        let v6 = Subject::Ip("2001:db8:aa:1::5".parse().unwrap());
        assert!(v6.matches(&json!({"client_ip": "2001:db8:aa::"})));
        assert!(!v6.matches(&json!({"client_ip": "2001:db8:ab::"})));
    }

    #[test]
    fn erase_removes_exactly_the_subjects_records() {
        let dir = std::env::temp_dir().join(format!(
            "zaal-subject-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("technical.2026-11-10-09.jsonl"),
            "{\"name\":\"Anna\",\"client_ip\":\"10.1.2.3\"}\n{\"name\":\"Bram\",\"client_ip\":\"10.1.2.4\"}\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("access.2026-11-10-09.jsonl"),
            "{\"client_ip\":\"10.1.2.3\",\"path\":\"/\"}\n{\"client_ip\":\"10.9.9.9\",\"path\":\"/\"}\n",
        )
        .unwrap();
        let subject = Subject::Ip("10.1.2.3".parse().unwrap());
        let found = export(&dir, &subject).unwrap();
        let count = |stream| found.iter().find(|(s, _)| *s == stream).unwrap().1.len();
        assert_eq!(count(Stream::Technical), 1);
        assert_eq!(count(Stream::Access), 1);
        let erased = erase(&dir, &subject).unwrap();
        assert!(erased.contains(&(Stream::Technical, 1)));
        assert!(erased.contains(&(Stream::Access, 1)));
        let technical = std::fs::read_to_string(dir.join("technical.2026-11-10-09.jsonl")).unwrap();
        assert_eq!(
            technical,
            "{\"name\":\"Bram\",\"client_ip\":\"10.1.2.4\"}\n"
        );
        assert!(
            export(&dir, &subject)
                .unwrap()
                .iter()
                .all(|(_, r)| r.is_empty())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
