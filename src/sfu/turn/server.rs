//! The TURN server's protocol (RFC 8656), sans I/O: a client's message in, a reply or a datagram
//! for the media core out; a datagram from the media core in, the client's framed message out.
//!
//! It relays only to Zaal's own media addresses: a permission or channel for any other peer is
//! refused with 403, so it can never serve as an open relay. Requests are authenticated with the
//! long-term mechanism over REST credentials (`credentials.rs`) and a stateless nonce (an HMAC of
//! its issue time and the client's address under a per-process key), so nothing is stored before
//! a client has proved a credential. Pure: the clocks are parameters.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rtc::stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME, AttrType};
use rtc::stun::error_code::{
    CODE_ADDR_FAMILY_NOT_SUPPORTED, CODE_ALLOC_MISMATCH, CODE_ALLOC_QUOTA_REACHED,
    CODE_BAD_REQUEST, CODE_FORBIDDEN, CODE_INSUFFICIENT_CAPACITY, CODE_PEER_ADDR_FAMILY_MISMATCH,
    CODE_STALE_NONCE, CODE_UNAUTHORIZED, CODE_UNSUPPORTED_TRANS_PROTO, CODE_WRONG_CREDENTIALS,
    ErrorCode, ErrorCodeAttribute,
};
use rtc::stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Getter, METHOD_ALLOCATE,
    METHOD_BINDING, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_REFRESH, Message,
    MessageType, Setter,
};
use rtc::stun::textattrs::TextAttribute;
use rtc::stun::xoraddr::XorMappedAddress;
use rtc::turn::proto::PROTO_UDP;
use rtc::turn::proto::channum::ChannelNumber;
use rtc::turn::proto::lifetime::Lifetime;
use rtc::turn::proto::relayaddr::RelayedAddress;
use rtc::turn::proto::reqfamily::{REQUESTED_FAMILY_IPV6, RequestedAddressFamily};
use rtc::turn::proto::reqtrans::RequestedTransport;
use sha1::Sha1;

use super::allocations::{AllocationLimits, Allocations, BindRefused, ClientKey, Inbound, Refused};
use super::credentials::{TurnSecret, long_term_key, unexpired};
use super::wire;

/// A Send indication: method Send (0x006), class indication.
const SEND_INDICATION: [u8; 2] = [0x00, 0x16];
/// How long a nonce is good for before a client must take a fresh one (438).
const NONCE_LIFETIME: u64 = 600;
/// An allocation's lifetime when the client asks for none, and the most it may ask for.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// What the server is told at start-up.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    pub realm: String,
    pub secret: TurnSecret,
    /// Zaal's media addresses (each advertised address with the media port): the only peers.
    pub peers: Vec<SocketAddr>,
    pub limits: AllocationLimits,
    /// Keys the nonces; random per process.
    pub nonce_key: [u8; 32],
}

/// What became of a client's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Send the reply buffer back to the client.
    Reply,
    /// Hand `payload` (a range of the client's datagram) to the media core as a datagram from
    /// `relayed` to `peer`.
    Relay {
        relayed: SocketAddr,
        peer: SocketAddr,
        payload: Range<usize>,
    },
    /// Nothing to do (an indication without permission, a stray response, not TURN at all).
    Ignored,
}

/// Counts of what the server refused, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refusals {
    pub unauthorized: u64,
    pub forbidden_peer: u64,
    pub quota: u64,
}

pub struct TurnServer {
    config: TurnConfig,
    allocations: Allocations,
    refusals: Refusals,
    indications: u64,
}

impl TurnServer {
    pub fn new(config: TurnConfig) -> Self {
        let allocations = Allocations::new(config.limits);
        Self {
            config,
            allocations,
            refusals: Refusals::default(),
            indications: 0,
        }
    }

    pub fn allocations(&self) -> usize {
        self.allocations.len()
    }

    pub fn refusals(&self) -> Refusals {
        self.refusals
    }

    /// Handles one message from `from`; a reply, when there is one, is written to `reply`.
    /// `unix` is the wall clock in seconds (credentials expire by it).
    pub fn handle(
        &mut self,
        now: Instant,
        unix: u64,
        from: ClientKey,
        datagram: &[u8],
        reply: &mut Vec<u8>,
    ) -> Handled {
        if let Some((channel, payload)) = wire::channel_data(datagram) {
            return match self
                .allocations
                .inbound(&from, Inbound::Channel(channel), now)
            {
                Some((relayed, peer)) => Handled::Relay {
                    relayed,
                    peer,
                    payload,
                },
                None => Handled::Ignored,
            };
        }
        if !wire::is_stun(datagram) {
            return Handled::Ignored;
        }
        if datagram[..2] == SEND_INDICATION {
            return self.send_indication(now, from, datagram);
        }
        let mut request = Message::new();
        if request.unmarshal_binary(datagram).is_err() || request.typ.class != CLASS_REQUEST {
            return Handled::Ignored;
        }
        let response = match request.typ.method {
            METHOD_BINDING => {
                let mut m = answer(&request, CLASS_SUCCESS_RESPONSE);
                let _ = XorMappedAddress {
                    ip: from.addr.ip(),
                    port: from.addr.port(),
                }
                .add_to(&mut m);
                m
            }
            METHOD_ALLOCATE | METHOD_REFRESH | METHOD_CREATE_PERMISSION | METHOD_CHANNEL_BIND => {
                match self.authenticate(unix, from, datagram, &request) {
                    Ok((credential, key)) => {
                        let mut m =
                            self.authenticated(now, from, datagram, &request, &credential, key);
                        wire::sign(&mut m, &key);
                        m
                    }
                    Err(m) => m,
                }
            }
            _ => error(&request, CODE_BAD_REQUEST, "Unknown method"),
        };
        reply.clear();
        reply.extend_from_slice(&response.raw);
        Handled::Reply
    }

    /// Checks the long-term credential of a request: the credential and its key, or the error
    /// response to send.
    fn authenticate(
        &mut self,
        unix: u64,
        from: ClientKey,
        datagram: &[u8],
        request: &Message,
    ) -> Result<(String, [u8; 16]), Message> {
        let challenge = |server: &Self, code: ErrorCode, reason: &str| {
            let mut m = error(request, code, reason);
            let _ = TextAttribute::new(ATTR_REALM, server.config.realm.clone()).add_to(&mut m);
            let _ =
                TextAttribute::new(ATTR_NONCE, server.nonce(unix, from.addr.ip())).add_to(&mut m);
            m
        };
        if wire::attribute(datagram, wire::ATTR_MESSAGE_INTEGRITY).is_none() {
            // The first request of every client: not a refusal, the start of the handshake.
            return Err(challenge(self, CODE_UNAUTHORIZED, "Unauthorized"));
        }
        let text = |attr: AttrType| TextAttribute::get_from_as(request, attr).map(|t| t.text);
        let (Ok(username), Ok(realm), Ok(nonce)) =
            (text(ATTR_USERNAME), text(ATTR_REALM), text(ATTR_NONCE))
        else {
            return Err(error(request, CODE_BAD_REQUEST, "Missing credentials"));
        };
        if realm != self.config.realm || !self.nonce_is_fresh(&nonce, unix, from.addr.ip()) {
            return Err(challenge(self, CODE_STALE_NONCE, "Stale Nonce"));
        }
        if unexpired(&username, unix).is_err() {
            self.refusals.unauthorized += 1;
            return Err(challenge(self, CODE_UNAUTHORIZED, "Unauthorized"));
        }
        let password = self.config.secret.password(&username);
        let key = long_term_key(&username, &realm, &password);
        if !wire::integrity_holds(datagram, &key) {
            self.refusals.unauthorized += 1;
            return Err(challenge(self, CODE_UNAUTHORIZED, "Unauthorized"));
        }
        if let Some(holder) = self.allocations.holder(&from)
            && holder.credential != username
        {
            let mut m = error(request, CODE_WRONG_CREDENTIALS, "Wrong Credentials");
            wire::sign(&mut m, &key);
            return Err(m);
        }
        Ok((username, key))
    }

    /// The response to an authenticated request (signed by the caller).
    fn authenticated(
        &mut self,
        now: Instant,
        from: ClientKey,
        datagram: &[u8],
        request: &Message,
        credential: &str,
        key: [u8; 16],
    ) -> Message {
        self.allocations.expire(now);
        match request.typ.method {
            METHOD_ALLOCATE => self.allocate(now, from, request, credential, key),
            METHOD_REFRESH => {
                let mut asked = Lifetime::default();
                let lifetime = match asked.get_from(request) {
                    Ok(()) => asked.0.min(MAX_LIFETIME),
                    Err(_) => DEFAULT_LIFETIME,
                };
                if self.allocations.holder(&from).is_none() {
                    return error(request, CODE_ALLOC_MISMATCH, "Allocation Mismatch");
                }
                if lifetime.is_zero() {
                    self.allocations.remove(&from);
                } else {
                    self.allocations.refresh(&from, lifetime, now);
                }
                let mut m = answer(request, CLASS_SUCCESS_RESPONSE);
                let _ = Lifetime(lifetime).add_to(&mut m);
                m
            }
            METHOD_CREATE_PERMISSION => {
                let Some(holder) = self.allocations.holder(&from) else {
                    return error(request, CODE_ALLOC_MISMATCH, "Allocation Mismatch");
                };
                let relayed = holder.relayed;
                let peers: Vec<Option<SocketAddr>> =
                    wire::attributes_of(datagram, wire::ATTR_XOR_PEER_ADDRESS)
                        .map(|value| wire::xor_address(datagram, value))
                        .collect();
                if peers.is_empty() || peers.iter().any(Option::is_none) {
                    return error(request, CODE_BAD_REQUEST, "Bad XOR-PEER-ADDRESS");
                }
                let peers: Vec<SocketAddr> = peers.into_iter().flatten().collect();
                if let Some(refusal) = self.refuse_peer(request, relayed, &peers, |s, p| {
                    s.config.peers.iter().any(|z| z.ip() == p.ip())
                }) {
                    return refusal;
                }
                for peer in peers {
                    if !self.allocations.permit(&from, peer.ip(), now) {
                        return error(request, CODE_INSUFFICIENT_CAPACITY, "Too Many Permissions");
                    }
                }
                answer(request, CLASS_SUCCESS_RESPONSE)
            }
            METHOD_CHANNEL_BIND => {
                let Some(holder) = self.allocations.holder(&from) else {
                    return error(request, CODE_ALLOC_MISMATCH, "Allocation Mismatch");
                };
                let relayed = holder.relayed;
                let mut number = ChannelNumber::default();
                let peer = wire::attribute(datagram, wire::ATTR_XOR_PEER_ADDRESS)
                    .and_then(|value| wire::xor_address(datagram, value));
                let (Ok(()), Some(peer)) = (number.get_from(request), peer) else {
                    return error(request, CODE_BAD_REQUEST, "Bad Channel Bind");
                };
                if !wire::CHANNELS.contains(&number.0) {
                    return error(request, CODE_BAD_REQUEST, "Bad Channel Number");
                }
                if let Some(refusal) =
                    self.refuse_peer(request, relayed, &[peer], |s, p| s.config.peers.contains(p))
                {
                    return refusal;
                }
                match self.allocations.bind_channel(&from, number.0, peer, now) {
                    Ok(()) => answer(request, CLASS_SUCCESS_RESPONSE),
                    Err(BindRefused::Conflict) => {
                        error(request, CODE_BAD_REQUEST, "Channel Or Peer Already Bound")
                    }
                    Err(BindRefused::TooMany) => {
                        error(request, CODE_INSUFFICIENT_CAPACITY, "Too Many Channels")
                    }
                }
            }
            _ => error(request, CODE_BAD_REQUEST, "Unknown method"),
        }
    }

    /// The 443 or 403 for peers this server does not relay to, counting the 403s.
    fn refuse_peer(
        &mut self,
        request: &Message,
        relayed: SocketAddr,
        peers: &[SocketAddr],
        allowed: impl Fn(&Self, &SocketAddr) -> bool,
    ) -> Option<Message> {
        if peers.iter().any(|p| p.is_ipv4() != relayed.is_ipv4()) {
            return Some(error(
                request,
                CODE_PEER_ADDR_FAMILY_MISMATCH,
                "Peer Address Family Mismatch",
            ));
        }
        if peers.iter().any(|p| !allowed(self, p)) {
            self.refusals.forbidden_peer += 1;
            return Some(error(
                request,
                CODE_FORBIDDEN,
                "Forbidden: Zaal relays only to itself",
            ));
        }
        None
    }

    fn allocate(
        &mut self,
        now: Instant,
        from: ClientKey,
        request: &Message,
        credential: &str,
        key: [u8; 16],
    ) -> Message {
        if self.allocations.holder(&from).is_some() {
            return error(request, CODE_ALLOC_MISMATCH, "Allocation Mismatch");
        }
        let mut transport = RequestedTransport::default();
        if transport.get_from(request).is_err() {
            return error(request, CODE_BAD_REQUEST, "Missing REQUESTED-TRANSPORT");
        }
        if transport.protocol != PROTO_UDP {
            return error(request, CODE_UNSUPPORTED_TRANS_PROTO, "Only UDP Is Relayed");
        }
        let mut family = RequestedAddressFamily::default();
        let want_v6 = family.get_from(request).is_ok() && family == REQUESTED_FAMILY_IPV6;
        let Some(relay_ip) = self
            .config
            .peers
            .iter()
            .map(SocketAddr::ip)
            .find(|ip| ip.is_ipv6() == want_v6)
        else {
            return error(
                request,
                CODE_ADDR_FAMILY_NOT_SUPPORTED,
                "Address Family Not Supported",
            );
        };
        let mut asked = Lifetime::default();
        let lifetime = match asked.get_from(request) {
            Ok(()) if !asked.0.is_zero() => asked.0.min(MAX_LIFETIME),
            _ => DEFAULT_LIFETIME,
        };
        match self
            .allocations
            .allocate(from, credential, key, relay_ip, lifetime, now)
        {
            Ok(relayed) => {
                let mut m = answer(request, CLASS_SUCCESS_RESPONSE);
                let _ = RelayedAddress {
                    ip: relayed.ip(),
                    port: relayed.port(),
                }
                .add_to(&mut m);
                let _ = Lifetime(lifetime).add_to(&mut m);
                let _ = XorMappedAddress {
                    ip: from.addr.ip(),
                    port: from.addr.port(),
                }
                .add_to(&mut m);
                m
            }
            Err(Refused::Quota) => {
                self.refusals.quota += 1;
                error(
                    request,
                    CODE_ALLOC_QUOTA_REACHED,
                    "Allocation Quota Reached",
                )
            }
            Err(Refused::Capacity) => {
                self.refusals.quota += 1;
                error(request, CODE_INSUFFICIENT_CAPACITY, "Insufficient Capacity")
            }
        }
    }

    fn send_indication(&mut self, now: Instant, from: ClientKey, datagram: &[u8]) -> Handled {
        let peer = wire::attribute(datagram, wire::ATTR_XOR_PEER_ADDRESS)
            .and_then(|value| wire::xor_address(datagram, value));
        let (Some(peer), Some(payload)) = (peer, wire::attribute(datagram, wire::ATTR_DATA)) else {
            return Handled::Ignored;
        };
        if !self.config.peers.contains(&peer) {
            return Handled::Ignored;
        }
        match self.allocations.inbound(&from, Inbound::Peer(peer), now) {
            Some((relayed, peer)) => Handled::Relay {
                relayed,
                peer,
                payload,
            },
            None => Handled::Ignored,
        }
    }

    /// Frames the media core's datagram from `peer` to the relayed address `relayed` for its
    /// client, into `out`; the client to send it to, or `None` when it has no allocation there
    /// or gave `peer` no permission.
    pub fn to_client(
        &mut self,
        now: Instant,
        relayed: SocketAddr,
        peer: SocketAddr,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<ClientKey> {
        let (client, channel) = self.allocations.outbound(relayed, peer, now)?;
        match channel {
            Some(number) => {
                wire::write_channel_data(out, number, payload, client.transport.is_stream())
            }
            None => {
                self.indications += 1;
                let mut transaction = [0u8; 12];
                transaction[..8].copy_from_slice(&self.indications.to_be_bytes());
                wire::write_data_indication(out, peer, payload, transaction);
            }
        }
        Some(client)
    }

    /// Drops what expired; the relayed addresses whose allocations ended (by expiry or by the
    /// client), for the media core to forget.
    pub fn expire(&mut self, now: Instant) -> Vec<SocketAddr> {
        self.allocations.expire(now);
        self.allocations.take_ended()
    }

    /// When [`TurnServer::expire`] has work next.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.allocations.next_expiry()
    }

    /// Ends the allocation of a client whose connection closed (TCP, TLS).
    pub fn client_gone(&mut self, client: &ClientKey) {
        self.allocations.remove(client);
    }

    fn nonce(&self, unix: u64, client: IpAddr) -> String {
        let issued = format!("{unix:x}");
        format!("{issued}-{}", self.nonce_tag(&issued, client))
    }

    fn nonce_tag(&self, issued: &str, client: IpAddr) -> String {
        let mut mac =
            Hmac::<Sha1>::new_from_slice(&self.config.nonce_key).expect("HMAC takes any key");
        mac.update(issued.as_bytes());
        mac.update(client.to_string().as_bytes());
        mac.finalize().into_bytes()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn nonce_is_fresh(&self, nonce: &str, unix: u64, client: IpAddr) -> bool {
        let Some((issued, tag)) = nonce.split_once('-') else {
            return false;
        };
        let Ok(at) = u64::from_str_radix(issued, 16) else {
            return false;
        };
        at <= unix
            && unix - at < NONCE_LIFETIME
            && hmac_eq(tag.as_bytes(), self.nonce_tag(issued, client).as_bytes())
    }
}

/// Compares two tags in time independent of where they differ.
fn hmac_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A response of `class` to `request`, with its method and transaction.
fn answer(request: &Message, class: rtc::stun::message::MessageClass) -> Message {
    let mut m = Message::new();
    m.typ = MessageType::new(request.typ.method, class);
    m.transaction_id = request.transaction_id;
    m.write_header();
    m
}

fn error(request: &Message, code: ErrorCode, reason: &str) -> Message {
    let mut m = answer(request, CLASS_ERROR_RESPONSE);
    let _ = ErrorCodeAttribute {
        code,
        reason: reason.as_bytes().to_vec(),
    }
    .add_to(&mut m);
    m
}
