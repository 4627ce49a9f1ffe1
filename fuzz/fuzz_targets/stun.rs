//! STUN, and every other datagram, on the media port: a datagram into a media core that holds
//! one negotiated connection (the browser offer in `common/` applied and answered), from a
//! stranger's address and from the address the browser's connectivity check came from, then
//! the connection's timers. So the demux, the ICE-lite agent's STUN handling, and whatever a
//! bound address may reach (DTLS, SRTP and SRTCP unprotection) all see it, as the server runs
//! them.
//!
//! Input: a mode byte, then the datagram. Mode bit 0 re-signs a datagram that parses as STUN
//! with the connection's real USERNAME, MESSAGE-INTEGRITY and FINGERPRINT, so that the agent
//! goes past its integrity check; bit 1 sends a browser's valid binding request first, so that
//! the datagram arrives on a nominated pair and reaches DTLS. Beyond not panicking: the server
//! sends only to addresses that sent to it.

#![no_main]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rtc::stun::attributes::{
    ATTR_FINGERPRINT, ATTR_ICE_CONTROLLING, ATTR_MESSAGE_INTEGRITY, ATTR_MESSAGE_INTEGRITY_SHA256,
    ATTR_PRIORITY, ATTR_USE_CANDIDATE, ATTR_USERNAME,
};
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, Setter, TransactionId};
use rtc::stun::xoraddr::XorMappedAddress;
use zaal::sfu::fuzzing::{Output, Transport};
use zaal::sfu::{ClientSignal, PeerSignal};

/// The connection's ICE credentials, as the dispatcher draws them (the answer tells the browser).
const SERVER_UFRAG: &str = "fuzzufrag0000000";
const SERVER_PASSWORD: &str = "fuzzpassword0000fuzzpassword0000";
/// The browser offer's `a=ice-ufrag` and `a=ice-pwd`.
const CLIENT_UFRAG: &str = "Qx7b";
const CLIENT_PASSWORD: &str = "V3kTq8yLm2Zp9RcA1fGh4Jw6";
const BROWSER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 54321);
const STRANGER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 4444);

fuzz_target!(|data: &[u8]| {
    let Some((&mode, datagram)) = data.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let mut core = common::core(now);
    let id = common::add_peer(&mut core, now, SERVER_UFRAG, SERVER_PASSWORD);
    let offer = ClientSignal::Offer(common::BROWSER_OFFER.to_owned());
    core.handle_signal(now, &id, offer);
    let (_, outputs) = common::drain(&mut core);
    assert!(
        outputs.iter().any(|output| matches!(
            output,
            Output::Signal {
                signal: PeerSignal::Answer(_),
                ..
            }
        )),
        "the browser offer is answered"
    );
    let password = SERVER_PASSWORD;

    let datagram = if mode & 1 != 0 {
        signed(datagram, password).unwrap_or_else(|| datagram.to_vec())
    } else {
        datagram.to_vec()
    };
    let local = Some(common::SERVER.ip());
    let mut sent = Vec::new();
    core.handle_datagram(now, Transport::Udp, STRANGER, local, &datagram);
    sent.extend(common::drain(&mut core).0);
    if mode & 2 != 0 {
        // What a browser does: a nominating check, an answer to the server's own check of the
        // pair (the server, ICE-lite, checks it before it takes the nomination), the check again.
        let check = binding_request(password).expect("a binding request encodes");
        core.handle_datagram(now, Transport::Udp, BROWSER, local, &check);
        let (transmits, _) = common::drain(&mut core);
        now += Duration::from_millis(1);
        for request in transmits.iter().filter(|t| t.to == BROWSER) {
            if let Some(response) = success_response(&request.contents) {
                core.handle_datagram(now, Transport::Udp, BROWSER, local, &response);
            }
        }
        sent.extend(transmits);
        sent.extend(common::drain(&mut core).0);
        now += Duration::from_millis(1);
        let check = binding_request(password).expect("a binding request encodes");
        core.handle_datagram(now, Transport::Udp, BROWSER, local, &check);
        sent.extend(common::drain(&mut core).0);
    }
    now += Duration::from_millis(1);
    core.handle_datagram(now, Transport::Udp, BROWSER, local, &datagram);
    sent.extend(common::drain(&mut core).0);
    for _ in 0..3 {
        now += Duration::from_millis(200);
        core.handle_timeout(now);
        sent.extend(common::drain(&mut core).0);
    }
    core.remove_participant(now, &id);
    sent.extend(common::drain(&mut core).0);

    for transmit in &sent {
        assert!(
            transmit.to == BROWSER || transmit.to == STRANGER,
            "sent to {}, which never sent anything",
            transmit.to
        );
    }
});

/// `datagram`, if it is a STUN message, with the attributes a browser's check authenticates
/// with put right; its other attributes, type and transaction stay as they were.
fn signed(datagram: &[u8], password: &str) -> Option<Vec<u8>> {
    let mut parsed = Message::new();
    parsed.unmarshal_binary(datagram).ok()?;
    let mut message = Message::new();
    message.typ = parsed.typ;
    message.transaction_id = parsed.transaction_id;
    message.write_header();
    let authenticating = [
        ATTR_USERNAME,
        ATTR_MESSAGE_INTEGRITY,
        ATTR_MESSAGE_INTEGRITY_SHA256,
        ATTR_FINGERPRINT,
    ];
    for attribute in &parsed.attributes.0 {
        if !authenticating.contains(&attribute.typ) {
            message.add(attribute.typ, &attribute.value);
        }
    }
    sign(&mut message, password).ok()?;
    Some(message.raw)
}

/// A browser's nominating connectivity check (RFC 8445 §7.1, §8.1.1).
fn binding_request(password: &str) -> Result<Vec<u8>, rtc::shared::error::Error> {
    let mut message = Message::new();
    message.typ = BINDING_REQUEST;
    message.transaction_id = TransactionId::new();
    message.write_header();
    message.add(ATTR_PRIORITY, &1_853_817_087u32.to_be_bytes());
    message.add(
        ATTR_ICE_CONTROLLING,
        &0x1234_5678_9abc_def0u64.to_be_bytes(),
    );
    message.add(ATTR_USE_CANDIDATE, &[]);
    sign(&mut message, password)?;
    Ok(message.raw)
}

/// The browser's answer to a connectivity check the server sent it (RFC 8445 §7.3), signed
/// with the browser's password from its offer; `None` for anything but a binding request.
fn success_response(request: &[u8]) -> Option<Vec<u8>> {
    let mut parsed = Message::new();
    parsed.unmarshal_binary(request).ok()?;
    if parsed.typ != BINDING_REQUEST {
        return None;
    }
    let mut message = Message::new();
    message.typ = BINDING_SUCCESS;
    message.transaction_id = parsed.transaction_id;
    message.write_header();
    let mapped = XorMappedAddress {
        ip: BROWSER.ip(),
        port: BROWSER.port(),
    };
    mapped.add_to(&mut message).ok()?;
    let provider = rtc::crypto::default_provider().ok()?;
    MessageIntegrity::new_short_term_integrity_with_provider(
        CLIENT_PASSWORD.to_owned(),
        provider.crypto(),
    )
    .add_to(&mut message)
    .ok()?;
    FINGERPRINT.add_to(&mut message).ok()?;
    Some(message.raw)
}

fn sign(message: &mut Message, password: &str) -> Result<(), rtc::shared::error::Error> {
    let username = format!("{SERVER_UFRAG}:{CLIENT_UFRAG}");
    message.add(ATTR_USERNAME, username.as_bytes());
    let provider = rtc::crypto::default_provider().expect("a crypto provider");
    MessageIntegrity::new_short_term_integrity_with_provider(
        password.to_owned(),
        provider.crypto(),
    )
    .add_to(message)?;
    FINGERPRINT.add_to(message)
}
