//! The privacy statement's editions: the digest of each text the server served, the day it was
//! first served, and the text itself, so that a visitor can see when the statement last changed
//! and `zaal privacy-statement --diff` can show what changed.
//!
//! The texts hold no personal data: they are generated from the configuration (the
//! organisation's own details at most). Only the newest [`KEPT_EDITIONS`] are kept.

use rusqlite::params;

use super::{Store, StoreError};

/// Editions kept: enough to show every change of years of operation, bounded all the same.
pub const KEPT_EDITIONS: i64 = 100;

/// One edition of the statement as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEdition {
    /// 1 for the first text this server served, counting up with every change.
    pub number: u32,
    /// The UTC day it was first served, `YYYY-MM-DD`.
    pub first_served: String,
    pub digest: String,
    pub text_en: String,
    pub text_nl: String,
}

impl Store {
    /// Records that the statement with `digest` is served from `today` on: the newest edition
    /// when its text is the same, a new one (numbered on) when it differs.
    pub fn publish_statement(
        &self,
        digest: &str,
        text_en: &str,
        text_nl: &str,
        today: &str,
    ) -> Result<StoredEdition, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let newest = newest_editions(&tx, 1)?.into_iter().next();
        if let Some(newest) = newest.filter(|e| e.digest == digest) {
            return Ok(newest);
        }
        tx.execute(
            "INSERT INTO statement_editions (first_served, digest, text_en, text_nl) \
             VALUES (?1, ?2, ?3, ?4)",
            params![today, digest, text_en, text_nl],
        )?;
        tx.execute(
            "DELETE FROM statement_editions WHERE number <= \
             (SELECT MAX(number) FROM statement_editions) - ?1",
            params![KEPT_EDITIONS],
        )?;
        let edition = newest_editions(&tx, 1)?
            .into_iter()
            .next()
            .expect("the edition was just inserted");
        tx.commit()?;
        Ok(edition)
    }

    /// The newest `count` editions, newest first.
    pub fn statement_editions(&self, count: u32) -> Result<Vec<StoredEdition>, StoreError> {
        newest_editions(&self.conn(), count)
    }
}

fn newest_editions(
    conn: &rusqlite::Connection,
    count: u32,
) -> Result<Vec<StoredEdition>, StoreError> {
    let mut query = conn.prepare(
        "SELECT number, first_served, digest, text_en, text_nl FROM statement_editions \
         ORDER BY number DESC LIMIT ?1",
    )?;
    let rows = query.query_map(params![count], |r| {
        Ok(StoredEdition {
            number: r.get(0)?,
            first_served: r.get(1)?,
            digest: r.get(2)?,
            text_en: r.get(3)?,
            text_nl: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_moves_only_when_the_text_changes() {
        let store = Store::in_memory();
        let first = store
            .publish_statement("a", "A", "A'", "2026-01-05")
            .unwrap();
        assert_eq!(
            (first.number, first.first_served.as_str()),
            (1, "2026-01-05")
        );
        let again = store
            .publish_statement("a", "A", "A'", "2026-03-01")
            .unwrap();
        assert_eq!(again, first, "the same text keeps its edition and date");
        let changed = store
            .publish_statement("b", "B", "B'", "2026-04-02")
            .unwrap();
        assert_eq!(
            (changed.number, changed.first_served.as_str()),
            (2, "2026-04-02")
        );
        let back = store
            .publish_statement("a", "A", "A'", "2026-05-03")
            .unwrap();
        assert_eq!(
            (back.number, back.first_served.as_str()),
            (3, "2026-05-03"),
            "going back to an earlier text is a change too"
        );
        let newest: Vec<u32> = store
            .statement_editions(2)
            .unwrap()
            .iter()
            .map(|e| e.number)
            .collect();
        assert_eq!(newest, [3, 2]);
    }

    #[test]
    fn only_the_newest_editions_are_kept() {
        let store = Store::in_memory();
        for n in 0..KEPT_EDITIONS + 5 {
            store
                .publish_statement(&n.to_string(), "en", "nl", "2026-01-01")
                .unwrap();
        }
        let all = store.statement_editions(1000).unwrap();
        assert_eq!(all.len() as i64, KEPT_EDITIONS);
        assert_eq!(all[0].number as i64, KEPT_EDITIONS + 5);
    }
}
