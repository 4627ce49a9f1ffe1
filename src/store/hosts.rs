//! Host accounts: names and argon2 password hashes.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, password_hash::rand_core::OsRng};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, unix_now};

pub const MIN_PASSWORD_LEN: usize = 10;
const MAX_PASSWORD_LEN: usize = 1024;

/// A host's login name: 1–32 characters from a–z, 0–9, `.`, `_`, `-`, lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a host name is 1 to 32 characters from a-z, 0-9, '.', '_' and '-'")]
pub struct HostNameError;

impl HostName {
    pub fn parse(input: &str) -> Result<Self, HostNameError> {
        let name = input.trim().to_ascii_lowercase();
        let ok = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        if ok {
            Ok(Self(name))
        } else {
            Err(HostNameError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A host as `zaal user list` shows it.
#[derive(Debug, Clone)]
pub struct HostInfo {
    pub name: String,
    pub created_unix: i64,
}

/// Argon2 computations since start (hashes and checks): what `/metrics` shows as
/// `zaal_password_hashes_total`, so an operator (and a test) sees the slow work being done.
static PASSWORD_HASHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Argon2 computations since start.
pub fn password_hashes() -> u64 {
    PASSWORD_HASHES.load(std::sync::atomic::Ordering::Relaxed)
}

fn count_hash() {
    PASSWORD_HASHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

pub(super) fn hash_password(password: &str) -> Result<String, StoreError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(StoreError::PasswordTooShort);
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(StoreError::Hash("password too long".into()));
    }
    let salt = SaltString::generate(&mut OsRng);
    count_hash();
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Hash(e.to_string()))
}

/// A valid hash of a password nobody knows, so that checking an unknown user costs as much as
/// checking a known one and timing does not reveal which names exist.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"decoy password that matches nothing", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

fn verify(password: &str, hash: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    PasswordHash::new(hash)
        .map(|parsed| {
            count_hash();
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

impl Store {
    pub fn add_host(&self, name: &HostName, password: &str) -> Result<(), StoreError> {
        let hash = hash_password(password)?;
        let inserted = self.conn().execute(
            "INSERT OR IGNORE INTO hosts (name, password_hash, created) VALUES (?1, ?2, ?3)",
            params![name.as_str(), hash, unix_now()],
        )?;
        if inserted == 0 {
            return Err(StoreError::HostExists(name.to_string()));
        }
        Ok(())
    }

    pub fn list_hosts(&self) -> Result<Vec<HostInfo>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT name, created FROM hosts ORDER BY name")?;
        let rows = stmt.query_map([], |row| {
            Ok(HostInfo {
                name: row.get(0)?,
                created_unix: row.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn host_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM hosts", [], |row| row.get(0))?)
    }

    /// Removes a host and ends their sessions. Their rooms stay: links already handed out keep
    /// working until an operator removes the room.
    pub fn remove_host(&self, name: &HostName) -> Result<(), StoreError> {
        let removed = self
            .conn()
            .execute("DELETE FROM hosts WHERE name = ?1", params![name.as_str()])?;
        if removed == 0 {
            return Err(StoreError::NoSuchHost(name.to_string()));
        }
        Ok(())
    }

    /// Sets a new password and ends the host's sessions everywhere.
    pub fn set_password(&self, name: &HostName, password: &str) -> Result<(), StoreError> {
        let hash = hash_password(password)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let updated = tx.execute(
            "UPDATE hosts SET password_hash = ?2 WHERE name = ?1",
            params![name.as_str(), hash],
        )?;
        if updated == 0 {
            return Err(StoreError::NoSuchHost(name.to_string()));
        }
        tx.execute(
            "DELETE FROM sessions WHERE host = ?1",
            params![name.as_str()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Whether `password` is this host's password. Slow on purpose (argon2): call it off the
    /// async executor.
    pub fn check_password(&self, name: &HostName, password: &str) -> Result<bool, StoreError> {
        let stored: Option<String> = self
            .conn()
            .query_row(
                "SELECT password_hash FROM hosts WHERE name = ?1",
                params![name.as_str()],
                |row| row.get(0),
            )
            .optional()?;
        Ok(match stored {
            Some(hash) => verify(password, &hash),
            None => {
                verify(password, decoy_hash());
                false
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(
            HostName::parse(" Teacher.1 ").unwrap().as_str(),
            "teacher.1"
        );
        assert!(HostName::parse("").is_err());
        assert!(HostName::parse("a b").is_err());
        assert!(HostName::parse(&"x".repeat(33)).is_err());
    }

    #[test]
    fn accounts_lifecycle() {
        let store = Store::in_memory();
        let name = HostName::parse("juf").unwrap();
        assert!(matches!(
            store.add_host(&name, "short"),
            Err(StoreError::PasswordTooShort)
        ));
        store.add_host(&name, "correct horse battery").unwrap();
        assert!(matches!(
            store.add_host(&name, "another password"),
            Err(StoreError::HostExists(_))
        ));
        assert!(
            store
                .check_password(&name, "correct horse battery")
                .unwrap()
        );
        assert!(!store.check_password(&name, "wrong password!").unwrap());
        let other = HostName::parse("nobody").unwrap();
        assert!(
            !store
                .check_password(&other, "correct horse battery")
                .unwrap()
        );
        store.set_password(&name, "a brand new password").unwrap();
        assert!(
            !store
                .check_password(&name, "correct horse battery")
                .unwrap()
        );
        assert!(store.check_password(&name, "a brand new password").unwrap());
        assert_eq!(store.list_hosts().unwrap().len(), 1);
        store.remove_host(&name).unwrap();
        assert!(matches!(
            store.remove_host(&name),
            Err(StoreError::NoSuchHost(_))
        ));
        assert_eq!(store.host_count().unwrap(), 0);
    }

    #[test]
    fn the_hash_is_not_the_password() {
        let store = Store::in_memory();
        let name = HostName::parse("juf").unwrap();
        store.add_host(&name, "correct horse battery").unwrap();
        let hash: String = store
            .conn()
            .query_row("SELECT password_hash FROM hosts", [], |r| r.get(0))
            .unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
    }
}
