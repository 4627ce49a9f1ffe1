//! The files of the log streams: their names, and safe reading and rewriting while the server
//! writes.
//!
//! A stream is a set of files `<stream>.YYYY-MM-DD-HH.jsonl` (UTC hour of writing), one JSON
//! record per line. Writers and rewriters coordinate with an exclusive advisory lock on the file
//! itself: a writer locks, checks that its handle still is the file at that path (a rewrite
//! replaces the file by renaming a new one over it), writes one record and unlocks; a rewriter
//! (retention, erasure) locks, reads, writes the kept records to a temporary file and renames it
//! over the original before unlocking. So `zaal purge` and `zaal subject erase` are safe while the
//! server runs, and no record is lost or half-written. A rewriter killed half-way leaves the
//! original complete and a temporary file (`….jsonl.rewrite-PID`) that is no stream file; the
//! next purge or erasure removes it ([`remove_unfinished_rewrites`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Stream;

/// One file of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFile {
    pub stream: Stream,
    /// The start of the UTC hour the file was written in.
    pub hour: SystemTime,
    pub path: PathBuf,
}

/// The file name of a stream's file for the hour containing `at`.
pub fn file_name(stream: Stream, at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let hour = UNIX_EPOCH + Duration::from_secs(secs - secs % 3600);
    // "2026-11-23T20:00:00Z" → "2026-11-23-20"
    let stamp = humantime::format_rfc3339_seconds(hour).to_string();
    format!(
        "{}.{}-{}.jsonl",
        stream.name(),
        &stamp[..10],
        &stamp[11..13]
    )
}

/// Parses a file name made by [`file_name`].
pub fn parse_file_name(name: &str) -> Option<(Stream, SystemTime)> {
    let rest = name.strip_suffix(".jsonl")?;
    let (stream_name, stamp) = rest.split_once('.')?;
    let stream = Stream::ALL.into_iter().find(|s| s.name() == stream_name)?;
    if stamp.len() != 13 || stamp.as_bytes()[10] != b'-' {
        return None;
    }
    let rfc3339 = format!("{}T{}:00:00Z", &stamp[..10], &stamp[11..13]);
    let hour = humantime::parse_rfc3339(&rfc3339).ok()?;
    Some((stream, hour))
}

/// Every stream file under `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<StreamFile>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if let Some((stream, hour)) = name.to_str().and_then(parse_file_name) {
            files.push(StreamFile {
                stream,
                hour,
                path: entry.path(),
            });
        }
    }
    files.sort_by(|a, b| (a.hour, a.stream.name()).cmp(&(b.hour, b.stream.name())));
    Ok(files)
}

/// The moment a record was written: its RFC 3339 `timestamp` field.
pub fn record_time(record: &serde_json::Value) -> Option<SystemTime> {
    record
        .get("timestamp")
        .and_then(|t| t.as_str())
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
}

/// Opens a log file for appending, private to the service.
pub fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Whether `file` is still the file found at `path` (not replaced by a rewrite).
#[cfg(unix)]
pub fn is_current(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

#[cfg(not(unix))]
pub fn is_current(_file: &File, path: &Path) -> bool {
    path.exists()
}

/// Reads every record of a file (lines that are not JSON objects are kept as they are, so a
/// rewrite never destroys what it cannot read).
pub fn read_lines(path: &Path) -> io::Result<Vec<String>> {
    let file = File::open(path)?;
    BufReader::new(file).lines().collect()
}

/// What a rewrite did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub removed: usize,
    pub kept: usize,
    /// The file had nothing left and was deleted.
    pub deleted: bool,
}

/// Rewrites a stream file, keeping the lines for which `keep` is true, under the file's lock;
/// deletes the file if nothing is left. Atomic: readers see the old file or the new one.
pub fn rewrite(path: &Path, mut keep: impl FnMut(&str) -> bool) -> io::Result<Rewritten> {
    let Some(file) = lock_current(path)? else {
        return Ok(Rewritten::default());
    };
    let mut kept_lines = Vec::new();
    let mut removed = 0;
    for line in BufReader::new(&file).lines() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        if keep(&line) {
            kept_lines.push(line);
        } else {
            removed += 1;
        }
    }
    let result = Rewritten {
        removed,
        kept: kept_lines.len(),
        deleted: kept_lines.is_empty(),
    };
    if removed == 0 {
        return Ok(result);
    }
    if kept_lines.is_empty() {
        fs::remove_file(path)?;
        return Ok(result);
    }
    let tmp = path.with_extension(format!("jsonl{REWRITE_MARK}{}", std::process::id()));
    let written = write_private(&tmp, &kept_lines).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        // A disk full or failing half-way: the original is untouched, and the partial copy
        // must not stay behind holding records that retention would never see again.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The lock on the old (now unlinked) file is released when `file` drops; writers that were
    // waiting on it see it is no longer current and reopen the path.
    Ok(result)
}

/// What a rewrite's temporary file adds to the name of the file it replaces, before the
/// rewriter's process id.
const REWRITE_MARK: &str = ".rewrite-";

/// Writes `lines` to a new private file at `path` and syncs it, so that a rename puts complete
/// contents in place or nothing.
fn write_private(path: &Path, lines: &[String]) -> io::Result<()> {
    let mut out = io::BufWriter::new(open_private_truncate(path)?);
    for line in lines {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .sync_all()
}

/// Removes the temporary files of rewrites that never finished (a `zaal purge` or `zaal subject
/// erase` killed half-way), and returns how many. Such a file is a partial copy of a stream file
/// that is still complete at its own path; left behind, it would keep records past their
/// retention under a name no purge looks at. Each is removed under the lock of the file it was
/// to replace: a live rewrite holds that lock from before it creates its temporary file until
/// after the rename, so a temporary file found under the lock belongs to a dead one.
pub fn remove_unfinished_rewrites(dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some((original, pid)) = name.to_str().and_then(|n| n.rsplit_once(REWRITE_MARK)) else {
            continue;
        };
        if parse_file_name(original).is_none() || pid.parse::<u32>().is_err() {
            continue;
        }
        let _lock = lock_current(&dir.join(original))?;
        match fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// The file at `path`, locked and still the file at that path (it may have been replaced between
/// open and lock); `None` if there is none.
fn lock_current(path: &Path) -> io::Result<Option<File>> {
    loop {
        let file = match OpenOptions::new().read(true).append(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        file.lock()?;
        if is_current(&file, path) {
            return Ok(Some(file));
        }
    }
}

/// Deletes a whole stream file, under its lock so no write is in flight.
pub fn delete(path: &Path) -> io::Result<()> {
    let Some(_file) = lock_current(path)? else {
        return Ok(());
    };
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn open_private_truncate(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).write(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        let at = humantime::parse_rfc3339("2026-11-23T20:54:13Z").unwrap();
        let name = file_name(Stream::Access, at);
        assert_eq!(name, "access.2026-11-23-20.jsonl");
        let (stream, hour) = parse_file_name(&name).unwrap();
        assert_eq!(stream, Stream::Access);
        assert_eq!(
            hour,
            humantime::parse_rfc3339("2026-11-23T20:00:00Z").unwrap()
        );
        assert_eq!(
            parse_file_name("access.2026-11-23-20.jsonl.rewrite-7"),
            None
        );
        assert_eq!(parse_file_name("usage.2026-11-23-20.jsonl"), None);
        assert_eq!(parse_file_name("access.garbage.jsonl"), None);
    }

    #[test]
    fn rewrite_keeps_exactly_the_wanted_lines() {
        let dir = tempfile_dir();
        let path = dir.join("technical.2026-01-01-00.jsonl");
        fs::write(&path, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n").unwrap();
        let r = rewrite(&path, |l| !l.contains("\"a\":2")).unwrap();
        assert_eq!(r.removed, 1);
        assert_eq!(r.kept, 2);
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"a\":3}\n");
        let r = rewrite(&path, |_| false).unwrap();
        assert!(r.deleted);
        assert!(!path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_writer_never_loses_a_record_to_a_rewrite() {
        let dir = tempfile_dir();
        let path = dir.join("access.2026-01-01-00.jsonl");
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || {
            let mut file = open_append(&writer_path).unwrap();
            for i in 0..2000 {
                loop {
                    file.lock().unwrap();
                    if is_current(&file, &writer_path) {
                        break;
                    }
                    file = open_append(&writer_path).unwrap();
                }
                writeln!(file, "{{\"n\":{i}}}").unwrap();
                file.unlock().unwrap();
            }
        });
        let mut removed = 0;
        while !writer.is_finished() {
            removed += rewrite(&path, |l| !l.ends_with("0}")).unwrap().removed;
        }
        writer.join().unwrap();
        removed += rewrite(&path, |l| !l.ends_with("0}")).unwrap().removed;
        let left = read_lines(&path).unwrap();
        assert_eq!(
            removed, 200,
            "every record ending in 0 was seen and removed once"
        );
        assert_eq!(left.len(), 1800, "and every other record survived");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unfinished_rewrites_are_removed_and_nothing_else() {
        let dir = tempfile_dir();
        let original = dir.join("focus.2026-01-01-00.jsonl");
        fs::write(&original, "{\"a\":1}\n").unwrap();
        fs::write(dir.join("focus.2026-01-01-00.jsonl.rewrite-4242"), "{\"a\"").unwrap();
        // The original may be gone already (purged whole after the rewriter died).
        fs::write(dir.join("focus.2026-01-01-01.jsonl.rewrite-7"), "").unwrap();
        fs::write(dir.join("notes.rewrite-1"), "the operator's").unwrap();
        fs::write(dir.join("focus.2026-01-01-00.jsonl.rewrite-x"), "").unwrap();
        assert_eq!(remove_unfinished_rewrites(&dir).unwrap(), 2);
        let mut left: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "focus.2026-01-01-00.jsonl",
                "focus.2026-01-01-00.jsonl.rewrite-x",
                "notes.rewrite-1"
            ]
        );
        assert_eq!(read_lines(&original).unwrap(), ["{\"a\":1}"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "zaal-logfile-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
