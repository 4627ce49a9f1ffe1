//! The UDP demux classifier: which connection a datagram on the shared media port belongs to.
//! `is_stun`, `stun_target_ufrag` and `stun_integrity_holds` (RFC 7983, RFC 8445 §7.2.2), the
//! core's `Directory` and worker 0's `Router`, driven by a sequence of datagrams from a handful
//! of addresses, with connections leaving and coming back in between.
//!
//! Input: records of `[control, length, datagram…]`. The control byte's low bits pick the source
//! address; its top three bits 6 and 7 remove or re-add a connection instead of routing. Beyond
//! not panicking: a STUN request naming a live connection's ufrag, signed with its password or
//! from an address already bound to it, goes to that connection and binds its sender; any other
//! datagram moves no binding and goes where its sender was bound; nothing is ever routed to a
//! connection that has gone.

#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use zaal::sfu::fuzzing::{
    Directory, IceCredentials, Router, is_stun, stun_integrity_holds, stun_target_ufrag,
};

/// The connections' credentials; the seeds' checks name the first two and are signed with
/// their passwords.
const CONNECTIONS: [(&str, &str); 3] = [
    ("serverfragA0000a", "V3kTq8yLm2Zp9RcA1fGh4Jw6"),
    ("serverfragB0000b", "xxxxxxxxxxxxxxxxxxxxxxxx"),
    ("serverfragC0000c", "cccccccccccccccccccccccc"),
];
const WORKERS: usize = 3;
/// What an SRTP packet looks like to the classifier: not STUN. Routing it changes nothing, so
/// it asks where an address is bound.
const NOT_STUN: [u8; 20] = [0x80; 20];

fn credentials(key: usize) -> IceCredentials {
    IceCredentials {
        ufrag: CONNECTIONS[key].0.to_owned(),
        pwd: CONNECTIONS[key].1.to_owned(),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut directory = Directory::<usize>::default();
    let mut router = Router::new(WORKERS);
    let mut live = [true; CONNECTIONS.len()];
    for key in 0..CONNECTIONS.len() {
        directory.insert_peer(credentials(key), key);
        router.add(credentials(key), key % WORKERS);
    }
    let mut rest = data;
    while let [control, length, tail @ ..] = rest {
        let (datagram, next) = tail.split_at(usize::from(*length).min(tail.len()));
        rest = next;
        let from = SocketAddr::from((
            [192, 0, 2, control & 0x07],
            5000 + u16::from(control >> 3 & 0x03),
        ));
        let chosen = usize::from(datagram.first().copied().unwrap_or(0)) % CONNECTIONS.len();
        match control >> 5 {
            6 => {
                directory.remove_peer(CONNECTIONS[chosen].0, chosen);
                router.remove(CONNECTIONS[chosen].0);
                live[chosen] = false;
                continue;
            }
            7 if !live[chosen] => {
                directory.insert_peer(credentials(chosen), chosen);
                router.add(credentials(chosen), chosen % WORKERS);
                live[chosen] = true;
                continue;
            }
            _ => {}
        }

        let target = stun_target_ufrag(datagram);
        if target.is_some() {
            assert!(is_stun(datagram) && datagram.len() >= 20);
        }
        let named = target
            .and_then(|u| CONNECTIONS.iter().position(|(ufrag, _)| *ufrag == u))
            .filter(|&key| live[key]);
        let proven = named.is_some_and(|key| stun_integrity_holds(datagram, CONNECTIONS[key].1));

        let bound_before = directory.route(from, &NOT_STUN);
        let routed = directory.route(from, datagram);
        let bound_after = directory.route(from, &NOT_STUN);
        if let Some(key) = routed.or(bound_after) {
            assert!(live[key], "routed to a connection that has gone");
        }
        match named {
            Some(key) if proven || bound_before == Some(key) => {
                assert_eq!(routed, Some(key), "a proven check goes to its connection");
                assert_eq!(bound_after, Some(key), "and binds its sender");
            }
            Some(_) => {
                assert_eq!(routed, None, "an unproven check from elsewhere is dropped");
                assert_eq!(bound_after, bound_before, "and moves nothing");
            }
            None => {
                assert_eq!(routed, bound_before);
                assert_eq!(bound_after, bound_before, "only a proven check binds");
            }
        }

        let worker = router.route(from, datagram);
        assert!(worker.is_none_or(|w| w < WORKERS));
        if let Some(key) = named.filter(|_| proven) {
            assert_eq!(worker, Some(key % WORKERS));
        }
    }
});
