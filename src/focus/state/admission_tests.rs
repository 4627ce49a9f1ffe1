//! The participant cap at every way in: a direct join, the host's arrival, the lobby switched
//! off, a single admit; and the waiting list bounded by what could ever come in.

use super::*;
use crate::privacy::pii::DisplayName;

const CAP: usize = 5;

fn request(name: &str, moderator: bool) -> JoinRequest {
    JoinRequest {
        room: RoomName::parse("klas").unwrap(),
        name: DisplayName::new(name.into()),
        audio_muted: false,
        video_muted: false,
        moderator,
        password: None,
        rejoin_key: None,
        resume: None,
        token_identity: None,
    }
}

fn waiting(c: &mut Conferences, now: Instant, n: usize) -> (Vec<ParticipantId>, usize) {
    let mut ids = Vec::new();
    let mut full = 0;
    for i in 0..n {
        match c.join(now, request(&format!("Pupil {i}"), false), true).0 {
            Ok(JoinOutcome::Waiting { id, .. }) => ids.push(id),
            Err(JoinError::ConferenceFull) => full += 1,
            other => panic!("{other:?}"),
        }
    }
    (ids, full)
}

fn sent_away(effects: &[Effect]) -> Vec<ParticipantId> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify(id, ParticipantEvent::Ended(EndReason::ConferenceFull)) => {
                Some(id.clone())
            }
            _ => None,
        })
        .collect()
}

fn admitted(effects: &[Effect]) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::Notify(_, ParticipantEvent::Admitted(_))))
        .count()
}

fn host_id(c: &mut Conferences, now: Instant) -> (ParticipantId, Vec<Effect>) {
    match c.join(now, request("Juf", true), true) {
        (Ok(JoinOutcome::Joined(j)), effects) => (j.you.clone(), effects),
        (other, _) => panic!("{other:?}"),
    }
}

#[test]
fn the_hosts_arrival_admits_only_up_to_the_cap_and_sends_the_rest_away() {
    let now = Instant::now();
    let mut c = Conferences::new(Duration::from_secs(30), CAP, true, Duration::ZERO);
    let (queue, full) = waiting(&mut c, now, 3 * CAP);
    assert_eq!(
        queue.len(),
        CAP,
        "the waiting list holds what could come in"
    );
    assert_eq!(full, 2 * CAP, "the rest are told the conference is full");
    let (_, effects) = host_id(&mut c, now);
    assert_eq!(admitted(&effects), CAP - 1, "the host takes a seat too");
    assert_eq!(sent_away(&effects), queue[CAP - 1..].to_vec());
    assert_eq!(c.participant_count(), CAP);
    // Who was sent away is no longer anyone's: leaving later changes nothing.
    assert!(
        c.leave(now, &queue[CAP - 1], LeaveReason::Disconnected)
            .is_empty()
    );
}

#[test]
fn switching_the_lobby_off_admits_only_up_to_the_cap() {
    let now = Instant::now();
    let mut c = Conferences::new(Duration::from_secs(30), CAP, false, Duration::ZERO);
    let (host, _) = host_id(&mut c, now);
    assert!(c.act(now, &host, Action::SetLobby(true)).0.is_ok());
    let (queue, _) = waiting(&mut c, now, 2 * CAP);
    assert_eq!(queue.len(), CAP);
    let (result, effects) = c.act(now, &host, Action::SetLobby(false));
    assert!(result.is_ok());
    assert_eq!(admitted(&effects), CAP - 1);
    assert_eq!(sent_away(&effects).len(), 1);
    assert_eq!(c.participant_count(), CAP);
}

#[test]
fn a_single_admit_into_a_full_conference_is_refused_and_the_waiter_stays() {
    let now = Instant::now();
    let mut c = Conferences::new(Duration::from_secs(30), CAP, false, Duration::ZERO);
    let (host, _) = host_id(&mut c, now);
    assert!(c.act(now, &host, Action::SetLobby(true)).0.is_ok());
    let (queue, _) = waiting(&mut c, now, CAP);
    for id in &queue[..CAP - 1] {
        let (result, effects) = c.act(now, &host, Action::Admit(id.clone()));
        assert!(result.is_ok());
        assert_eq!(admitted(&effects), 1);
    }
    let last = &queue[CAP - 1];
    let (result, effects) = c.act(now, &host, Action::Admit(last.clone()));
    assert_eq!(result, Err(ActionError::ConferenceFull));
    assert_eq!(admitted(&effects), 0);
    assert_eq!(c.participant_count(), CAP);
    // When a seat frees up, the one still waiting can be let in.
    c.leave(now, &queue[0], LeaveReason::Left);
    let (result, effects) = c.act(now, &host, Action::Admit(last.clone()));
    assert!(result.is_ok());
    assert_eq!(admitted(&effects), 1);
}

#[test]
fn a_join_that_would_open_one_conference_too_many_is_refused() {
    let now = Instant::now();
    let mut c = Conferences::new(Duration::from_secs(30), CAP, false, Duration::ZERO)
        .with_max_conferences(2);
    for room in ["klas-a", "klas-b"] {
        let mut join = request("Juf", true);
        join.room = RoomName::parse(room).unwrap();
        assert!(matches!(
            c.join(now, join, true).0,
            Ok(JoinOutcome::Joined(_))
        ));
    }
    let mut third = request("Meester", true);
    third.room = RoomName::parse("klas-c").unwrap();
    assert_eq!(
        c.join(now, third, true).0.err(),
        Some(JoinError::ServerFull)
    );
    // A running conference still takes participants.
    let mut more = request("Pupil", false);
    more.room = RoomName::parse("klas-a").unwrap();
    assert!(matches!(
        c.join(now, more, true).0,
        Ok(JoinOutcome::Joined(_))
    ));
}
