//! Hosts and moderation, enforced by the server: tested by sending the raw protocol messages a
//! client (honest or not) could send.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{TestServer, eventually, media_flows};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use zaal_sim::{Observed, SimOptions, SimulatedParticipant};

const SECRET: &str = "a-shared-secret-between-zaal-and-the-rooster";

fn moderated_server() -> TestServer {
    TestServer::start(&[
        ("ZAAL__FOCUS__WAIT_FOR_HOST", "true"),
        ("ZAAL__AUTH__JWT_SECRET", SECRET),
    ])
}

async fn host(server: &TestServer, room: &str) -> SimulatedParticipant {
    let mut options = SimOptions::new(&server.base, room, "Juf Anna");
    options.session_cookie = Some(server.login().await);
    let host = SimulatedParticipant::join(options).await.unwrap();
    assert_eq!(host.observed().role, "moderator");
    host
}

async fn guest(server: &TestServer, room: &str, name: &str) -> SimulatedParticipant {
    SimulatedParticipant::join(SimOptions::new(&server.base, room, name))
        .await
        .unwrap()
}

fn send(p: &SimulatedParticipant, message: Value) {
    p.send_raw(Message::text(message.to_string()));
}

fn messages_of(o: &Observed, kind: &str) -> Vec<Value> {
    o.messages
        .iter()
        .filter(|m| m["type"] == kind)
        .cloned()
        .collect()
}

fn has_error(o: &Observed, code: &str) -> bool {
    o.errors.iter().any(|(c, _)| c == code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_can_perform_no_moderator_action() {
    let server = moderated_server();
    server.create_room("klas").await;
    let teacher = host(&server, "klas").await;
    let pupil = guest(&server, "klas", "Pupil").await;
    let other = guest(&server, "klas", "Other").await;
    media_flows(&other, &pupil.id).await;
    let target = other.id.clone();
    let actions = [
        json!({"type": "mute-participant", "id": target, "kind": "audio"}),
        json!({"type": "allow-unmute", "id": target, "kind": "video"}),
        json!({"type": "lock-unmute", "kind": "audio", "locked": true}),
        json!({"type": "remove", "id": teacher.id, "bar": true}),
        json!({"type": "promote", "id": pupil.id}),
        json!({"type": "lock-room", "locked": true}),
        json!({"type": "set-password", "password": "mine"}),
        json!({"type": "set-lobby", "enabled": true}),
        json!({"type": "admit", "id": target}),
        json!({"type": "deny", "id": target}),
        json!({"type": "end-conference"}),
    ];
    for action in &actions {
        send(&pupil, action.clone());
    }
    let o = pupil
        .wait_for("a refusal for every action", Duration::from_secs(10), |o| {
            o.errors.iter().filter(|(c, _)| c == "not-allowed").count() == actions.len()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", pupil.observed().errors));
    assert!(o.ended.is_none());
    // Nothing happened: everyone is still in, nobody got new powers, the room is as it was.
    for p in [&teacher, &other] {
        let o = p.observed();
        assert!(o.left.is_empty(), "{:?}", o.left);
        assert!(messages_of(&o, "room-state").is_empty());
        assert!(messages_of(&o, "role").is_empty());
        assert!(messages_of(&o, "permissions").is_empty());
    }
    media_flows(&teacher, &other.id).await;
    // The refusals are in the focus stream, with identifiers and without names.
    let focus = std::fs::read_dir(server.logs_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("focus."))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    eventually(
        "the refusals in the focus stream",
        Duration::from_secs(5),
        || {
            let focus = std::fs::read_dir(server.logs_dir())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("focus."))
                .map(|e| std::fs::read_to_string(e.path()).unwrap())
                .collect::<String>();
            (focus.matches("action-refused").count() >= actions.len()).then_some(())
        },
    )
    .await;
    assert!(!focus.contains("Pupil"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_mute_stops_the_audio_within_a_second_and_holds_until_allowed() {
    let server = moderated_server();
    server.create_room("klas").await;
    let teacher = host(&server, "klas").await;
    // This pupil's client ignores mutes and keeps sending audio: the server must stop it.
    let pupil = guest(&server, "klas", "Pupil").await;
    media_flows(&teacher, &pupil.id).await;

    let muted_at = Instant::now();
    send(
        &teacher,
        json!({"type": "mute-participant", "id": pupil.id, "kind": "audio"}),
    );
    // Watch the teacher's count of the pupil's audio for two seconds.
    let mut last = teacher.received_from(&pupil.id).audio_packets;
    let mut last_increase = muted_at;
    while muted_at.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = teacher.received_from(&pupil.id).audio_packets;
        if now != last {
            last = now;
            last_increase = Instant::now();
        }
    }
    let stopped_after = last_increase.duration_since(muted_at);
    assert!(
        stopped_after < Duration::from_secs(1),
        "audio stopped after {stopped_after:?}"
    );
    media_flows_video_only(&teacher, &pupil.id).await;
    let o = pupil.observed();
    assert!(
        messages_of(&o, "permissions")
            .iter()
            .any(|m| m["audio"] == false)
    );
    assert!(
        messages_of(&teacher.observed(), "mute")
            .iter()
            .any(|m| m["id"] == pupil.id && m["audioMuted"] == true)
    );

    // Unmuting is refused; asking to speak reaches the teacher; once allowed, audio returns.
    send(
        &pupil,
        json!({"type": "mute", "audioMuted": false, "videoMuted": false}),
    );
    pupil
        .wait_for("the refusal", Duration::from_secs(5), |o| {
            has_error(o, "not-allowed")
        })
        .await
        .unwrap();
    send(&pupil, json!({"type": "request-unmute", "kind": "audio"}));
    teacher
        .wait_for("the request", Duration::from_secs(5), |o| {
            messages_of(o, "unmute-request")
                .iter()
                .any(|m| m["id"] == pupil.id)
        })
        .await
        .unwrap();
    send(
        &teacher,
        json!({"type": "allow-unmute", "id": pupil.id, "kind": "audio"}),
    );
    pupil
        .wait_for("the permission", Duration::from_secs(5), |o| {
            messages_of(o, "permissions")
                .last()
                .is_some_and(|m| m["audio"] == true)
        })
        .await
        .unwrap();
    send(
        &pupil,
        json!({"type": "mute", "audioMuted": false, "videoMuted": false}),
    );
    media_flows(&teacher, &pupil.id).await;
}

async fn media_flows_video_only(receiver: &SimulatedParticipant, publisher: &str) {
    let before = receiver.received_from(publisher);
    eventually("video to keep flowing", Duration::from_secs(5), || {
        (receiver.received_from(publisher).video_packets > before.video_packets + 20).then_some(())
    })
    .await;
    assert_eq!(
        receiver.received_from(publisher).audio_packets,
        before.audio_packets
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locking_unmute_mutes_everyone_but_moderators() {
    let server = moderated_server();
    server.create_room("klas").await;
    let teacher = host(&server, "klas").await;
    let pupil = guest(&server, "klas", "Pupil").await;
    media_flows(&pupil, &teacher.id).await;
    media_flows(&teacher, &pupil.id).await;
    send(
        &teacher,
        json!({"type": "lock-unmute", "kind": "audio", "locked": true}),
    );
    pupil
        .wait_for("the lock", Duration::from_secs(5), |o| {
            messages_of(o, "room-state")
                .iter()
                .any(|m| m["unmuteLocked"]["audio"] == true)
        })
        .await
        .unwrap();
    media_flows_video_only(&teacher, &pupil.id).await;
    // The teacher still speaks.
    media_flows(&pupil, &teacher.id).await;
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn claims(room: &str, changes: Value) -> Value {
    let now = unix_now();
    let mut claims = json!({
        "iss": "zaal", "aud": "zaal", "sub": "rooster.example.nl", "room": room,
        "exp": now + 3600, "nbf": now - 5,
        "context": {"user": {"name": "Meester Bas", "moderator": true}},
    });
    for (k, v) in changes.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

async fn join_with_token(
    server: &TestServer,
    room: &str,
    token: &str,
) -> Result<SimulatedParticipant, String> {
    let mut options = SimOptions::new(&server.base, room, "Whoever");
    options.jwt = Some(token.to_string());
    SimulatedParticipant::join(options)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_links_are_checked_claim_by_claim() {
    let server = moderated_server();
    // `zaal token` mints a moderator link that opens a room no host created.
    let (ok, out, err) = server.command(
        &[
            "token",
            "--user",
            "Meester Bas",
            "--room",
            "rooster-7",
            "--moderator",
            "--ttl",
            "1h",
        ],
        &[],
    );
    assert!(ok, "{err}");
    let token = out.lines().next().unwrap().to_string();
    assert!(out.contains(&format!("/rooster-7#jwt={token}")));
    let teacher = join_with_token(&server, "rooster-7", &token).await.unwrap();
    assert_eq!(teacher.observed().role, "moderator");
    let pupil = guest(&server, "rooster-7", "Pupil").await;
    let o = pupil.observed();
    assert_eq!(
        o.participants.values().next().map(String::as_str),
        Some("Meester Bas")
    );
    // The same token never opens another room.
    let now = unix_now();
    let cases = [
        (token.clone(), "token-wrong-room"),
        (
            sign(claims("other-room", json!({"exp": now - 60})), SECRET),
            "token-expired",
        ),
        (
            sign(claims("other-room", json!({"nbf": now + 600})), SECRET),
            "token-not-yet-valid",
        ),
        (
            sign(
                claims("other-room", json!({})),
                "not-the-secret-of-this-server-at-all",
            ),
            "token-bad-signature",
        ),
        (
            sign(claims("other-room", json!({"aud": "jitsi"})), SECRET),
            "token-wrong-audience",
        ),
        (
            sign(claims("other-room", json!({"iss": "elsewhere"})), SECRET),
            "token-wrong-issuer",
        ),
        ("garbage".to_string(), "token-malformed"),
    ];
    for (token, code) in cases {
        let result = join_with_token(&server, "other-room", &token).await;
        let Err(error) = result else {
            panic!("{code}: the token was accepted")
        };
        assert!(error.contains(code), "{code}: {error}");
    }
    // The wrong-room token did not create that room either.
    let r = reqwest::get(server.url("/api/rooms/other-room"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A moderator token is accepted as a bearer on the API, for its own room only.
    let client = reqwest::Client::new();
    let bearer = sign(claims("api-room", json!({})), SECRET);
    let created = client
        .post(server.url("/api/rooms"))
        .bearer_auth(&bearer)
        .json(&json!({"name": "api-room"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let elsewhere = client
        .post(server.url("/api/rooms"))
        .bearer_auth(&bearer)
        .json(&json!({"name": "not-mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 403);
    let guest_token = sign(
        claims(
            "api-room",
            json!({"context": {"user": {"name": "Pupil", "moderator": false}}}),
        ),
        SECRET,
    );
    let refused = client
        .post(server.url("/api/rooms"))
        .bearer_auth(&guest_token)
        .json(&json!({"name": "api-room"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_wait_for_the_host_and_the_lobby_admits_or_denies() {
    let server = moderated_server();
    server.create_room("klas").await;
    let early = guest(&server, "klas", "Early").await;
    assert_eq!(early.observed().waiting.as_deref(), Some("host"));
    let teacher = host(&server, "klas").await;
    let o = early
        .wait_for("admission", Duration::from_secs(5), |o| !o.you.is_empty())
        .await
        .unwrap();
    assert_eq!(o.role, "participant");
    media_flows(&teacher, &o.you).await;
    media_flows(&early, &teacher.id).await;

    send(&teacher, json!({"type": "set-lobby", "enabled": true}));
    teacher
        .wait_for("the lobby", Duration::from_secs(5), |o| {
            messages_of(o, "room-state")
                .iter()
                .any(|m| m["lobby"] == true)
        })
        .await
        .unwrap();
    let knocker = guest(&server, "klas", "Knocker").await;
    assert_eq!(knocker.observed().waiting.as_deref(), Some("lobby"));
    let request = teacher
        .wait_for("the knock", Duration::from_secs(5), |o| {
            messages_of(o, "lobby-request")
                .iter()
                .any(|m| m["name"] == "Knocker")
        })
        .await
        .unwrap();
    let knock_id = messages_of(&request, "lobby-request")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        messages_of(&early.observed(), "lobby-request").is_empty(),
        "moderators only"
    );
    send(&teacher, json!({"type": "admit", "id": knock_id}));
    let o = knocker
        .wait_for("admission", Duration::from_secs(5), |o| !o.you.is_empty())
        .await
        .unwrap();
    assert_eq!(o.you, knock_id);
    media_flows(&knocker, &teacher.id).await;

    let stranger = guest(&server, "klas", "Stranger").await;
    let request = teacher
        .wait_for("the second knock", Duration::from_secs(5), |o| {
            messages_of(o, "lobby-request")
                .iter()
                .any(|m| m["name"] == "Stranger")
        })
        .await
        .unwrap();
    let stranger_id = messages_of(&request, "lobby-request")
        .into_iter()
        .find(|m| m["name"] == "Stranger")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    send(&teacher, json!({"type": "deny", "id": stranger_id}));
    let o = stranger
        .wait_for("the denial", Duration::from_secs(5), |o| {
            has_error(o, "denied")
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", stranger.observed().errors));
    assert!(o.received.is_empty(), "a denied guest never receives media");
    assert!(o.you.is_empty());

    // A locked room, then a password.
    send(&teacher, json!({"type": "set-lobby", "enabled": false}));
    send(&teacher, json!({"type": "lock-room", "locked": true}));
    teacher
        .wait_for("the lock", Duration::from_secs(5), |o| {
            messages_of(o, "room-state")
                .last()
                .is_some_and(|m| m["locked"] == true)
        })
        .await
        .unwrap();
    let locked = SimulatedParticipant::join(SimOptions::new(&server.base, "klas", "Late")).await;
    assert!(locked.err().unwrap().to_string().contains("room-locked"));
    send(&teacher, json!({"type": "lock-room", "locked": false}));
    send(
        &teacher,
        json!({"type": "set-password", "password": "geheim"}),
    );
    teacher
        .wait_for("the password", Duration::from_secs(5), |o| {
            messages_of(o, "room-state")
                .last()
                .is_some_and(|m| m["passwordSet"] == true && m["locked"] == false)
        })
        .await
        .unwrap();
    let without = SimulatedParticipant::join(SimOptions::new(&server.base, "klas", "Late")).await;
    assert!(
        without
            .err()
            .unwrap()
            .to_string()
            .contains("password-required")
    );
    let mut wrong = SimOptions::new(&server.base, "klas", "Late");
    wrong.password = Some("gehiem".into());
    let wrong = SimulatedParticipant::join(wrong).await;
    assert!(wrong.err().unwrap().to_string().contains("password-wrong"));
    let mut right = SimOptions::new(&server.base, "klas", "Late");
    right.password = Some("geheim".into());
    // The wrong guess slowed this address down for a moment (auth.login_delay).
    let started = Instant::now();
    let late = loop {
        match SimulatedParticipant::join(right.clone()).await {
            Ok(late) => break late,
            Err(e) => {
                assert!(e.to_string().contains("too-many-attempts"), "{e}");
                assert!(started.elapsed() < Duration::from_secs(10));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert!(!late.id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_participant_is_cut_off_and_a_barred_one_stays_out() {
    let server = moderated_server();
    server.create_room("klas").await;
    let teacher = host(&server, "klas").await;
    let mut options = SimOptions::new(&server.base, "klas", "Troublemaker");
    options.rejoin_key = Some("browser-key-0123456789".into());
    let pupil = SimulatedParticipant::join(options.clone()).await.unwrap();
    media_flows(&teacher, &pupil.id).await;
    let removed_at = Instant::now();
    send(
        &teacher,
        json!({"type": "remove", "id": pupil.id, "bar": true}),
    );
    pupil
        .wait_for("the removal", Duration::from_secs(5), |o| {
            has_error(o, "removed")
        })
        .await
        .unwrap();
    let mut last = teacher.received_from(&pupil.id);
    let mut last_increase = removed_at;
    while removed_at.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = teacher.received_from(&pupil.id);
        if now != last {
            last = now;
            last_increase = Instant::now();
        }
    }
    assert!(last_increase.duration_since(removed_at) < Duration::from_secs(1));
    teacher
        .wait_for("the departure", Duration::from_secs(5), |o| {
            o.left.contains(&pupil.id)
        })
        .await
        .unwrap();
    // The same browser, under another name, cannot come back.
    options.name = "Innocent".into();
    let again = SimulatedParticipant::join(options).await;
    assert!(again.err().unwrap().to_string().contains("barred"));
    // Others can.
    let other = guest(&server, "klas", "Other").await;
    assert!(!other.id.is_empty());
    // Removed without a bar, a participant may rejoin.
    send(
        &teacher,
        json!({"type": "remove", "id": other.id, "bar": false}),
    );
    other
        .wait_for("the removal", Duration::from_secs(10), |o| {
            has_error(o, "removed")
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}: other {:?} {:?} {:?} / teacher errors {:?} ended {:?} left {:?} other id {}",
                other.observed().errors,
                other.observed().ended,
                other.observed().messages,
                teacher.observed().errors,
                teacher.observed().ended,
                teacher.observed().left,
                other.id
            )
        });
    let back = guest(&server, "klas", "Other").await;
    assert!(!back.id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_the_meeting_disconnects_everyone_and_retires_the_conference() {
    let server = moderated_server();
    server.create_room("klas").await;
    let teacher = host(&server, "klas").await;
    let pupils = [
        guest(&server, "klas", "A").await,
        guest(&server, "klas", "B").await,
    ];
    let conference = teacher.conference.clone();
    send(&teacher, json!({"type": "end-conference"}));
    for p in pupils.iter().chain([&teacher]) {
        p.wait_for("the end", Duration::from_secs(5), |o| {
            has_error(o, "conference-ended") && o.ended.is_some()
        })
        .await
        .unwrap();
    }
    let health: Value = reqwest::get(server.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["conferences"], 0);
    assert_eq!(health["participants"], 0);
    let again = host(&server, "klas").await;
    assert_ne!(
        again.conference, conference,
        "a new conference, a new identifier"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hands_promotion_and_the_hosts_room_list() {
    let server = moderated_server();
    server.create_room("klas").await;
    let teacher = host(&server, "klas").await;
    let a = guest(&server, "klas", "A").await;
    let b = guest(&server, "klas", "B").await;
    send(&b, json!({"type": "hand", "raised": true}));
    teacher
        .wait_for("B's hand", Duration::from_secs(5), |o| {
            messages_of(o, "hand").len() == 1
        })
        .await
        .unwrap();
    send(&a, json!({"type": "hand", "raised": true}));
    let o = teacher
        .wait_for("two hands", Duration::from_secs(5), |o| {
            messages_of(o, "hand").len() == 2
        })
        .await
        .unwrap();
    let hands = messages_of(&o, "hand");
    assert_eq!(hands[0]["id"], b.id);
    assert!(
        hands[0]["order"].as_u64() < hands[1]["order"].as_u64(),
        "{hands:?}"
    );
    send(&teacher, json!({"type": "promote", "id": a.id}));
    a.wait_for("the promotion", Duration::from_secs(5), |o| {
        o.role == "moderator"
    })
    .await
    .unwrap();
    send(&a, json!({"type": "lock-room", "locked": true}));
    b.wait_for(
        "the lock by the new moderator",
        Duration::from_secs(5),
        |o| {
            messages_of(o, "room-state")
                .iter()
                .any(|m| m["locked"] == true)
        },
    )
    .await
    .unwrap();
    assert!(!has_error(&a.observed(), "not-allowed"));

    // The host's rooms, with the running conference, and ending it from the start page.
    let cookie = server.login().await;
    let client = reqwest::Client::new();
    let list: Value = client
        .get(server.url("/api/rooms"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["rooms"][0]["room"], "klas");
    assert_eq!(list["rooms"][0]["running"], true);
    assert_eq!(list["rooms"][0]["participants"], 3);
    let end = client
        .post(server.url("/api/rooms/klas/end"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(end.status(), 204);
    b.wait_for("the end", Duration::from_secs(5), |o| {
        has_error(o, "conference-ended")
    })
    .await
    .unwrap();
    let deleted = client
        .delete(server.url("/api/rooms/klas"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        reqwest::get(server.url("/api/rooms/klas"))
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        client
            .get(server.url("/api/rooms"))
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "guests have no room list"
    );
}
