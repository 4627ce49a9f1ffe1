//! The limits that hold against hostile clients from outside: pages of other origins cannot act
//! with a host's cookie, idle and slow connections are closed by the timeouts and capped per
//! address while a meeting on the same server goes on, WebSockets are capped per address, and a
//! message over the size limit closes with 1009.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{TestServer, eventually_async, media_flows};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use zaal_sim::{SimOptions, SimulatedParticipant};

/// A WebSocket upgrade with these headers: the handshake's status (101 when accepted).
async fn upgrade(server: &TestServer, headers: &[(&str, &str)]) -> u16 {
    let url = server.url("/ws").replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("upgrade failed otherwise: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_servers_own_pages_may_use_a_hosts_cookie() {
    let server = TestServer::start(&[("ZAAL__HTTP__ALLOWED_ORIGINS", "https://portal.example.nl")]);
    server.create_room("eigen-pagina").await;
    let cookie = server.login().await;
    let own = server.base.clone();
    for origin in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        let status = upgrade(&server, &[("cookie", &cookie), ("origin", origin)]).await;
        assert_eq!(status, 403, "an upgrade from {origin}");
    }
    assert_eq!(
        upgrade(&server, &[("cookie", &cookie), ("origin", &own)]).await,
        101
    );
    assert_eq!(
        upgrade(
            &server,
            &[("cookie", &cookie), ("origin", "https://portal.example.nl")]
        )
        .await,
        101,
        "a listed origin"
    );
    // With its own origin, the host's join is a moderator's.
    let mut options = SimOptions::new(&own, "eigen-pagina", "Juf");
    options.session_cookie = Some(cookie.clone());
    let host = SimulatedParticipant::join(options).await.unwrap();
    assert_eq!(host.observed().role, "moderator", "joined as the host");
    host.leave().await;

    // State-changing requests: by Origin, or by Fetch Metadata where no Origin is sent.
    let client = reqwest::Client::new();
    let create = |headers: &[(&'static str, &str)]| {
        let mut request = client
            .post(server.url("/api/rooms"))
            .header("cookie", &cookie)
            .json(&serde_json::json!({"name": format!("kamer-{}", headers.len())}));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    let foreign = create(&[("origin", "https://evil.example")]).await.unwrap();
    assert_eq!(foreign.status(), 403);
    let body: serde_json::Value = foreign.json().await.unwrap();
    assert_eq!(body["error"]["code"], "foreign-origin");
    let cross = create(&[("sec-fetch-site", "cross-site")]).await.unwrap();
    assert_eq!(cross.status(), 403);
    let end = client
        .post(server.url("/api/rooms/eigen-pagina/end"))
        .header("cookie", &cookie)
        .header("origin", "null")
        .send()
        .await
        .unwrap();
    assert_eq!(end.status(), 403, "a body-less POST too");
    let same = create(&[("origin", &own), ("sec-fetch-site", "same-origin")])
        .await
        .unwrap();
    assert!(same.status().is_success(), "{}", same.status());
    assert!(server.metric(r#"zaal_refused_total{limit="origin"}"#).await >= 6);
}

/// A TCP connection from the loopback address `from` to `to`.
async fn connect(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{from}:0").parse().unwrap())?;
    socket.connect(to).await
}

/// A TCP connection from `from`, to the server's HTTP port.
async fn connect_from(from: &str, server: &TestServer) -> std::io::Result<TcpStream> {
    connect(
        from,
        server.base.trim_start_matches("http://").parse().unwrap(),
    )
    .await
}

/// Whether the server has closed the connection (a read sees the end, or a reset).
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 256];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed_while_a_meeting_goes_on() {
    const IDLE: usize = 2000;
    let server = TestServer::start(&[
        ("ZAAL__LIMITS__HEADER_TIMEOUT", "6s"),
        ("ZAAL__LIMITS__HTTP_CONNECTIONS_PER_ADDRESS", "256"),
    ]);
    let (alice, bob) = common::two_in_a_room(&server, "les").await;
    media_flows(&bob, &alice.id).await;

    // From another address: 2000 connections that never send a byte, and a slowloris that
    // sends a header a byte at a time, never finishing it.
    let mut idle = Vec::new();
    for _ in 0..IDLE {
        if let Ok(stream) = connect_from("127.0.0.2", &server).await {
            idle.push(stream);
        }
    }
    let mut slow = connect_from("127.0.0.2", &server).await.unwrap();
    let slowloris = tokio::spawn(async move {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if slow.write_all(&[*byte]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        closed_by_server(&mut slow, Duration::from_secs(10)).await
    });

    // Meanwhile, everyone else is served, and the meeting goes on.
    for _ in 0..5 {
        let health = reqwest::get(server.url("/healthz")).await.unwrap();
        assert_eq!(health.status(), 200);
    }
    media_flows(&bob, &alice.id).await;
    media_flows(&alice, &bob.id).await;
    // The server counts a refusal when its accept loop reaches the connection, which may be
    // after the kernel has completed the handshake; wait for it, bounded.
    let beyond_cap = idle.len().saturating_sub(256) as u64;
    assert!(beyond_cap > 0, "only {} connections opened", idle.len());
    server
        .wait_for_metric(
            r#"zaal_refused_total{limit="http_connections_per_address"}"#,
            beyond_cap,
        )
        .await;

    // Every idle connection is closed by the header timeout, the slowloris too.
    let closed = futures_util::future::join_all(
        idle.iter_mut()
            .map(|stream| closed_by_server(stream, Duration::from_secs(15))),
    )
    .await;
    assert!(closed.iter().all(|c| *c), "every idle connection closed");
    assert!(slowloris.await.unwrap(), "the slowloris closed");
    server
        .wait_for_metric(r#"zaal_refused_total{limit="header_timeout"}"#, 200)
        .await;
    // A new connection from that address is served again.
    let mut fresh = connect_from("127.0.0.2", &server).await.unwrap();
    fresh
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    fresh.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    media_flows(&bob, &alice.id).await;
    assert!(alice.observed().ended.is_none() && bob.observed().ended.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_are_capped_per_address_and_a_message_too_big_closes_with_1009() {
    let server = TestServer::start(&[("ZAAL__LIMITS__WEBSOCKETS_PER_ADDRESS", "5")]);
    let url = server.url("/ws").replacen("http://", "ws://", 1);
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(tokio_tungstenite::connect_async(&url).await.unwrap().0);
    }
    assert_eq!(
        upgrade(&server, &[]).await,
        503,
        "a sixth from the same address"
    );
    assert_eq!(
        server
            .metric(r#"zaal_refused_total{limit="websockets_per_address"}"#)
            .await,
        1
    );
    // Closing one frees its place.
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    drop(first);
    let mut socket = eventually_async("a freed place", || async {
        tokio_tungstenite::connect_async(&url)
            .await
            .ok()
            .map(|(s, _)| s)
    })
    .await;
    let big = "x".repeat(600 * 1024);
    let _ = socket.send(Message::text(big)).await;
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => break u16::from(frame.code),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, 1009, "message too big");
}

/// A TCP connection from `from` to the server's ICE-TCP port.
async fn connect_tcp(from: &str, port: u16) -> TcpStream {
    connect(from, SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap()
}

/// An RFC 4571 frame.
fn framed(datagram: &[u8]) -> Vec<u8> {
    let mut out = (datagram.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(datagram);
    out
}

/// A STUN binding request naming `username`, without MESSAGE-INTEGRITY.
fn stun_binding(username: &str) -> Vec<u8> {
    let mut attribute = 0x0006u16.to_be_bytes().to_vec();
    attribute.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attribute.extend_from_slice(username.as_bytes());
    while !attribute.len().is_multiple_of(4) {
        attribute.push(0);
    }
    let mut message = 0x0001u16.to_be_bytes().to_vec();
    message.extend_from_slice(&(attribute.len() as u16).to_be_bytes());
    message.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    message.extend_from_slice(&[7; 12]);
    message.extend_from_slice(&attribute);
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_tcp_connections_must_prove_themselves_and_are_capped_per_address() {
    let port = common::free_tcp_port();
    let server = TestServer::start(&[
        ("ZAAL__MEDIA__TCP_PORT", &port.to_string()),
        ("ZAAL__LIMITS__MEDIA_TCP_CONNECTIONS_PER_ADDRESS", "3"),
    ]);
    let (alice, bob) = common::two_in_a_room(&server, "tcp-poort").await;
    media_flows(&bob, &alice.id).await;

    // Three connections from one address that say nothing hold its places…
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(connect_tcp("127.0.0.3", port).await);
    }
    // …so a fourth is closed at once, before anything is read.
    let mut fourth = connect_tcp("127.0.0.3", port).await;
    assert!(closed_by_server(&mut fourth, Duration::from_secs(3)).await);
    server
        .wait_for_metric(
            r#"zaal_refused_total{limit="media_tcp_connections_per_address"}"#,
            1,
        )
        .await;

    // From elsewhere: datagrams that prove nothing close their connection.
    let unproven: [Vec<u8>; 3] = [
        // DTLS where STUN must come first.
        framed(&[22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        // STUN for a connection that does not exist.
        framed(&stun_binding("nosuchufrag00000:client")),
        // A frame longer than any datagram.
        vec![0xff, 0xff, 1, 2, 3],
    ];
    for bytes in &unproven {
        let mut stream = connect_tcp("127.0.0.4", port).await;
        stream.write_all(bytes).await.unwrap();
        assert!(closed_by_server(&mut stream, Duration::from_secs(3)).await);
    }
    // The silent ones are closed when their time to prove themselves is up.
    for stream in &mut silent {
        assert!(closed_by_server(stream, Duration::from_secs(10)).await);
    }
    server
        .wait_for_metric(r#"zaal_refused_total{limit="media_tcp_unproven"}"#, 6)
        .await;
    assert_eq!(server.metric("zaal_media_tcp_connections").await, 0);
    // None of it touched the meeting.
    media_flows(&alice, &bob.id).await;
    assert!(alice.observed().ended.is_none() && bob.observed().ended.is_none());
}
