//! `zaal token --user NAME [--room ROOM] [--moderator] [--ttl 2h]`: mint a signed join link.
//!
//! Prints the token and, with the public address, the link to open. The secret comes from the
//! configuration (`auth.jwt_secret`); it is never printed.

use std::process::ExitCode;

use crate::config::Settings;
use crate::focus::RoomName;
use crate::signalling::jwt::{Mint, mint};

pub fn run(
    settings: &Settings,
    user: &str,
    room: Option<&str>,
    moderator: bool,
    ttl: &str,
) -> ExitCode {
    let user = user.trim();
    if user.is_empty() || user.chars().count() > 64 {
        eprintln!("zaal token: --user is the name shown in the meeting, 1 to 64 characters");
        return ExitCode::from(2);
    }
    let room = match room.map(RoomName::parse).transpose() {
        Ok(room) => room,
        Err(e) => {
            eprintln!("zaal token: --room: {e}");
            return ExitCode::from(2);
        }
    };
    let ttl = match humantime::parse_duration(ttl.trim()) {
        Ok(ttl) if !ttl.is_zero() => ttl,
        _ => {
            eprintln!("zaal token: --ttl `{ttl}` is not a duration; write e.g. 45m, 2h or 7d");
            return ExitCode::from(2);
        }
    };
    let token = match mint(
        &settings.auth.jwt,
        &Mint {
            name: user,
            room: room.as_ref(),
            moderator,
            ttl,
            not_before: None,
        },
    ) {
        Ok(token) => token,
        Err(crate::signalling::jwt::TokenError::TooLong) => {
            eprintln!(
                "zaal token: --ttl is longer than auth.token_max_lifetime ({}); mint a shorter \
                 link or raise that limit",
                settings.raw.auth.token_max_lifetime.trim()
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!(
                "zaal token: {e}; set auth.jwt_secret (at least 32 characters) to mint links"
            );
            return ExitCode::FAILURE;
        }
    };
    let base = settings.public_url(settings.http.listen);
    println!("{token}");
    if let Some(room) = &room {
        println!("{base}/{room}#jwt={token}");
    }
    ExitCode::SUCCESS
}
