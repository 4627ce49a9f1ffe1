//! Opening a SQLite file under `data.dir` so that a problem with it is found, and named, at
//! start-up rather than in the middle of a meeting.
//!
//! Both databases (`zaal.sqlite3` here, `usage.sqlite3` in `stats::usage`) open through
//! [`open`]: the file is created private (`0600`; SQLite's `-wal` and `-shm` take its mode), its
//! pages are checked (`PRAGMA quick_check`), and the schema is applied in a write transaction, which
//! proves that no other process holds the file locked. Every wait for a lock is bounded by
//! [`BUSY_TIMEOUT`], so a locked file is an error after a few seconds, never a hang. This module
//! never repairs or replaces a file: what to do with a damaged database is the operator's call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

/// How long a statement waits for another process's lock before it fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a database file could not be opened; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the database {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the database {} is locked by another process (another `zaal serve` with the same \
         data.dir, or a tool holding it open); gave up after {} s",
        path.display(),
        BUSY_TIMEOUT.as_secs()
    )]
    Locked { path: PathBuf },
    #[error(
        "the database {} is damaged or not a SQLite database ({detail}); restore it from a \
         backup, or move it aside to start with an empty one",
        path.display()
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("cannot open the database {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

impl OpenError {
    fn from_sqlite(path: &Path, source: rusqlite::Error) -> Self {
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Self::Locked { path },
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Self::Corrupt {
                path,
                detail: source.to_string(),
            },
            _ => Self::Sqlite { path, source },
        }
    }
}

/// Opens (creating if needed) the database at `path` in WAL mode and applies `schema` (statements
/// that are no-ops when already applied, e.g. `CREATE TABLE IF NOT EXISTS`).
pub fn open(path: &Path, schema: &str, foreign_keys: bool) -> Result<Connection, OpenError> {
    crate::private_fs::create_file_if_missing(path).map_err(|source| OpenError::Create {
        path: path.to_path_buf(),
        source,
    })?;
    let sqlite = |source| OpenError::from_sqlite(path, source);
    let conn = Connection::open(path).map_err(sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sqlite)?;
    if foreign_keys {
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sqlite)?;
    }
    // A damaged page would otherwise surface as a failed login or a lost usage row later on. The
    // files are small (accounts, sessions, rooms, one row per ended conference), so the check
    // costs milliseconds.
    let problems: Vec<String> = {
        let mut check = conn.prepare("PRAGMA quick_check").map_err(sqlite)?;
        check
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(sqlite)?
            .collect::<Result<_, _>>()
            .map_err(sqlite)?
    };
    if problems.first().map(String::as_str) != Some("ok") {
        return Err(OpenError::Corrupt {
            path: path.to_path_buf(),
            detail: problems.join("; "),
        });
    }
    // IMMEDIATE takes the write lock now: a file another process keeps locked fails here, after
    // the busy timeout, instead of at the first write a user makes.
    conn.execute_batch(&format!("BEGIN IMMEDIATE;\n{schema}\nCOMMIT;"))
        .map_err(sqlite)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "zaal-database-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS t (x INTEGER);";

    #[test]
    fn a_file_that_is_not_a_database_is_named_as_damaged() {
        let dir = scratch();
        let path = dir.join("db.sqlite3");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let err = open(&path, SCHEMA, false).unwrap_err();
        assert!(matches!(err, OpenError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
