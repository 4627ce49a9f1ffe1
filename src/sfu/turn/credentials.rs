//! TURN credentials in the REST scheme coturn calls `use-auth-secret`: the username is
//! `expiry:tag` (expiry in Unix seconds), the password `base64(HMAC-SHA1(secret, username))`.
//!
//! The signalling mints a pair for each participant it admits and gives it to the browser in
//! `iceServers`; the TURN server (Zaal's own, or an operator's coturn with the same secret)
//! recomputes the password from the username, so no credential is stored anywhere and one
//! expires by itself. Pure: the clock is a parameter.

use base64::Engine;
use hmac::{Hmac, Mac};
use md5::Digest;
use sha1::Sha1;

/// The shared secret between the signalling and the TURN servers.
#[derive(Clone)]
pub struct TurnSecret(Vec<u8>);

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnSecret([redacted])")
    }
}

impl TurnSecret {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self(secret.into())
    }

    /// The password that belongs to `username`.
    pub fn password(&self, username: &str) -> String {
        let mut mac =
            Hmac::<Sha1>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(username.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    /// A credential valid until `now + ttl` (Unix seconds); `tag` tells credentials apart and
    /// must not identify anyone (a random string).
    pub fn mint(&self, now: u64, ttl: u64, tag: &str) -> TurnCredential {
        let username = format!("{}:{tag}", now.saturating_add(ttl));
        let password = self.password(&username);
        TurnCredential { username, password }
    }
}

/// A username and its password, as a browser puts them in `iceServers`.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnCredential {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for TurnCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnCredential")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// Why a username is refused before any password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("the username is not `expiry:tag`")]
    Malformed,
    #[error("the credential has expired")]
    Expired,
}

/// The longest username accepted: `expiry:tag` with a generous tag, far below STUN's 513 bytes.
pub const MAX_USERNAME: usize = 128;

/// The expiry of a REST username, if it has not passed at `now`.
pub fn unexpired(username: &str, now: u64) -> Result<u64, UsernameError> {
    if username.len() > MAX_USERNAME {
        return Err(UsernameError::Malformed);
    }
    let expiry = username.split(':').next().unwrap_or_default();
    let expiry: u64 = expiry.parse().map_err(|_| UsernameError::Malformed)?;
    if expiry <= now {
        return Err(UsernameError::Expired);
    }
    Ok(expiry)
}

/// The long-term credential key of RFC 8489 §9.2.2: MD5(username ":" realm ":" password).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut md5 = md5::Md5::new();
    md5.update(username.as_bytes());
    md5.update(b":");
    md5.update(realm.as_bytes());
    md5.update(b":");
    md5.update(password.as_bytes());
    md5.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_rest_schemes() {
        // Computed independently: base64(HMAC-SHA1(b"north", b"1433895918:alice")) with
        // Python's hmac and base64 modules.
        let secret = TurnSecret::new("north");
        assert_eq!(
            secret.password("1433895918:alice"),
            "RqMvcGPYTJMGThVLSi4amT4zFtI="
        );
    }

    #[test]
    fn minted_credentials_expire_by_themselves() {
        let secret = TurnSecret::new("s3cret");
        let credential = secret.mint(1_000, 3_600, "k2j4");
        assert_eq!(credential.username, "4600:k2j4");
        assert_eq!(credential.password, secret.password("4600:k2j4"));
        assert_eq!(unexpired(&credential.username, 4_599), Ok(4_600));
        assert_eq!(
            unexpired(&credential.username, 4_600),
            Err(UsernameError::Expired)
        );
        assert_eq!(unexpired("alice", 0), Err(UsernameError::Malformed));
        assert_eq!(unexpired(":x", 0), Err(UsernameError::Malformed));
        let long = format!("9999999999:{}", "x".repeat(MAX_USERNAME));
        assert_eq!(unexpired(&long, 0), Err(UsernameError::Malformed));
        assert!(!format!("{credential:?}").contains(&credential.password));
    }

    #[test]
    fn the_long_term_key_is_rfc_8489s() {
        // The user, realm and (SASLprepped) password of RFC 5769 §2.4; the digest computed
        // independently with Python's hashlib.md5 over "user:realm:password".
        let key = long_term_key(
            "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}",
            "example.org",
            "TheMatrIX",
        );
        assert_eq!(
            key,
            [
                0xe8, 0xca, 0x7a, 0xd5, 0x9d, 0x5e, 0xb0, 0x51, 0x8e, 0x31, 0x29, 0x11, 0xd2, 0xda,
                0xb2, 0xa9
            ]
        );
    }
}
