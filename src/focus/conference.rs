//! The focus's state machine: rooms' conferences, their participants, and what each change
//! means for everyone else.
//!
//! Pure (the sans-I/O habit): methods take the current instant and return [`Effect`]s for the
//! actor in `mod.rs` to carry out; nothing here sends, logs or sleeps, so every rule is
//! unit-tested below without a socket or a clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::ids::{ConferenceId, ParticipantId};
use super::plan::everyone_receives_everyone;
use super::room::RoomName;
use crate::privacy::pii::DisplayName;
use crate::sfu::{ClientSignal, PeerSignal};

/// A participant as the others see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub id: ParticipantId,
    pub name: DisplayName,
    pub audio_muted: bool,
    pub video_muted: bool,
}

/// What a participant's session is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParticipantEvent {
    Joined(ParticipantInfo),
    Left(ParticipantId),
    Mute {
        id: ParticipantId,
        audio_muted: bool,
        video_muted: bool,
    },
    Media(PeerSignal),
    /// The participant is out of the conference; the session should close.
    Ended(EndReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The media connection failed or its ICE consent expired.
    MediaFailed,
    /// The server is stopping.
    ServerShutdown,
}

/// Why someone left, for the `focus` stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    Left,
    Disconnected,
    MediaFailed,
    ServerShutdown,
}

impl LeaveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Disconnected => "disconnected",
            LeaveReason::MediaFailed => "media-failed",
            LeaveReason::ServerShutdown => "server-shutdown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub room: RoomName,
    pub name: DisplayName,
    pub audio_muted: bool,
    pub video_muted: bool,
}

/// What the joining participant is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub conference: ConferenceId,
    pub you: ParticipantId,
    pub participants: Vec<ParticipantInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("there is no room with that name")]
    RoomNotFound,
    #[error("the conference is full")]
    ConferenceFull,
    #[error("the server is not accepting participants")]
    Unavailable,
}

/// Records for the `focus` stream: identifiers, room names and durations, never names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FocusRecord {
    ConferenceStarted {
        conference: ConferenceId,
        room: RoomName,
    },
    ParticipantJoined {
        conference: ConferenceId,
        participant: ParticipantId,
    },
    ParticipantLeft {
        conference: ConferenceId,
        participant: ParticipantId,
        reason: LeaveReason,
        seconds: u64,
    },
    ConferenceEnded {
        conference: ConferenceId,
        room: RoomName,
        /// From the first join to the last leave.
        seconds: u64,
        /// From the first join to now (the end includes the grace period).
        age_seconds: u64,
        peak_participants: usize,
        /// Joins over the conference's life.
        participants: usize,
        participant_seconds: u64,
    },
    JoinRefused {
        room: RoomName,
        reason: JoinError,
    },
}

/// What the actor must do after a state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Notify(ParticipantId, ParticipantEvent),
    StartMedia {
        conference: ConferenceId,
        participant: ParticipantId,
    },
    StopMedia {
        participant: ParticipantId,
    },
    Plan {
        participant: ParticipantId,
        publishers: Vec<ParticipantId>,
    },
    Signal {
        participant: ParticipantId,
        signal: ClientSignal,
    },
    Log(FocusRecord),
}

struct Member {
    info: ParticipantInfo,
    joined: Instant,
}

struct Conference {
    id: ConferenceId,
    room: RoomName,
    started: Instant,
    members: Vec<Member>,
    empty_since: Option<Instant>,
    peak: usize,
    joins: usize,
    /// Time spent in the conference by everyone who has left it.
    participant_seconds: u64,
}

impl Conference {
    fn plan_effects(&self) -> impl Iterator<Item = Effect> + '_ {
        let ids: Vec<ParticipantId> = self.members.iter().map(|m| m.info.id.clone()).collect();
        everyone_receives_everyone(&ids)
            .into_iter()
            .map(|(participant, publishers)| Effect::Plan {
                participant,
                publishers,
            })
    }

    fn notify_others(&self, except: &ParticipantId, event: ParticipantEvent) -> Vec<Effect> {
        self.members
            .iter()
            .filter(|m| m.info.id != *except)
            .map(|m| Effect::Notify(m.info.id.clone(), event.clone()))
            .collect()
    }
}

/// Every running conference, by room.
pub struct Conferences {
    by_room: HashMap<RoomName, Conference>,
    room_of: HashMap<ParticipantId, RoomName>,
    empty_grace: Duration,
    max_participants: usize,
}

impl Conferences {
    pub fn new(empty_grace: Duration, max_participants: usize) -> Self {
        Self {
            by_room: HashMap::new(),
            room_of: HashMap::new(),
            empty_grace,
            max_participants,
        }
    }

    /// Whether a conference is running in this room (so no lookup of the room is needed).
    pub fn is_running(&self, room: &RoomName) -> bool {
        self.by_room.contains_key(room)
    }

    pub fn participant_count(&self) -> usize {
        self.room_of.len()
    }

    pub fn conference_count(&self) -> usize {
        self.by_room.len()
    }

    /// Admits a participant. `room_exists` is whether a host created the room; a join to a
    /// room that does not exist creates nothing.
    pub fn join(
        &mut self,
        now: Instant,
        request: JoinRequest,
        room_exists: bool,
    ) -> (Result<Joined, JoinError>, Vec<Effect>) {
        let mut effects = Vec::new();
        if !self.by_room.contains_key(&request.room) {
            if !room_exists {
                effects.push(Effect::Log(FocusRecord::JoinRefused {
                    room: request.room,
                    reason: JoinError::RoomNotFound,
                }));
                return (Err(JoinError::RoomNotFound), effects);
            }
            let conference = Conference {
                id: ConferenceId::random(),
                room: request.room.clone(),
                started: now,
                members: Vec::new(),
                empty_since: None,
                peak: 0,
                joins: 0,
                participant_seconds: 0,
            };
            effects.push(Effect::Log(FocusRecord::ConferenceStarted {
                conference: conference.id.clone(),
                room: conference.room.clone(),
            }));
            self.by_room.insert(request.room.clone(), conference);
        }
        let max = self.max_participants;
        let Some(conference) = self.by_room.get_mut(&request.room) else {
            return (Err(JoinError::Unavailable), effects);
        };
        if conference.members.len() >= max {
            effects.push(Effect::Log(FocusRecord::JoinRefused {
                room: request.room,
                reason: JoinError::ConferenceFull,
            }));
            return (Err(JoinError::ConferenceFull), effects);
        }
        let info = ParticipantInfo {
            id: ParticipantId::random(),
            name: request.name,
            audio_muted: request.audio_muted,
            video_muted: request.video_muted,
        };
        let joined = Joined {
            conference: conference.id.clone(),
            you: info.id.clone(),
            participants: conference.members.iter().map(|m| m.info.clone()).collect(),
        };
        effects.extend(conference.notify_others(&info.id, ParticipantEvent::Joined(info.clone())));
        effects.push(Effect::Log(FocusRecord::ParticipantJoined {
            conference: conference.id.clone(),
            participant: info.id.clone(),
        }));
        effects.push(Effect::StartMedia {
            conference: conference.id.clone(),
            participant: info.id.clone(),
        });
        self.room_of.insert(info.id.clone(), request.room.clone());
        conference.members.push(Member { info, joined: now });
        conference.joins += 1;
        conference.empty_since = None;
        conference.peak = conference.peak.max(conference.members.len());
        effects.extend(conference.plan_effects());
        (Ok(joined), effects)
    }

    /// Takes a participant out of their conference.
    pub fn leave(
        &mut self,
        now: Instant,
        participant: &ParticipantId,
        reason: LeaveReason,
    ) -> Vec<Effect> {
        let Some(room) = self.room_of.remove(participant) else {
            return Vec::new();
        };
        let Some(conference) = self.by_room.get_mut(&room) else {
            return Vec::new();
        };
        let Some(index) = conference
            .members
            .iter()
            .position(|m| m.info.id == *participant)
        else {
            return Vec::new();
        };
        let member = conference.members.remove(index);
        let stayed = now.saturating_duration_since(member.joined).as_secs();
        conference.participant_seconds += stayed;
        let mut effects = vec![Effect::StopMedia {
            participant: participant.clone(),
        }];
        effects.extend(
            conference.notify_others(participant, ParticipantEvent::Left(participant.clone())),
        );
        effects.push(Effect::Log(FocusRecord::ParticipantLeft {
            conference: conference.id.clone(),
            participant: participant.clone(),
            reason,
            seconds: stayed,
        }));
        effects.extend(conference.plan_effects());
        if conference.members.is_empty() {
            conference.empty_since = Some(now);
        }
        effects
    }

    pub fn set_mute(
        &mut self,
        participant: &ParticipantId,
        audio_muted: bool,
        video_muted: bool,
    ) -> Vec<Effect> {
        let Some(conference) = self
            .room_of
            .get(participant)
            .and_then(|room| self.by_room.get_mut(room))
        else {
            return Vec::new();
        };
        let Some(member) = conference
            .members
            .iter_mut()
            .find(|m| m.info.id == *participant)
        else {
            return Vec::new();
        };
        if member.info.audio_muted == audio_muted && member.info.video_muted == video_muted {
            return Vec::new();
        }
        member.info.audio_muted = audio_muted;
        member.info.video_muted = video_muted;
        conference.notify_others(
            participant,
            ParticipantEvent::Mute {
                id: participant.clone(),
                audio_muted,
                video_muted,
            },
        )
    }

    /// Passes a client's SDP or candidate to the SFU, if the sender is in a conference.
    pub fn signal(&self, participant: &ParticipantId, signal: ClientSignal) -> Vec<Effect> {
        if !self.room_of.contains_key(participant) {
            return Vec::new();
        }
        vec![Effect::Signal {
            participant: participant.clone(),
            signal,
        }]
    }

    /// Ends conferences that have been empty for longer than the grace period.
    pub fn tick(&mut self, now: Instant) -> Vec<Effect> {
        let grace = self.empty_grace;
        let ended: Vec<RoomName> = self
            .by_room
            .iter()
            .filter(|(_, c)| {
                c.empty_since
                    .is_some_and(|since| now.saturating_duration_since(since) >= grace)
            })
            .map(|(room, _)| room.clone())
            .collect();
        let mut effects = Vec::new();
        for room in ended {
            if let Some(c) = self.by_room.remove(&room) {
                let last_leave = c.empty_since.unwrap_or(now);
                effects.push(Effect::Log(FocusRecord::ConferenceEnded {
                    conference: c.id,
                    room: c.room,
                    seconds: last_leave.saturating_duration_since(c.started).as_secs(),
                    age_seconds: now.saturating_duration_since(c.started).as_secs(),
                    peak_participants: c.peak,
                    participants: c.joins,
                    participant_seconds: c.participant_seconds,
                }));
            }
        }
        effects
    }

    /// Everyone out, conferences ended: the server is stopping.
    pub fn shutdown(&mut self, now: Instant) -> Vec<Effect> {
        let everyone: Vec<ParticipantId> = self.room_of.keys().cloned().collect();
        let mut effects = Vec::new();
        for participant in everyone {
            effects.push(Effect::Notify(
                participant.clone(),
                ParticipantEvent::Ended(EndReason::ServerShutdown),
            ));
            effects.extend(self.leave(now, &participant, LeaveReason::ServerShutdown));
        }
        let grace = self.empty_grace;
        effects.extend(self.tick(now + grace));
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(room: &str, name: &str) -> JoinRequest {
        JoinRequest {
            room: RoomName::parse(room).unwrap(),
            name: DisplayName::new(name.into()),
            audio_muted: false,
            video_muted: false,
        }
    }

    fn joined(result: (Result<Joined, JoinError>, Vec<Effect>)) -> (Joined, Vec<Effect>) {
        let (r, e) = result;
        (r.unwrap(), e)
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

    #[test]
    fn a_room_that_does_not_exist_creates_nothing() {
        let mut c = Conferences::new(Duration::from_secs(30), 10);
        let (result, effects) = c.join(Instant::now(), request("nope", "Eve"), false);
        assert_eq!(result, Err(JoinError::RoomNotFound));
        assert_eq!(c.conference_count(), 0);
        assert_eq!(c.participant_count(), 0);
        assert!(effects.iter().all(|e| matches!(e, Effect::Log(_))));
    }

    #[test]
    fn first_join_starts_a_conference_and_others_are_told() {
        let now = Instant::now();
        let mut c = Conferences::new(Duration::from_secs(30), 10);
        let (alice, effects) = joined(c.join(now, request("klas", "Alice"), true));
        assert!(alice.participants.is_empty());
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::Log(FocusRecord::ConferenceStarted { .. })))
        );
        assert!(effects.iter().any(
            |e| matches!(e, Effect::StartMedia { participant, .. } if *participant == alice.you)
        ));
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
        // A join to an existing conference needs no room lookup.
        let (carol, _) = joined(c.join(now, request("klas", "Carol"), false));
        assert_eq!(carol.conference, alice.conference);
    }

    #[test]
    fn leaving_tells_the_others_and_updates_the_plan() {
        let now = Instant::now();
        let mut c = Conferences::new(Duration::from_secs(30), 10);
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
        let grace = Duration::from_secs(30);
        let mut c = Conferences::new(grace, 10);
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
        // A later join starts a new conference with a new identifier.
        let (later, _) = joined(c.join(t0 + Duration::from_secs(60), request("klas", "A"), true));
        assert_ne!(later.conference, a.conference);
    }

    #[test]
    fn a_full_conference_refuses() {
        let now = Instant::now();
        let mut c = Conferences::new(Duration::from_secs(30), 2);
        joined(c.join(now, request("klas", "A"), true));
        joined(c.join(now, request("klas", "B"), true));
        let (result, _) = c.join(now, request("klas", "C"), true);
        assert_eq!(result, Err(JoinError::ConferenceFull));
        assert_eq!(c.participant_count(), 2);
    }

    #[test]
    fn mute_changes_reach_the_others_once() {
        let now = Instant::now();
        let mut c = Conferences::new(Duration::from_secs(30), 10);
        let (a, _) = joined(c.join(now, request("klas", "A"), true));
        let (b, _) = joined(c.join(now, request("klas", "B"), true));
        let effects = c.set_mute(&a.you, true, false);
        assert_eq!(
            notified(&effects, &b.you),
            vec![ParticipantEvent::Mute {
                id: a.you.clone(),
                audio_muted: true,
                video_muted: false
            }]
        );
        assert!(notified(&effects, &a.you).is_empty());
        assert!(
            c.set_mute(&a.you, true, false).is_empty(),
            "no change, no news"
        );
    }

    #[test]
    fn signals_only_from_participants() {
        let now = Instant::now();
        let mut c = Conferences::new(Duration::from_secs(30), 10);
        let (a, _) = joined(c.join(now, request("klas", "A"), true));
        let offer = ClientSignal::Offer("v=0".into());
        assert_eq!(c.signal(&a.you, offer.clone()).len(), 1);
        assert!(c.signal(&ParticipantId::random(), offer).is_empty());
    }

    #[test]
    fn shutdown_ends_everyone() {
        let now = Instant::now();
        let mut c = Conferences::new(Duration::from_secs(30), 10);
        let (a, _) = joined(c.join(now, request("klas", "A"), true));
        let effects = c.shutdown(now);
        assert!(
            notified(&effects, &a.you)
                .contains(&ParticipantEvent::Ended(EndReason::ServerShutdown))
        );
        assert_eq!(c.conference_count(), 0);
    }
}
