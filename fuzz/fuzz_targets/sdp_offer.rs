//! SDP from clients, on the paths the server takes with it: a publishing offer applied to a
//! fresh server connection and answered (`Core::handle_signal` with `ClientSignal::Offer`, as
//! after `joined`), then trickled candidates, and the rewrite every later client answer goes
//! through before `rtc` reads it (`keep_simulcast_bindings`).
//!
//! Input: UTF-8 text; the offer, then candidate lines, separated by NUL. Beyond not panicking:
//! the client hears exactly one reply to its offer, an answer or `negotiation-failed` (SDP
//! errors concern that participant only); an answer the server sends parses as SDP; the
//! answer rewrite is idempotent and only ever removes lines.

#![no_main]

mod common;

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rtc::peer_connection::sdp::RTCSessionDescription;
use zaal::sfu::fuzzing::{Output, keep_simulcast_bindings};
use zaal::sfu::{ClientCandidate, ClientSignal, PeerSignal};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let offer = parts.next().unwrap_or_default();

    let now = std::time::Instant::now();
    let mut core = common::core(now);
    let id = common::add_peer(
        &mut core,
        now,
        "fuzzufrag0000000",
        "fuzzpassword0000fuzzpassword0000",
    );
    let _ = common::drain(&mut core);
    core.handle_signal(now, &id, ClientSignal::Offer(offer.to_owned()));
    let (_, outputs) = common::drain(&mut core);
    let replies: Vec<&PeerSignal> = outputs
        .iter()
        .filter_map(|output| match output {
            Output::Signal {
                participant,
                signal,
            } if *participant == id => Some(signal),
            _ => None,
        })
        .filter(|signal| {
            matches!(
                signal,
                PeerSignal::Answer(_) | PeerSignal::NegotiationFailed(_)
            )
        })
        .collect();
    assert_eq!(replies.len(), 1, "one reply to an offer, not {replies:?}");
    if let PeerSignal::Answer(answer) = replies[0] {
        RTCSessionDescription::answer(answer.clone()).expect("the server's answer parses");
    }

    for (index, candidate) in parts.enumerate() {
        let signal = ClientSignal::Candidate(ClientCandidate {
            candidate: candidate.to_owned(),
            sdp_mid: Some((index % 3).to_string()),
            sdp_mline_index: u16::try_from(index % 3).ok(),
        });
        core.handle_signal(now, &id, signal);
    }
    for step in 1..=3 {
        core.handle_timeout(now + Duration::from_millis(100 * step));
        let _ = common::drain(&mut core);
    }
    core.remove_participant(now, &id);
    let _ = common::drain(&mut core);

    // A client answer as `on_client_answer` hands it to `rtc`.
    let kept = keep_simulcast_bindings(offer);
    assert!(kept.len() <= offer.len());
    assert_eq!(
        keep_simulcast_bindings(&kept),
        kept,
        "the rewrite is idempotent"
    );
    let _ = RTCSessionDescription::answer(kept);
});
