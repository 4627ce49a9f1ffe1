//! Signed join links: the `jwt` of a `join`, checked by `jwt::verify` with both kinds of key
//! configured (an HS256 secret and an RS256 public key), for one room and for any room.
//!
//! A token is read before anything about its sender is known, so no token may panic the
//! check; and whatever it claims, a token accepted for a room must open that room.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use zaal::config::JwtSettings;
use zaal::focus::RoomName;
use zaal::signalling::jwt::{MAX_TOKEN_BYTES, verify};

/// The settings the seed tokens are signed for (fuzz/seeds.py).
fn settings() -> JwtSettings {
    JwtSettings {
        secret: Some("fuzzing-secret-of-at-least-32-bytes!".into()),
        public_key_pem: Some(include_bytes!("../../tests/fixtures/rs256-public.pem").to_vec()),
        issuer: "reservations".into(),
        audience: "zaal".into(),
        // Long enough for the seeds, which expire in 2100, to be otherwise valid.
        max_lifetime: Duration::from_secs(100 * 365 * 86_400),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let settings = settings();
    let room = RoomName::parse("maths-3b").expect("a valid room name");
    if let Ok(verified) = verify(token, &settings, Some(&room)) {
        assert!(token.len() <= MAX_TOKEN_BYTES);
        assert!(
            verified.allows(&room),
            "accepted for a room it does not open"
        );
    }
    let _ = verify(token, &settings, None);
});
