//! A meeting that survives a dropped connection, and the rest of the conversation: chat and a
//! shared screen, through the real server.

mod common;

use std::time::Duration;

use common::{TestServer, eventually, media_flows};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use zaal_sim::{SimOptions, SimulatedParticipant};

async fn join(server: &TestServer, name: &str) -> SimulatedParticipant {
    SimulatedParticipant::join(SimOptions::new(&server.base, "klas", name))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_websocket_resumes_as_the_same_participant() {
    let server = TestServer::start(&[]);
    server.create_room("klas").await;
    let anna = join(&server, "Anna").await;
    let bram = join(&server, "Bram").await;
    media_flows(&bram, &anna.id).await;
    let token = anna.observed().resume_token;
    assert!(token.len() >= 32, "a resume token comes with joined");

    anna.drop_websocket();
    let mut options = SimOptions::new(&server.base, "klas", "Anna");
    options.resume = Some(token);
    let back = SimulatedParticipant::join(options).await.unwrap();
    assert_eq!(back.id, anna.id, "the same participant");
    assert!(back.observed().resumed);
    anna.vanish();
    // Media flows both ways again, and Bram never saw Anna leave or join.
    media_flows(&bram, &back.id).await;
    media_flows(&back, &bram.id).await;
    let o = bram.observed();
    assert!(o.left.is_empty(), "{:?}", o.left);
    assert_eq!(
        o.messages
            .iter()
            .filter(|m| m["type"] == "participant-joined")
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_for_longer_than_the_grace_period_is_a_departure() {
    let server = TestServer::start(&[("ZAAL__FOCUS__RECONNECT_GRACE", "1s")]);
    server.create_room("klas").await;
    let anna = join(&server, "Anna").await;
    let bram = join(&server, "Bram").await;
    anna.drop_websocket();
    bram.wait_for("Anna's departure", Duration::from_secs(10), |o| {
        o.left.contains(&anna.id)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_reaches_everyone_or_one() {
    let server = TestServer::start(&[]);
    server.create_room("klas").await;
    let a = join(&server, "A").await;
    let b = join(&server, "B").await;
    let c = join(&server, "C").await;
    a.send_raw(Message::text(
        json!({"type": "chat", "text": "Goedemorgen!"}).to_string(),
    ));
    a.send_raw(Message::text(
        json!({"type": "chat", "text": "alleen voor jou", "to": b.id}).to_string(),
    ));
    let chats = |o: &zaal_sim::Observed| {
        o.messages
            .iter()
            .filter(|m| m["type"] == "chat")
            .cloned()
            .collect::<Vec<_>>()
    };
    let o = b
        .wait_for("two messages", Duration::from_secs(5), |o| {
            chats(o).len() == 2
        })
        .await
        .unwrap();
    assert_eq!(chats(&o)[0]["text"], "Goedemorgen!");
    assert_eq!(chats(&o)[0]["from"], a.id.as_str());
    assert_eq!(chats(&o)[1]["private"], true);
    let o = c
        .wait_for("the public message", Duration::from_secs(5), |o| {
            !chats(o).is_empty()
        })
        .await
        .unwrap();
    // Give the private message the time it took to reach B: it must never reach C.
    assert_eq!(chats(&o).len(), 1);
    assert!(chats(&c.observed()).iter().all(|m| m["private"] == false));
    assert!(chats(&a.observed()).is_empty(), "no echo to the sender");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_screen_is_a_stream_of_its_own() {
    let server = TestServer::start(&[]);
    server.create_room("klas").await;
    let mut options = SimOptions::new(&server.base, "klas", "Presenter");
    options.send_screen = true;
    let presenter = SimulatedParticipant::join(options).await.unwrap();
    let viewer = join(&server, "Viewer").await;
    // Announced after the viewer joined, so it arrives as a message (before, it is in `joined`).
    presenter.send_raw(Message::text(
        json!({"type": "screen", "active": true}).to_string(),
    ));
    let screen_stream = format!("{}~screen", presenter.id);
    viewer
        .wait_for("the screen", Duration::from_secs(15), |o| {
            o.received
                .get(&screen_stream)
                .is_some_and(|r| r.video_packets > 10)
                && o.messages
                    .iter()
                    .any(|m| m["type"] == "screen" && m["active"] == true)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", viewer.observed().received));
    // The camera is still its own stream.
    let before = viewer.received_from(&presenter.id);
    eventually("the camera to flow", Duration::from_secs(10), || {
        let now = viewer.received_from(&presenter.id);
        (now.video_packets > before.video_packets + 20).then_some(())
    })
    .await;
}
