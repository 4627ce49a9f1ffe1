//! The signalling protocol parser: one WebSocket text message from a client, as the session
//! hands it to `protocol::parse` (a text frame is UTF-8; the WebSocket layer refuses others).
//!
//! Beyond not panicking, what `parse` lets through must keep the limits docs/protocol.md
//! promises, since the rest of the server trusts them; and every refusal must have a code.

#![no_main]

use libfuzzer_sys::fuzz_target;
use zaal::focus::Action;
use zaal::sfu::ClientSignal;
use zaal::signalling::protocol::{
    Inbound, MAX_CANDIDATE_BYTES, MAX_CHAT_CHARS, MAX_MESSAGE_BYTES, MAX_NAME_CHARS, MAX_SDP_BYTES,
    MAX_TILE_HEIGHT, MAX_VIDEO_STREAMS, parse,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(inbound) => {
            assert!(text.len() <= MAX_MESSAGE_BYTES);
            holds_the_limits(&inbound);
        }
        Err(error) => {
            // Both are sent to the client; neither may fail to render.
            assert!(!error.code.as_str().is_empty());
            let _ = error.code.closes();
            let _ = error.to_string();
        }
    }
});

fn holds_the_limits(inbound: &Inbound) {
    match inbound {
        Inbound::Join(join) => {
            let name = join.name.as_str();
            let chars = name.chars().count();
            assert!(
                (1..=MAX_NAME_CHARS).contains(&chars),
                "name of {chars} characters"
            );
            assert!(!name.chars().any(char::is_control));
            assert_eq!(name, name.trim());
            if let Some(key) = &join.rejoin_key {
                assert!((16..=64).contains(&key.len()));
            }
        }
        Inbound::Signal(ClientSignal::Offer(sdp) | ClientSignal::Answer(sdp)) => {
            assert!(sdp.len() <= MAX_SDP_BYTES && sdp.starts_with("v=0"));
        }
        Inbound::Signal(ClientSignal::Candidate(candidate)) => {
            assert!(candidate.candidate.len() <= MAX_CANDIDATE_BYTES);
            assert!(!candidate.candidate.contains(['\r', '\n']));
        }
        Inbound::Signal(ClientSignal::ReceiveVideo { heights, last_n }) => {
            assert!(heights.len() <= MAX_VIDEO_STREAMS);
            assert!(heights.values().all(|h| u32::from(*h) <= MAX_TILE_HEIGHT));
            assert!(last_n.is_none_or(|n| n <= MAX_VIDEO_STREAMS));
        }
        Inbound::Act(Action::Chat { text, .. }) => {
            let chars = text.chars().count();
            assert!((1..=MAX_CHAT_CHARS).contains(&chars));
            assert_eq!(text, text.trim());
        }
        Inbound::Act(_) | Inbound::Leave => {}
    }
}
