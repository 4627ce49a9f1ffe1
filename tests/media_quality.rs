//! Media quality in a full room, through the real server: who the dominant speaker is.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, eventually};
use zaal::simulated::{SimOptions, SimulatedParticipant};

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
