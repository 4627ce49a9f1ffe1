//! Which media worker owns a conference, and which worker a datagram on the shared port is for.
//!
//! The SFU runs one worker thread per core. A conference lives wholly on one worker, so
//! forwarding never crosses threads. [`Assignments`] (kept by the SFU's handle, touched once
//! per command) places each new conference on the worker with the fewest connections and
//! remembers where every participant went. [`Router`] (kept by the first worker, which reads
//! the one UDP port) sends each datagram to its worker: a STUN request by the ICE username the
//! connection was given, everything else by the source address that STUN came from. Pure: no
//! threads, no sockets; unit-tested here. It must never look inside media, and never log.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::connection::new_ice_credentials;
use super::demux::{Directory, IceCredentials};
use crate::ids::{ConferenceId, ParticipantId};

/// Where one participant's connection lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub worker: usize,
    pub credentials: IceCredentials,
}

/// Conferences and participants on workers, as the SFU's handle places them.
#[derive(Debug)]
pub struct Assignments {
    /// Connections per worker.
    load: Vec<usize>,
    /// The worker of each conference with at least one connection, and how many it has.
    conferences: HashMap<ConferenceId, (usize, usize)>,
    participants: HashMap<ParticipantId, (Placement, ConferenceId)>,
    /// Whose connection each ICE username fragment names.
    by_ufrag: HashMap<String, ParticipantId>,
}

impl Assignments {
    pub fn new(workers: usize) -> Self {
        Self {
            load: vec![0; workers.max(1)],
            conferences: HashMap::new(),
            participants: HashMap::new(),
            by_ufrag: HashMap::new(),
        }
    }

    /// Places a participant's new connection: on its conference's worker, or for a conference's
    /// first connection on the worker with the fewest (the first of them on a tie). A
    /// participant placed before is moved out first ([`Self::remove`]'s result is returned).
    pub fn place(
        &mut self,
        participant: &ParticipantId,
        conference: &ConferenceId,
    ) -> (Placement, Option<Placement>) {
        let old = self.remove(participant);
        let worker = match self.conferences.get_mut(conference) {
            Some((worker, connections)) => {
                *connections += 1;
                *worker
            }
            None => {
                let worker = (0..self.load.len())
                    .min_by_key(|w| self.load[*w])
                    .unwrap_or(0);
                self.conferences.insert(conference.clone(), (worker, 1));
                worker
            }
        };
        self.load[worker] += 1;
        let by_ufrag = &self.by_ufrag;
        let credentials = new_ice_credentials(|u| by_ufrag.contains_key(u));
        self.by_ufrag
            .insert(credentials.ufrag.clone(), participant.clone());
        let placement = Placement {
            worker,
            credentials,
        };
        self.participants
            .insert(participant.clone(), (placement.clone(), conference.clone()));
        (placement, old)
    }

    /// Where a participant's connection is.
    pub fn worker_of(&self, participant: &ParticipantId) -> Option<usize> {
        self.participants.get(participant).map(|(p, _)| p.worker)
    }

    /// The connection an ICE username fragment names.
    pub fn placement_of_ufrag(&self, ufrag: &str) -> Option<&Placement> {
        let participant = self.by_ufrag.get(ufrag)?;
        self.participants.get(participant).map(|(p, _)| p)
    }

    /// Forgets a participant's connection; a conference without connections is forgotten too,
    /// and may be placed elsewhere when it starts again.
    pub fn remove(&mut self, participant: &ParticipantId) -> Option<Placement> {
        let (placement, conference) = self.participants.remove(participant)?;
        self.by_ufrag.remove(&placement.credentials.ufrag);
        self.load[placement.worker] -= 1;
        if let Some((_, connections)) = self.conferences.get_mut(&conference) {
            *connections -= 1;
            if *connections == 0 {
                self.conferences.remove(&conference);
            }
        }
        Some(placement)
    }
}

/// The first worker's table from datagrams to workers. With one worker every datagram is the
/// first worker's, and the table stays empty.
#[derive(Debug)]
pub struct Router {
    workers: usize,
    directory: Directory<u64>,
    by_ufrag: HashMap<String, u64>,
    worker_of: HashMap<u64, usize>,
    next_route: u64,
}

impl Router {
    pub fn new(workers: usize) -> Self {
        Self {
            workers,
            directory: Directory::default(),
            by_ufrag: HashMap::new(),
            worker_of: HashMap::new(),
            next_route: 0,
        }
    }

    /// A connection with these ICE credentials lives on `worker`.
    pub fn add(&mut self, credentials: IceCredentials, worker: usize) {
        if self.workers <= 1 {
            return;
        }
        self.remove(&credentials.ufrag);
        let route = self.next_route;
        self.next_route += 1;
        let ufrag = credentials.ufrag.clone();
        self.directory.insert_peer(credentials, route);
        self.worker_of.insert(route, worker);
        self.by_ufrag.insert(ufrag, route);
    }

    /// The connection with this ICE username fragment is gone.
    pub fn remove(&mut self, ufrag: &str) {
        if let Some(route) = self.by_ufrag.remove(ufrag) {
            self.directory.remove_peer(ufrag, route);
            self.worker_of.remove(&route);
        }
    }

    /// The worker a datagram is for; `None` if no connection claims it.
    pub fn route(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<usize> {
        if self.workers <= 1 {
            return Some(0);
        }
        let route = self.directory.route(from, datagram)?;
        self.worker_of.get(&route).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ParticipantId {
        ParticipantId::parse(&format!("{s:-<12}")).unwrap()
    }

    const PWD: &str = "a-password-of-thirty-two-letters";

    /// A STUN binding request addressed to `ufrag` (USERNAME `ufrag:client`), signed.
    fn stun(ufrag: &str) -> Vec<u8> {
        let request = crate::sfu::demux::requests::stun_without_integrity(&format!("{ufrag}:abcd"));
        crate::sfu::demux::requests::signed(request, PWD)
    }

    fn credentials(ufrag: &str) -> IceCredentials {
        IceCredentials {
            ufrag: ufrag.into(),
            pwd: PWD.into(),
        }
    }

    #[test]
    fn a_conference_stays_on_one_worker_and_new_ones_go_where_fewest_are() {
        let (k1, k2) = (ConferenceId::random(), ConferenceId::random());
        let mut a = Assignments::new(2);
        let (first, _) = a.place(&id("a1"), &k1);
        let (second, _) = a.place(&id("a2"), &k1);
        let (third, _) = a.place(&id("a3"), &k1);
        assert_eq!([first.worker, second.worker, third.worker], [0, 0, 0]);
        let (other, _) = a.place(&id("b1"), &k2);
        assert_eq!(other.worker, 1, "the emptier worker");
        let (again, _) = a.place(&id("b2"), &k2);
        assert_eq!(again.worker, 1, "with its conference");
        let ufrags: std::collections::HashSet<_> = [&first, &second, &third, &other, &again]
            .iter()
            .map(|p| p.credentials.ufrag.clone())
            .collect();
        assert_eq!(ufrags.len(), 5, "every connection has its own ufrag");
        assert_eq!(a.worker_of(&id("b2")), Some(1));
    }

    #[test]
    fn an_emptied_conference_is_placed_afresh_and_a_rejoin_moves_the_participant() {
        let (k1, k2, k3) = (
            ConferenceId::random(),
            ConferenceId::random(),
            ConferenceId::random(),
        );
        let mut a = Assignments::new(2);
        a.place(&id("a1"), &k1);
        a.place(&id("b1"), &k2);
        assert_eq!(a.remove(&id("a1")).map(|p| p.worker), Some(0));
        assert_eq!(a.remove(&id("a1")), None, "only once");
        // k1 is gone; worker 0 is empty again, so a third conference goes there.
        let (c, _) = a.place(&id("c1"), &k3);
        assert_eq!(c.worker, 0);
        let (moved, old) = a.place(&id("c1"), &k2);
        assert_eq!(moved.worker, 1);
        assert_eq!(old.map(|p| p.worker), Some(0));
        assert_ne!(
            moved.credentials.ufrag, c.credentials.ufrag,
            "a new connection, a new ufrag"
        );
        assert_eq!(a.load, vec![0, 2]);
    }

    #[test]
    fn stun_routes_by_ufrag_and_teaches_the_address_for_what_follows() {
        let mut r = Router::new(2);
        r.add(credentials("aaaaaaaaaaaaaaaa"), 0);
        r.add(credentials("bbbbbbbbbbbbbbbb"), 1);
        let alice: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let bob: SocketAddr = "192.0.2.2:5000".parse().unwrap();
        let srtp = [0x80u8, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9, 9];
        assert_eq!(r.route(bob, &srtp), None, "an address no STUN came from");
        assert_eq!(r.route(bob, &stun("bbbbbbbbbbbbbbbb")), Some(1));
        assert_eq!(r.route(alice, &stun("aaaaaaaaaaaaaaaa")), Some(0));
        assert_eq!(r.route(bob, &srtp), Some(1));
        assert_eq!(r.route(alice, &srtp), Some(0));
        let stranger: SocketAddr = "192.0.2.3:5000".parse().unwrap();
        assert_eq!(
            r.route(stranger, &stun("cccccccccccccccc")),
            None,
            "nobody's"
        );
        r.remove("bbbbbbbbbbbbbbbb");
        assert_eq!(r.route(bob, &srtp), None, "gone with its connection");
        assert_eq!(r.route(alice, &srtp), Some(0));
    }
}
