//! The HTTP contract: host login, rooms, and what a guest cannot do.

mod common;

use common::{HOST, TestServer, post_from};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

async fn post(
    server: &TestServer,
    path: &str,
    body: Value,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(server.url(path)).json(&body);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

/// A POST from a given loopback address (the login throttle counts per client address).
async fn get(server: &TestServer, path: &str) -> reqwest::Response {
    reqwest::get(server.url(path)).await.unwrap()
}

#[tokio::test]
async fn hosts_create_rooms_and_guests_cannot() {
    let server = TestServer::start(&[
        ("ZAAL__AUTH__LOGIN_DELAY", "200ms"),
        ("ZAAL__AUTH__LOGIN_DELAY_MAX", "1s"),
    ]);
    // No session: 401, and nothing is created.
    let r = post(&server, "/api/rooms", json!({"name": "wiskunde"}), None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(get(&server, "/api/rooms/wiskunde").await.status(), 404);
    // A forged cookie is no session either.
    let r = post(
        &server,
        "/api/rooms",
        json!({"name": "wiskunde"}),
        Some("zaal_session=forged"),
    )
    .await;
    assert_eq!(r.status(), 401);
    // Wrong password and unknown user: 401 with the same answer.
    let wrong = post_from(
        "127.0.0.30",
        &server,
        "/api/login",
        json!({"username": HOST, "password": "not the password"}),
    )
    .await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let unknown = post_from(
        "127.0.0.31",
        &server,
        "/api/login",
        json!({"username": "nobody", "password": "whatever123"}),
    )
    .await;
    assert_eq!(unknown.status(), 401);
    assert_eq!(
        wrong.json::<Value>().await.unwrap(),
        unknown.json::<Value>().await.unwrap()
    );

    // The wrong password slowed the account down for a moment (auth.login_delay = 200ms here).
    let cookie = common::eventually_async("the login throttle to let the host in", || async {
        let r = post(
            &server,
            "/api/login",
            json!({"username": HOST, "password": common::PASSWORD}),
            None,
        )
        .await;
        (r.status() == 200).then(|| {
            let c = r.headers()["set-cookie"].to_str().unwrap();
            c.split(';').next().unwrap().to_string()
        })
    })
    .await;
    assert_eq!(get(&server, "/api/me").await.status(), 401);
    let r = post(
        &server,
        "/api/rooms",
        json!({"name": "Wiskunde"}),
        Some(&cookie),
    )
    .await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["room"], "wiskunde");
    assert_eq!(body["url"], server.url("/wiskunde"));
    let again = post(
        &server,
        "/api/rooms",
        json!({"name": "wiskunde"}),
        Some(&cookie),
    )
    .await;
    assert_eq!(again.status(), 200, "the host's own room already exists");
    let invalid = post(
        &server,
        "/api/rooms",
        json!({"name": "no spaces"}),
        Some(&cookie),
    )
    .await;
    assert_eq!(invalid.status(), 400);
    assert_eq!(
        invalid.json::<Value>().await.unwrap()["error"]["code"],
        "invalid-room"
    );
    assert_eq!(get(&server, "/api/rooms/wiskunde").await.status(), 200);
    assert_eq!(get(&server, "/api/rooms/WISKUNDE").await.status(), 200);

    // Logging out ends the session.
    let r = post(&server, "/api/logout", json!({}), Some(&cookie)).await;
    assert_eq!(r.status(), 204);
    let r = post(
        &server,
        "/api/rooms",
        json!({"name": "later"}),
        Some(&cookie),
    )
    .await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn joining_a_room_that_does_not_exist_creates_nothing() {
    let server = TestServer::start(&[]);
    let url = server.url("/ws").replacen("http://", "ws://", 1);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text(
        json!({"type": "join", "version": 1, "room": "geheim", "name": "Eve"}).to_string(),
    ))
    .await
    .unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    let reply: Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["code"], "room-not-found");
    // The server closes the connection.
    let next = ws.next().await;
    assert!(
        matches!(next, None | Some(Ok(Message::Close(_))) | Some(Err(_))),
        "{next:?}"
    );
    assert_eq!(get(&server, "/api/rooms/geheim").await.status(), 404);
    let health: Value = get(&server, "/healthz").await.json().await.unwrap();
    assert_eq!(health["conferences"], 0);
    // The room page itself loads (it shows the "no such room" message), with a strict CSP.
    let page = get(&server, "/geheim").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'self'"));
    assert!(
        page.headers().get("set-cookie").is_none(),
        "no cookie for guests"
    );
}

#[tokio::test]
async fn the_first_start_offers_a_single_use_setup_link() {
    // A server without hosts: build one by hand rather than through TestServer (which adds one).
    let dir = tempfile::tempdir().unwrap();
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_zaal"))
        .env("ZAAL__DATA__DIR", dir.path().join("data"))
        .env("ZAAL__LOGS__DIR", dir.path().join("logs"))
        .env("ZAAL__HTTP__LISTEN", "127.0.0.1:0")
        .env("ZAAL__MEDIA__UDP_PORT", "0")
        .env("ZAAL__MEDIA__TCP_PORT", "0")
        .env("ZAAL__TURN__LISTEN", "127.0.0.1:0")
        .env("ZAAL__MEDIA__BIND", "127.0.0.1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _child = KillOnDrop(child);
    // Read until the link has been printed, and keep draining stdout afterwards.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(30)) {
        let done = line.starts_with("(or run");
        lines.push(line);
        if done {
            break;
        }
    }
    let link = lines
        .iter()
        .find_map(|l| {
            l.trim()
                .contains("/setup#token=")
                .then(|| l.trim().to_string())
        })
        .expect("a setup link is printed");
    let (base, token) = link.split_once("/setup#token=").unwrap();
    let client = reqwest::Client::new();
    let setup = |token: &str, password: &str| {
        client
            .post(format!("{base}/api/setup"))
            .json(&json!({"token": token, "username": "beheer", "password": password}))
            .send()
    };
    assert_eq!(
        setup("wrong", "long enough password")
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(setup(token, "short").await.unwrap().status(), 400);
    let created = setup(token, "long enough password").await.unwrap();
    assert_eq!(created.status(), 201);
    assert!(created.headers().get("set-cookie").is_some());
    assert_eq!(
        setup(token, "long enough password").await.unwrap().status(),
        403,
        "single use"
    );
    let login = client
        .post(format!("{base}/api/login"))
        .json(&json!({"username": "beheer", "password": "long enough password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
}

#[tokio::test]
async fn failed_logins_slow_down_their_address_and_never_lock_the_host_out_elsewhere() {
    let server = TestServer::start(&[
        ("ZAAL__AUTH__LOGIN_DELAY", "1m"),
        ("ZAAL__AUTH__LOGIN_DELAY_MAX", "10m"),
    ]);
    let wrong = json!({"username": HOST, "password": "not the password"});
    let right = json!({"username": HOST, "password": common::PASSWORD});
    assert_eq!(
        post_from("127.0.0.40", &server, "/api/login", wrong.clone())
            .await
            .status(),
        401
    );
    // From the same address the account must wait, even with the right password...
    let r = post_from("127.0.0.40", &server, "/api/login", right.clone()).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((50..=60).contains(&retry), "{retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too-many-attempts");
    // ...but someone else's guesses do not lock the host out from where they are.
    assert_eq!(
        post_from("127.0.0.41", &server, "/api/login", right.clone())
            .await
            .status(),
        200
    );
    // The same address must wait for any account; a fresh address and account need not.
    let other = json!({"username": "someone", "password": "whatever123"});
    assert_eq!(
        post_from("127.0.0.40", &server, "/api/login", other.clone())
            .await
            .status(),
        429
    );
    assert_eq!(
        post_from("127.0.0.42", &server, "/api/login", other)
            .await
            .status(),
        401
    );
}
