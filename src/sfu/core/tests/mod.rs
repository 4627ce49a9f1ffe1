//! The core driven without sockets or threads: a test network moves datagrams between the
//! [`Core`] and browser-like clients ([`client::Client`], full `rtc` connections), and a test
//! clock moves time. ICE, DTLS-SRTP, negotiation and forwarding all run for real; only the wire
//! is a function call, so a test can drop what it likes and take seconds in microseconds.

mod client;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use super::{Candidates, Core, Output, Transmit, Transport};
use crate::ids::ParticipantId;
use crate::sfu::counters::SfuCounters;
use crate::sfu::demux::IceCredentials;
use crate::sfu::{ClientSignal, SfuEvent};
use client::Client;

const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 10000);
/// Clients send a packet of audio, and a frame of video every other time, this often.
const MEDIA_TICK: Duration = Duration::from_millis(20);
const STEP: Duration = Duration::from_millis(5);

/// Decides, for each datagram the core sends, whether the network loses it.
type Loss = Box<dyn FnMut(&Transmit) -> bool>;

struct Net {
    core: Core,
    clients: Vec<Client>,
    now: Instant,
    next_media: Instant,
    ticks: u64,
    events: Vec<SfuEvent>,
    loss: Option<Loss>,
    /// Clients whose camera is off (audio only).
    cameras_off: Vec<ParticipantId>,
}

impl Net {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            core: Core::new(
                now,
                0,
                Candidates {
                    udp: vec![SERVER],
                    tcp: Vec::new(),
                },
                Arc::new(SfuCounters::for_workers(1)),
                None,
            ),
            clients: Vec::new(),
            now,
            next_media: now,
            ticks: 0,
            events: Vec::new(),
            loss: None,
            cameras_off: Vec::new(),
        }
    }

    /// A participant joins: the focus adds its connection, its client offers to publish.
    fn join(&mut self, simulcast: bool) -> ParticipantId {
        let id = ParticipantId::random();
        let port = 20_000 + self.clients.len() as u16;
        let addr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), port);
        let mut client = Client::new(self.now, id.clone(), addr, simulcast);
        let credentials = IceCredentials {
            ufrag: format!("ufrag{port:0>11}"),
            pwd: format!("password-of-the-connection-{port}"),
        };
        self.core.add_peer(self.now, id.clone(), credentials);
        let offer = client.offer(self.now);
        self.clients.push(client);
        self.core.handle_signal(self.now, &id, offer);
        self.shuttle();
        id
    }

    /// The focus's plan: everyone receives everyone else.
    fn everyone_receives_everyone(&mut self) {
        let ids: Vec<ParticipantId> = self.clients.iter().map(|c| c.id.clone()).collect();
        for id in &ids {
            let others = ids.iter().filter(|o| *o != id).cloned().collect();
            self.core.set_plan(self.now, id, others);
        }
        self.shuttle();
    }

    fn client(&self, id: &ParticipantId) -> &Client {
        self.clients.iter().find(|c| &c.id == id).expect("a client")
    }

    fn client_mut(&mut self, id: &ParticipantId) -> &mut Client {
        self.clients
            .iter_mut()
            .find(|c| &c.id == id)
            .expect("a client")
    }

    /// Moves everything in flight until nobody has anything more to say.
    fn shuttle(&mut self) {
        loop {
            let mut moved = false;
            for client in &mut self.clients {
                while let Some(out) = client.pc.poll_write() {
                    moved = true;
                    if client.online {
                        self.core.handle_datagram(
                            self.now,
                            Transport::Udp,
                            client.addr,
                            Some(SERVER.ip()),
                            &out.message,
                        );
                    }
                }
            }
            while let Some(transmit) = self.core.poll_transmit() {
                moved = true;
                assert_eq!(transmit.transport, Transport::Udp);
                let lost = self.loss.as_mut().is_some_and(|loss| loss(&transmit));
                let Some(client) = self.clients.iter_mut().find(|c| c.addr == transmit.to) else {
                    continue;
                };
                if lost || !client.online {
                    continue;
                }
                let _ = client.pc.handle_read(TaggedBytesMut {
                    now: self.now,
                    transport: TransportContext {
                        local_addr: client.addr,
                        peer_addr: SERVER,
                        ecn: None,
                        transport_protocol: TransportProtocol::UDP,
                    },
                    message: transmit.contents,
                });
            }
            while let Some(output) = self.core.poll_output() {
                moved = true;
                match output {
                    Output::Event(event) => self.events.push(event),
                    Output::Signal {
                        participant,
                        signal,
                    } => {
                        let now = self.now;
                        let reply = self.client_mut(&participant).on_signal(now, signal);
                        if let Some(reply) = reply {
                            self.core.handle_signal(now, &participant, reply);
                        }
                    }
                }
            }
            for client in &mut self.clients {
                client.drain();
            }
            if !moved {
                break;
            }
        }
    }

    /// Lets `duration` pass: timers fire, clients send media.
    fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.now += STEP;
            let now = self.now;
            if self.next_media <= now {
                self.next_media = now + MEDIA_TICK;
                self.ticks += 1;
                let video = self.ticks.is_multiple_of(2);
                for client in &mut self.clients {
                    let camera = !self.cameras_off.contains(&client.id);
                    if client.online {
                        client.send_media(now, video && camera);
                    }
                }
            }
            for client in &mut self.clients {
                if client.pc.poll_timeout().is_some_and(|t| t <= now) {
                    let _ = client.pc.handle_timeout(now);
                }
            }
            if self.core.poll_timeout() <= now {
                self.core.handle_timeout(now);
            }
            self.shuttle();
        }
    }

    /// Runs until every client is connected and receives media from everyone else.
    fn settle(&mut self) {
        for _ in 0..400 {
            self.run(Duration::from_millis(50));
            let all = self.clients.iter().all(|c| {
                c.connected
                    && self
                        .clients
                        .iter()
                        .filter(|o| o.id != c.id)
                        .all(|o| !c.from(&o.id, false).is_empty())
            });
            if all {
                return;
            }
        }
        panic!("the clients did not connect and receive each other within 20 s");
    }

    /// Forgets what every client received so far.
    fn clear(&mut self) {
        for client in &mut self.clients {
            client.got.clear();
        }
    }
}

#[test]
fn a_publisher_reaches_every_receiver_with_each_packet_once_and_in_order() {
    let mut net = Net::new();
    let publisher = net.join(false);
    let receivers: Vec<ParticipantId> = (0..3).map(|_| net.join(false)).collect();
    for receiver in &receivers {
        net.cameras_off.push(receiver.clone());
    }
    net.everyone_receives_everyone();
    net.settle();
    net.run(Duration::from_secs(1));
    net.clear();
    net.run(Duration::from_secs(2));
    for receiver in &receivers {
        let client = net.client(receiver);
        for video in [false, true] {
            let got = client.from(&publisher, video);
            // 2 s of 50 audio packets, or 25 video frames, a second; the window's edges may
            // cut one off.
            let expected = if video { 50 } else { 100 };
            assert!(
                got.len() >= expected - 2 && got.len() <= expected,
                "{} {} packets, not about {expected}",
                got.len(),
                if video { "video" } else { "audio" },
            );
            // The publisher's numbers, one by one: nothing lost, doubled or reordered.
            for pair in got.windows(2) {
                assert_eq!(pair[1].sent_as, pair[0].sent_as.wrapping_add(1));
                assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
            }
        }
        // Receivers publish audio only: one receives the others' audio, and no video.
        for other in receivers.iter().filter(|o| *o != receiver) {
            assert!(!client.from(other, false).is_empty());
            assert!(client.from(other, true).is_empty());
        }
    }
    // Each receiver's copy is a stream of its own: its own SSRC.
    let ssrcs: std::collections::HashSet<u32> = receivers
        .iter()
        .map(|r| net.client(r).from(&publisher, true)[0].ssrc)
        .collect();
    assert_eq!(ssrcs.len(), receivers.len());
    assert!(net.events.iter().all(|e| matches!(e, SfuEvent::Voice(_))));
}

#[test]
fn a_receiver_is_switched_to_the_layer_its_tile_needs_without_a_gap_in_numbers() {
    let mut net = Net::new();
    let publisher = net.join(true);
    let receiver = net.join(false);
    net.cameras_off.push(receiver.clone());
    net.everyone_receives_everyone();
    net.settle();
    // Layer rates are known after half a second; the three layers fit the first estimate.
    net.run(Duration::from_secs(2));
    net.clear();
    net.run(Duration::from_secs(1));
    let layers = |net: &Net| -> Vec<u8> {
        net.client(&receiver)
            .from(&publisher, true)
            .iter()
            .map(|g| g.layer)
            .collect()
    };
    assert!(
        layers(&net).iter().all(|l| *l == 2),
        "on the top layer: {:?}",
        layers(&net)
    );
    // The client now shows the camera as a small tile: the lowest layer is enough.
    let stream = publisher.to_string();
    let small = ClientSignal::ReceiveVideo {
        heights: [(stream, 180)].into_iter().collect(),
        last_n: None,
    };
    net.core.handle_signal(net.now, &receiver, small);
    net.run(Duration::from_secs(2));
    let got = net.client(&receiver).from(&publisher, true);
    let first_low = got
        .iter()
        .position(|g| g.layer == 0)
        .expect("switched to the lowest layer");
    assert!(
        got[first_low..].iter().all(|g| g.layer == 0),
        "and stays there"
    );
    assert!(first_low > 0, "the top layer until the switch");
    // One continuous stream for the receiver: the same SSRC, numbers one apart.
    for pair in got.windows(2) {
        assert_eq!(pair[1].ssrc, pair[0].ssrc);
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
    }
}

#[test]
fn a_lost_video_packet_is_resent_when_the_receiver_asks() {
    let mut net = Net::new();
    let publisher = net.join(false);
    let receiver = net.join(false);
    net.cameras_off.push(receiver.clone());
    net.everyone_receives_everyone();
    net.settle();
    net.run(Duration::from_secs(1));
    // The network loses three of the video packets sent to the receiver, the first time each
    // is sent (a resend goes through). SRTP hides which packet is which, so the test counts the
    // large ones: audio payloads here are small, video ones larger.
    let to = net.client(&receiver).addr;
    let mut seen = 0;
    net.loss = Some(Box::new(move |t: &Transmit| {
        if t.to != to || t.contents.len() < 140 || t.contents[1] & 0x7f != 96 {
            return false;
        }
        seen += 1;
        [5, 9, 13].contains(&seen)
    }));
    net.clear();
    net.run(Duration::from_secs(2));
    let got = net.client(&receiver).from(&publisher, true);
    let mut numbers: Vec<u16> = got.iter().map(|g| g.sent_as).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let (first, last) = (numbers[0], *numbers.last().expect("video arrived"));
    assert_eq!(
        numbers.len(),
        usize::from(last.wrapping_sub(first)) + 1,
        "every frame arrived in the end: {numbers:?}"
    );
    // The first loss at least is seen late (the others may be answered before the next frame
    // is sent, when the receiver's request and the resend fall in the same tick).
    let resent = got
        .windows(2)
        .filter(|w| w[1].sent_as < w[0].sent_as)
        .count();
    assert!(
        resent >= 1,
        "a lost packet came late, as a resend: {:?}",
        got.iter().map(|g| g.sent_as).collect::<Vec<_>>()
    );
}

#[test]
fn a_moderators_mute_stops_what_the_publisher_sends_reaching_anyone() {
    let mut net = Net::new();
    let publisher = net.join(false);
    let receiver = net.join(false);
    net.everyone_receives_everyone();
    net.settle();
    net.core.set_forwarding(net.now, &publisher, true, false);
    net.run(Duration::from_millis(200));
    net.clear();
    net.run(Duration::from_secs(1));
    let client = net.client(&receiver);
    assert!(client.from(&publisher, true).is_empty(), "no video");
    assert!(!client.from(&publisher, false).is_empty(), "audio still");
    assert!(
        !net.client(&publisher).from(&receiver, true).is_empty(),
        "the other way on"
    );
    net.core.set_forwarding(net.now, &publisher, false, false);
    net.run(Duration::from_millis(200));
    net.clear();
    net.run(Duration::from_secs(1));
    assert!(
        net.client(&receiver).from(&publisher, false).is_empty(),
        "no audio"
    );
    net.core.set_forwarding(net.now, &publisher, true, true);
    net.clear();
    net.run(Duration::from_secs(1));
    assert!(
        !net.client(&receiver).from(&publisher, true).is_empty(),
        "video again"
    );
}

#[test]
fn a_peer_that_vanishes_is_reported_gone_and_the_others_go_on() {
    let mut net = Net::new();
    let ids: Vec<ParticipantId> = (0..3).map(|_| net.join(false)).collect();
    net.everyone_receives_everyone();
    net.settle();
    let gone = ids[2].clone();
    net.client_mut(&gone).online = false;
    // ICE consent: disconnected after 3 s without traffic, failed 3 s later.
    let mut waited = Duration::ZERO;
    while !net.events.contains(&SfuEvent::PeerGone {
        participant: gone.clone(),
    }) {
        assert!(waited < Duration::from_secs(10), "reported within 10 s");
        net.run(Duration::from_millis(100));
        waited += Duration::from_millis(100);
    }
    assert!(
        waited >= Duration::from_secs(3),
        "not before consent expired"
    );
    let reports = net
        .events
        .iter()
        .filter(|e| matches!(e, SfuEvent::PeerGone { participant } if *participant == gone))
        .count();
    assert_eq!(reports, 1, "reported once");
    // The focus takes the participant out; the others' media go on between them.
    net.core.remove_participant(net.now, &gone);
    net.run(Duration::from_millis(500));
    net.clear();
    net.run(Duration::from_secs(1));
    for (a, b) in [(&ids[0], &ids[1]), (&ids[1], &ids[0])] {
        assert!(!net.client(a).from(b, true).is_empty());
        assert!(!net.client(a).from(b, false).is_empty());
    }
    assert!(net.core.peers.len() == 2);
    assert!(!net.core.by_participant.contains_key(&gone));
}

#[test]
fn stun_that_names_a_participant_without_their_password_moves_nothing() {
    let mut net = Net::new();
    let ids: Vec<ParticipantId> = (0..2).map(|_| net.join(false)).collect();
    net.everyone_receives_everyone();
    net.settle();
    // Anyone on the path saw the first participant's ufrag in the clear: four binding requests
    // naming it (as many addresses as a connection may hold), from addresses of their own.
    let victim = net.client(&ids[0]).addr;
    let ufrag = format!("ufrag{:0>11}", victim.port());
    let forged = crate::sfu::demux::requests::stun_without_integrity(&format!("{ufrag}:evil"));
    for port in 0..4u16 {
        let from = SocketAddr::new(
            IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 66)),
            40_000 + port,
        );
        net.core
            .handle_datagram(net.now, Transport::Udp, from, Some(SERVER.ip()), &forged);
    }
    net.shuttle();
    net.clear();
    net.run(Duration::from_secs(1));
    for (a, b) in [(&ids[0], &ids[1]), (&ids[1], &ids[0])] {
        assert!(
            !net.client(a).from(b, true).is_empty(),
            "video keeps flowing"
        );
        assert!(
            !net.client(a).from(b, false).is_empty(),
            "audio keeps flowing"
        );
    }
}

#[test]
fn a_panic_in_one_connection_drops_that_connection_and_nothing_else() {
    let mut net = Net::new();
    let ids: Vec<ParticipantId> = (0..3).map(|_| net.join(false)).collect();
    net.everyone_receives_everyone();
    net.settle();
    let broken = ids[2].clone();
    let key = net.core.by_participant[&broken];
    net.core.peers[key].fails_on_next_datagram = true;
    net.run(Duration::from_millis(200));
    assert!(
        net.events.contains(&SfuEvent::PeerGone {
            participant: broken.clone()
        }),
        "the focus is told the connection is gone"
    );
    assert_eq!(
        net.core
            .counters
            .peer_panics
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert!(!net.core.by_participant.contains_key(&broken));
    assert_eq!(net.core.peers.len(), 2);
    net.core.remove_participant(net.now, &broken);
    net.client_mut(&broken).online = false;
    net.run(Duration::from_millis(300));
    net.clear();
    net.run(Duration::from_secs(1));
    for (a, b) in [(&ids[0], &ids[1]), (&ids[1], &ids[0])] {
        assert!(
            !net.client(a).from(b, true).is_empty(),
            "the others' video goes on"
        );
        assert!(!net.client(a).from(b, false).is_empty(), "and their audio");
    }
}
