//! The TURN server against a client built from rtc-stun's own types (its MESSAGE-INTEGRITY, its
//! attribute codecs), the way a browser's TURN client talks to it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc::crypto::RTCCryptoProvider;
use rtc::crypto::providers::RingProvider;
use rtc::stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use rtc::stun::error_code::ErrorCodeAttribute;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Getter, METHOD_ALLOCATE,
    METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_REFRESH, Message, MessageType, Method,
    Setter,
};
use rtc::stun::textattrs::TextAttribute;
use rtc::turn::proto::channum::ChannelNumber;
use rtc::turn::proto::lifetime::Lifetime;
use rtc::turn::proto::peeraddr::PeerAddress;
use rtc::turn::proto::relayaddr::RelayedAddress;
use rtc::turn::proto::reqtrans::RequestedTransport;
use rtc::turn::proto::{PROTO_UDP, Protocol};

use super::wire;
use super::*;

const REALM: &str = "zaal.test";
const ZAAL: &str = "192.0.2.1:10000";
const NOW: u64 = 1_800_000_000;

fn server(limits: AllocationLimits) -> TurnServer {
    TurnServer::new(TurnConfig {
        realm: REALM.into(),
        secret: TurnSecret::new("s3cret"),
        peers: vec![ZAAL.parse().unwrap()],
        limits,
        nonce_key: [9; 32],
    })
}

fn roomy() -> AllocationLimits {
    AllocationLimits {
        total: 100,
        per_credential: 10,
        per_address: 10,
    }
}

fn client(port: u16) -> ClientKey {
    ClientKey {
        transport: ClientTransport::Udp,
        addr: SocketAddr::from(([198, 51, 100, 7], port)),
    }
}

/// A TURN client: its credential and the nonce it last got.
struct Client {
    key: ClientKey,
    username: String,
    password: String,
    nonce: Option<String>,
}

impl Client {
    fn new(key: ClientKey, credential: TurnCredential) -> Self {
        Self {
            key,
            username: credential.username,
            password: credential.password,
            nonce: None,
        }
    }

    /// A request of `method` with `attrs`, signed once a nonce is known (rtc-stun's own
    /// long-term MESSAGE-INTEGRITY).
    fn request(&self, method: Method, attrs: &[&dyn Setter]) -> Vec<u8> {
        let mut m = Message::new();
        m.typ = MessageType::new(method, CLASS_REQUEST);
        m.new_transaction_id().unwrap();
        m.write_header();
        for a in attrs {
            a.add_to(&mut m).unwrap();
        }
        if let Some(nonce) = &self.nonce {
            TextAttribute::new(ATTR_USERNAME, self.username.clone())
                .add_to(&mut m)
                .unwrap();
            TextAttribute::new(ATTR_REALM, REALM.into())
                .add_to(&mut m)
                .unwrap();
            TextAttribute::new(ATTR_NONCE, nonce.clone())
                .add_to(&mut m)
                .unwrap();
            let provider = RingProvider::new();
            MessageIntegrity::new_long_term_integrity_with_provider(
                self.username.clone(),
                REALM.into(),
                self.password.clone(),
                provider.crypto(),
            )
            .unwrap()
            .add_to(&mut m)
            .unwrap();
        }
        m.raw.clone()
    }

    /// Sends a request and returns the decoded reply, taking any nonce it carries.
    fn ask(
        &mut self,
        server: &mut TurnServer,
        now: Instant,
        method: Method,
        attrs: &[&dyn Setter],
    ) -> Message {
        let request = self.request(method, attrs);
        let mut reply = Vec::new();
        assert_eq!(
            server.handle(now, NOW, self.key, &request, &mut reply),
            Handled::Reply
        );
        let mut m = Message::new();
        m.unmarshal_binary(&reply).unwrap();
        if let Ok(nonce) = TextAttribute::get_from_as(&m, ATTR_NONCE) {
            self.nonce = Some(nonce.text);
        }
        m
    }

    /// Allocate, answering the first 401 with the credential, as browsers do.
    fn allocate(&mut self, server: &mut TurnServer, now: Instant) -> Message {
        let udp = RequestedTransport {
            protocol: PROTO_UDP,
        };
        let first = self.ask(server, now, METHOD_ALLOCATE, &[&udp]);
        assert_eq!(code(&first), Some(401), "challenged first");
        self.ask(server, now, METHOD_ALLOCATE, &[&udp])
    }
}

fn code(m: &Message) -> Option<u16> {
    if m.typ.class != CLASS_ERROR_RESPONSE {
        return None;
    }
    let mut e = ErrorCodeAttribute::default();
    e.get_from(m).unwrap();
    Some(e.code.0)
}

fn peer(addr: &str) -> PeerAddress {
    let addr: SocketAddr = addr.parse().unwrap();
    PeerAddress {
        ip: addr.ip(),
        port: addr.port(),
    }
}

fn credential(ttl: u64) -> TurnCredential {
    TurnSecret::new("s3cret").mint(NOW, ttl, "t")
}

#[test]
fn a_client_allocates_relays_to_zaal_and_hears_back() {
    let now = Instant::now();
    let mut turn = server(roomy());
    let mut alice = Client::new(client(5000), credential(3600));
    let allocated = alice.allocate(&mut turn, now);
    assert_eq!(allocated.typ.class, CLASS_SUCCESS_RESPONSE, "{allocated}");
    let key = super::credentials::long_term_key(&alice.username, REALM, &alice.password);
    assert!(
        wire::integrity_holds(&allocated.raw, &key),
        "the response is signed"
    );
    let mut relayed = RelayedAddress::default();
    relayed.get_from(&allocated).unwrap();
    let relayed = SocketAddr::new(relayed.ip, relayed.port);
    assert_eq!(relayed.ip(), ZAAL.parse::<SocketAddr>().unwrap().ip());
    let mut lifetime = Lifetime::default();
    lifetime.get_from(&allocated).unwrap();
    assert_eq!(lifetime.0, server::DEFAULT_LIFETIME);

    let permitted = alice.ask(&mut turn, now, METHOD_CREATE_PERMISSION, &[&peer(ZAAL)]);
    assert_eq!(permitted.typ.class, CLASS_SUCCESS_RESPONSE, "{permitted}");

    // A Send indication reaches Zaal as a datagram from the relayed address.
    let mut send = Message::new();
    send.typ = MessageType::new(
        rtc::stun::message::METHOD_SEND,
        rtc::stun::message::CLASS_INDICATION,
    );
    send.new_transaction_id().unwrap();
    send.write_header();
    peer(ZAAL).add_to(&mut send).unwrap();
    rtc::turn::proto::data::Data(b"stun check".to_vec())
        .add_to(&mut send)
        .unwrap();
    let mut reply = Vec::new();
    let Handled::Relay {
        relayed: from,
        peer: to,
        payload,
    } = turn.handle(now, NOW, alice.key, &send.raw, &mut reply)
    else {
        panic!("the indication is relayed");
    };
    assert_eq!((from, to), (relayed, ZAAL.parse().unwrap()));
    assert_eq!(&send.raw[payload], b"stun check");

    // Zaal's answer goes back as a Data indication until a channel is bound...
    let mut out = Vec::new();
    let to_alice = turn.to_client(now, relayed, ZAAL.parse().unwrap(), b"answer", &mut out);
    assert_eq!(to_alice, Some(alice.key));
    let mut data = Message::new();
    data.unmarshal_binary(&out).unwrap();
    let mut carried = rtc::turn::proto::data::Data::default();
    carried.get_from(&data).unwrap();
    assert_eq!(carried.0, b"answer");

    // ... and as ChannelData after.
    let bound = alice.ask(
        &mut turn,
        now,
        METHOD_CHANNEL_BIND,
        &[&ChannelNumber(0x4000), &peer(ZAAL)],
    );
    assert_eq!(bound.typ.class, CLASS_SUCCESS_RESPONSE, "{bound}");
    turn.to_client(now, relayed, ZAAL.parse().unwrap(), b"media", &mut out)
        .unwrap();
    assert_eq!(out, [0x40, 0x00, 0x00, 0x05, b'm', b'e', b'd', b'i', b'a']);
    let channel_data = [0x40, 0x00, 0x00, 0x03, b'r', b't', b'p'];
    assert_eq!(
        turn.handle(now, NOW, alice.key, &channel_data, &mut reply),
        Handled::Relay {
            relayed,
            peer: ZAAL.parse().unwrap(),
            payload: 4..7
        }
    );

    // A refresh with lifetime 0 ends it, and the media core is told.
    let gone = alice.ask(&mut turn, now, METHOD_REFRESH, &[&Lifetime(Duration::ZERO)]);
    assert_eq!(gone.typ.class, CLASS_SUCCESS_RESPONSE);
    assert_eq!(turn.allocations(), 0);
    assert_eq!(turn.expire(now), vec![relayed]);
    assert_eq!(
        turn.to_client(now, relayed, ZAAL.parse().unwrap(), b"late", &mut out),
        None
    );
}

#[test]
fn any_peer_but_zaal_is_forbidden() {
    let now = Instant::now();
    let mut turn = server(roomy());
    let mut mallory = Client::new(client(5001), credential(3600));
    assert_eq!(
        mallory.allocate(&mut turn, now).typ.class,
        CLASS_SUCCESS_RESPONSE
    );
    for elsewhere in ["203.0.113.5:80", "192.0.2.2:10000", "10.0.0.1:3478"] {
        let refused = mallory.ask(
            &mut turn,
            now,
            METHOD_CREATE_PERMISSION,
            &[&peer(elsewhere)],
        );
        assert_eq!(code(&refused), Some(403), "permission for {elsewhere}");
        let refused = mallory.ask(
            &mut turn,
            now,
            METHOD_CHANNEL_BIND,
            &[&ChannelNumber(0x4001), &peer(elsewhere)],
        );
        assert_eq!(code(&refused), Some(403), "channel to {elsewhere}");
    }
    // Zaal's address on another port is not Zaal's media port: no channel there.
    let refused = mallory.ask(
        &mut turn,
        now,
        METHOD_CHANNEL_BIND,
        &[&ChannelNumber(0x4001), &peer("192.0.2.1:22")],
    );
    assert_eq!(code(&refused), Some(403));
    // One forbidden peer among allowed ones refuses the whole request.
    let refused = mallory.ask(
        &mut turn,
        now,
        METHOD_CREATE_PERMISSION,
        &[&peer(ZAAL), &peer("203.0.113.5:80")],
    );
    assert_eq!(code(&refused), Some(403));
    assert_eq!(turn.refusals().forbidden_peer, 8);
    // Nor does a Send indication to elsewhere go anywhere.
    let mut send = Message::new();
    send.typ = MessageType::new(
        rtc::stun::message::METHOD_SEND,
        rtc::stun::message::CLASS_INDICATION,
    );
    send.new_transaction_id().unwrap();
    send.write_header();
    peer("203.0.113.5:80").add_to(&mut send).unwrap();
    rtc::turn::proto::data::Data(b"x".to_vec())
        .add_to(&mut send)
        .unwrap();
    assert_eq!(
        turn.handle(now, NOW, mallory.key, &send.raw, &mut Vec::new()),
        Handled::Ignored
    );
}

#[test]
fn expired_and_forged_credentials_get_401() {
    let now = Instant::now();
    let mut turn = server(roomy());
    let expired = TurnSecret::new("s3cret").mint(NOW - 7200, 3600, "t");
    let mut late = Client::new(client(5002), expired);
    assert_eq!(code(&late.allocate(&mut turn, now)), Some(401));
    let forged = TurnSecret::new("guess").mint(NOW, 3600, "t");
    let mut forger = Client::new(client(5003), forged);
    assert_eq!(code(&forger.allocate(&mut turn, now)), Some(401));
    let mut malformed = Client::new(
        client(5004),
        TurnCredential {
            username: "alice".into(),
            password: TurnSecret::new("s3cret").password("alice"),
        },
    );
    assert_eq!(code(&malformed.allocate(&mut turn, now)), Some(401));
    assert_eq!(turn.refusals().unauthorized, 3);
    assert_eq!(turn.allocations(), 0);
}

#[test]
fn a_nonce_goes_stale_and_belongs_to_its_client() {
    let now = Instant::now();
    let mut turn = server(roomy());
    let mut alice = Client::new(client(5005), credential(3600));
    let udp = RequestedTransport {
        protocol: PROTO_UDP,
    };
    alice.ask(&mut turn, now, METHOD_ALLOCATE, &[&udp]);
    let nonce = alice.nonce.clone().unwrap();
    // The same nonce from another address is stale.
    let mut other = Client::new(
        ClientKey {
            transport: ClientTransport::Udp,
            addr: SocketAddr::from(([203, 0, 113, 1], 5005)),
        },
        credential(3600),
    );
    other.nonce = Some(nonce.clone());
    assert_eq!(
        code(&other.ask(&mut turn, now, METHOD_ALLOCATE, &[&udp])),
        Some(438)
    );
    // Ten minutes on, it is stale for its own client too.
    let request = alice.request(METHOD_ALLOCATE, &[&udp]);
    let mut reply = Vec::new();
    turn.handle(now, NOW + 600, alice.key, &request, &mut reply);
    let mut m = Message::new();
    m.unmarshal_binary(&reply).unwrap();
    assert_eq!(code(&m), Some(438));
}

#[test]
fn allocations_are_bounded_per_credential_and_per_address() {
    let now = Instant::now();
    let mut turn = server(AllocationLimits {
        total: 100,
        per_credential: 2,
        per_address: 3,
    });
    let shared = credential(3600);
    for port in 0..2 {
        let mut c = Client::new(client(6000 + port), shared.clone());
        assert_eq!(c.allocate(&mut turn, now).typ.class, CLASS_SUCCESS_RESPONSE);
    }
    let mut third = Client::new(client(6002), shared.clone());
    assert_eq!(
        code(&third.allocate(&mut turn, now)),
        Some(486),
        "per credential"
    );
    let mut other = Client::new(client(6003), TurnSecret::new("s3cret").mint(NOW, 3600, "u"));
    assert_eq!(
        other.allocate(&mut turn, now).typ.class,
        CLASS_SUCCESS_RESPONSE
    );
    let mut fourth = Client::new(client(6004), TurnSecret::new("s3cret").mint(NOW, 3600, "v"));
    assert_eq!(
        code(&fourth.allocate(&mut turn, now)),
        Some(486),
        "per address"
    );
    assert_eq!(turn.refusals().quota, 2);
}

#[test]
fn a_second_allocation_a_foreign_credential_and_tcp_relaying_are_refused() {
    let now = Instant::now();
    let mut turn = server(roomy());
    let mut alice = Client::new(client(7000), credential(3600));
    alice.allocate(&mut turn, now);
    let udp = RequestedTransport {
        protocol: PROTO_UDP,
    };
    assert_eq!(
        code(&alice.ask(&mut turn, now, METHOD_ALLOCATE, &[&udp])),
        Some(437)
    );
    // Another credential on the same five-tuple.
    let mut thief = Client::new(alice.key, TurnSecret::new("s3cret").mint(NOW, 3600, "x"));
    thief.nonce = alice.nonce.clone();
    assert_eq!(
        code(&thief.ask(&mut turn, now, METHOD_REFRESH, &[])),
        Some(441)
    );
    let mut bob = Client::new(client(7001), credential(3600));
    let tcp = RequestedTransport {
        protocol: Protocol(6),
    };
    bob.ask(&mut turn, now, METHOD_ALLOCATE, &[&tcp]);
    assert_eq!(
        code(&bob.ask(&mut turn, now, METHOD_ALLOCATE, &[&tcp])),
        Some(442)
    );
    // IPv6 is not among Zaal's addresses here.
    let v6 = rtc::turn::proto::reqfamily::REQUESTED_FAMILY_IPV6;
    assert_eq!(
        code(&bob.ask(&mut turn, now, METHOD_ALLOCATE, &[&udp, &v6])),
        Some(440)
    );
}

#[test]
fn allocations_expire_and_tell_the_media_core() {
    let now = Instant::now();
    let mut turn = server(roomy());
    let mut alice = Client::new(client(8000), credential(3600));
    let udp = RequestedTransport {
        protocol: PROTO_UDP,
    };
    alice.ask(&mut turn, now, METHOD_ALLOCATE, &[&udp]);
    let allocated = alice.ask(
        &mut turn,
        now,
        METHOD_ALLOCATE,
        &[&udp, &Lifetime(Duration::from_secs(86_400))],
    );
    let mut lifetime = Lifetime::default();
    lifetime.get_from(&allocated).unwrap();
    assert_eq!(lifetime.0, server::MAX_LIFETIME, "capped");
    let mut relayed = RelayedAddress::default();
    relayed.get_from(&allocated).unwrap();
    assert!(turn.expire(now + Duration::from_secs(3599)).is_empty());
    assert_eq!(
        turn.expire(now + server::MAX_LIFETIME),
        vec![SocketAddr::new(relayed.ip, relayed.port)]
    );
}

#[test]
fn garbage_is_ignored_and_never_panics() {
    let now = Instant::now();
    let mut turn = server(roomy());
    let mut alice = Client::new(client(9000), credential(3600));
    let request = alice.request(
        METHOD_ALLOCATE,
        &[&RequestedTransport {
            protocol: PROTO_UDP,
        }],
    );
    alice.allocate(&mut turn, now);
    let signed = alice.request(METHOD_REFRESH, &[]);
    let mut reply = Vec::new();
    for message in [&request, &signed] {
        for len in 0..message.len() {
            let _ = turn.handle(now, NOW, alice.key, &message[..len], &mut reply);
        }
        let mut flipped = message.to_vec();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = turn.handle(now, NOW, alice.key, &flipped, &mut reply);
            flipped[i] ^= 0xff;
        }
    }
    assert_eq!(
        turn.handle(now, NOW, alice.key, b"GET / HTTP/1.1\r\n", &mut reply),
        Handled::Ignored
    );
    assert_eq!(turn.allocations(), 1);
}
