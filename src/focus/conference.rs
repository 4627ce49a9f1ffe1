//! One conference: its members, who waits to enter, the room's rules, and what a moderator may
//! change. Enforcement lives here: permissions decide what the SFU forwards, whatever a client
//! claims about itself.
//!
//! Pure, like the rest of the focus state machine: methods return [`Effect`]s.

use std::collections::HashMap;
use std::time::Instant;

use super::events::ActionError;
use super::events::{
    Effect, EndReason, Joined, MediaKind, ParticipantEvent, ParticipantInfo, Permissions, Role,
    RoomState, WaitReason,
};
use super::plan::everyone_receives_everyone;
use super::room::RoomName;
use super::speaker::SpeakerDetector;
use crate::ids::{ConferenceId, ParticipantId, random_secret};
use crate::privacy::pii::{DisplayName, Secret};

pub(super) struct Member {
    pub info: ParticipantInfo,
    pub joined: Instant,
    /// What the client says about its own microphone and camera.
    pub self_muted: [bool; 2],
    /// Muted by a moderator.
    pub forced: [bool; 2],
    /// Allowed by a moderator while unmuting is locked.
    pub granted: [bool; 2],
    /// Open requests to unmute.
    pub requests: [bool; 2],
    pub rejoin_key: Option<String>,
    pub token_identity: Option<String>,
    /// Lets the participant come back as themselves after losing the connection.
    pub resume_token: Secret,
    /// Since when the participant's connection is gone (they may still come back).
    pub away_since: Option<Instant>,
}

/// Someone not (yet) in: waiting for a host, or in the lobby.
pub(super) struct Waiter {
    pub id: ParticipantId,
    pub reason: WaitReason,
    pub name: DisplayName,
    pub audio_muted: bool,
    pub video_muted: bool,
    pub rejoin_key: Option<String>,
    pub token_identity: Option<String>,
}

/// Who may not come back to this conference.
pub(super) struct Bar {
    pub rejoin_key: Option<String>,
    pub name: String,
    pub token_identity: Option<String>,
}

pub(super) struct Conference {
    /// The most members at once, whichever way they come in (`focus.max_participants`); the
    /// waiting list holds at most as many.
    pub capacity: usize,
    pub id: ConferenceId,
    pub room: RoomName,
    pub started: Instant,
    pub members: Vec<Member>,
    pub waiting: Vec<Waiter>,
    pub empty_since: Option<Instant>,
    pub peak: usize,
    pub joins: usize,
    /// Time spent in the conference by everyone who has left it.
    pub participant_seconds: u64,
    /// A moderator has been in it (until then, guests wait for the host).
    pub opened: bool,
    pub locked: bool,
    pub lobby: bool,
    pub password: Option<Secret>,
    pub unmute_locked: [bool; 2],
    pub barred: Vec<Bar>,
    pub next_hand: u64,
    pub speaker: SpeakerDetector,
}

/// Compares secrets without leaking, through timing, how much of a guess was right.
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

impl Member {
    fn is_moderator(&self) -> bool {
        self.info.role == Role::Moderator
    }
}

impl Conference {
    /// A conference for at most `capacity` members, and as many waiting to come in.
    pub fn new(room: RoomName, now: Instant, opened: bool, capacity: usize) -> Self {
        Self {
            capacity,
            id: ConferenceId::random(),
            room,
            started: now,
            members: Vec::new(),
            waiting: Vec::new(),
            empty_since: None,
            peak: 0,
            joins: 0,
            participant_seconds: 0,
            opened,
            locked: false,
            lobby: false,
            password: None,
            unmute_locked: [false; 2],
            barred: Vec::new(),
            next_hand: 1,
            speaker: SpeakerDetector::default(),
        }
    }

    pub fn state(&self) -> RoomState {
        RoomState {
            locked: self.locked,
            lobby: self.lobby,
            password_set: self.password.is_some(),
            unmute_locked: self.unmute_locked,
        }
    }

    pub fn member(&self, id: &ParticipantId) -> Option<&Member> {
        self.members.iter().find(|m| m.info.id == *id)
    }

    fn member_mut(&mut self, id: &ParticipantId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.info.id == *id)
    }

    pub fn is_barred(&self, name: &DisplayName, key: Option<&str>, identity: Option<&str>) -> bool {
        let name = name.as_str().trim().to_lowercase();
        self.barred.iter().any(|b| {
            b.name == name
                || (key.is_some() && b.rejoin_key.as_deref() == key)
                || (identity.is_some() && b.token_identity.as_deref() == identity)
        })
    }

    fn permitted(&self, member: &Member, kind: MediaKind) -> bool {
        let k = kind.index();
        !member.forced[k] && (!self.unmute_locked[k] || member.is_moderator() || member.granted[k])
    }

    pub fn permissions(&self, member: &Member) -> Permissions {
        Permissions {
            audio: self.permitted(member, MediaKind::Audio),
            video: self.permitted(member, MediaKind::Video),
        }
    }

    /// The mute state others see: muted by themselves, or not permitted.
    fn shown_muted(&self, member: &Member) -> (bool, bool) {
        let p = self.permissions(member);
        (
            member.self_muted[0] || !p.audio,
            member.self_muted[1] || !p.video,
        )
    }

    pub fn notify_all(&self, event: ParticipantEvent) -> Vec<Effect> {
        self.members
            .iter()
            .map(|m| Effect::Notify(m.info.id.clone(), event.clone()))
            .collect()
    }

    pub fn notify_others(&self, except: &ParticipantId, event: ParticipantEvent) -> Vec<Effect> {
        self.members
            .iter()
            .filter(|m| m.info.id != *except)
            .map(|m| Effect::Notify(m.info.id.clone(), event.clone()))
            .collect()
    }

    pub fn notify_moderators(&self, event: ParticipantEvent) -> Vec<Effect> {
        self.members
            .iter()
            .filter(|m| m.is_moderator())
            .map(|m| Effect::Notify(m.info.id.clone(), event.clone()))
            .collect()
    }

    pub fn plan_effects(&self) -> Vec<Effect> {
        let ids: Vec<ParticipantId> = self.members.iter().map(|m| m.info.id.clone()).collect();
        everyone_receives_everyone(&ids, self.speaker.history())
            .into_iter()
            .map(|(participant, publishers)| Effect::Plan {
                participant,
                publishers,
            })
            .collect()
    }

    /// What `joined` tells a member about the conference.
    pub fn welcome(&self, id: &ParticipantId, resumed: bool) -> Option<Joined> {
        let me = self.member(id)?;
        let moderator = me.is_moderator();
        Some(Joined {
            conference: self.id.clone(),
            you: id.clone(),
            resume_token: me.resume_token.clone(),
            resumed,
            role: me.info.role,
            permissions: self.permissions(me),
            room: self.state(),
            participants: self
                .members
                .iter()
                .filter(|m| m.info.id != *id)
                .map(|m| m.info.clone())
                .collect(),
            lobby: if moderator {
                self.waiting
                    .iter()
                    .filter(|w| w.reason == WaitReason::Lobby)
                    .map(|w| (w.id.clone(), w.name.clone()))
                    .collect()
            } else {
                Vec::new()
            },
            unmute_requests: if moderator {
                self.members
                    .iter()
                    .flat_map(|m| {
                        MediaKind::BOTH
                            .into_iter()
                            .filter(|k| m.requests[k.index()])
                            .map(|k| (m.info.id.clone(), k))
                    })
                    .collect()
            } else {
                Vec::new()
            },
            dominant_speaker: self.speaker.current().cloned(),
        })
    }

    /// Makes someone a member: the others are told, media starts, the plan changes.
    #[allow(clippy::too_many_arguments)]
    pub fn admit(
        &mut self,
        now: Instant,
        id: ParticipantId,
        name: DisplayName,
        role: Role,
        audio_muted: bool,
        video_muted: bool,
        rejoin_key: Option<String>,
        token_identity: Option<String>,
    ) -> Vec<Effect> {
        let mut member = Member {
            info: ParticipantInfo {
                id: id.clone(),
                name,
                role,
                audio_muted,
                video_muted,
                hand: None,
                screen: false,
            },
            joined: now,
            self_muted: [audio_muted, video_muted],
            forced: [false; 2],
            granted: [false; 2],
            requests: [false; 2],
            rejoin_key,
            token_identity,
            resume_token: random_secret(),
            away_since: None,
        };
        let (a, v) = self.shown_muted(&member);
        member.info.audio_muted = a;
        member.info.video_muted = v;
        let permissions = self.permissions(&member);
        let mut effects = self.notify_others(&id, ParticipantEvent::Joined(member.info.clone()));
        effects.push(Effect::StartMedia {
            conference: self.id.clone(),
            participant: id.clone(),
        });
        effects.push(Effect::Forwarding {
            participant: id.clone(),
            audio: permissions.audio,
            video: permissions.video,
        });
        self.members.push(member);
        self.joins += 1;
        self.empty_since = None;
        self.peak = self.peak.max(self.members.len());
        if role == Role::Moderator {
            self.opened = true;
        }
        effects.extend(self.plan_effects());
        effects
    }

    /// After anything that may change a member's permissions: tell the SFU, the member and the
    /// others what changed.
    pub fn refresh(&mut self, id: &ParticipantId, before: Permissions) -> Vec<Effect> {
        let Some(index) = self.members.iter().position(|m| m.info.id == *id) else {
            return Vec::new();
        };
        let permissions = self.permissions(&self.members[index]);
        let shown = self.shown_muted(&self.members[index]);
        let mut effects = Vec::new();
        if permissions != before {
            effects.push(Effect::Forwarding {
                participant: id.clone(),
                audio: permissions.audio,
                video: permissions.video,
            });
            effects.push(Effect::Notify(
                id.clone(),
                ParticipantEvent::Permissions(permissions),
            ));
        }
        let member = &mut self.members[index];
        if (member.info.audio_muted, member.info.video_muted) != shown {
            member.info.audio_muted = shown.0;
            member.info.video_muted = shown.1;
            effects.extend(self.notify_others(
                id,
                ParticipantEvent::Mute {
                    id: id.clone(),
                    audio_muted: shown.0,
                    video_muted: shown.1,
                },
            ));
        }
        effects
    }

    pub fn permissions_of(&self, id: &ParticipantId) -> Option<Permissions> {
        self.member(id).map(|m| self.permissions(m))
    }

    /// A member's own mute state. Unmuting without the permission is refused (`Err`).
    pub fn set_self_mute(
        &mut self,
        id: &ParticipantId,
        audio_muted: bool,
        video_muted: bool,
    ) -> Result<Vec<Effect>, ()> {
        let before = self.permissions_of(id).ok_or(())?;
        if (!audio_muted && !before.audio) || (!video_muted && !before.video) {
            return Err(());
        }
        if let Some(m) = self.member_mut(id) {
            m.self_muted = [audio_muted, video_muted];
        }
        Ok(self.refresh(id, before))
    }

    pub fn force_mute(&mut self, target: &ParticipantId, kind: MediaKind) -> Vec<Effect> {
        let Some(before) = self.permissions_of(target) else {
            return Vec::new();
        };
        if let Some(m) = self.member_mut(target) {
            m.forced[kind.index()] = true;
            m.granted[kind.index()] = false;
        }
        self.refresh(target, before)
    }

    pub fn allow_unmute(&mut self, target: &ParticipantId, kind: MediaKind) -> Vec<Effect> {
        let Some(before) = self.permissions_of(target) else {
            return Vec::new();
        };
        let mut effects = Vec::new();
        if let Some(m) = self.member_mut(target) {
            m.forced[kind.index()] = false;
            m.granted[kind.index()] = true;
            if std::mem::take(&mut m.requests[kind.index()]) {
                effects.extend(self.notify_moderators(ParticipantEvent::UnmuteRequestDone {
                    id: target.clone(),
                    kind,
                }));
            }
        }
        effects.extend(self.refresh(target, before));
        effects
    }

    pub fn lock_unmute(&mut self, kind: MediaKind, locked: bool) -> Vec<Effect> {
        let befores: Vec<(ParticipantId, Permissions)> = self
            .members
            .iter()
            .map(|m| (m.info.id.clone(), self.permissions(m)))
            .collect();
        self.unmute_locked[kind.index()] = locked;
        if locked {
            for m in &mut self.members {
                m.granted[kind.index()] = false;
            }
        }
        let mut effects = Vec::new();
        for (id, before) in befores {
            effects.extend(self.refresh(&id, before));
        }
        effects.extend(self.notify_all(ParticipantEvent::RoomState(self.state())));
        effects
    }

    pub fn request_unmute(&mut self, id: &ParticipantId, kind: MediaKind) -> Vec<Effect> {
        let Some(permissions) = self.permissions_of(id) else {
            return Vec::new();
        };
        let permitted = match kind {
            MediaKind::Audio => permissions.audio,
            MediaKind::Video => permissions.video,
        };
        let Some(m) = self.member_mut(id) else {
            return Vec::new();
        };
        if permitted || m.requests[kind.index()] {
            return Vec::new();
        }
        m.requests[kind.index()] = true;
        self.notify_moderators(ParticipantEvent::UnmuteRequest {
            id: id.clone(),
            kind,
        })
    }

    pub fn hand(&mut self, id: &ParticipantId, raised: bool) -> Vec<Effect> {
        let order = raised.then_some(self.next_hand);
        let Some(m) = self.member_mut(id) else {
            return Vec::new();
        };
        if m.info.hand.is_some() == raised {
            return Vec::new();
        }
        m.info.hand = order;
        if raised {
            self.next_hand += 1;
        }
        self.notify_all(ParticipantEvent::Hand {
            id: id.clone(),
            order,
        })
    }

    /// A chat message: to everyone else, or to one participant only.
    pub fn chat(
        &self,
        from: &ParticipantId,
        text: String,
        to: Option<&ParticipantId>,
    ) -> Result<Vec<Effect>, ActionError> {
        match to {
            None => Ok(self.notify_others(
                from,
                ParticipantEvent::Chat {
                    from: from.clone(),
                    text,
                    private: false,
                },
            )),
            Some(to) if to != from && self.member(to).is_some() => Ok(vec![Effect::Notify(
                to.clone(),
                ParticipantEvent::Chat {
                    from: from.clone(),
                    text,
                    private: true,
                },
            )]),
            Some(_) => Err(ActionError::UnknownParticipant),
        }
    }

    pub fn screen(&mut self, id: &ParticipantId, active: bool) -> Vec<Effect> {
        let Some(m) = self.member_mut(id) else {
            return Vec::new();
        };
        if m.info.screen == active {
            return Vec::new();
        }
        m.info.screen = active;
        self.notify_others(
            id,
            ParticipantEvent::Screen {
                id: id.clone(),
                active,
            },
        )
    }

    /// Rebuilds a member's media connection: the SFU drops it and waits for a new publishing
    /// offer; the others keep the participant and get their tracks back when media flows again.
    pub fn restart_media(&self, id: &ParticipantId) -> Vec<Effect> {
        let Some(m) = self.member(id) else {
            return Vec::new();
        };
        let permissions = self.permissions(m);
        let mut effects = vec![
            Effect::StopMedia {
                participant: id.clone(),
            },
            Effect::StartMedia {
                conference: self.id.clone(),
                participant: id.clone(),
            },
            Effect::Forwarding {
                participant: id.clone(),
                audio: permissions.audio,
                video: permissions.video,
            },
        ];
        effects.extend(self.plan_effects());
        effects
    }

    /// The member a resume token belongs to.
    pub fn resumable(&self, token: &str) -> Option<ParticipantId> {
        self.members
            .iter()
            .find(|m| same_secret(m.resume_token.expose(), token))
            .map(|m| m.info.id.clone())
    }

    pub fn promote(&mut self, target: &ParticipantId) -> Vec<Effect> {
        let Some(before) = self.permissions_of(target) else {
            return Vec::new();
        };
        let Some(m) = self.member_mut(target) else {
            return Vec::new();
        };
        if m.info.role == Role::Moderator {
            return Vec::new();
        }
        m.info.role = Role::Moderator;
        let mut effects = self.notify_all(ParticipantEvent::Role {
            id: target.clone(),
            role: Role::Moderator,
        });
        // The new moderator learns what moderators know.
        for w in self
            .waiting
            .iter()
            .filter(|w| w.reason == WaitReason::Lobby)
        {
            effects.push(Effect::Notify(
                target.clone(),
                ParticipantEvent::LobbyRequest {
                    id: w.id.clone(),
                    name: w.name.clone(),
                },
            ));
        }
        for m in &self.members {
            for kind in MediaKind::BOTH {
                if m.requests[kind.index()] {
                    effects.push(Effect::Notify(
                        target.clone(),
                        ParticipantEvent::UnmuteRequest {
                            id: m.info.id.clone(),
                            kind,
                        },
                    ));
                }
            }
        }
        effects.extend(self.refresh(target, before));
        effects
    }

    /// Takes one voice report from the SFU (shares of voiced frames by participant; members
    /// missing from it were silent) and tells everyone when the dominant speaker changes.
    pub fn voice(&mut self, shares: &HashMap<&ParticipantId, f32>) -> Vec<Effect> {
        let ids: Vec<&ParticipantId> = self.members.iter().map(|m| &m.info.id).collect();
        let share = |id: &ParticipantId| shares.get(id).copied().unwrap_or(0.0);
        match self.speaker.report(ids, share) {
            Some(speaker) => {
                let mut effects = self.notify_all(ParticipantEvent::DominantSpeaker(Some(speaker)));
                // The new speaker moves to the front of everyone's plan: their video first.
                effects.extend(self.plan_effects());
                effects
            }
            None => Vec::new(),
        }
    }

    /// Takes a member out (left, removed, failed). Returns the member and the effects.
    pub fn remove_member(
        &mut self,
        now: Instant,
        id: &ParticipantId,
    ) -> Option<(Member, Vec<Effect>)> {
        let index = self.members.iter().position(|m| m.info.id == *id)?;
        let member = self.members.remove(index);
        self.participant_seconds += now.saturating_duration_since(member.joined).as_secs();
        let mut effects = vec![Effect::StopMedia {
            participant: id.clone(),
        }];
        effects.extend(self.notify_others(id, ParticipantEvent::Left(id.clone())));
        if self.speaker.forget(id) {
            effects.extend(self.notify_others(id, ParticipantEvent::DominantSpeaker(None)));
        }
        for kind in MediaKind::BOTH {
            if member.requests[kind.index()] {
                effects.extend(self.notify_moderators(ParticipantEvent::UnmuteRequestDone {
                    id: id.clone(),
                    kind,
                }));
            }
        }
        effects.extend(self.plan_effects());
        effects.push(Effect::Forget(id.clone()));
        if self.members.is_empty() {
            self.empty_since = Some(now);
        }
        Some((member, effects))
    }

    pub fn bar(&mut self, member: &Member) {
        self.barred.push(Bar {
            rejoin_key: member.rejoin_key.clone(),
            name: member.info.name.as_str().trim().to_lowercase(),
            token_identity: member.token_identity.clone(),
        });
    }

    /// Takes a waiter out of the queue; moderators are told if it was in the lobby.
    pub fn remove_waiter(&mut self, id: &ParticipantId) -> Option<(Waiter, Vec<Effect>)> {
        let index = self.waiting.iter().position(|w| w.id == *id)?;
        let waiter = self.waiting.remove(index);
        let effects = if waiter.reason == WaitReason::Lobby {
            self.notify_moderators(ParticipantEvent::LobbyLeft(id.clone()))
        } else {
            Vec::new()
        };
        Some((waiter, effects))
    }

    /// Whether every seat is taken: nobody more comes in until someone leaves.
    pub fn is_full(&self) -> bool {
        self.members.len() >= self.capacity
    }

    /// Whether the waiting list is as long as the conference could ever take.
    pub fn waiting_is_full(&self) -> bool {
        self.waiting.len() >= self.capacity
    }

    /// Lets a waiter in as a participant and tells them; nothing while the conference is full
    /// (the waiter stays where they are).
    pub fn admit_waiter(&mut self, now: Instant, id: &ParticipantId) -> Vec<Effect> {
        if self.is_full() {
            return Vec::new();
        }
        let Some((w, mut effects)) = self.remove_waiter(id) else {
            return Vec::new();
        };
        effects.extend(self.admit(
            now,
            w.id.clone(),
            w.name,
            Role::Participant,
            w.audio_muted,
            w.video_muted,
            w.rejoin_key,
            w.token_identity,
        ));
        if let Some(joined) = self.welcome(&w.id, false) {
            effects.insert(
                0,
                Effect::Notify(w.id.clone(), ParticipantEvent::Admitted(Box::new(joined))),
            );
        }
        effects
    }

    /// Everyone waiting for `reason` let in, in the order they came, up to the capacity; those
    /// beyond it are told the conference is full and sent away (they would otherwise wait for a
    /// door that is already open).
    pub fn admit_all(&mut self, now: Instant, reason: WaitReason) -> Vec<Effect> {
        let ids: Vec<ParticipantId> = self
            .waiting
            .iter()
            .filter(|w| w.reason == reason)
            .map(|w| w.id.clone())
            .collect();
        let mut effects = Vec::new();
        for id in ids {
            if self.is_full() {
                if let Some((_, removed)) = self.remove_waiter(&id) {
                    effects.push(Effect::Notify(
                        id.clone(),
                        ParticipantEvent::Ended(EndReason::ConferenceFull),
                    ));
                    effects.push(Effect::Forget(id));
                    effects.extend(removed);
                }
            } else {
                effects.extend(self.admit_waiter(now, &id));
            }
        }
        effects
    }

    /// Ends the conference for everyone in it or waiting for it.
    pub fn end_for_everyone(&mut self, now: Instant, reason: EndReason) -> Vec<Effect> {
        let mut effects = Vec::new();
        for w in std::mem::take(&mut self.waiting) {
            effects.push(Effect::Notify(
                w.id.clone(),
                ParticipantEvent::Ended(reason),
            ));
            effects.push(Effect::Forget(w.id));
        }
        for m in &self.members {
            effects.push(Effect::Notify(
                m.info.id.clone(),
                ParticipantEvent::Ended(reason),
            ));
        }
        for m in std::mem::take(&mut self.members) {
            self.participant_seconds += now.saturating_duration_since(m.joined).as_secs();
            effects.push(Effect::StopMedia {
                participant: m.info.id.clone(),
            });
            effects.push(Effect::Forget(m.info.id));
        }
        self.empty_since = Some(now);
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_value_only() {
        assert!(same_secret("geheim", "geheim"));
        assert!(!same_secret("geheim", "geheiM"));
        assert!(!same_secret("geheim", "geheim2"));
        assert!(!same_secret("", "x"));
        assert!(same_secret("", ""));
    }
}
