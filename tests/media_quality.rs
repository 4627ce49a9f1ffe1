//! Media quality in a full room, through the real server: who the dominant speaker is, which
//! simulcast layer a receiver gets over a poor downlink, keyframes for newcomers, loss repair.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::relay::ShapingRelay;
use common::{TestServer, eventually, eventually_async, media_flows};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use zaal_sim::{SimOptions, SimulatedParticipant};

/// Someone talking into a headset, in −dBov.
const TALKING: u8 = 30;
/// A dropped book or a cough: louder than talking.
const NOISE: u8 = 10;
const SILENT: u8 = 127;

async fn join(server: &TestServer, name: &str) -> SimulatedParticipant {
    let mut options = SimOptions::new(&server.base, "klas", name);
    // Audio is what this is about; no video keeps the machine's load out of the timings.
    options.send_video = false;
    SimulatedParticipant::join(options).await.unwrap()
}

/// The dominant speaker a participant was last told about: `None` if never told, `Some(None)`
/// when told that nobody is.
fn speaker_seen(p: &SimulatedParticipant) -> Option<Option<String>> {
    p.observed()
        .messages
        .iter()
        .rev()
        .find_map(|m| match m["type"].as_str() {
            Some("dominant-speaker") => Some(m["id"].as_str().map(str::to_string)),
            Some("joined") => m
                .get("dominantSpeaker")
                .map(|v| v.as_str().map(str::to_string)),
            _ => None,
        })
}

/// Waits until everyone has been told `speaker` is speaking; returns how long that took.
async fn everyone_sees(everyone: &[&SimulatedParticipant], speaker: &str) -> Duration {
    let since = Instant::now();
    eventually(
        "everyone to see the new dominant speaker",
        Duration::from_secs(10),
        || {
            everyone
                .iter()
                .all(|p| speaker_seen(p) == Some(Some(speaker.to_string())))
                .then_some(())
        },
    )
    .await;
    since.elapsed()
}

/// Every `dominant-speaker` message a participant has had naming `id`.
fn times_named(p: &SimulatedParticipant, id: &str) -> usize {
    p.observed()
        .messages
        .iter()
        .filter(|m| m["type"] == "dominant-speaker" && m["id"] == id)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dominant_speaker_follows_speech_and_ignores_short_noises() {
    let server = TestServer::start(&[]);
    server.create_room("klas").await;
    let anna = join(&server, "Anna").await;
    let bram = join(&server, "Bram").await;
    let cato = join(&server, "Cato").await;
    let everyone = [&anna, &bram, &cato];
    for (receiver, publisher) in [(&anna, &cato), (&cato, &anna), (&bram, &anna)] {
        let id = publisher.id.clone();
        eventually("audio to flow", Duration::from_secs(15), || {
            (receiver.received_from(&id).audio_packets > 25).then_some(())
        })
        .await;
    }
    assert_eq!(speaker_seen(&anna), Some(None), "silence: nobody speaks");

    // Anna talks: within two seconds everyone knows.
    anna.set_voice_level(TALKING);
    let took = everyone_sees(&everyone, &anna.id).await;
    assert!(took < Duration::from_secs(2), "Anna after {took:?}");

    // Anna stops, Bram starts.
    anna.set_voice_level(SILENT);
    bram.set_voice_level(TALKING);
    let took = everyone_sees(&everyone, &bram.id).await;
    assert!(took < Duration::from_secs(2), "Bram after {took:?}");

    // A 200 ms noise at Cato's while Bram talks, and another while nobody does: the floor stays
    // Bram's. The noise's length is the stimulus, so it is timed; the quiet after it is the
    // window in which a wrong switch would show.
    for bram_level in [TALKING, SILENT] {
        bram.set_voice_level(bram_level);
        cato.set_voice_level(NOISE);
        tokio::time::sleep(Duration::from_millis(200)).await;
        cato.set_voice_level(SILENT);
        tokio::time::sleep(Duration::from_secs(2)).await;
        for p in everyone {
            assert_eq!(times_named(p, &cato.id), 0, "a noise took the floor");
            assert_eq!(speaker_seen(p), Some(Some(bram.id.clone())));
        }
    }

    // Someone who comes in now learns who spoke last from `joined`.
    let dirk = join(&server, "Dirk").await;
    assert_eq!(speaker_seen(&dirk), Some(Some(bram.id.clone())));

    // When the speaker leaves, the others are told nobody speaks.
    let bram_id = bram.id.clone();
    bram.leave().await;
    for p in [&anna, &cato, &dirk] {
        eventually("the speaker's departure", Duration::from_secs(10), || {
            (p.observed().left.contains(&bram_id) && speaker_seen(p) == Some(None)).then_some(())
        })
        .await;
    }
}

fn media_addr(server: &TestServer) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], server.media_port))
}

/// The height of the layer `receiver` gets from `publisher`, once it is `height`.
async fn layer_becomes(
    receiver: &SimulatedParticipant,
    publisher: &str,
    height: u16,
    timeout: Duration,
) -> Duration {
    let since = Instant::now();
    eventually("the receiver to get the expected layer", timeout, || {
        (receiver.observed().video_height.get(publisher) == Some(&height)).then_some(())
    })
    .await;
    since.elapsed()
}

fn loss_since(receiver: &SimulatedParticipant, before: (u64, u64)) -> f64 {
    let o = receiver.observed();
    let expected = o.probes_expected - before.0;
    let received = o.probes_received - before.1;
    1.0 - received as f64 / expected.max(1) as f64
}

fn probes(receiver: &SimulatedParticipant) -> (u64, u64) {
    let o = receiver.observed();
    (o.probes_expected, o.probes_received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_follows_the_downlink_and_every_switch_is_seamless() {
    let server = TestServer::start(&[]);
    server.create_room("klas").await;
    let mut options = SimOptions::new(&server.base, "klas", "Docent");
    options.simulcast = true;
    // The top layer at 1 Mbit/s: 150, 350 and 1000 kbit/s.
    options.video_kbps = 1000;
    let publisher = SimulatedParticipant::join(options).await.unwrap();

    let relay = ShapingRelay::start(media_addr(&server)).await;
    relay.shaping.rate_bps.store(300_000, Ordering::Relaxed);
    let mut options = SimOptions::new(&server.base, "klas", "Leerling");
    options.send_video = false;
    options.media_relay = Some(relay.addr);
    let receiver = SimulatedParticipant::join(options).await.unwrap();

    // A 300 kbit/s downlink: the lowest layer, and it stays there without sustained loss.
    layer_becomes(&receiver, &publisher.id, 180, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = probes(&receiver);
    let heights_before = receiver.observed().video_bytes_by_height;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let loss = loss_since(&receiver, before);
    let o = receiver.observed();
    let higher: u64 = o
        .video_bytes_by_height
        .iter()
        .filter(|(h, _)| **h > 180)
        .map(|(h, bytes)| bytes - heights_before.get(h).copied().unwrap_or(0))
        .sum();
    eprintln!(
        "limited: loss {:.2} %, queue drops {}, bytes above 180p {higher}, padding packets {}",
        loss * 100.0,
        relay.shaping.dropped_by_queue.load(Ordering::Relaxed),
        o.padding_packets,
    );
    assert!(loss < 0.02, "sustained loss on the lowest layer: {loss}");
    assert_eq!(
        higher, 0,
        "a higher layer was sent into the 300 kbit/s downlink"
    );
    assert_eq!(o.video_height.get(&publisher.id), Some(&180));

    // The limit lifted: the top layer within 10 s.
    let changes_while_limited = o.layer_changes.len();
    relay.shaping.rate_bps.store(0, Ordering::Relaxed);
    let took = layer_becomes(&receiver, &publisher.id, 720, Duration::from_secs(10)).await;
    eprintln!("top layer {took:?} after the limit was lifted");

    // Across every switch, one continuous stream: the new layer's first packet follows the old
    // layer's last by one sequence number and by less than a frame's time, never backwards. On
    // the narrow link the packets just before a switch down may be lost there, not skipped by the
    // server: those switches may step further, but by no more than a second of the layer.
    let o = receiver.observed();
    eprintln!("layer changes: {:?}", o.layer_changes);
    assert!(
        o.layer_changes
            .iter()
            .any(|c| c.from_height == 180 && c.to_height > 180),
        "no switch up was seen"
    );
    for (i, change) in o.layer_changes.iter().enumerate() {
        let (most_step, most_ticks) = if i < changes_while_limited {
            (64, 90_000)
        } else {
            (1, 9_000)
        };
        assert!(
            (1..=most_step).contains(&change.sequence_step) && change.timestamp_step <= most_ticks,
            "a switch that is not seamless: {change:?}"
        );
    }
    assert_eq!(
        o.ts_backwards, 0,
        "a newer packet carried an older timestamp"
    );
    publisher.leave().await;
    receiver.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_receiver_gets_a_keyframe_within_a_second() {
    let server = TestServer::start(&[]);
    server.create_room("klas").await;
    let mut options = SimOptions::new(&server.base, "klas", "Docent");
    options.simulcast = true;
    let publisher = SimulatedParticipant::join(options).await.unwrap();
    let mut options = SimOptions::new(&server.base, "klas", "Eerste");
    options.send_video = false;
    let first = SimulatedParticipant::join(options).await.unwrap();
    eventually(
        "the first receiver's video",
        Duration::from_secs(10),
        || first.observed().video_height.get(&publisher.id).copied(),
    )
    .await;
    // Long after the publisher's first keyframe, a newcomer.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut options = SimOptions::new(&server.base, "klas", "Nieuw");
    options.send_video = false;
    let joined_at = Instant::now();
    let newcomer = SimulatedParticipant::join(options).await.unwrap();
    let first_packet = eventually(
        "the newcomer to receive the publisher",
        Duration::from_secs(10),
        || newcomer.observed().first_packet.get(&publisher.id).copied(),
    )
    .await;
    let keyframe = eventually(
        "the newcomer to get a keyframe",
        Duration::from_secs(10),
        || {
            newcomer
                .observed()
                .first_keyframe
                .get(&publisher.id)
                .copied()
        },
    )
    .await;
    let after_subscribing = keyframe.saturating_duration_since(first_packet);
    eprintln!(
        "keyframe {after_subscribing:?} after the first packet, {:?} after joining",
        keyframe.saturating_duration_since(joined_at)
    );
    assert!(
        after_subscribing < Duration::from_secs(1),
        "{after_subscribing:?}"
    );
    publisher.leave().await;
    first.leave().await;
    newcomer.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmissions_repair_a_lossy_downlink() {
    let server = TestServer::start(&[]);
    server.create_room("klas").await;
    let mut options = SimOptions::new(&server.base, "klas", "Docent");
    // Video only: audio is not retransmitted (Opus has in-band FEC instead).
    options.send_audio = false;
    options.video_kbps = 500;
    let publisher = SimulatedParticipant::join(options).await.unwrap();
    let relay = ShapingRelay::start(media_addr(&server)).await;
    let mut options = SimOptions::new(&server.base, "klas", "Leerling");
    options.send_video = false;
    options.send_audio = false;
    options.media_relay = Some(relay.addr);
    let receiver = SimulatedParticipant::join(options).await.unwrap();
    eventually("video to flow", Duration::from_secs(10), || {
        (receiver.received_from(&publisher.id).video_packets > 50).then_some(())
    })
    .await;
    relay.shaping.loss_ppm.store(100_000, Ordering::Relaxed);
    let before = probes(&receiver);
    let before_rtp = {
        let o = receiver.observed();
        (o.rtp_expected, o.rtp_received, o.padding_packets)
    };
    tokio::time::sleep(Duration::from_secs(8)).await;
    // Stop losing, and give the last retransmissions a moment to arrive.
    relay.shaping.loss_ppm.store(0, Ordering::Relaxed);
    let dropped = relay.shaping.rtp_dropped_at_random.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let o = receiver.observed();
    let expected = o.probes_expected - before.0;
    let missing = expected - (o.probes_received - before.1).min(expected);
    let recovered = 1.0 - missing as f64 / dropped.max(1) as f64;
    // The same, counted as the load tool counts loss: by RTP sequence numbers, where a repair
    // fills the gap its loss left. Bandwidth probes (padding) share the numbers and are never
    // repaired: a tenth of them may be missing too.
    let rtp_expected = o.rtp_expected - before_rtp.0;
    let rtp_missing = rtp_expected - (o.rtp_received - before_rtp.1).min(rtp_expected);
    let padding = o.padding_packets - before_rtp.2;
    eprintln!(
        "{dropped} RTP datagrams dropped, {missing} of {expected} packets never arrived \
         ({rtp_missing} of {rtp_expected} by RTP sequence numbers): {:.1} % recovered",
        recovered * 100.0
    );
    assert!(
        rtp_missing <= missing + 2 + padding / 4,
        "by sequence numbers {rtp_missing} missing, by probes {missing} ({padding} padding packets)"
    );
    assert!(
        dropped > 30,
        "the relay dropped too little to judge: {dropped}"
    );
    assert!(
        recovered >= 0.9,
        "only {:.1} % recovered",
        recovered * 100.0
    );
    publisher.leave().await;
    receiver.leave().await;
}

/// The publishers whose video reached `receiver` during the next `window`.
async fn videos_during(
    receiver: &SimulatedParticipant,
    publishers: &[&SimulatedParticipant],
    window: Duration,
) -> Vec<String> {
    let before: Vec<u64> = publishers
        .iter()
        .map(|p| receiver.received_from(&p.id).video_packets)
        .collect();
    tokio::time::sleep(window).await;
    publishers
        .iter()
        .zip(before)
        .filter(|(p, packets)| receiver.received_from(&p.id).video_packets > *packets)
        .map(|(p, _)| p.id.clone())
        .collect()
}

/// Five participants with video, `media.last_n` = 2: every receiver gets two videos, and as
/// the floor moves, the speaker's is always one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_last_n_two_in_a_room_of_five_everyone_gets_two_videos_and_the_speaker_among_them() {
    let server = TestServer::start(&[("ZAAL__MEDIA__LAST_N", "2")]);
    server.create_room("klas").await;
    let mut everyone = Vec::new();
    for name in ["Anna", "Bram", "Cato", "Dirk", "Eva"] {
        let mut options = SimOptions::new(&server.base, "klas", name);
        options.video_kbps = 200;
        everyone.push(SimulatedParticipant::join(options).await.unwrap());
    }
    let all: Vec<&SimulatedParticipant> = everyone.iter().collect();
    for speaker in [&everyone[3], &everyone[1]] {
        for p in &everyone {
            p.set_voice_level(if p.id == speaker.id { TALKING } else { SILENT });
        }
        everyone_sees(&all, &speaker.id).await;
        for receiver in all.iter().filter(|p| p.id != speaker.id) {
            let others: Vec<&SimulatedParticipant> = all
                .iter()
                .copied()
                .filter(|p| p.id != receiver.id)
                .collect();
            let since = Instant::now();
            loop {
                let got = videos_during(receiver, &others, Duration::from_millis(500)).await;
                if got.len() == 2 && got.contains(&speaker.id) {
                    break;
                }
                assert!(
                    since.elapsed() < Duration::from_secs(10),
                    "{} never got two videos with the speaker's: {got:?}",
                    receiver.id
                );
            }
        }
        // Over the next two seconds, nobody gets more than two videos, and everyone but the
        // speaker gets the speaker's.
        let windows = all.iter().map(|receiver| {
            let others: Vec<&SimulatedParticipant> = all
                .iter()
                .copied()
                .filter(|p| p.id != receiver.id)
                .collect();
            async move { videos_during(receiver, &others, Duration::from_secs(2)).await }
        });
        let got = futures_util::future::join_all(windows).await;
        for (receiver, got) in all.iter().zip(got) {
            assert_eq!(got.len(), 2, "{} got {} videos", receiver.id, got.len());
            if receiver.id != speaker.id {
                assert!(
                    got.contains(&speaker.id),
                    "{} lost the speaker's video",
                    receiver.id
                );
            }
        }
    }
    for p in everyone {
        p.leave().await;
    }
}

/// The `maxHeight` of the last `send-video` a participant was told: `None` if never told,
/// `Some(None)` for every layer.
fn told_max_height(p: &SimulatedParticipant) -> Option<Option<u64>> {
    p.observed()
        .messages
        .iter()
        .rev()
        .find(|m| m["type"] == "send-video")
        .map(|m| m["maxHeight"].as_u64())
}

/// With `media.last_n` = 1 in a room of three, one camera is received by nobody: its publisher is
/// told to pause it, and to send again once it is wanted. A publisher whose receivers show it
/// small is told how small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cameras_nobody_receives_are_paused_at_the_publisher() {
    let server = TestServer::start(&[("ZAAL__MEDIA__LAST_N", "1")]);
    server.create_room("klas").await;
    let mut everyone = Vec::new();
    for name in ["Anna", "Bram", "Cato"] {
        let mut options = SimOptions::new(&server.base, "klas", name);
        options.simulcast = true;
        options.video_kbps = 400;
        everyone.push(SimulatedParticipant::join(options).await.unwrap());
    }
    let [anna, bram, cato] = [&everyone[0], &everyone[1], &everyone[2]];
    anna.set_voice_level(TALKING);
    everyone_sees(&[anna, bram, cato], &anna.id).await;

    // Bram and Cato get Anna's camera; Anna gets one of theirs; the other is nobody's. The server
    // counts one camera paused once it has told its publisher so.
    eventually_async("one camera to be paused", || async {
        (server.metric("zaal_cameras_paused").await == 1).then_some(())
    })
    .await;
    let idle = [bram, cato]
        .into_iter()
        .find(|p| told_max_height(p) == Some(Some(0)))
        .expect("the paused camera's publisher was told");
    let watched = if idle.id == bram.id { cato } else { bram };
    assert_ne!(told_max_height(watched), Some(Some(0)));
    assert_ne!(told_max_height(anna), Some(Some(0)));
    media_flows(anna, &watched.id).await;
    // The operator sees it, without knowing whose: one camera paused (above), three streams
    // forwarded.
    let forwarded = [
        r#"zaal_video_streams_forwarded{layer="lowest"}"#,
        r#"zaal_video_streams_forwarded{layer="middle"}"#,
        r#"zaal_video_streams_forwarded{layer="highest"}"#,
    ];
    eventually_async("three video streams forwarded", || async {
        let mut sum = 0;
        for series in forwarded {
            sum += server.metric(series).await;
        }
        (sum == 3).then_some(())
    })
    .await;
    let text = server.metrics().await;
    for p in [anna, bram, cato] {
        assert!(!text.contains(&p.id), "the figures name a participant");
    }

    // Both show Anna in tiles 150 lines tall: she is told to send no layer above the first that
    // tall (180 lines), and they go from her top layer to that one.
    for receiver in [bram, cato] {
        layer_becomes(receiver, &anna.id, 720, Duration::from_secs(15)).await;
    }
    for receiver in [bram, cato] {
        receiver.send_raw(Message::text(
            json!({"type": "receive-video", "heights": {anna.id.clone(): 150}}).to_string(),
        ));
    }
    anna.wait_for("Anna to be told 150 lines", Duration::from_secs(10), |o| {
        o.messages
            .iter()
            .any(|m| m["type"] == "send-video" && m["maxHeight"] == 150)
    })
    .await
    .unwrap();
    for receiver in [bram, cato] {
        layer_becomes(receiver, &anna.id, 180, Duration::from_secs(5)).await;
    }
    eventually_async("Anna's two receivers on her lowest layer", || async {
        (server.metric(forwarded[0]).await >= 2).then_some(())
    })
    .await;

    // The paused one speaks: it is told to send again, and the others get its camera.
    anna.set_voice_level(SILENT);
    idle.set_voice_level(TALKING);
    everyone_sees(&[anna, bram, cato], &idle.id).await;
    eventually(
        "the paused camera to be wanted again",
        Duration::from_secs(5),
        || matches!(told_max_height(idle), Some(None) | Some(Some(1..))).then_some(()),
    )
    .await;
    for receiver in [anna, watched] {
        media_flows(receiver, &idle.id).await;
    }
    for p in everyone {
        p.leave().await;
    }
}

/// With `media.last_n` = 1, a shared screen takes the one place before its owner's camera; once
/// the sharing stops, the camera gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_no_longer_shared_gives_its_place_to_the_camera() {
    let server = TestServer::start(&[("ZAAL__MEDIA__LAST_N", "1")]);
    server.create_room("klas").await;
    let mut options = SimOptions::new(&server.base, "klas", "Anna");
    options.send_screen = true;
    let anna = SimulatedParticipant::join(options).await.unwrap();
    let bram = join(&server, "Bram").await;
    let screen = format!("{}~screen", anna.id);
    let videos = || {
        (
            bram.received_from(&screen).video_packets,
            bram.received_from(&anna.id).video_packets,
        )
    };
    eventually("Bram to get Anna's screen", Duration::from_secs(15), || {
        (videos().0 > 10).then_some(())
    })
    .await;
    // The camera may come first, until the screen's first packets; then the screen has the place.
    let since = Instant::now();
    loop {
        let (screen_before, camera_before) = videos();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (screen_after, camera_after) = videos();
        if screen_after > screen_before && camera_after == camera_before {
            break;
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "the screen never had the place to itself"
        );
    }

    anna.stop_screen();
    let before = videos().1;
    eventually("Bram to get Anna's camera", Duration::from_secs(10), || {
        (videos().1 > before + 20).then_some(())
    })
    .await;
    anna.leave().await;
    bram.leave().await;
}
