//! Argon2 cannot be turned into a weapon: concurrent guesses for one account cost one hash,
//! bogus setup redemptions cost none, and the host still logs in from elsewhere meanwhile.

mod common;

use common::{HOST, PASSWORD, TestServer};
use serde_json::{Value, json};

async fn post_from(from: &str, server: &TestServer, path: &str, body: Value) -> u16 {
    common::post_from(from, server, path, body)
        .await
        .status()
        .as_u16()
}

/// The server's resident memory, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap()
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_and_bogus_setups_cost_at_most_a_handful_of_hashes() {
    let server = TestServer::start(&[]);
    let hashes = || async { server.metric("zaal_password_hashes_total").await };
    let before = hashes().await;

    // 40 wrong passwords for the host's account at once, from one address.
    let wrong = json!({"username": HOST, "password": "not the password at all"});
    let guesses = futures_util::future::join_all(
        (0..40).map(|_| post_from("127.0.0.50", &server, "/api/login", wrong.clone())),
    );
    // Meanwhile the host logs in from their own address.
    let right = json!({"username": HOST, "password": PASSWORD});
    let (statuses, host) = tokio::join!(
        guesses,
        post_from("127.0.0.51", &server, "/api/login", right)
    );
    assert_eq!(host, 200, "the host gets in during the attack");
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        statuses.iter().all(|s| [401, 429].contains(s)),
        "{statuses:?}"
    );
    assert!(
        checked <= 2,
        "{checked} of 40 concurrent guesses were checked"
    );
    let after_logins = hashes().await;
    assert!(
        after_logins - before <= 3,
        "{} hashes for 40 guesses and one login",
        after_logins - before
    );

    // 150 bogus redemptions of a setup link at once (and hosts exist): no hash at all.
    let bogus = |n: usize| {
        json!({"token": format!("forged-{n}"), "username": format!("intruder{n}"),
               "password": "a long enough password"})
    };
    let statuses = futures_util::future::join_all(
        (0..150).map(|n| post_from("127.0.0.52", &server, "/api/setup", bogus(n))),
    )
    .await;
    assert!(
        statuses.iter().all(|s| *s == 403),
        "setup-link-invalid: {statuses:?}"
    );
    assert_eq!(
        hashes().await,
        after_logins,
        "no setup redemption was hashed"
    );
    let rss = rss_bytes(server.pid());
    assert!(rss < 200 << 20, "server memory {} MiB", rss >> 20);
}
