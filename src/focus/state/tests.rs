//! Every rule of the state machine, without a socket or a clock.

use super::*;
use crate::focus::events::{Joined, MediaKind, ParticipantInfo, Permissions};
use crate::privacy::pii::{DisplayName, Secret};

fn request(room: &str, name: &str) -> JoinRequest {
    JoinRequest {
        room: RoomName::parse(room).unwrap(),
        name: DisplayName::new(name.into()),
        audio_muted: false,
        video_muted: false,
        moderator: false,
        password: None,
        rejoin_key: None,
        resume: None,
        token_identity: None,
    }
}

fn host(room: &str, name: &str) -> JoinRequest {
    JoinRequest {
        moderator: true,
        ..request(room, name)
    }
}

/// An open conference: guests do not wait for a host.
fn open() -> Conferences {
    Conferences::new(Duration::from_secs(30), 10, false, Duration::ZERO)
}

fn joined(result: (Result<JoinOutcome, JoinError>, Vec<Effect>)) -> (Joined, Vec<Effect>) {
    match result {
        (Ok(JoinOutcome::Joined(j)), e) => (*j, e),
        (other, _) => panic!("expected joined, got {other:?}"),
    }
}

fn notified(effects: &[Effect], to: &ParticipantId) -> Vec<ParticipantEvent> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify(p, ev) if p == to => Some(ev.clone()),
            _ => None,
        })
        .collect()
}

fn plan_of(effects: &[Effect], who: &ParticipantId) -> Option<Vec<ParticipantId>> {
    effects.iter().rev().find_map(|e| match e {
        Effect::Plan {
            participant,
            publishers,
        } if participant == who => Some(publishers.clone()),
        _ => None,
    })
}

fn forwarding_of(effects: &[Effect], who: &ParticipantId) -> Option<(bool, bool)> {
    effects.iter().rev().find_map(|e| match e {
        Effect::Forwarding {
            participant,
            audio,
            video,
        } if participant == who => Some((*audio, *video)),
        _ => None,
    })
}

fn done(result: (Result<(), ActionError>, Vec<Effect>)) -> Vec<Effect> {
    assert_eq!(result.0, Ok(()));
    result.1
}

fn act(
    c: &mut Conferences,
    by: &ParticipantId,
    action: Action,
) -> (Result<(), ActionError>, Vec<Effect>) {
    c.act(Instant::now(), by, action)
}

#[test]
fn a_room_that_does_not_exist_creates_nothing() {
    let mut c = open();
    let (result, effects) = c.join(Instant::now(), request("nope", "Eve"), false);
    assert_eq!(result, Err(JoinError::RoomNotFound));
    assert_eq!(c.conference_count(), 0);
    assert!(!c.is_running(&RoomName::parse("nope").unwrap()));
    assert!(effects.iter().all(|e| matches!(e, Effect::Log(_))));
}

#[test]
fn first_join_starts_a_conference_and_others_are_told() {
    let now = Instant::now();
    let mut c = open();
    let (alice, effects) = joined(c.join(now, request("klas", "Alice"), true));
    assert!(alice.participants.is_empty());
    assert_eq!(alice.role, Role::Participant);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Log(FocusRecord::ConferenceStarted { .. })))
    );
    let (bob, effects) = joined(c.join(now, request("klas", "Bob"), true));
    assert_eq!(bob.conference, alice.conference, "same conference");
    assert_ne!(bob.you, alice.you);
    assert_eq!(bob.participants.len(), 1);
    assert_eq!(bob.participants[0].name.as_str(), "Alice");
    let to_alice = notified(&effects, &alice.you);
    assert!(matches!(&to_alice[..], [ParticipantEvent::Joined(info)] if info.id == bob.you));
    assert!(notified(&effects, &bob.you).is_empty());
    assert_eq!(plan_of(&effects, &alice.you), Some(vec![bob.you.clone()]));
    assert_eq!(plan_of(&effects, &bob.you), Some(vec![alice.you.clone()]));
    assert_eq!(forwarding_of(&effects, &bob.you), Some((true, true)));
    // A join to a running conference needs no room lookup.
    let (carol, _) = joined(c.join(now, request("klas", "Carol"), false));
    assert_eq!(carol.conference, alice.conference);
}

#[test]
fn leaving_tells_the_others_and_updates_the_plan() {
    let now = Instant::now();
    let mut c = open();
    let (a, _) = joined(c.join(now, request("klas", "A"), true));
    let (b, _) = joined(c.join(now, request("klas", "B"), true));
    let (cc, _) = joined(c.join(now, request("klas", "C"), true));
    let effects = c.leave(now + Duration::from_secs(90), &b.you, LeaveReason::Left);
    assert!(effects.contains(&Effect::StopMedia {
        participant: b.you.clone()
    }));
    assert_eq!(
        notified(&effects, &a.you),
        vec![ParticipantEvent::Left(b.you.clone())]
    );
    assert_eq!(plan_of(&effects, &a.you), Some(vec![cc.you.clone()]));
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Log(FocusRecord::ParticipantLeft {
            seconds: 90,
            reason: LeaveReason::Left,
            ..
        })
    )));
    assert!(
        c.leave(now, &b.you, LeaveReason::Left).is_empty(),
        "only once"
    );
}

#[test]
fn an_empty_conference_ends_after_the_grace_period() {
    let t0 = Instant::now();
    let mut c = open();
    let (a, _) = joined(c.join(t0, request("klas", "A"), true));
    c.leave(t0, &a.you, LeaveReason::Left);
    assert!(c.tick(t0 + Duration::from_secs(10)).is_empty());
    // Rejoining within the grace period continues the same conference.
    let (again, _) = joined(c.join(t0 + Duration::from_secs(10), request("klas", "A"), false));
    assert_eq!(again.conference, a.conference);
    c.leave(t0 + Duration::from_secs(20), &again.you, LeaveReason::Left);
    let effects = c.tick(t0 + Duration::from_secs(50));
    assert!(
        matches!(
            &effects[..],
            [Effect::Log(FocusRecord::ConferenceEnded {
                peak_participants: 1,
                participants: 2,
                seconds: 20,
                age_seconds: 50,
                participant_seconds: 10,
                ..
            })]
        ),
        "{effects:?}"
    );
    assert!(!c.is_running(&RoomName::parse("klas").unwrap()));
    let (later, _) = joined(c.join(t0 + Duration::from_secs(60), request("klas", "A"), true));
    assert_ne!(later.conference, a.conference, "a new conference, a new id");
}

#[test]
fn a_full_conference_refuses() {
    let now = Instant::now();
    let mut c = Conferences::new(Duration::from_secs(30), 2, false, Duration::ZERO);
    joined(c.join(now, request("klas", "A"), true));
    joined(c.join(now, request("klas", "B"), true));
    let (result, _) = c.join(now, request("klas", "C"), true);
    assert_eq!(result, Err(JoinError::ConferenceFull));
    assert_eq!(c.participant_count(), 2);
}

#[test]
fn self_mute_changes_reach_the_others_once() {
    let now = Instant::now();
    let mut c = open();
    let (a, _) = joined(c.join(now, request("klas", "A"), true));
    let (b, _) = joined(c.join(now, request("klas", "B"), true));
    let mute = Action::SetMute {
        audio_muted: true,
        video_muted: false,
    };
    let (result, effects) = act(&mut c, &a.you, mute.clone());
    assert_eq!(result, Ok(()));
    assert_eq!(
        notified(&effects, &b.you),
        vec![ParticipantEvent::Mute {
            id: a.you.clone(),
            audio_muted: true,
            video_muted: false
        }]
    );
    assert!(notified(&effects, &a.you).is_empty());
    assert!(act(&mut c, &a.you, mute).1.is_empty(), "no change, no news");
}

#[test]
fn signals_only_from_participants() {
    let now = Instant::now();
    let mut c = open();
    let (a, _) = joined(c.join(now, request("klas", "A"), true));
    let offer = ClientSignal::Offer("v=0".into());
    assert_eq!(c.signal(&a.you, offer.clone()).len(), 1);
    assert!(c.signal(&ParticipantId::random(), offer).is_empty());
}

#[test]
fn shutdown_ends_everyone() {
    let now = Instant::now();
    let mut c = open();
    let (a, _) = joined(c.join(now, request("klas", "A"), true));
    let effects = c.shutdown(now);
    assert!(
        notified(&effects, &a.you).contains(&ParticipantEvent::Ended(EndReason::ServerShutdown))
    );
    assert_eq!(c.conference_count(), 0);
}

#[test]
fn guests_wait_for_the_host_and_are_admitted_when_one_arrives() {
    let now = Instant::now();
    let mut c = Conferences::new(Duration::from_secs(30), 10, true, Duration::ZERO);
    let (result, effects) = c.join(now, request("klas", "Pupil"), true);
    let Ok(JoinOutcome::Waiting { id: pupil, reason }) = result else {
        panic!("{result:?}")
    };
    assert_eq!(reason, WaitReason::Host);
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::StartMedia { .. }))
    );
    assert_eq!(c.participant_count(), 0);
    assert_eq!(c.conference_count(), 0, "nobody is in yet");
    let (teacher, effects) = joined(c.join(now, host("klas", "Juf"), false));
    assert_eq!(teacher.role, Role::Moderator);
    let to_pupil = notified(&effects, &pupil);
    assert!(
        matches!(&to_pupil[0], ParticipantEvent::Admitted(j) if j.you == pupil && j.role == Role::Participant),
        "{to_pupil:?}"
    );
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::StartMedia { participant, .. } if *participant == pupil))
    );
    assert_eq!(c.participant_count(), 2);
    // A guest who gives up waiting leaves nothing behind.
    let mut empty = Conferences::new(Duration::from_secs(30), 10, true, Duration::ZERO);
    let (result, _) = empty.join(now, request("klas", "Pupil"), true);
    let Ok(JoinOutcome::Waiting { id, .. }) = result else {
        panic!()
    };
    let effects = empty.leave(now, &id, LeaveReason::Disconnected);
    assert!(effects.contains(&Effect::Forget(id)));
    assert!(!empty.is_running(&RoomName::parse("klas").unwrap()));
}

fn moderated() -> (Conferences, ParticipantId, ParticipantId, ParticipantId) {
    let now = Instant::now();
    let mut c = Conferences::new(Duration::from_secs(30), 10, true, Duration::ZERO);
    let (m, _) = joined(c.join(now, host("klas", "Juf"), true));
    let (p, _) = joined(c.join(now, request("klas", "Pupil"), true));
    let (q, _) = joined(c.join(now, request("klas", "Other"), true));
    (c, m.you, p.you, q.you)
}

#[test]
fn participants_cannot_moderate() {
    let (mut c, m, p, q) = moderated();
    for action in [
        Action::MuteParticipant {
            target: q.clone(),
            kind: MediaKind::Audio,
        },
        Action::AllowUnmute {
            target: p.clone(),
            kind: MediaKind::Audio,
        },
        Action::LockUnmute {
            kind: MediaKind::Audio,
            locked: true,
        },
        Action::Remove {
            target: m.clone(),
            bar: true,
        },
        Action::Promote(p.clone()),
        Action::LockRoom(true),
        Action::SetPassword(Some(Secret::new("x".into()))),
        Action::SetLobby(true),
        Action::Admit(q.clone()),
        Action::Deny(q.clone()),
        Action::EndConference,
    ] {
        let (result, effects) = act(&mut c, &p, action.clone());
        assert_eq!(result, Err(ActionError::NotAllowed), "{action:?}");
        assert!(
            matches!(
                &effects[..],
                [Effect::Log(FocusRecord::ActionRefused { .. })]
            ),
            "only a record of the refusal: {effects:?}"
        );
    }
    assert_eq!(c.participant_count(), 3);
}

#[test]
fn a_hard_mute_stops_forwarding_and_holds_until_allowed() {
    let (mut c, m, p, q) = moderated();
    let (result, effects) = act(
        &mut c,
        &m,
        Action::MuteParticipant {
            target: p.clone(),
            kind: MediaKind::Audio,
        },
    );
    assert_eq!(result, Ok(()));
    assert_eq!(forwarding_of(&effects, &p), Some((false, true)));
    assert!(
        notified(&effects, &p).contains(&ParticipantEvent::Permissions(Permissions {
            audio: false,
            video: true
        }))
    );
    assert!(notified(&effects, &q).contains(&ParticipantEvent::Mute {
        id: p.clone(),
        audio_muted: true,
        video_muted: false
    }));
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Log(FocusRecord::Moderation { action: "mute-participant", target: Some(t), .. }) if *t == p
    )));
    // The participant cannot undo it.
    let unmute = Action::SetMute {
        audio_muted: false,
        video_muted: false,
    };
    assert_eq!(
        act(&mut c, &p, unmute.clone()).0,
        Err(ActionError::NotAllowed)
    );
    // Asking to speak reaches the moderator.
    let (_, effects) = act(&mut c, &p, Action::RequestUnmute(MediaKind::Audio));
    assert_eq!(
        notified(&effects, &m),
        vec![ParticipantEvent::UnmuteRequest {
            id: p.clone(),
            kind: MediaKind::Audio
        }]
    );
    assert!(
        notified(&effects, &q).is_empty(),
        "only moderators see requests"
    );
    let (_, effects) = act(
        &mut c,
        &m,
        Action::AllowUnmute {
            target: p.clone(),
            kind: MediaKind::Audio,
        },
    );
    assert_eq!(forwarding_of(&effects, &p), Some((true, true)));
    assert!(
        notified(&effects, &m).contains(&ParticipantEvent::UnmuteRequestDone {
            id: p.clone(),
            kind: MediaKind::Audio
        })
    );
    assert_eq!(act(&mut c, &p, unmute).0, Ok(()));
}

#[test]
fn locking_unmute_mutes_every_participant_but_moderators() {
    let (mut c, m, p, q) = moderated();
    let (_, effects) = act(
        &mut c,
        &m,
        Action::LockUnmute {
            kind: MediaKind::Video,
            locked: true,
        },
    );
    assert_eq!(forwarding_of(&effects, &p), Some((true, false)));
    assert_eq!(forwarding_of(&effects, &q), Some((true, false)));
    assert_eq!(forwarding_of(&effects, &m), None, "moderators keep theirs");
    assert!(notified(&effects, &p).iter().any(|e| matches!(
        e,
        ParticipantEvent::RoomState(s) if s.unmute_locked == [false, true]
    )));
    // One participant is allowed; the other stays locked.
    let (_, effects) = act(
        &mut c,
        &m,
        Action::AllowUnmute {
            target: p.clone(),
            kind: MediaKind::Video,
        },
    );
    assert_eq!(forwarding_of(&effects, &p), Some((true, true)));
    let video_on = Action::SetMute {
        audio_muted: false,
        video_muted: false,
    };
    assert_eq!(act(&mut c, &p, video_on.clone()).0, Ok(()));
    assert_eq!(
        act(&mut c, &q, video_on.clone()).0,
        Err(ActionError::NotAllowed)
    );
    // Unlocking gives everyone their permission back.
    let (_, effects) = act(
        &mut c,
        &m,
        Action::LockUnmute {
            kind: MediaKind::Video,
            locked: false,
        },
    );
    assert_eq!(forwarding_of(&effects, &q), Some((true, true)));
    assert_eq!(act(&mut c, &q, video_on).0, Ok(()));
}

#[test]
fn removal_and_bar() {
    let (mut c, m, p, q) = moderated();
    let (result, effects) = act(
        &mut c,
        &m,
        Action::Remove {
            target: p.clone(),
            bar: true,
        },
    );
    assert_eq!(result, Ok(()));
    assert_eq!(
        notified(&effects, &p),
        vec![ParticipantEvent::Ended(EndReason::Removed)]
    );
    assert!(effects.contains(&Effect::StopMedia {
        participant: p.clone()
    }));
    assert!(notified(&effects, &q).contains(&ParticipantEvent::Left(p.clone())));
    let now = Instant::now();
    let (again, _) = c.join(now, request("klas", "pupil"), false);
    assert_eq!(again, Err(JoinError::Barred), "same name");
    let mut keyed = request("klas", "Someone Else");
    keyed.rejoin_key = None;
    assert!(matches!(
        c.join(now, keyed, false).0,
        Ok(JoinOutcome::Joined(_))
    ));
    // Removing without a bar lets them back.
    let (_, _) = act(
        &mut c,
        &m,
        Action::Remove {
            target: q.clone(),
            bar: false,
        },
    );
    assert!(matches!(
        c.join(now, request("klas", "Other"), false).0,
        Ok(JoinOutcome::Joined(_))
    ));
    assert_eq!(
        act(
            &mut c,
            &m,
            Action::Remove {
                target: ParticipantId::random(),
                bar: false
            }
        )
        .0,
        Err(ActionError::UnknownParticipant)
    );
}

#[test]
fn lobby_admit_and_deny() {
    let (mut c, m, _, _) = moderated();
    done(act(&mut c, &m, Action::SetLobby(true)));
    let now = Instant::now();
    let (result, effects) = c.join(now, request("klas", "Knocker"), false);
    let Ok(JoinOutcome::Waiting {
        id: knocker,
        reason: WaitReason::Lobby,
    }) = result
    else {
        panic!("{result:?}")
    };
    assert!(
        notified(&effects, &m)
            .iter()
            .any(|e| matches!(e, ParticipantEvent::LobbyRequest { id, .. } if *id == knocker))
    );
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::StartMedia { .. }))
    );
    let (result, effects) = act(&mut c, &m, Action::Admit(knocker.clone()));
    assert_eq!(result, Ok(()));
    assert!(matches!(
        &notified(&effects, &knocker)[0],
        ParticipantEvent::Admitted(_)
    ));
    assert!(notified(&effects, &m).contains(&ParticipantEvent::LobbyLeft(knocker.clone())));
    let (result, _) = c.join(now, request("klas", "Stranger"), false);
    let Ok(JoinOutcome::Waiting { id: stranger, .. }) = result else {
        panic!()
    };
    let (_, effects) = act(&mut c, &m, Action::Deny(stranger.clone()));
    assert_eq!(
        notified(&effects, &stranger),
        vec![ParticipantEvent::Ended(EndReason::Denied)]
    );
    assert!(
        !effects.iter().any(
            |e| matches!(e, Effect::StartMedia { participant, .. } if *participant == stranger)
        )
    );
    assert!(effects.contains(&Effect::Forget(stranger)));
    // Disabling the lobby lets everyone waiting in.
    let (result, _) = c.join(now, request("klas", "Late"), false);
    let Ok(JoinOutcome::Waiting { id: late, .. }) = result else {
        panic!()
    };
    let (_, effects) = act(&mut c, &m, Action::SetLobby(false));
    assert!(matches!(
        &notified(&effects, &late)[0],
        ParticipantEvent::Admitted(_)
    ));
}

#[test]
fn locked_rooms_and_passwords() {
    let (mut c, m, _, _) = moderated();
    let now = Instant::now();
    done(act(&mut c, &m, Action::LockRoom(true)));
    assert_eq!(
        c.join(now, request("klas", "X"), false).0,
        Err(JoinError::RoomLocked)
    );
    assert!(matches!(
        c.join(now, host("klas", "Other host"), false).0,
        Ok(JoinOutcome::Joined(_))
    ));
    done(act(&mut c, &m, Action::LockRoom(false)));
    done(act(
        &mut c,
        &m,
        Action::SetPassword(Some(Secret::new("geheim".into()))),
    ));
    assert_eq!(
        c.join(now, request("klas", "X"), false).0,
        Err(JoinError::PasswordRequired)
    );
    let mut wrong = request("klas", "X");
    wrong.password = Some(Secret::new("gehiem".into()));
    assert_eq!(c.join(now, wrong, false).0, Err(JoinError::PasswordWrong));
    let mut right = request("klas", "X");
    right.password = Some(Secret::new("geheim".into()));
    assert!(matches!(
        c.join(now, right, false).0,
        Ok(JoinOutcome::Joined(_))
    ));
    done(act(&mut c, &m, Action::SetPassword(None)));
    assert!(matches!(
        c.join(now, request("klas", "Y"), false).0,
        Ok(JoinOutcome::Joined(_))
    ));
}

#[test]
fn ending_the_conference_disconnects_everyone_and_retires_its_id() {
    let (mut c, m, p, q) = moderated();
    done(act(&mut c, &m, Action::SetLobby(true)));
    let now = Instant::now();
    let (result, _) = c.join(now, request("klas", "Waiting"), false);
    let Ok(JoinOutcome::Waiting { id: w, .. }) = result else {
        panic!()
    };
    let conference_id = c.by_room.values().next().unwrap().id.clone();
    let (result, effects) = act(&mut c, &m, Action::EndConference);
    assert_eq!(result, Ok(()));
    for who in [&m, &p, &q, &w] {
        assert!(
            notified(&effects, who).contains(&ParticipantEvent::Ended(EndReason::ConferenceEnded)),
            "{who:?}"
        );
    }
    for who in [&m, &p, &q] {
        assert!(effects.contains(&Effect::StopMedia {
            participant: who.clone()
        }));
    }
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Log(FocusRecord::ConferenceEnded { .. })))
    );
    assert_eq!(c.participant_count(), 0);
    let (again, _) = joined(c.join(now, host("klas", "Juf"), true));
    assert_ne!(again.conference, conference_id);
}

#[test]
fn a_dropped_connection_can_resume_as_the_same_participant() {
    let t0 = Instant::now();
    let mut c = Conferences::new(Duration::from_secs(30), 10, false, Duration::from_secs(15));
    let (a, _) = joined(c.join(t0, request("klas", "A"), true));
    let (b, _) = joined(c.join(t0, request("klas", "B"), true));
    // A's WebSocket drops: nobody is told, A's media is not stopped.
    let effects = c.leave(t0, &a.you, LeaveReason::Disconnected);
    assert!(notified(&effects, &b.you).is_empty(), "{effects:?}");
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::StopMedia { .. }))
    );
    assert!(effects.contains(&Effect::Forget(a.you.clone())));
    assert_eq!(c.participant_count(), 2);
    // A comes back with its token: the same participant, a fresh media connection.
    let mut again = request("klas", "A");
    again.resume = Some(a.resume_token.clone());
    let (back, effects) = joined(c.join(t0 + Duration::from_secs(5), again, false));
    assert_eq!(back.you, a.you);
    assert!(back.resumed);
    assert_ne!(
        back.resume_token.expose(),
        a.resume_token.expose(),
        "a token resumes once"
    );
    assert!(notified(&effects, &b.you).is_empty(), "no leave, no join");
    assert!(effects.contains(&Effect::StopMedia {
        participant: a.you.clone()
    }));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::StartMedia { participant, .. } if *participant == a.you))
    );
    // Coming back muted (the microphone was switched off while away): the others are told.
    c.leave(
        t0 + Duration::from_secs(5),
        &a.you,
        LeaveReason::Disconnected,
    );
    let mut muted = request("klas", "A");
    muted.resume = Some(back.resume_token.clone());
    muted.audio_muted = true;
    let (back, effects) = joined(c.join(t0 + Duration::from_secs(5), muted, false));
    assert!(back.resumed);
    assert_eq!(
        notified(&effects, &b.you),
        vec![ParticipantEvent::Mute {
            id: a.you.clone(),
            audio_muted: true,
            video_muted: false
        }]
    );
    // The token A resumed with is spent: whoever tries it again is somebody new.
    let mut replay = request("klas", "A again");
    replay.resume = Some(a.resume_token.clone());
    let (replayed, _) = joined(c.join(t0 + Duration::from_secs(5), replay, false));
    assert!(!replayed.resumed);
    assert_ne!(replayed.you, a.you);
    // Gone for longer than the grace period: a normal departure.
    c.leave(
        t0 + Duration::from_secs(6),
        &a.you,
        LeaveReason::Disconnected,
    );
    assert!(c.tick(t0 + Duration::from_secs(10)).is_empty());
    let effects = c.tick(t0 + Duration::from_secs(22));
    assert_eq!(
        notified(&effects, &b.you),
        vec![ParticipantEvent::Left(a.you.clone())]
    );
    // An unknown token is an ordinary join.
    let mut stranger = request("klas", "C");
    stranger.resume = Some(Secret::new("not-a-token".into()));
    let (c_joined, _) = joined(c.join(t0, stranger, false));
    assert!(!c_joined.resumed);
}

#[test]
fn chat_screen_and_media_restart() {
    let (mut c, m, p, q) = moderated();
    let (result, effects) = act(
        &mut c,
        &p,
        Action::Chat {
            text: "hallo".into(),
            to: None,
        },
    );
    assert_eq!(result, Ok(()));
    for who in [&m, &q] {
        assert!(notified(&effects, who).contains(&ParticipantEvent::Chat {
            from: p.clone(),
            text: "hallo".into(),
            private: false
        }));
    }
    assert!(notified(&effects, &p).is_empty());
    let (_, effects) = act(
        &mut c,
        &p,
        Action::Chat {
            text: "psst".into(),
            to: Some(q.clone()),
        },
    );
    assert_eq!(notified(&effects, &q).len(), 1);
    assert!(notified(&effects, &m).is_empty(), "private");
    let (result, _) = act(
        &mut c,
        &p,
        Action::Chat {
            text: "x".into(),
            to: Some(ParticipantId::random()),
        },
    );
    assert_eq!(result, Err(ActionError::UnknownParticipant));
    let (_, effects) = act(&mut c, &p, Action::Screen { active: true });
    assert!(notified(&effects, &q).contains(&ParticipantEvent::Screen {
        id: p.clone(),
        active: true
    }));
    let (_, effects) = act(&mut c, &p, Action::RestartMedia);
    assert!(effects.contains(&Effect::StopMedia {
        participant: p.clone()
    }));
    assert_eq!(forwarding_of(&effects, &p), Some((true, true)));
    assert!(notified(&effects, &q).is_empty(), "others see nothing");
}

#[test]
fn hands_are_ordered_and_promotion_gives_moderator_powers() {
    let (mut c, m, p, q) = moderated();
    let (_, e1) = act(&mut c, &q, Action::Hand { raised: true });
    let (_, e2) = act(&mut c, &p, Action::Hand { raised: true });
    let order = |effects: &[Effect], id: &ParticipantId| {
        notified(effects, &m).into_iter().find_map(|e| match e {
            ParticipantEvent::Hand { id: who, order } if who == *id => Some(order),
            _ => None,
        })
    };
    assert_eq!(order(&e1, &q), Some(Some(1)));
    assert_eq!(order(&e2, &p), Some(Some(2)));
    let (_, e3) = act(&mut c, &q, Action::Hand { raised: false });
    assert_eq!(order(&e3, &q), Some(None));
    let (_, effects) = act(&mut c, &m, Action::Promote(p.clone()));
    assert!(notified(&effects, &q).contains(&ParticipantEvent::Role {
        id: p.clone(),
        role: Role::Moderator
    }));
    let (result, _) = act(&mut c, &p, Action::LockRoom(true));
    assert_eq!(result, Ok(()), "the promoted participant moderates");
    let info: Vec<ParticipantInfo> = c
        .by_room
        .values()
        .next()
        .unwrap()
        .members
        .iter()
        .map(|m| m.info.clone())
        .collect();
    assert!(info.iter().any(|i| i.id == p && i.role == Role::Moderator));
}
