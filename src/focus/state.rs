//! The focus's state machine: every room's conference, who is in it or waiting for it, and what
//! each join, leave and action means for everyone else.
//!
//! Pure (the sans-I/O habit): methods take the current instant and return [`Effect`]s for the
//! actor in `mod.rs` to carry out; nothing here sends, logs or sleeps, so every rule is
//! unit-tested below without a socket or a clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::conference::{Conference, Waiter, same_secret};
use super::events::{
    Action, ActionError, Effect, EndReason, FocusRecord, JoinError, JoinOutcome, JoinRequest,
    LeaveReason, ParticipantEvent, Role, WaitReason,
};
use super::room::RoomName;
use crate::ids::ParticipantId;
use crate::sfu::ClientSignal;

/// Every running conference, by room.
pub struct Conferences {
    by_room: HashMap<RoomName, Conference>,
    /// Members and waiters alike.
    room_of: HashMap<ParticipantId, RoomName>,
    empty_grace: Duration,
    max_participants: usize,
    wait_for_host: bool,
    /// How long a participant whose connection dropped stays, to come back as themselves.
    reconnect_grace: Duration,
}

impl Conferences {
    pub fn new(
        empty_grace: Duration,
        max_participants: usize,
        wait_for_host: bool,
        reconnect_grace: Duration,
    ) -> Self {
        Self {
            by_room: HashMap::new(),
            room_of: HashMap::new(),
            empty_grace,
            max_participants,
            wait_for_host,
            reconnect_grace,
        }
    }

    /// Whether a conference (or a queue waiting for one) exists in this room.
    #[cfg(test)]
    pub fn is_running(&self, room: &RoomName) -> bool {
        self.by_room.contains_key(room)
    }

    /// Participants in a conference (not those waiting).
    pub fn participant_count(&self) -> usize {
        self.by_room.values().map(|c| c.members.len()).sum()
    }

    /// Conferences that have participants or have had them and are in their grace period.
    pub fn conference_count(&self) -> usize {
        self.by_room.values().filter(|c| c.joins > 0).count()
    }

    /// Participants in the conference of `room`, if one runs.
    pub fn participants_in(&self, room: &RoomName) -> Option<usize> {
        self.by_room
            .get(room)
            .filter(|c| c.joins > 0)
            .map(|c| c.members.len())
    }

    /// Logs a join of a member who came in from waiting.
    fn log_admissions(conference: &Conference, effects: &mut Vec<Effect>) {
        let admitted: Vec<ParticipantId> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::StartMedia { participant, .. } => Some(participant.clone()),
                _ => None,
            })
            .collect();
        for participant in admitted {
            effects.push(Effect::Log(FocusRecord::ParticipantJoined {
                conference: conference.id.clone(),
                participant,
                role: Role::Participant,
            }));
        }
    }

    /// Admits, queues or refuses a participant. `room_exists` is whether the room exists (a host
    /// created it, or a moderator link opened it); a join to a room that does not exist creates
    /// nothing.
    pub fn join(
        &mut self,
        now: Instant,
        request: JoinRequest,
        room_exists: bool,
    ) -> (Result<JoinOutcome, JoinError>, Vec<Effect>) {
        let mut effects = Vec::new();
        let room = request.room.clone();
        let refuse = |reason: JoinError, effects: &mut Vec<Effect>| {
            effects.push(Effect::Log(FocusRecord::JoinRefused {
                room: room.clone(),
                reason,
            }));
            Err(reason)
        };
        if let Some(token) = &request.resume
            && let Some(c) = self.by_room.get_mut(&room)
            && let Some(id) = c.resumable(token.expose())
        {
            // The same participant, back after losing the connection: no new admission, no news
            // for the others, a fresh media connection.
            if let Some(m) = c.members.iter_mut().find(|m| m.info.id == id) {
                m.away_since = None;
                // A token resumes once: whoever saw the old one (a shared screen, a log of the
                // browser's) cannot take the seat over; `joined` carries the new one.
                m.resume_token = crate::ids::random_secret();
            }
            // Muting or unmuting while away is what the client says now; an unmute that a
            // moderator's mute forbids stays a mute.
            if let Some(allowed) = c.permissions_of(&id) {
                let audio_muted = request.audio_muted || !allowed.audio;
                let video_muted = request.video_muted || !allowed.video;
                effects.extend(
                    c.set_self_mute(&id, audio_muted, video_muted)
                        .unwrap_or_default(),
                );
            }
            effects.extend(c.restart_media(&id));
            effects.push(Effect::Log(FocusRecord::ParticipantResumed {
                conference: c.id.clone(),
                participant: id.clone(),
            }));
            self.room_of.insert(id.clone(), room.clone());
            return match c.welcome(&id, true) {
                Some(joined) => (Ok(JoinOutcome::Joined(Box::new(joined))), effects),
                None => (Err(JoinError::Unavailable), effects),
            };
        }
        if !self.by_room.contains_key(&room) {
            if !room_exists {
                return (refuse(JoinError::RoomNotFound, &mut effects), effects);
            }
            let opened = !self.wait_for_host;
            self.by_room
                .insert(room.clone(), Conference::new(room.clone(), now, opened));
        }
        let max = self.max_participants;
        let Some(c) = self.by_room.get_mut(&room) else {
            return (Err(JoinError::Unavailable), effects);
        };
        if !request.moderator {
            let barred = c.is_barred(
                &request.name,
                request.rejoin_key.as_deref(),
                request.token_identity.as_deref(),
            );
            let refusal = if barred {
                Some(JoinError::Barred)
            } else if c.locked {
                Some(JoinError::RoomLocked)
            } else {
                match (&c.password, &request.password) {
                    (Some(_), None) => Some(JoinError::PasswordRequired),
                    (Some(set), Some(given)) if !same_secret(set.expose(), given.expose()) => {
                        Some(JoinError::PasswordWrong)
                    }
                    _ => None,
                }
            };
            if let Some(reason) = refusal {
                return (refuse(reason, &mut effects), effects);
            }
        }
        if c.members.len() >= max {
            return (refuse(JoinError::ConferenceFull, &mut effects), effects);
        }
        let id = ParticipantId::random();
        let wait = if request.moderator {
            None
        } else if !c.opened {
            Some(WaitReason::Host)
        } else if c.lobby {
            Some(WaitReason::Lobby)
        } else {
            None
        };
        self.room_of.insert(id.clone(), room.clone());
        if let Some(reason) = wait {
            if reason == WaitReason::Lobby {
                effects.extend(c.notify_moderators(ParticipantEvent::LobbyRequest {
                    id: id.clone(),
                    name: request.name.clone(),
                }));
            }
            c.waiting.push(Waiter {
                id: id.clone(),
                reason,
                name: request.name,
                audio_muted: request.audio_muted,
                video_muted: request.video_muted,
                rejoin_key: request.rejoin_key,
                token_identity: request.token_identity,
            });
            effects.push(Effect::Log(FocusRecord::ParticipantWaiting {
                conference: c.id.clone(),
                participant: id.clone(),
                reason,
            }));
            return (Ok(JoinOutcome::Waiting { id, reason }), effects);
        }
        if c.joins == 0 {
            effects.push(Effect::Log(FocusRecord::ConferenceStarted {
                conference: c.id.clone(),
                room: room.clone(),
            }));
        }
        let role = if request.moderator {
            Role::Moderator
        } else {
            Role::Participant
        };
        effects.extend(c.admit(
            now,
            id.clone(),
            request.name,
            role,
            request.audio_muted,
            request.video_muted,
            request.rejoin_key,
            request.token_identity,
        ));
        effects.push(Effect::Log(FocusRecord::ParticipantJoined {
            conference: c.id.clone(),
            participant: id.clone(),
            role,
        }));
        let joined = c.welcome(&id, false);
        if role == Role::Moderator {
            // The host has arrived: everyone waiting for them comes in.
            let mut admitted = c.admit_all(now, WaitReason::Host);
            Self::log_admissions(c, &mut admitted);
            effects.extend(admitted);
        }
        match joined {
            Some(joined) => (Ok(JoinOutcome::Joined(Box::new(joined))), effects),
            None => (Err(JoinError::Unavailable), effects),
        }
    }

    /// Takes a participant (or someone waiting) out of their conference.
    pub fn leave(
        &mut self,
        now: Instant,
        participant: &ParticipantId,
        reason: LeaveReason,
    ) -> Vec<Effect> {
        let Some(room) = self.room_of.remove(participant) else {
            return Vec::new();
        };
        let Some(c) = self.by_room.get_mut(&room) else {
            return Vec::new();
        };
        if let Some((_, mut effects)) = c.remove_waiter(participant) {
            effects.push(Effect::Forget(participant.clone()));
            if c.joins == 0 && c.waiting.is_empty() {
                // Nobody ever got in, and nobody waits any more: nothing to keep.
                self.by_room.remove(&room);
            }
            return effects;
        }
        if reason == LeaveReason::Disconnected
            && !self.reconnect_grace.is_zero()
            && let Some(m) = c.members.iter_mut().find(|m| m.info.id == *participant)
        {
            // Only the connection is gone: the participant stays (and keeps their media, if it
            // still flows) for the grace period, to come back as themselves.
            if m.away_since.is_none() {
                m.away_since = Some(now);
            }
            self.room_of.insert(participant.clone(), room);
            return vec![
                Effect::Forget(participant.clone()),
                Effect::Log(FocusRecord::ParticipantAway {
                    conference: c.id.clone(),
                    participant: participant.clone(),
                }),
            ];
        }
        let Some((member, mut effects)) = c.remove_member(now, participant) else {
            return Vec::new();
        };
        effects.push(Effect::Log(FocusRecord::ParticipantLeft {
            conference: c.id.clone(),
            participant: participant.clone(),
            reason,
            seconds: now.saturating_duration_since(member.joined).as_secs(),
        }));
        effects
    }

    /// Passes a client's SDP or candidate to the SFU, if the sender is in a conference.
    pub fn signal(&self, participant: &ParticipantId, signal: ClientSignal) -> Vec<Effect> {
        let in_conference = self
            .room_of
            .get(participant)
            .and_then(|room| self.by_room.get(room))
            .is_some_and(|c| c.member(participant).is_some());
        if !in_conference {
            return Vec::new();
        }
        vec![Effect::Signal {
            participant: participant.clone(),
            signal,
        }]
    }

    /// Carries out a participant's action, if they may.
    pub fn act(
        &mut self,
        now: Instant,
        by: &ParticipantId,
        action: Action,
    ) -> (Result<(), ActionError>, Vec<Effect>) {
        let Some(room) = self.room_of.get(by).cloned() else {
            return (Err(ActionError::NotAllowed), Vec::new());
        };
        let Some(c) = self.by_room.get_mut(&room) else {
            return (Err(ActionError::NotAllowed), Vec::new());
        };
        let name = action.name();
        let refused = |c: &Conference, reason: ActionError| {
            vec![Effect::Log(FocusRecord::ActionRefused {
                conference: c.id.clone(),
                by: by.clone(),
                action: name,
                reason,
            })]
        };
        let Some(me) = c.member(by) else {
            // Waiting participants may only leave.
            return (
                Err(ActionError::NotAllowed),
                refused(c, ActionError::NotAllowed),
            );
        };
        if action.needs_moderator() && me.info.role != Role::Moderator {
            return (
                Err(ActionError::NotAllowed),
                refused(c, ActionError::NotAllowed),
            );
        }
        let target = match &action {
            Action::MuteParticipant { target, .. }
            | Action::AllowUnmute { target, .. }
            | Action::Remove { target, .. }
            | Action::Promote(target) => {
                if c.member(target).is_none() {
                    return (
                        Err(ActionError::UnknownParticipant),
                        refused(c, ActionError::UnknownParticipant),
                    );
                }
                Some(target.clone())
            }
            Action::Admit(target) | Action::Deny(target) => {
                if !c
                    .waiting
                    .iter()
                    .any(|w| w.id == *target && w.reason == WaitReason::Lobby)
                {
                    return (
                        Err(ActionError::UnknownParticipant),
                        refused(c, ActionError::UnknownParticipant),
                    );
                }
                Some(target.clone())
            }
            _ => None,
        };
        let mut effects = match action {
            Action::SetMute {
                audio_muted,
                video_muted,
            } => match c.set_self_mute(by, audio_muted, video_muted) {
                Ok(effects) => return (Ok(()), effects),
                Err(()) => {
                    return (
                        Err(ActionError::NotAllowed),
                        refused(c, ActionError::NotAllowed),
                    );
                }
            },
            Action::Hand { raised } => return (Ok(()), c.hand(by, raised)),
            Action::Chat { text, to } => {
                return match c.chat(by, text, to.as_ref()) {
                    Ok(effects) => (Ok(()), effects),
                    Err(e) => (Err(e), refused(c, e)),
                };
            }
            Action::Screen { active } => return (Ok(()), c.screen(by, active)),
            Action::RestartMedia => return (Ok(()), c.restart_media(by)),
            Action::RequestUnmute(kind) => return (Ok(()), c.request_unmute(by, kind)),
            Action::MuteParticipant { target, kind } => c.force_mute(&target, kind),
            Action::AllowUnmute { target, kind } => c.allow_unmute(&target, kind),
            Action::LockUnmute { kind, locked } => c.lock_unmute(kind, locked),
            Action::Promote(target) => c.promote(&target),
            Action::LockRoom(locked) => {
                c.locked = locked;
                c.notify_all(ParticipantEvent::RoomState(c.state()))
            }
            Action::SetPassword(password) => {
                c.password = password;
                c.notify_all(ParticipantEvent::RoomState(c.state()))
            }
            Action::SetLobby(enabled) => {
                c.lobby = enabled;
                let mut effects = c.notify_all(ParticipantEvent::RoomState(c.state()));
                if !enabled {
                    let mut admitted = c.admit_all(now, WaitReason::Lobby);
                    Self::log_admissions(c, &mut admitted);
                    effects.extend(admitted);
                }
                effects
            }
            Action::Admit(target) => {
                let mut admitted = c.admit_waiter(now, &target);
                Self::log_admissions(c, &mut admitted);
                admitted
            }
            Action::Deny(target) => {
                let mut effects = Vec::new();
                if let Some((_, removed)) = c.remove_waiter(&target) {
                    effects.push(Effect::Notify(
                        target.clone(),
                        ParticipantEvent::Ended(EndReason::Denied),
                    ));
                    effects.push(Effect::Forget(target.clone()));
                    effects.extend(removed);
                }
                self.room_of.remove(&target);
                effects
            }
            Action::Remove { target, bar } => {
                let mut effects = vec![Effect::Notify(
                    target.clone(),
                    ParticipantEvent::Ended(EndReason::Removed),
                )];
                if let Some((member, removed)) = c.remove_member(now, &target) {
                    if bar {
                        c.bar(&member);
                    }
                    effects.extend(removed);
                    effects.push(Effect::Log(FocusRecord::ParticipantLeft {
                        conference: c.id.clone(),
                        participant: target.clone(),
                        reason: LeaveReason::Removed,
                        seconds: now.saturating_duration_since(member.joined).as_secs(),
                    }));
                }
                self.room_of.remove(&target);
                effects
            }
            Action::EndConference => {
                let conference = c.id.clone();
                let members: Vec<(ParticipantId, Instant)> = c
                    .members
                    .iter()
                    .map(|m| (m.info.id.clone(), m.joined))
                    .collect();
                let waiting: Vec<ParticipantId> = c.waiting.iter().map(|w| w.id.clone()).collect();
                let mut effects = c.end_for_everyone(now, EndReason::ConferenceEnded);
                for (participant, joined) in members {
                    effects.push(Effect::Log(FocusRecord::ParticipantLeft {
                        conference: conference.clone(),
                        participant: participant.clone(),
                        reason: LeaveReason::ConferenceEnded,
                        seconds: now.saturating_duration_since(joined).as_secs(),
                    }));
                    self.room_of.remove(&participant);
                }
                for participant in waiting {
                    self.room_of.remove(&participant);
                }
                effects.push(Effect::Log(FocusRecord::Moderation {
                    conference,
                    by: by.clone(),
                    action: name,
                    target: None,
                }));
                if let Some(ended) = self.end(&room, now) {
                    effects.push(ended);
                }
                return (Ok(()), effects);
            }
        };
        effects.push(Effect::Log(FocusRecord::Moderation {
            conference: c.id.clone(),
            by: by.clone(),
            action: name,
            target,
        }));
        (Ok(()), effects)
    }

    /// Retires a conference; the record of its end (for the focus stream and usage).
    fn end(&mut self, room: &RoomName, now: Instant) -> Option<Effect> {
        let c = self.by_room.remove(room)?;
        if c.joins == 0 {
            return None;
        }
        let last_leave = c.empty_since.unwrap_or(now);
        Some(Effect::Log(FocusRecord::ConferenceEnded {
            conference: c.id,
            room: c.room,
            seconds: last_leave.saturating_duration_since(c.started).as_secs(),
            age_seconds: now.saturating_duration_since(c.started).as_secs(),
            peak_participants: c.peak,
            participants: c.joins,
            participant_seconds: c.participant_seconds,
        }))
    }

    /// Ends conferences that have been empty for longer than the grace period; anyone still
    /// waiting in their lobby is told.
    /// Takes a voice report from the SFU: each conference it concerns decides its speaker.
    pub fn voice(&mut self, shares: &[(ParticipantId, f32)]) -> Vec<Effect> {
        let mut by_room: HashMap<&RoomName, HashMap<&ParticipantId, f32>> = HashMap::new();
        for (id, share) in shares {
            if let Some(room) = self.room_of.get(id) {
                by_room.entry(room).or_default().insert(id, *share);
            }
        }
        let mut effects = Vec::new();
        for (room, shares) in by_room {
            if let Some(conference) = self.by_room.get_mut(room) {
                effects.extend(conference.voice(&shares));
            }
        }
        effects
    }

    pub fn tick(&mut self, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        let reconnect_grace = self.reconnect_grace;
        let gone: Vec<ParticipantId> = self
            .by_room
            .values()
            .flat_map(|c| c.members.iter())
            .filter(|m| {
                m.away_since
                    .is_some_and(|since| now.saturating_duration_since(since) >= reconnect_grace)
            })
            .map(|m| m.info.id.clone())
            .collect();
        for participant in gone {
            let saved = std::mem::take(&mut self.reconnect_grace);
            effects.extend(self.leave(now, &participant, LeaveReason::Disconnected));
            self.reconnect_grace = saved;
        }
        let grace = self.empty_grace;
        let ended: Vec<RoomName> = self
            .by_room
            .iter()
            .filter(|(_, c)| {
                c.members.is_empty()
                    && c.empty_since
                        .is_some_and(|since| now.saturating_duration_since(since) >= grace)
            })
            .map(|(room, _)| room.clone())
            .collect();
        for room in ended {
            if let Some(c) = self.by_room.get_mut(&room) {
                for w in std::mem::take(&mut c.waiting) {
                    self.room_of.remove(&w.id);
                    effects.push(Effect::Notify(
                        w.id.clone(),
                        ParticipantEvent::Ended(EndReason::ConferenceEnded),
                    ));
                    effects.push(Effect::Forget(w.id));
                }
            }
            effects.extend(self.end(&room, now));
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
        let rooms: Vec<RoomName> = self.by_room.keys().cloned().collect();
        for room in rooms {
            effects.extend(self.end(&room, now));
        }
        effects
    }

    /// Ends the conference in `room` for everyone (a host ending it from the start page).
    pub fn end_room(&mut self, now: Instant, room: &RoomName) -> Vec<Effect> {
        let Some(c) = self.by_room.get_mut(room) else {
            return Vec::new();
        };
        let ids: Vec<ParticipantId> = c
            .members
            .iter()
            .map(|m| m.info.id.clone())
            .chain(c.waiting.iter().map(|w| w.id.clone()))
            .collect();
        let mut effects = c.end_for_everyone(now, EndReason::ConferenceEnded);
        for id in ids {
            self.room_of.remove(&id);
        }
        effects.extend(self.end(room, now));
        effects
    }
}

#[cfg(test)]
mod tests {
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
            notified(&effects, &a.you)
                .contains(&ParticipantEvent::Ended(EndReason::ServerShutdown))
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
            effects.iter().any(
                |e| matches!(e, Effect::StartMedia { participant, .. } if *participant == pupil)
            )
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
        assert!(!effects.iter().any(
            |e| matches!(e, Effect::StartMedia { participant, .. } if *participant == stranger)
        ));
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
                notified(&effects, who)
                    .contains(&ParticipantEvent::Ended(EndReason::ConferenceEnded)),
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
            effects.iter().any(
                |e| matches!(e, Effect::StartMedia { participant, .. } if *participant == a.you)
            )
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
}
