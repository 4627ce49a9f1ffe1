//! The protocol's rules, one message at a time.

use super::*;
use crate::focus::{Action, MediaKind};
use crate::ids::ParticipantId;
use crate::sfu::ClientSignal;

fn code(text: &str) -> ErrorCode {
    parse(text).unwrap_err().code
}

#[test]
fn a_valid_join() {
    let m = parse(
        r#"{"type":"join","version":1,"room":"Maths-3B","name":"  Anna de Vries ","videoMuted":true}"#,
    )
    .unwrap();
    match m {
        Inbound::Join(j) => {
            assert_eq!(j.room.as_str(), "maths-3b");
            assert_eq!(j.name.as_str(), "Anna de Vries");
            assert!(!j.audio_muted);
            assert!(j.video_muted);
            assert_eq!(j.jwt, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_messages_are_named() {
    assert_eq!(code("not json"), ErrorCode::BadMessage);
    assert_eq!(code("[]"), ErrorCode::BadMessage);
    assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::BadMessage);
    assert_eq!(code(r#"{"sdp":"v=0"}"#), ErrorCode::BadMessage);
    assert_eq!(
        code(r#"{"type":"offer","sdp":"v=0","extra":1}"#),
        ErrorCode::BadMessage,
        "unknown fields are errors"
    );
    assert_eq!(code(r#"{"type":"offer","sdp":5}"#), ErrorCode::BadMessage);
    assert_eq!(
        code(r#"{"type":"offer","sdp":"hello"}"#),
        ErrorCode::BadMessage
    );
    assert_eq!(
        code(r#"{"type":"mute","audioMuted":"yes","videoMuted":false}"#),
        ErrorCode::BadMessage
    );
}

#[test]
fn joins_are_checked() {
    assert_eq!(
        code(r#"{"type":"join","version":2,"room":"a","name":"x"}"#),
        ErrorCode::UnsupportedVersion
    );
    assert_eq!(
        code(r#"{"type":"join","version":1,"room":"../etc","name":"x"}"#),
        ErrorCode::InvalidRoom
    );
    assert_eq!(
        code(r#"{"type":"join","version":1,"room":"a","name":"   "}"#),
        ErrorCode::InvalidName
    );
    assert_eq!(
        code(r#"{"type":"join","version":1,"room":"a","name":"a\u0007b"}"#),
        ErrorCode::InvalidName
    );
    let long = "é".repeat(65);
    assert_eq!(
        code(&format!(
            r#"{{"type":"join","version":1,"room":"a","name":"{long}"}}"#
        )),
        ErrorCode::InvalidName
    );
    let ok = "é".repeat(64);
    assert!(
        parse(&format!(
            r#"{{"type":"join","version":1,"room":"a","name":"{ok}"}}"#
        ))
        .is_ok()
    );
}

#[test]
fn sizes_are_bounded() {
    let big = format!(
        r#"{{"type":"offer","sdp":"v=0{}"}}"#,
        "x".repeat(MAX_MESSAGE_BYTES)
    );
    assert_eq!(code(&big), ErrorCode::TooLarge);
    let big_sdp = format!(
        r#"{{"type":"offer","sdp":"v=0{}"}}"#,
        "x".repeat(MAX_SDP_BYTES)
    );
    assert_eq!(code(&big_sdp), ErrorCode::TooLarge);
    let big_candidate = format!(
        r#"{{"type":"candidate","candidate":"{}"}}"#,
        "x".repeat(MAX_CANDIDATE_BYTES + 1)
    );
    assert_eq!(code(&big_candidate), ErrorCode::BadMessage);
}

#[test]
fn browser_candidates_are_accepted() {
    let m = parse(
        r#"{"type":"candidate","candidate":"candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}"#,
    )
    .unwrap();
    assert!(
        matches!(m, Inbound::Signal(ClientSignal::Candidate(c)) if c.sdp_mline_index == Some(0))
    );
    assert!(matches!(
        parse(r#"{"type":"candidate","candidate":""}"#).unwrap(),
        Inbound::Signal(ClientSignal::Candidate(c)) if c.candidate.is_empty()
    ));
}

#[test]
fn server_messages_have_the_documented_shape() {
    let m = Outbound::Mute {
        id: "p1".into(),
        audio_muted: true,
        video_muted: false,
    };
    assert_eq!(
        m.to_json(),
        r#"{"type":"mute","id":"p1","audioMuted":true,"videoMuted":false}"#
    );
    let left = Outbound::ParticipantLeft { id: "p1".into() };
    assert_eq!(left.to_json(), r#"{"type":"participant-left","id":"p1"}"#);
    let e = Outbound::error(&ProtocolError::new(ErrorCode::RoomNotFound, "no"));
    assert_eq!(
        e.to_json(),
        r#"{"type":"error","code":"room-not-found","message":"no"}"#
    );
    let pause = Outbound::SendVideo {
        max_height: Some(0),
    };
    assert_eq!(pause.to_json(), r#"{"type":"send-video","maxHeight":0}"#);
    let all = Outbound::SendVideo { max_height: None };
    assert_eq!(all.to_json(), r#"{"type":"send-video","maxHeight":null}"#);
}

#[test]
fn moderation_messages_are_validated() {
    let id = ParticipantId::random();
    let m = parse(&format!(
        r#"{{"type":"mute-participant","id":"{id}","kind":"audio"}}"#
    ))
    .unwrap();
    assert_eq!(
        m,
        Inbound::Act(Action::MuteParticipant {
            target: id.clone(),
            kind: MediaKind::Audio
        })
    );
    assert_eq!(
        code(r#"{"type":"mute-participant","id":"x","kind":"smell"}"#),
        ErrorCode::BadMessage
    );
    assert!(matches!(
        parse(r#"{"type":"set-password","password":null}"#).unwrap(),
        Inbound::Act(Action::SetPassword(None))
    ));
    assert_eq!(
        code(r#"{"type":"set-password","password":""}"#),
        ErrorCode::BadMessage
    );
    assert!(matches!(
        parse(r#"{"type":"remove","id":"nobody"}"#).unwrap(),
        Inbound::Act(Action::Remove { bar: false, .. })
    ));
    assert!(matches!(
        parse(r#"{"type":"end-conference"}"#).unwrap(),
        Inbound::Act(Action::EndConference)
    ));
    assert_eq!(
        code(r#"{"type":"join","version":1,"room":"a","name":"x","rejoinKey":"short"}"#),
        ErrorCode::BadMessage
    );
    let with_everything = parse(
        r#"{"type":"join","version":1,"room":"a","name":"x","jwt":"e.y.z","password":"pw","rejoinKey":"abcdefghijklmnop"}"#,
    )
    .unwrap();
    let Inbound::Join(j) = with_everything else {
        panic!()
    };
    assert_eq!(j.password.as_ref().map(|p| p.expose()), Some("pw"));
    assert_eq!(format!("{:?}", j.password), "Some(<secret>)");
    assert_eq!(j.rejoin_key.as_deref(), Some("abcdefghijklmnop"));
}

#[test]
fn chat_is_bounded_and_addressed() {
    let to = ParticipantId::random();
    assert_eq!(
        parse(&format!(
            r#"{{"type":"chat","text":"  hoi  ","to":"{to}"}}"#
        ))
        .unwrap(),
        Inbound::Act(Action::Chat {
            text: "hoi".into(),
            to: Some(to)
        })
    );
    assert_eq!(
        code(r#"{"type":"chat","text":"   "}"#),
        ErrorCode::BadMessage
    );
    let long = "x".repeat(MAX_CHAT_CHARS + 1);
    assert_eq!(
        code(&format!(r#"{{"type":"chat","text":"{long}"}}"#)),
        ErrorCode::BadMessage
    );
    assert!(matches!(
        parse(r#"{"type":"restart-media"}"#).unwrap(),
        Inbound::Act(Action::RestartMedia)
    ));
}

#[test]
fn arbitrary_input_never_panics() {
    let samples = [
        "",
        "{",
        "null",
        "1",
        "\"x\"",
        "{\"type\":null}",
        "{\"type\":\"join\"}",
        "{\"type\":\"join\",\"version\":-1}",
        "{\"type\":\"leave\",\"x\":[]}",
        "{\"type\":\"candidate\",\"candidate\":\"a\\r\\nb\"}",
    ];
    for s in samples {
        let _ = parse(s);
    }
}
