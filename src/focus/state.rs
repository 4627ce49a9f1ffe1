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
    /// Conferences (and queues waiting for one) at once (`limits.conferences`).
    max_conferences: usize,
}

/// Waiters sent away when the doors opened onto a full conference are no longer anyone's.
fn forget_turned_away(room_of: &mut HashMap<ParticipantId, RoomName>, effects: &[Effect]) {
    for effect in effects {
        if let Effect::Forget(id) = effect {
            room_of.remove(id);
        }
    }
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
            max_conferences: usize::MAX,
        }
    }

    /// At most this many conferences (and queues waiting for one) at once; a join that would
    /// open one more is refused with [`JoinError::ServerFull`].
    pub fn with_max_conferences(mut self, max: usize) -> Self {
        self.max_conferences = max.max(1);
        self
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
        let max = self.max_participants;
        if !self.by_room.contains_key(&room) {
            if !room_exists {
                return (refuse(JoinError::RoomNotFound, &mut effects), effects);
            }
            if self.by_room.len() >= self.max_conferences {
                return (refuse(JoinError::ServerFull, &mut effects), effects);
            }
            let opened = !self.wait_for_host;
            self.by_room.insert(
                room.clone(),
                Conference::new(room.clone(), now, opened, max),
            );
        }
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
        if c.is_full() {
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
        if wait.is_some() && c.waiting_is_full() {
            // More waiting than could ever come in is only memory for whoever sent them.
            return (refuse(JoinError::ConferenceFull, &mut effects), effects);
        }
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
            forget_turned_away(&mut self.room_of, &admitted);
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
                if matches!(action, Action::Admit(_)) && c.is_full() {
                    return (
                        Err(ActionError::ConferenceFull),
                        refused(c, ActionError::ConferenceFull),
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
                    forget_turned_away(&mut self.room_of, &admitted);
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
mod admission_tests;
#[cfg(test)]
mod tests;
