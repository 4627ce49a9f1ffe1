//! The participant cap holds at every way into a conference: a direct join, the host's arrival
//! letting in everyone who waited for them, the lobby switched off, and single admits. Hundreds
//! of guests from one address cannot get more than the cap in, nor the server's memory up.

mod common;

use std::time::Duration;

use common::TestServer;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const CAP: usize = 50;
const GUESTS: usize = 300;

/// The server's resident memory, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

async fn next_message(socket: &mut Socket) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).ok(),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// A guest that sends `join` and reads until the server says where it stands.
async fn guest(server: &TestServer, room: &str, n: usize) -> (Socket, Value) {
    let url = server.url("/ws").replacen("http://", "ws://", 1);
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let join = json!({"type": "join", "version": 1, "room": room, "name": format!("Guest {n}")});
    socket.send(Message::text(join.to_string())).await.unwrap();
    let first = next_message(&mut socket).await.expect("an answer to join");
    (socket, first)
}

/// What became of each waiting guest once the doors opened: admitted or refused (and why).
async fn outcomes(waiting: Vec<Socket>) -> (Vec<Socket>, Vec<String>) {
    let mut refused = Vec::new();
    let results =
        futures_util::future::join_all(waiting.into_iter().map(|mut socket| async move {
            loop {
                match next_message(&mut socket).await {
                    Some(m) if m["type"] == "joined" => return Ok(socket),
                    Some(m) if m["type"] == "error" => {
                        return Err(m["code"].as_str().unwrap_or_default().to_string());
                    }
                    Some(_) => continue,
                    None => return Err("closed without a word".to_string()),
                }
            }
        }))
        .await;
    let mut admitted = Vec::new();
    for result in results {
        match result {
            Ok(socket) => admitted.push(socket),
            Err(code) => refused.push(code),
        }
    }
    (admitted, refused)
}

/// The host, joining with their session cookie; the socket and `joined`.
async fn host(server: &TestServer, room: &str) -> (Socket, Value) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = server.url("/ws").replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", server.login().await.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let join = json!({"type": "join", "version": 1, "room": room, "name": "Juf Anna"});
    socket.send(Message::text(join.to_string())).await.unwrap();
    loop {
        let m = next_message(&mut socket).await.expect("joined");
        if m["type"] == "joined" {
            return (socket, m);
        }
    }
}

/// `GUESTS` guests ask to join; those waiting, and the codes of those refused at once.
async fn knock(server: &TestServer, room: &str) -> (Vec<Socket>, Vec<String>) {
    let answers = futures_util::future::join_all((0..GUESTS).map(|n| guest(server, room, n))).await;
    let mut waiting = Vec::new();
    let mut refused = Vec::new();
    for (socket, first) in answers {
        match first["type"].as_str() {
            Some("waiting") => waiting.push(socket),
            Some("error") => refused.push(first["code"].as_str().unwrap_or_default().to_string()),
            other => panic!("a guest was let in at once: {other:?}"),
        }
    }
    (waiting, refused)
}

async fn participants(server: &TestServer) -> usize {
    let health: Value = reqwest::get(server.url("/healthz"))
        .await
        .expect("/healthz answers")
        .json()
        .await
        .unwrap();
    health["participants"].as_u64().unwrap() as usize
}

fn start(extra: &[(&str, &str)]) -> TestServer {
    let cap = CAP.to_string();
    let mut env = vec![("ZAAL__FOCUS__MAX_PARTICIPANTS", cap.as_str())];
    env.extend_from_slice(extra);
    TestServer::start(&env)
}

fn assert_bounded(server: &TestServer, refused: &[String]) {
    assert!(
        refused.iter().all(|code| code == "conference-full"),
        "refusals say why: {refused:?}"
    );
    let rss = rss_bytes(server.pid());
    assert!(rss < 200 << 20, "server memory {} MiB", rss >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_waiting_for_the_host_are_let_in_only_up_to_the_cap() {
    let server = start(&[("ZAAL__FOCUS__WAIT_FOR_HOST", "true")]);
    server.create_room("groep-8").await;
    let (waiting, mut refused) = knock(&server, "groep-8").await;
    assert!(
        waiting.len() <= CAP,
        "{} wait for one conference of {CAP}",
        waiting.len()
    );
    let (_host, _) = host(&server, "groep-8").await;
    let (admitted, late) = outcomes(waiting).await;
    refused.extend(late);
    assert!(
        admitted.len() < CAP,
        "{} admitted beside the host",
        admitted.len()
    );
    assert_eq!(
        admitted.len() + refused.len(),
        GUESTS,
        "every guest got an answer"
    );
    assert!(participants(&server).await <= CAP);
    assert_bounded(&server, &refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_lobby_off_lets_in_only_up_to_the_cap() {
    let server = start(&[]);
    server.create_room("groep-7").await;
    let (mut host_socket, _) = host(&server, "groep-7").await;
    host_socket
        .send(Message::text(r#"{"type":"set-lobby","enabled":true}"#))
        .await
        .unwrap();
    until(&mut host_socket, |m| {
        m["type"] == "room-state" && m["lobby"] == true
    })
    .await;
    let (waiting, mut refused) = knock(&server, "groep-7").await;
    assert!(waiting.len() <= CAP);
    host_socket
        .send(Message::text(r#"{"type":"set-lobby","enabled":false}"#))
        .await
        .unwrap();
    let (admitted, late) = outcomes(waiting).await;
    refused.extend(late);
    assert!(
        admitted.len() < CAP,
        "{} admitted beside the host",
        admitted.len()
    );
    assert_eq!(admitted.len() + refused.len(), GUESTS);
    assert!(participants(&server).await <= CAP);
    assert_bounded(&server, &refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_admits_stop_at_the_cap_and_the_moderator_is_told() {
    let server = start(&[]);
    server.create_room("groep-6").await;
    let (mut host_socket, _) = host(&server, "groep-6").await;
    host_socket
        .send(Message::text(r#"{"type":"set-lobby","enabled":true}"#))
        .await
        .unwrap();
    until(&mut host_socket, |m| {
        m["type"] == "room-state" && m["lobby"] == true
    })
    .await;
    let (waiting, refused) = knock(&server, "groep-6").await;
    assert_bounded(&server, &refused);
    // The host sees every knock and admits each one.
    let mut knocks = Vec::new();
    while knocks.len() < waiting.len() {
        let m = next_message(&mut host_socket)
            .await
            .expect("lobby requests");
        if m["type"] == "lobby-request" {
            knocks.push(m["id"].as_str().unwrap().to_string());
        }
    }
    for id in &knocks {
        let admit = json!({"type": "admit", "id": id});
        host_socket
            .send(Message::text(admit.to_string()))
            .await
            .unwrap();
    }
    let full = eventually_refusal(&mut host_socket).await;
    assert_eq!(
        full, "no-free-seat",
        "the moderator is told the room is full"
    );
    assert!(participants(&server).await <= CAP);
}

/// Reads `socket` until a message satisfies `wanted`.
async fn until(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let m = next_message(socket).await.expect("the awaited message");
        if wanted(&m) {
            return m;
        }
    }
}

/// The first error the host's socket receives.
async fn eventually_refusal(socket: &mut Socket) -> String {
    loop {
        let m = next_message(socket)
            .await
            .expect("an error for the admit past the cap");
        if m["type"] == "error" {
            return m["code"].as_str().unwrap().to_string();
        }
    }
}
