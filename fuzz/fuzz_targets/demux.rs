//! The UDP demux classifier: which connection a datagram on the shared media port belongs to.
//! `is_stun` and `stun_target_ufrag` (RFC 7983, RFC 8445 §7.2.2), the core's `Directory` and
//! worker 0's `Router`, driven by a sequence of datagrams from a handful of addresses, with
//! connections leaving and coming back in between.
//!
//! Input: records of `[control, length, datagram…]`. The control byte's low bits pick the source
//! address; its top three bits 6 and 7 remove or re-add a connection instead of routing. Beyond
//! not panicking: a STUN request naming a live connection's ufrag goes to that connection and
//! binds its sender; nothing is ever routed to a connection that has gone.

#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use zaal::sfu::fuzzing::{Directory, Router, is_stun, stun_target_ufrag};

/// The connections' ufrags, as the seeds' USERNAME attributes name them.
const UFRAGS: [&str; 3] = ["serverfragA0000a", "serverfragB0000b", "serverfragC0000c"];
const WORKERS: usize = 3;
/// What an SRTP packet looks like to the classifier: not STUN.
const NOT_STUN: [u8; 20] = [0x80; 20];

fuzz_target!(|data: &[u8]| {
    let mut directory = Directory::<usize>::default();
    let mut router = Router::new(WORKERS);
    let mut live = [true; UFRAGS.len()];
    for (key, ufrag) in UFRAGS.iter().enumerate() {
        directory.insert_peer((*ufrag).to_owned(), key);
        router.add((*ufrag).to_owned(), key % WORKERS);
    }
    let mut rest = data;
    while let [control, length, tail @ ..] = rest {
        let (datagram, next) = tail.split_at(usize::from(*length).min(tail.len()));
        rest = next;
        let from = SocketAddr::from((
            [192, 0, 2, control & 0x07],
            5000 + u16::from(control >> 3 & 0x03),
        ));
        let chosen = usize::from(datagram.first().copied().unwrap_or(0)) % UFRAGS.len();
        match control >> 5 {
            6 => {
                directory.remove_peer(UFRAGS[chosen], chosen);
                router.remove(UFRAGS[chosen]);
                live[chosen] = false;
                continue;
            }
            7 if !live[chosen] => {
                directory.insert_peer(UFRAGS[chosen].to_owned(), chosen);
                router.add(UFRAGS[chosen].to_owned(), chosen % WORKERS);
                live[chosen] = true;
                continue;
            }
            _ => {}
        }

        let target = stun_target_ufrag(datagram);
        if target.is_some() {
            assert!(is_stun(datagram) && datagram.len() >= 20);
        }
        let named = target.and_then(|u| UFRAGS.iter().position(|known| *known == u));
        let named_live = named.filter(|&key| live[key]);

        let routed = directory.route(from, datagram);
        if let Some(key) = routed {
            assert!(live[key], "routed to a connection that has gone");
        }
        if let Some(key) = named_live {
            assert_eq!(
                routed,
                Some(key),
                "a STUN request for a live ufrag goes to it"
            );
            assert_eq!(
                directory.route(from, &NOT_STUN),
                Some(key),
                "and binds its sender"
            );
        }

        let worker = router.route(from, datagram);
        assert!(worker.is_none_or(|w| w < WORKERS));
        if let Some(key) = named_live {
            assert_eq!(worker, Some(key % WORKERS));
        }
    }
});
