//! Bad input breaks nothing: garbage on the WebSocket and on the media port leaves a running
//! conference's media flowing.

mod common;

use std::time::Duration;

use common::{TestServer, eventually};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use zaal_sim::SimulatedParticipant;

/// A small deterministic generator, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

async fn flowing(receiver: &SimulatedParticipant, publisher: &SimulatedParticipant, what: &str) {
    let before = receiver.received_from(&publisher.id);
    eventually(what, Duration::from_secs(10), || {
        let now = receiver.received_from(&publisher.id);
        (now.audio_packets >= before.audio_packets + 50
            && now.video_packets >= before.video_packets + 50)
            .then_some(())
    })
    .await;
}

/// Datagrams shaped like each protocol the port demultiplexes, but wrong.
fn hostile_datagrams(rng: &mut XorShift) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..3000 {
        let len = 1 + (rng.next() % 1400) as usize;
        let mut d = rng.bytes(len);
        match i % 5 {
            // STUN with the magic cookie and a USERNAME naming nobody (or garbage).
            0 if len >= 28 => {
                d[0] = 0;
                d[1] = 1;
                d[2..4].copy_from_slice(&((len - 20) as u16).to_be_bytes());
                d[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
                d[20..22].copy_from_slice(&[0x00, 0x06]);
                d[22..24].copy_from_slice(&((len - 24) as u16).to_be_bytes());
            }
            // DTLS-looking.
            1 => d[0] = 22,
            // RTP/RTCP-looking.
            2 => d[0] = 0x80 | (d[0] & 0x3F),
            _ => {}
        }
        out.push(d);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_does_not_disturb_a_running_conference() {
    let server = TestServer::start(&[]);
    let (a, b) = common::two_in_a_room(&server, "klas").await;
    flowing(&a, &b, "B's media at A").await;
    flowing(&b, &a, "A's media at B").await;

    // 1. A participant's own malformed messages are answered, and it stays in.
    let big = format!(
        r#"{{"type":"offer","sdp":"v=0{}"}}"#,
        "x".repeat(300 * 1024)
    );
    for raw in [
        "not json at all".to_string(),
        "{\"type\":\"dance\"}".to_string(),
        "{\"type\":\"mute\",\"audioMuted\":1}".to_string(),
        json!({"type": "join", "version": 1, "room": "klas", "name": "again"}).to_string(),
        json!({"type": "answer", "sdp": "v=0\r\nnothing was offered"}).to_string(),
        json!({"type": "offer", "sdp": "v=0\r\ngarbage"}).to_string(),
        big,
    ] {
        a.send_raw(Message::text(raw));
    }
    a.send_raw(Message::binary(vec![0u8, 1, 2, 3]));
    let o = a
        .wait_for(
            "errors for each bad message",
            Duration::from_secs(10),
            |o| {
                let codes: Vec<&str> = o.errors.iter().map(|(c, _)| c.as_str()).collect();
                codes.iter().filter(|c| **c == "bad-message").count() >= 4
                    && codes.contains(&"already-joined")
                    && codes.contains(&"too-large")
                    && codes.iter().filter(|c| **c == "negotiation-failed").count() >= 2
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", a.observed().errors));
    assert!(o.ended.is_none(), "A is still connected");

    // 2. A stranger floods a socket of its own: rate-limited, then disconnected.
    let ws_url = server.url("/ws").replacen("http://", "ws://", 1);
    let (mut stranger, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let mut rate_limited = 0;
    let mut closed = false;
    for i in 0..400 {
        if stranger
            .send(Message::text(format!("{{\"type\":\"leave\",\"n\":{i}}}")))
            .await
            .is_err()
        {
            closed = true;
            break;
        }
    }
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_secs(5), stranger.next()).await
    {
        match message {
            Ok(Message::Text(text)) => {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["code"] == "rate-limited" {
                    rate_limited += 1;
                }
            }
            Ok(Message::Close(frame)) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(1008));
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(rate_limited > 0, "the flood was rate-limited");
    assert!(closed, "the flooding client was disconnected");

    // 3. A frame over the WebSocket limit closes only that connection.
    let (mut huge, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let _ = huge.send(Message::text("x".repeat(700 * 1024))).await;
    let next = tokio::time::timeout(Duration::from_secs(5), huge.next()).await;
    assert!(
        matches!(
            next,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_))))
        ),
        "{next:?}"
    );

    // 4. Random datagrams on the media port, from an address no participant uses.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = format!("127.0.0.1:{}", server.media_port);
    let mut rng = XorShift(0x5EED_2026_1123);
    for datagram in hostile_datagrams(&mut rng) {
        let _ = udp.send_to(&datagram, &target).await;
    }

    // The conference carries on: media both ways, nobody left, both still counted.
    flowing(&a, &b, "B's media at A after the garbage").await;
    flowing(&b, &a, "A's media at B after the garbage").await;
    assert!(a.observed().left.is_empty() && b.observed().left.is_empty());
    let health: Value = reqwest::get(server.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["participants"], 2);
    let unrouted = server.metric("zaal_udp_datagrams_unrouted_total").await;
    assert!(
        unrouted >= 2500,
        "the garbage was counted and dropped: {unrouted}"
    );
}
