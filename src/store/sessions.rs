//! Host login sessions and the one-time setup link for the first host.

use std::time::Duration;

use rusqlite::{OptionalExtension, params};

use super::{HostName, Store, StoreError, new_token, token_digest, unix_now};

impl Store {
    /// Starts a session for a host; returns the token for the cookie. Only its digest is stored.
    pub fn create_session(&self, host: &HostName, ttl: Duration) -> Result<String, StoreError> {
        let (token, digest) = new_token();
        let conn = self.conn();
        conn.execute(
            "DELETE FROM sessions WHERE expires <= ?1",
            params![unix_now()],
        )?;
        conn.execute(
            "INSERT INTO sessions (digest, host, expires) VALUES (?1, ?2, ?3)",
            params![digest, host.as_str(), unix_now() + ttl.as_secs() as i64],
        )?;
        Ok(token)
    }

    /// The host a session token belongs to, if it is valid and unexpired.
    pub fn session_host(&self, token: &str) -> Result<Option<HostName>, StoreError> {
        let host: Option<String> = self
            .conn()
            .query_row(
                "SELECT host FROM sessions WHERE digest = ?1 AND expires > ?2",
                params![token_digest(token), unix_now()],
                |row| row.get(0),
            )
            .optional()?;
        Ok(host.and_then(|h| HostName::parse(&h).ok()))
    }

    pub fn end_session(&self, token: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM sessions WHERE digest = ?1",
            params![token_digest(token)],
        )?;
        Ok(())
    }

    /// Issues the one-time link token that lets an operator create the first host. Any earlier,
    /// unused link stops working.
    pub fn create_setup_link(&self, ttl: Duration) -> Result<String, StoreError> {
        let (token, digest) = new_token();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM setup_links", [])?;
        tx.execute(
            "INSERT INTO setup_links (digest, expires) VALUES (?1, ?2)",
            params![digest, unix_now() + ttl.as_secs() as i64],
        )?;
        tx.commit()?;
        Ok(token)
    }

    /// Uses the setup link to create the first host: succeeds once, only while the link is valid
    /// and no host exists yet. Returns `Ok(false)` for an invalid, used or expired link.
    pub fn redeem_setup_link(
        &self,
        token: &str,
        name: &HostName,
        password: &str,
    ) -> Result<bool, StoreError> {
        // Hash before taking the lock: argon2 is slow on purpose.
        let hash = super::hosts::hash_password(password)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let valid = tx.execute(
            "DELETE FROM setup_links WHERE digest = ?1 AND expires > ?2",
            params![token_digest(token), unix_now()],
        )? == 1;
        let hosts: i64 = tx.query_row("SELECT COUNT(*) FROM hosts", [], |r| r.get(0))?;
        if !valid || hosts > 0 {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO hosts (name, password_hash, created) VALUES (?1, ?2, ?3)",
            params![name.as_str(), hash, unix_now()],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Whether `token` is an unexpired setup link while no host exists: what a redemption needs,
    /// checked without hashing anything.
    pub fn setup_link_redeemable(&self, token: &str) -> Result<bool, StoreError> {
        let conn = self.conn();
        let hosts: i64 = conn.query_row("SELECT COUNT(*) FROM hosts", [], |r| r.get(0))?;
        if hosts > 0 {
            return Ok(false);
        }
        let found: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM setup_links WHERE digest = ?1 AND expires > ?2",
                params![token_digest(token), unix_now()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// Whether an unexpired setup link exists (so a restart does not print a new one needlessly).
    pub fn setup_link_pending(&self) -> Result<bool, StoreError> {
        let found: Option<i64> = self
            .conn()
            .query_row(
                "SELECT 1 FROM setup_links WHERE expires > ?1",
                params![unix_now()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_end() {
        let store = Store::in_memory();
        let host = HostName::parse("juf").unwrap();
        store.add_host(&host, "correct horse battery").unwrap();
        let token = store
            .create_session(&host, Duration::from_secs(60))
            .unwrap();
        assert_eq!(store.session_host(&token).unwrap(), Some(host.clone()));
        assert_eq!(store.session_host("forged").unwrap(), None);
        store.end_session(&token).unwrap();
        assert_eq!(store.session_host(&token).unwrap(), None);
        let expired = store.create_session(&host, Duration::ZERO).unwrap();
        assert_eq!(store.session_host(&expired).unwrap(), None);
    }

    #[test]
    fn removing_a_host_ends_their_sessions() {
        let store = Store::in_memory();
        let host = HostName::parse("juf").unwrap();
        store.add_host(&host, "correct horse battery").unwrap();
        let token = store
            .create_session(&host, Duration::from_secs(60))
            .unwrap();
        store.remove_host(&host).unwrap();
        assert_eq!(store.session_host(&token).unwrap(), None);
    }

    #[test]
    fn setup_link_is_single_use() {
        let store = Store::in_memory();
        let token = store.create_setup_link(Duration::from_secs(60)).unwrap();
        assert!(store.setup_link_pending().unwrap());
        let name = HostName::parse("admin").unwrap();
        assert!(
            !store
                .redeem_setup_link("wrong", &name, "correct horse battery")
                .unwrap()
        );
        assert!(
            store
                .redeem_setup_link(&token, &name, "correct horse battery")
                .unwrap()
        );
        assert!(
            !store
                .redeem_setup_link(&token, &name, "correct horse battery")
                .unwrap()
        );
        assert!(!store.setup_link_pending().unwrap());
        assert!(
            store
                .check_password(&name, "correct horse battery")
                .unwrap()
        );
    }

    #[test]
    fn expired_setup_link_is_refused() {
        let store = Store::in_memory();
        let token = store.create_setup_link(Duration::ZERO).unwrap();
        let name = HostName::parse("admin").unwrap();
        assert!(
            !store
                .redeem_setup_link(&token, &name, "correct horse battery")
                .unwrap()
        );
    }
}
