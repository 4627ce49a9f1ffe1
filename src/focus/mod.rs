//! The conference focus: rooms, conferences, participants, and the media plan.
//!
//! Owns the rules of who is in which conference (random conference and participant
//! identifiers, SPEC P6), the life of a conference (it starts with the first join to a room a
//! host created and ends once the room has been empty for `focus.empty_grace`), and which media
//! go to whom. Commands come from signalling; the media plan goes to the SFU; records go to the
//! `focus` stream with identifiers, never names. It must never do socket I/O or look inside SDP.

mod conference;
mod events;
mod plan;
mod room;
mod speaker;
mod state;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

pub use events::{
    Action, ActionError, EndReason, JoinError, JoinOutcome, JoinRequest, Joined, LeaveReason,
    MediaKind, ParticipantEvent, ParticipantInfo, Permissions, Role, RoomState, WaitReason,
};
pub use room::{MAX_ROOM_NAME, RoomName, RoomNameError};

use crate::config::FocusSettings;
use crate::ids::ParticipantId;
use crate::privacy::FOCUS;
use crate::sfu::{ClientSignal, SfuCommand, SfuEvent, SfuHandle};
use crate::stats::usage::{ConferenceUsage, Usage};
use events::{Effect, FocusRecord};
use state::Conferences;

/// A participant session's inbox. Bounded: a session that lets [`SESSION_INBOX`] events pile up
/// (a client that stopped reading) is ended as if its connection had dropped, rather than
/// holding the focus's events in memory for as long as it stalls.
pub type ParticipantSink = mpsc::Sender<ParticipantEvent>;

/// Events a session's inbox holds before it is too slow to keep: a room's worth of arrivals
/// and chat, many times over what a reading client ever has waiting.
pub const SESSION_INBOX: usize = 1024;

enum FocusCommand {
    Join {
        request: JoinRequest,
        room_exists: bool,
        events: ParticipantSink,
        reply: oneshot::Sender<Result<JoinOutcome, JoinError>>,
    },
    Act {
        participant: ParticipantId,
        action: Action,
        reply: oneshot::Sender<Result<(), ActionError>>,
    },
    EndRoom {
        room: RoomName,
        reply: oneshot::Sender<bool>,
    },
    RoomStatus {
        room: RoomName,
        reply: oneshot::Sender<Option<usize>>,
    },
    Leave {
        participant: ParticipantId,
        reason: LeaveReason,
        /// The session that is ending (`None` if the focus already let go of it): a late leave
        /// from a replaced session is ignored.
        session: Option<ParticipantSink>,
    },
    Signal {
        participant: ParticipantId,
        signal: ClientSignal,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
    Stats {
        reply: oneshot::Sender<FocusStats>,
    },
}

/// Counts for health checks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FocusStats {
    pub conferences: usize,
    pub participants: usize,
}

/// A handle to the focus; cheap to clone.
#[derive(Clone)]
pub struct Focus {
    commands: mpsc::UnboundedSender<FocusCommand>,
}

impl Focus {
    /// Starts the focus task.
    pub fn start(
        settings: FocusSettings,
        usage: Arc<Usage>,
        sfu: SfuHandle,
        sfu_events: mpsc::UnboundedReceiver<SfuEvent>,
        health: Arc<crate::health::Health>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let actor = Actor {
            state: Conferences::new(
                settings.empty_grace,
                settings.max_participants,
                settings.wait_for_host,
                settings.reconnect_grace,
            )
            .with_max_conferences(settings.max_conferences),
            sinks: std::collections::HashMap::new(),
            usage,
            sfu,
        };
        let running = tokio::spawn(actor.run(rx, sfu_events));
        // The actor ends on shutdown; a panic instead leaves a server without signalling.
        tokio::spawn(async move {
            if running.await.is_err_and(|e| e.is_panic()) {
                tracing::error!(target: crate::privacy::TECHNICAL, event = "focus-failed");
                health.fail("focus");
            }
        });
        Self { commands: tx }
    }

    /// Asks to join; `events` receives everything the participant must be told from now on
    /// (including, for a waiting participant, that they were admitted). `room_exists` is
    /// whether the room exists (a host created it, or a moderator's link opened it).
    pub async fn join(
        &self,
        request: JoinRequest,
        room_exists: bool,
        events: ParticipantSink,
    ) -> Result<JoinOutcome, JoinError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(FocusCommand::Join {
                request,
                room_exists,
                events,
                reply,
            })
            .map_err(|_| JoinError::Unavailable)?;
        answer.await.unwrap_or(Err(JoinError::Unavailable))
    }

    /// The session with inbox `session` ends; the participant leaves (or, if only the
    /// connection dropped, may come back for a while).
    pub fn leave(
        &self,
        participant: ParticipantId,
        reason: LeaveReason,
        session: &mpsc::WeakSender<ParticipantEvent>,
    ) {
        let _ = self.commands.send(FocusCommand::Leave {
            participant,
            reason,
            session: session.upgrade(),
        });
    }

    /// Carries out a participant's action; refused if they may not.
    pub async fn act(&self, participant: ParticipantId, action: Action) -> Result<(), ActionError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(FocusCommand::Act {
                participant,
                action,
                reply,
            })
            .map_err(|_| ActionError::NotAllowed)?;
        answer.await.unwrap_or(Err(ActionError::NotAllowed))
    }

    /// Ends the conference in a room for everyone; false if none was running.
    pub async fn end_room(&self, room: RoomName) -> bool {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(FocusCommand::EndRoom { room, reply })
            .is_err()
        {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// How many participants the conference in a room has, if one runs.
    pub async fn room_status(&self, room: RoomName) -> Option<usize> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(FocusCommand::RoomStatus { room, reply })
            .ok()?;
        answer.await.ok().flatten()
    }

    pub fn signal(&self, participant: ParticipantId, signal: ClientSignal) {
        let _ = self.commands.send(FocusCommand::Signal {
            participant,
            signal,
        });
    }

    pub async fn stats(&self) -> FocusStats {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(FocusCommand::Stats { reply }).is_err() {
            return FocusStats::default();
        }
        answer.await.unwrap_or_default()
    }

    /// Ends every conference (participants are told) and waits until that is done.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(FocusCommand::Shutdown { done }).is_ok() {
            let _ = finished.await;
        }
    }
}

struct Actor {
    state: Conferences,
    sinks: std::collections::HashMap<ParticipantId, ParticipantSink>,
    usage: Arc<Usage>,
    sfu: SfuHandle,
}

impl Actor {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<FocusCommand>,
        mut sfu_events: mpsc::UnboundedReceiver<SfuEvent>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(event) = sfu_events.recv() => match event {
                    SfuEvent::PeerGone { participant } => {
                        self.notify(&participant, ParticipantEvent::Ended(EndReason::MediaFailed));
                        let effects =
                            self.state
                                .leave(Instant::now(), &participant, LeaveReason::MediaFailed);
                        self.apply(effects);
                    }
                    SfuEvent::Voice(shares) => {
                        let effects = self.state.voice(&shares);
                        self.apply(effects);
                    }
                },
                _ = tick.tick() => {
                    let effects = self.state.tick(Instant::now());
                    self.apply(effects);
                }
            }
        }
    }

    fn on_command(&mut self, command: FocusCommand) {
        let now = Instant::now();
        match command {
            FocusCommand::Join {
                request,
                room_exists,
                events,
                reply,
            } => {
                let (result, effects) = self.state.join(now, request, room_exists);
                let id = match &result {
                    Ok(JoinOutcome::Joined(joined)) => Some(joined.you.clone()),
                    Ok(JoinOutcome::Waiting { id, .. }) => Some(id.clone()),
                    Err(_) => None,
                };
                if let Some(id) = id {
                    self.sinks.insert(id, events);
                    let usage = self.usage.clone();
                    let concurrent = self.state.participant_count() as u64;
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = usage.observe_concurrent(SystemTime::now(), concurrent) {
                            warn!(error = %e, "cannot record usage");
                        }
                    });
                }
                // The reply goes first so that `joined` precedes anything about the others.
                let _ = reply.send(result);
                self.apply(effects);
            }
            FocusCommand::Leave {
                participant,
                reason,
                session,
            } => {
                // A participant who resumed on a new connection is not taken out by the old
                // connection's late goodbye.
                let replaced = match (self.sinks.get(&participant), &session) {
                    (Some(current), Some(ending)) => !current.same_channel(ending),
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                if !replaced {
                    let effects = self.state.leave(now, &participant, reason);
                    self.apply(effects);
                }
            }
            FocusCommand::Act {
                participant,
                action,
                reply,
            } => {
                let (result, effects) = self.state.act(now, &participant, action);
                // The answer first: an error reaches the client before anything else.
                let _ = reply.send(result);
                self.apply(effects);
            }
            FocusCommand::EndRoom { room, reply } => {
                let effects = self.state.end_room(now, &room);
                let _ = reply.send(!effects.is_empty());
                self.apply(effects);
            }
            FocusCommand::RoomStatus { room, reply } => {
                let _ = reply.send(self.state.participants_in(&room));
            }
            FocusCommand::Signal {
                participant,
                signal,
            } => {
                let effects = self.state.signal(&participant, signal);
                self.apply(effects);
            }
            FocusCommand::Shutdown { done } => {
                let effects = self.state.shutdown(now);
                self.apply(effects);
                let _ = done.send(());
            }
            FocusCommand::Stats { reply } => {
                let _ = reply.send(FocusStats {
                    conferences: self.state.conference_count(),
                    participants: self.state.participant_count(),
                });
            }
        }
    }

    /// An ended conference, anonymously, for usage reports.
    fn count_usage(&self, record: &FocusRecord) {
        let FocusRecord::ConferenceEnded {
            seconds,
            age_seconds,
            peak_participants,
            participants,
            participant_seconds,
            ..
        } = *record
        else {
            return;
        };
        let conference = ConferenceUsage {
            started: SystemTime::now() - Duration::from_secs(age_seconds),
            participants: participants as u32,
            peak: peak_participants as u32,
            participant_seconds,
            duration_seconds: seconds,
        };
        let usage = self.usage.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = usage.record_conference(&conference) {
                warn!(error = %e, "cannot record usage");
            }
        });
    }

    fn notify(&mut self, participant: &ParticipantId, event: ParticipantEvent) {
        let Some(sink) = self.sinks.get(participant) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = sink.try_send(event) {
            // Too slow to keep: the inbox closes once the media side lets go of it too, the
            // session ends as disconnected and its leave comes back here.
            warn!(target: crate::privacy::TECHNICAL, event = "session-too-slow");
            self.sinks.remove(participant);
            self.sfu.send(SfuCommand::RemovePeer {
                participant: participant.clone(),
            });
        }
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Notify(participant, event) => self.notify(&participant, event),
                Effect::StartMedia {
                    participant,
                    conference,
                } => {
                    let Some(sink) = self.sinks.get(&participant).cloned() else {
                        continue;
                    };
                    self.sfu.send(SfuCommand::AddPeer {
                        participant,
                        conference,
                        signals: Box::new(move |signal| {
                            // A full inbox is a session being ended (see `notify`).
                            let _ = sink.try_send(ParticipantEvent::Media(signal));
                        }),
                    });
                }
                Effect::StopMedia { participant } => {
                    self.sfu.send(SfuCommand::RemovePeer { participant });
                }
                Effect::Forwarding {
                    participant,
                    audio,
                    video,
                } => {
                    self.sfu.send(SfuCommand::SetForwarding {
                        participant,
                        audio,
                        video,
                    });
                }
                Effect::Forget(participant) => {
                    self.sinks.remove(&participant);
                }
                Effect::Plan {
                    participant,
                    publishers,
                } => {
                    self.sfu.send(SfuCommand::SetPlan {
                        participant,
                        publishers,
                    });
                }
                Effect::Signal {
                    participant,
                    signal,
                } => {
                    self.sfu.send(SfuCommand::Signal {
                        participant,
                        signal,
                    });
                }
                Effect::Log(record) => {
                    log_record(&record);
                    self.count_usage(&record);
                }
            }
        }
    }
}

fn log_record(record: &FocusRecord) {
    match record {
        FocusRecord::ConferenceStarted { conference, room } => {
            info!(target: FOCUS, event = "conference-started", %conference, %room);
        }
        FocusRecord::ParticipantJoined {
            conference,
            participant,
            role,
        } => {
            info!(
                target: FOCUS,
                event = "participant-joined",
                %conference,
                %participant,
                role = role.as_str(),
            );
        }
        FocusRecord::ParticipantWaiting {
            conference,
            participant,
            reason,
        } => {
            info!(
                target: FOCUS,
                event = "participant-waiting",
                %conference,
                %participant,
                reason = reason.as_str(),
            );
        }
        FocusRecord::Moderation {
            conference,
            by,
            action,
            target,
        } => {
            info!(
                target: FOCUS,
                event = "moderation",
                %conference,
                by = %by,
                action,
                target = target.as_ref().map(|t| t.as_str()),
            );
        }
        FocusRecord::ActionRefused {
            conference,
            by,
            action,
            reason,
        } => {
            info!(
                target: FOCUS,
                event = "action-refused",
                %conference,
                by = %by,
                action,
                reason = reason.as_str(),
            );
        }
        FocusRecord::ParticipantLeft {
            conference,
            participant,
            reason,
            seconds,
        } => {
            info!(
                target: FOCUS,
                event = "participant-left",
                %conference,
                %participant,
                reason = reason.as_str(),
                seconds,
            );
        }
        FocusRecord::ConferenceEnded {
            conference,
            room,
            seconds,
            peak_participants,
            participants,
            ..
        } => {
            info!(
                target: FOCUS,
                event = "conference-ended",
                %conference,
                %room,
                seconds,
                peak_participants,
                participants,
            );
        }
        FocusRecord::ParticipantAway {
            conference,
            participant,
        } => {
            info!(target: FOCUS, event = "participant-away", %conference, %participant);
        }
        FocusRecord::ParticipantResumed {
            conference,
            participant,
        } => {
            info!(target: FOCUS, event = "participant-resumed", %conference, %participant);
        }
        FocusRecord::JoinRefused { room, reason } => {
            info!(target: FOCUS, event = "join-refused", %room, reason = reason.as_str());
        }
    }
}
