//! Room names: what a room is called in its link.
//!
//! The rule is part of the protocol contract (docs/protocol.md): 1–64 characters from a–z, 0–9,
//! `-` and `_`, starting with a letter or digit, upper case folded to lower case, and never one of
//! the server's own paths. Parsing is the only way to get a [`RoomName`].

use std::fmt;

/// Paths the server itself answers; a room can never shadow them.
const RESERVED: &[&str] = &[
    "api", "assets", "ws", "privacy", "healthz", "metrics", "setup", "static",
];

pub const MAX_ROOM_NAME: usize = 64;

/// A valid, normalised room name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomNameError {
    #[error("a room name is 1 to 64 characters long")]
    Length,
    #[error(
        "a room name has only letters a-z, digits, '-' and '_', and starts with a letter or digit"
    )]
    Characters,
    #[error("this name is reserved by the server")]
    Reserved,
}

impl RoomName {
    pub fn parse(input: &str) -> Result<Self, RoomNameError> {
        if input.is_empty() || input.len() > MAX_ROOM_NAME {
            return Err(RoomNameError::Length);
        }
        let name = input.to_ascii_lowercase();
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !first_ok || !rest_ok {
            return Err(RoomNameError::Characters);
        }
        if RESERVED.contains(&name.as_str()) {
            return Err(RoomNameError::Reserved);
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "room:{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_are_normalised() {
        assert_eq!(RoomName::parse("Maths-3B").unwrap().as_str(), "maths-3b");
        assert_eq!(RoomName::parse("a").unwrap().as_str(), "a");
        assert_eq!(RoomName::parse("9_x").unwrap().as_str(), "9_x");
        assert!(RoomName::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn invalid_names_are_refused() {
        assert_eq!(RoomName::parse(""), Err(RoomNameError::Length));
        assert_eq!(RoomName::parse(&"a".repeat(65)), Err(RoomNameError::Length));
        for bad in ["-x", "_x", "a b", "a/b", "a.b", "é", "a%20", "../etc"] {
            assert_eq!(
                RoomName::parse(bad),
                Err(RoomNameError::Characters),
                "{bad}"
            );
        }
        for reserved in ["api", "WS", "assets", "privacy"] {
            assert_eq!(RoomName::parse(reserved), Err(RoomNameError::Reserved));
        }
    }
}
