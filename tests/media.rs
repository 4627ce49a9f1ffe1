//! Real WebRTC peers (webrtc-rs) meeting through the real server over loopback UDP.

mod common;

use std::time::Duration;

use common::{TestServer, eventually, eventually_async};
use zaal_sim::{SimOptions, SimulatedParticipant};

async fn join(server: &TestServer, room: &str, name: &str) -> SimulatedParticipant {
    SimulatedParticipant::join(SimOptions::new(&server.base, room, name))
        .await
        .expect("join")
}

/// Waits until `receiver` has audio and video from each of `publishers`.
async fn wait_for_media(receiver: &SimulatedParticipant, publishers: &[&SimulatedParticipant]) {
    let ids: Vec<String> = publishers.iter().map(|p| p.id.clone()).collect();
    receiver
        .wait_for(
            "audio and video from everyone",
            Duration::from_secs(20),
            |o| {
                ids.iter().all(|id| {
                    o.received
                        .get(id)
                        .is_some_and(|r| r.audio_packets > 10 && r.video_packets > 10)
                })
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", receiver.observed().received));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_exchange_audio_and_video() {
    let server = TestServer::start(&[]);
    server.create_room("klas-3b").await;
    let a = join(&server, "klas-3b", "Anna").await;
    let b = join(&server, "klas-3b", "Bram").await;
    let c = join(&server, "klas-3b", "Cem").await;
    assert_eq!(a.conference, b.conference);
    assert_eq!(b.conference, c.conference);
    wait_for_media(&a, &[&b, &c]).await;
    wait_for_media(&b, &[&a, &c]).await;
    wait_for_media(&c, &[&a, &b]).await;
    let names = c.observed().participants;
    assert_eq!(
        names.values().cloned().collect::<Vec<_>>().len(),
        2,
        "{names:?}"
    );
    assert!(names.values().any(|n| n == "Anna") && names.values().any(|n| n == "Bram"));
}

/// With two media workers, two rooms run on different threads behind the one UDP port: each
/// conference lives on one worker, and media flows in both, also after one room empties and
/// starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conferences_spread_over_media_workers_behind_one_port() {
    let server = TestServer::start(&[("ZAAL__MEDIA__WORKERS", "2")]);
    server.create_room("klas-1").await;
    server.create_room("klas-2").await;
    let a = join(&server, "klas-1", "Anna").await;
    let b = join(&server, "klas-1", "Bram").await;
    let c = join(&server, "klas-2", "Cem").await;
    let d = join(&server, "klas-2", "Dewi").await;
    wait_for_media(&a, &[&b]).await;
    wait_for_media(&b, &[&a]).await;
    wait_for_media(&c, &[&d]).await;
    wait_for_media(&d, &[&c]).await;
    const ON_0: &str = "zaal_media_worker_peers{worker=\"0\"}";
    const ON_1: &str = "zaal_media_worker_peers{worker=\"1\"}";
    assert_eq!(
        (server.metric(ON_0).await, server.metric(ON_1).await),
        (2, 2),
        "a room on each worker"
    );
    assert_eq!(server.metric("zaal_media_peers").await, 4);

    // The second room empties and starts again: its new connections are routed afresh.
    c.leave().await;
    d.leave().await;
    eventually_async("klas-2's connections closed", || async {
        (server.metric(ON_1).await == 0).then_some(())
    })
    .await;
    let e = join(&server, "klas-2", "Eva").await;
    let f = join(&server, "klas-2", "Fleur").await;
    wait_for_media(&e, &[&f]).await;
    wait_for_media(&f, &[&e]).await;
    wait_for_media(&a, &[&b]).await;
    assert_eq!(
        (server.metric(ON_0).await, server.metric(ON_1).await),
        (2, 2),
        "the restarted room went to the emptier worker again"
    );
}

/// The count of `a=msid:` lines naming `participant` in an SDP.
fn tracks_of(sdp: &str, participant: &str) -> usize {
    sdp.lines()
        .filter(|l| l.starts_with(&format!("a=msid:{participant} ")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_participants_tracks_disappear() {
    let server = TestServer::start(&[]);
    server.create_room("klas").await;
    let a = join(&server, "klas", "Anna").await;
    let b = join(&server, "klas", "Bram").await;
    let c = join(&server, "klas", "Cem").await;
    wait_for_media(&a, &[&b, &c]).await;
    wait_for_media(&b, &[&a, &c]).await;
    let c_id = c.id.clone();
    let offer = a.observed().last_server_offer.unwrap();
    assert_eq!(tracks_of(&offer, &c_id), 2, "audio and video of C offered");

    c.leave().await;
    for receiver in [&a, &b] {
        let o = receiver
            .wait_for("C's tracks to be withdrawn", Duration::from_secs(10), |o| {
                o.left.contains(&c_id)
                    && o.last_server_offer
                        .as_deref()
                        .is_some_and(|sdp| tracks_of(sdp, &c_id) == 0)
            })
            .await
            .unwrap();
        assert!(!o.participants.contains_key(&c_id));
    }
    // Nothing more arrives from C, while A and B still hear each other.
    let before = a.received_from(&c_id);
    let ab_before = a.received_from(&b.id);
    eventually(
        "media between A and B to continue",
        Duration::from_secs(5),
        || (a.received_from(&b.id).audio_packets > ab_before.audio_packets + 20).then_some(()),
    )
    .await;
    assert_eq!(a.received_from(&c_id), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_participant_is_announced() {
    let server = TestServer::start(&[]);
    server.create_room("klas").await;
    let a = join(&server, "klas", "Anna").await;
    let b = join(&server, "klas", "Bram").await;
    let c = join(&server, "klas", "Cem").await;
    wait_for_media(&a, &[&b, &c]).await;
    let (b_id, c_id) = (b.id.clone(), c.id.clone());

    // B's tab is killed: its WebSocket and its UDP socket close without a word.
    b.vanish();
    // C loses the network for media while its WebSocket stays open: only ICE consent tells.
    c.drop_network();
    let started = std::time::Instant::now();
    let o = a
        .wait_for(
            "B and C to be announced as gone",
            Duration::from_secs(10),
            |o| o.left.contains(&b_id) && o.left.contains(&c_id),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", a.observed().left));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(o.participants.is_empty());
    a.wait_for(
        "B's and C's tracks to be withdrawn",
        Duration::from_secs(5),
        |o| {
            o.last_server_offer
                .as_deref()
                .is_some_and(|sdp| tracks_of(sdp, &b_id) == 0 && tracks_of(sdp, &c_id) == 0)
        },
    )
    .await
    .unwrap();
    // C's session was ended by the server with a reason.
    c.wait_for("C to be told", Duration::from_secs(5), |o| {
        o.errors.iter().any(|(code, _)| code == "media-failed")
    })
    .await
    .unwrap();
}

/// A participant who reaches the server only over ICE-TCP (an active TCP candidate and nothing
/// else, as from a network that drops UDP).
async fn join_over_tcp(server: &TestServer, room: &str, name: &str) -> SimulatedParticipant {
    let mut options = SimOptions::new(&server.base, room, name);
    options.media_tcp = true;
    SimulatedParticipant::join(options).await.expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_over_ice_tcp_meet_those_on_udp_on_every_worker() {
    let port = common::free_tcp_port();
    let server = TestServer::start(&[
        ("ZAAL__MEDIA__WORKERS", "2"),
        ("ZAAL__MEDIA__TCP_PORT", &port.to_string()),
    ]);
    server.create_room("klas-1").await;
    server.create_room("klas-2").await;
    // A room on each worker: the TCP port hands each connection to the worker that owns it.
    let a = join(&server, "klas-1", "Anna").await;
    let b = join_over_tcp(&server, "klas-1", "Bram").await;
    let c = join(&server, "klas-2", "Cem").await;
    let d = join_over_tcp(&server, "klas-2", "Dewi").await;
    for (receiver, publisher) in [(&a, &b), (&b, &a), (&c, &d), (&d, &c)] {
        wait_for_media(receiver, &[publisher]).await;
    }
    assert_eq!(
        (
            server.metric("zaal_media_worker_peers{worker=\"0\"}").await,
            server.metric("zaal_media_worker_peers{worker=\"1\"}").await
        ),
        (2, 2)
    );
    assert_eq!(server.metric("zaal_media_tcp_connections").await, 2);
    assert!(server.metric("zaal_media_tcp_frames_sent_total").await > 40);
    assert_eq!(
        server.metric("zaal_media_tcp_frames_dropped_total").await,
        0
    );

    // A TCP participant leaves: its TCP connection closes.
    d.leave().await;
    eventually_async("Dewi's TCP connection closed", || async {
        (server.metric("zaal_media_tcp_connections").await == 1).then_some(())
    })
    .await;
    // One whose network goes silent over TCP is found out by ICE consent, as on UDP: it is
    // announced as gone, and its TCP connection is closed.
    b.drop_network();
    a.wait_for(
        "Bram to be announced as gone",
        Duration::from_secs(15),
        |o| o.left.contains(&b.id),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    eventually_async("Bram's TCP connection closed", || async {
        (server.metric("zaal_media_tcp_connections").await == 0).then_some(())
    })
    .await;
}
