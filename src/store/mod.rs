//! Durable state in one SQLite file under `data.dir`: host accounts, host sessions, the one-time
//! setup link, rooms, and the privacy statement's editions.
//!
//! The command line (`zaal user …`) and the running server open the same file; SQLite's locking
//! (WAL mode, a busy timeout) keeps them consistent; a file that is locked for good or damaged is
//! reported when it is opened, by name (`database`). Passwords are stored only as argon2 hashes,
//! session ids and setup tokens only as SHA-256 digests, so a copy of the file reveals no secret.
//! This module never logs: callers decide what an event means and where it may be written.

pub mod database;
mod hosts;
mod rooms;
mod sessions;
mod statements;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

pub use database::OpenError;
pub use hosts::{HostInfo, HostName, HostNameError, MIN_PASSWORD_LEN, password_hashes};
pub use rooms::RoomCreated;
pub use statements::{KEPT_EDITIONS, StoredEdition};

/// The database file's name inside `data.dir`.
pub const DB_FILE: &str = "zaal.sqlite3";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the data directory {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Database(#[from] OpenError),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a host named `{0}` already exists")]
    HostExists(String),
    #[error("there is no host named `{0}`")]
    NoSuchHost(String),
    #[error("a password has at least {MIN_PASSWORD_LEN} characters")]
    PasswordTooShort,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// The handle to the database; cheap to share behind an `Arc`.
pub struct Store {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hosts (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    digest TEXT PRIMARY KEY,
    host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
    expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS setup_links (
    digest TEXT PRIMARY KEY,
    expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rooms (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS statement_editions (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    first_served TEXT NOT NULL,
    digest TEXT NOT NULL,
    text_en TEXT NOT NULL,
    text_nl TEXT NOT NULL
);
";

impl Store {
    /// Opens (creating if needed) the database under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        crate::private_fs::create_dir_all(data_dir).map_err(|source| StoreError::Open {
            path: data_dir.display().to_string(),
            source,
        })?;
        let conn = database::open(&data_dir.join(DB_FILE), SCHEMA, true)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// Opens the database under `data_dir` if the server has made one; `None` when there is
    /// none yet (a command that only reads must not create the data directory).
    pub fn open_existing(data_dir: &Path) -> Result<Option<Self>, StoreError> {
        if !data_dir.join(DB_FILE).is_file() {
            return Ok(None);
        }
        Self::open(data_dir).map(Some)
    }

    /// An in-memory database, for unit tests.
    #[cfg(test)]
    pub fn in_memory() -> Self {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        Self {
            conn: Mutex::new(conn),
        }
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (each call is one
        // statement or transaction), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Seconds since the Unix epoch, the time unit of the database.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A fresh random token (256 bits, URL-safe) and the digest under which it is stored.
pub(crate) fn new_token() -> (String, String) {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let digest = token_digest(&token);
    (token, digest)
}

pub(crate) fn token_digest(token: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(token.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}
