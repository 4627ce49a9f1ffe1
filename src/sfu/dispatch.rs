//! The SFU handle's side of the workers: every command goes to the worker that owns its
//! participant's connection.
//!
//! A new connection is placed first ([`Assignments`]: with its conference, or for a new
//! conference on the least loaded worker, with an ICE username fragment of its own), the
//! reading worker's router is told where that ufrag lives, and then the owning worker creates
//! the connection. With one worker every placement is on worker 0 and the router has nothing
//! to decide; the path is the same. Locked once per command, never per packet.

use std::sync::Mutex;

use tokio::sync::mpsc;

use super::SfuCommand;
use super::demux::{stun_integrity_holds, stun_target_ufrag};
use super::runtime::WorkerCommand;
use super::workers::Assignments;

/// The workers' command channels, and where conferences and participants are.
pub struct Dispatch {
    workers: Vec<mpsc::UnboundedSender<WorkerCommand>>,
    assignments: Mutex<Assignments>,
}

impl Dispatch {
    pub fn new(workers: Vec<mpsc::UnboundedSender<WorkerCommand>>) -> Self {
        let assignments = Mutex::new(Assignments::new(workers.len()));
        Self {
            workers,
            assignments,
        }
    }

    /// The worker whose connection a STUN request is for, if it names one and its
    /// MESSAGE-INTEGRITY proves it knows that connection's password: where a new ICE-TCP
    /// connection's datagrams go (`super::ice_tcp`), decided once per connection.
    pub fn worker_for_stun(&self, request: &[u8]) -> Option<usize> {
        let ufrag = stun_target_ufrag(request)?;
        let (worker, pwd) = {
            let assignments = match self.assignments.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            let placement = assignments.placement_of_ufrag(ufrag)?;
            (placement.worker, placement.credentials.pwd.clone())
        };
        stun_integrity_holds(request, &pwd).then_some(worker)
    }

    /// Sends a command to the worker of its participant; false if that worker has stopped.
    pub fn send(&self, command: SfuCommand) -> bool {
        let to = |worker: usize, command: WorkerCommand| {
            self.workers
                .get(worker)
                .is_some_and(|w| w.send(command).is_ok())
        };
        // The reading worker routes datagrams; it is the first.
        let route = |credentials, worker| {
            to(
                0,
                WorkerCommand::Route {
                    credentials,
                    worker,
                },
            )
        };
        let mut assignments = match self.assignments.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        match command {
            SfuCommand::AddPeer {
                participant,
                conference,
                signals,
            } => {
                let (placed, old) = assignments.place(&participant, &conference);
                if let Some(old) = old {
                    to(
                        old.worker,
                        WorkerCommand::Peer(SfuCommand::RemovePeer {
                            participant: participant.clone(),
                        }),
                    );
                    route(old.credentials, None);
                }
                // The route first: no STUN can name the ufrag before the worker has answered
                // the client's offer with it.
                route(placed.credentials.clone(), Some(placed.worker));
                to(
                    placed.worker,
                    WorkerCommand::AddPeer {
                        participant,
                        signals,
                        credentials: placed.credentials,
                    },
                )
            }
            SfuCommand::RemovePeer { participant } => match assignments.remove(&participant) {
                Some(placed) => {
                    route(placed.credentials, None);
                    to(
                        placed.worker,
                        WorkerCommand::Peer(SfuCommand::RemovePeer { participant }),
                    )
                }
                None => true,
            },
            command => match assignments.worker_of(command.participant()) {
                Some(worker) => to(worker, WorkerCommand::Peer(command)),
                None => true,
            },
        }
    }
}
