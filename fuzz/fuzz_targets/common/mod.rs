//! What the fuzz targets share: a media core set up as the server sets one up, and draining it
//! as the runtime does. No checks of its own; each target states what it holds of the code.

#![allow(dead_code)] // each target uses its own part of this

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use zaal::ids::ParticipantId;
use zaal::sfu::Candidates;
use zaal::sfu::fuzzing::{Core, IceCredentials, Output, Transmit, counters_for_workers};

/// The media port's address, as a worker advertises it.
pub const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 10000);
/// The ICE-TCP port's, likewise.
pub const SERVER_TCP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4443);

/// A publishing offer as Chromium sends it (audio, a simulcast camera, a screen), the one the
/// targets that need a negotiated connection apply first.
pub const BROWSER_OFFER: &str = include_str!("browser_offer.sdp");

/// One worker's core, as `start.rs` builds it.
pub fn core(now: Instant) -> Core {
    Core::new(
        now,
        0,
        Candidates {
            udp: vec![SERVER],
            tcp: vec![SERVER_TCP],
        },
        Arc::new(counters_for_workers(1)),
        None,
    )
}

/// A participant's connection, as the focus's `AddPeer` makes the worker create it, with the
/// ICE credentials the dispatcher would have drawn.
pub fn add_peer(core: &mut Core, now: Instant, ufrag: &str, pwd: &str) -> ParticipantId {
    let id = ParticipantId::random();
    let credentials = IceCredentials {
        ufrag: ufrag.to_owned(),
        pwd: pwd.to_owned(),
    };
    core.add_peer(now, id.clone(), credentials);
    id
}

/// Everything the core has to send and to say, as the runtime's flush takes it.
pub fn drain(core: &mut Core) -> (Vec<Transmit>, Vec<Output>) {
    let mut transmits = Vec::new();
    while let Some(transmit) = core.poll_transmit() {
        transmits.push(transmit);
    }
    let mut outputs = Vec::new();
    while let Some(output) = core.poll_output() {
        outputs.push(output);
    }
    (transmits, outputs)
}
