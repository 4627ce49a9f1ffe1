//! Random identifiers for conferences and participants (SPEC P6).
//!
//! Both are drawn from the operating system's CSPRNG and carry no information: not the room, not
//! the time, not the person. A conference identifier has 128 bits so it cannot be guessed; a
//! participant identifier has 72 bits, unique within any realistic number of conferences.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

fn random_id<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A random secret (192 bits, URL-safe) handed to one participant, e.g. to resume.
pub fn random_secret() -> crate::privacy::pii::Secret {
    crate::privacy::pii::Secret::new(random_id::<24>())
}

/// A conference's identifier: one per run of a room, from first join to end.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConferenceId(String);

impl ConferenceId {
    pub fn random() -> Self {
        Self(random_id::<16>())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A participant's identifier: one per join.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(String);

impl ParticipantId {
    pub fn random() -> Self {
        Self(random_id::<9>())
    }

    /// A participant id as a client names it; `None` if it cannot be one.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = text.len() == 12
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        valid.then(|| Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConferenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ConferenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conference:{}", self.0)
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "participant:{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn identifiers_are_unique_and_url_safe() {
        let ids: HashSet<String> = (0..1000)
            .map(|_| ConferenceId::random().as_str().to_string())
            .collect();
        assert_eq!(ids.len(), 1000);
        let c = ConferenceId::random();
        assert_eq!(c.as_str().len(), 22);
        assert!(
            c.as_str()
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        );
        let p = ParticipantId::random();
        assert_eq!(p.as_str().len(), 12);
        assert_eq!(ParticipantId::parse(p.as_str()), Some(p));
        assert_eq!(ParticipantId::parse("short"), None);
        assert_eq!(ParticipantId::parse("twelve chars"), None);
    }
}
