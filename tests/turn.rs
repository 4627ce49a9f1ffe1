//! Zaal's own TURN server over real UDP, with the credential a participant is given in
//! `joined`: it allocates, relays only to Zaal's media address (403 for anything else), and
//! refuses forged and expired credentials (401) and allocations beyond the limits (486). The
//! media through it are proved with real browsers (tests/browser/turn.test.mjs).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::TestServer;
use rtc::crypto::RTCCryptoProvider;
use rtc::crypto::providers::RingProvider;
use rtc::stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use rtc::stun::error_code::ErrorCodeAttribute;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{
    CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Getter, METHOD_ALLOCATE, METHOD_CHANNEL_BIND,
    METHOD_CREATE_PERMISSION, Message, MessageType, Method, Setter,
};
use rtc::stun::textattrs::TextAttribute;
use rtc::turn::proto::PROTO_UDP;
use rtc::turn::proto::channum::ChannelNumber;
use rtc::turn::proto::peeraddr::PeerAddress;
use rtc::turn::proto::relayaddr::RelayedAddress;
use rtc::turn::proto::reqtrans::RequestedTransport;
use tokio::net::UdpSocket;
use zaal_sim::{SimOptions, SimulatedParticipant};

/// A TURN client on a socket of its own, with a credential.
struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    username: String,
    password: String,
    realm: Option<String>,
    nonce: Option<String>,
}

impl Client {
    async fn new(server: SocketAddr, username: &str, password: &str) -> Self {
        Self {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
            username: username.into(),
            password: password.into(),
            realm: None,
            nonce: None,
        }
    }

    async fn ask(&mut self, method: Method, attrs: &[&dyn Setter]) -> Message {
        let mut m = Message::new();
        m.typ = MessageType::new(method, CLASS_REQUEST);
        m.new_transaction_id().unwrap();
        m.write_header();
        for a in attrs {
            a.add_to(&mut m).unwrap();
        }
        if let (Some(realm), Some(nonce)) = (&self.realm, &self.nonce) {
            TextAttribute::new(ATTR_USERNAME, self.username.clone())
                .add_to(&mut m)
                .unwrap();
            TextAttribute::new(ATTR_REALM, realm.clone())
                .add_to(&mut m)
                .unwrap();
            TextAttribute::new(ATTR_NONCE, nonce.clone())
                .add_to(&mut m)
                .unwrap();
            MessageIntegrity::new_long_term_integrity_with_provider(
                self.username.clone(),
                realm.clone(),
                self.password.clone(),
                RingProvider::new().crypto(),
            )
            .unwrap()
            .add_to(&mut m)
            .unwrap();
        }
        self.socket.send_to(&m.raw, self.server).await.unwrap();
        let mut buf = vec![0u8; 2048];
        let (len, _) =
            tokio::time::timeout(Duration::from_secs(5), self.socket.recv_from(&mut buf))
                .await
                .expect("the TURN server answers within 5 s")
                .unwrap();
        let mut reply = Message::new();
        reply.unmarshal_binary(&buf[..len]).unwrap();
        if let Ok(nonce) = TextAttribute::get_from_as(&reply, ATTR_NONCE) {
            self.nonce = Some(nonce.text);
        }
        if let Ok(realm) = TextAttribute::get_from_as(&reply, ATTR_REALM) {
            self.realm = Some(realm.text);
        }
        reply
    }

    /// Allocate as a browser does: the first request is challenged, the second signed.
    async fn allocate(&mut self) -> Message {
        let udp = RequestedTransport {
            protocol: PROTO_UDP,
        };
        let challenge = self.ask(METHOD_ALLOCATE, &[&udp]).await;
        assert_eq!(code(&challenge), Some(401), "challenged first");
        self.ask(METHOD_ALLOCATE, &[&udp]).await
    }
}

fn code(m: &Message) -> Option<u16> {
    let mut e = ErrorCodeAttribute::default();
    e.get_from(m).ok().map(|()| e.code.0)
}

fn peer(addr: SocketAddr) -> PeerAddress {
    PeerAddress {
        ip: addr.ip(),
        port: addr.port(),
    }
}

/// The TURN address the server printed at start-up.
fn turn_addr(server: &TestServer) -> SocketAddr {
    let output = server.output.lock().unwrap();
    let line = output
        .iter()
        .find_map(|l| l.strip_prefix("TURN, relaying only to this server's media, on udp "))
        .expect("the server says where TURN listens");
    line.trim_end_matches('.').parse().unwrap()
}

#[tokio::test]
async fn turn_relays_only_to_zaal_for_valid_credentials_within_its_limits() {
    let server = TestServer::start(&[("ZAAL__LIMITS__TURN_ALLOCATIONS_PER_CREDENTIAL", "2")]);
    server.create_room("relay-room").await;
    let anna = SimulatedParticipant::join(SimOptions::new(&server.base, "relay-room", "Anna"))
        .await
        .expect("join");
    let joined = anna
        .observed()
        .messages
        .into_iter()
        .find(|m| m["type"] == "joined")
        .expect("joined");
    let ice = &joined["iceServers"][0];
    let turn = turn_addr(&server);
    assert_eq!(
        ice["urls"][0].as_str().unwrap(),
        format!("turn:127.0.0.1:{}?transport=udp", turn.port()),
        "the participant is told where TURN is"
    );
    let (username, password) = (
        ice["username"].as_str().unwrap().to_string(),
        ice["credential"].as_str().unwrap().to_string(),
    );
    let media: SocketAddr = format!("127.0.0.1:{}", server.media_port).parse().unwrap();

    // The participant's credential allocates, and relays to Zaal's media address only.
    let mut client = Client::new(turn, &username, &password).await;
    let allocated = client.allocate().await;
    assert_eq!(allocated.typ.class, CLASS_SUCCESS_RESPONSE, "{allocated}");
    let mut relayed = RelayedAddress::default();
    relayed.get_from(&allocated).unwrap();
    assert_eq!(relayed.ip, media.ip());
    for elsewhere in ["192.0.2.7:10000", "10.0.0.1:80"] {
        let refused = client
            .ask(
                METHOD_CREATE_PERMISSION,
                &[&peer(elsewhere.parse().unwrap())],
            )
            .await;
        assert_eq!(code(&refused), Some(403), "a permission for {elsewhere}");
    }
    // Permissions are per address (RFC 8656 §9), channels per address and port: none to any
    // port of Zaal's but the media port.
    let refused = client
        .ask(
            METHOD_CHANNEL_BIND,
            &[
                &ChannelNumber(0x4000),
                &peer("127.0.0.1:22".parse().unwrap()),
            ],
        )
        .await;
    assert_eq!(code(&refused), Some(403), "a channel to another port");
    let permitted = client.ask(METHOD_CREATE_PERMISSION, &[&peer(media)]).await;
    assert_eq!(permitted.typ.class, CLASS_SUCCESS_RESPONSE, "{permitted}");

    // A forged password, and a credential past its expiry, get 401.
    let mut forger = Client::new(turn, &username, "Zm9yZ2Vk").await;
    assert_eq!(code(&forger.allocate().await), Some(401));
    let expired = format!("100:{}", username.split(':').nth(1).unwrap());
    let mut late = Client::new(turn, &expired, &password).await;
    assert_eq!(code(&late.allocate().await), Some(401));

    // One credential holds at most two allocations here.
    let mut second = Client::new(turn, &username, &password).await;
    assert_eq!(second.allocate().await.typ.class, CLASS_SUCCESS_RESPONSE);
    let mut third = Client::new(turn, &username, &password).await;
    assert_eq!(code(&third.allocate().await), Some(486));

    let metrics = server.metrics().await;
    for series in [
        "zaal_refused_total{limit=\"turn_peer\"} 3",
        "zaal_refused_total{limit=\"turn_credential\"} 2",
        "zaal_refused_total{limit=\"turn_allocations\"} 1",
        "zaal_turn_allocations 2",
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    anna.leave().await;
}
