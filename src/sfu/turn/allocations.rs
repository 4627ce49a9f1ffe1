//! The TURN allocations: who holds one (a client's transport address on one of the listeners),
//! under which credential, the relayed address the media core sees it by, its permissions and
//! channels, and when each of them expires. Bounded in all, per credential and per client
//! address, so no client can hold more of the server than a school needs. Pure: the clock is a
//! parameter.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Which listener a client reached the TURN server on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientTransport {
    Udp,
    Tcp,
    Tls,
}

impl ClientTransport {
    /// Whether the client's messages travel on a byte stream (framed, ChannelData padded).
    pub fn is_stream(self) -> bool {
        !matches!(self, ClientTransport::Udp)
    }
}

/// One client of the TURN server: the listener and its transport address (for TCP and TLS, one
/// connection), the five-tuple of RFC 8656 with the server's side fixed per listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub transport: ClientTransport,
    pub addr: SocketAddr,
}

/// How many allocations may exist at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocationLimits {
    pub total: usize,
    pub per_credential: usize,
    pub per_address: usize,
}

/// Relayed ports are virtual (no socket is bound: relayed datagrams go straight to the media
/// core), drawn from the dynamic range so they read like ordinary relay ports.
const FIRST_PORT: u16 = 49152;
/// How many relayed ports one relay address can give out.
pub const PORTS: usize = (u16::MAX - FIRST_PORT) as usize + 1;

/// A permission lasts this long unless refreshed (RFC 8656 §9).
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// A channel binding lasts this long unless refreshed (RFC 8656 §12).
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// Channels one allocation may bind: Zaal is its only peer, on one or two addresses.
const MAX_CHANNELS: usize = 4;
/// Permissions one allocation may hold, for the same reason.
const MAX_PERMISSIONS: usize = 4;

/// Why an allocation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The server holds all it may (508 Insufficient Capacity).
    Capacity,
    /// The credential or the client address holds all it may (486 Allocation Quota Reached).
    Quota,
}

/// Why a channel could not be bound (400 Bad Request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindRefused {
    /// The channel is bound to another peer, or the peer to another channel.
    Conflict,
    /// The allocation has all the channels it may.
    TooMany,
}

#[derive(Debug)]
struct Allocation {
    credential: String,
    key: [u8; 16],
    relayed: SocketAddr,
    expires: Instant,
    permissions: Vec<(IpAddr, Instant)>,
    channels: Vec<(u16, SocketAddr, Instant)>,
}

/// What a client's allocation knows for authenticating its next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder<'a> {
    pub credential: &'a str,
    pub key: &'a [u8; 16],
    pub relayed: SocketAddr,
}

#[derive(Debug)]
pub struct Allocations {
    limits: AllocationLimits,
    by_client: HashMap<ClientKey, Allocation>,
    by_relayed: HashMap<SocketAddr, ClientKey>,
    per_credential: HashMap<String, usize>,
    per_address: HashMap<IpAddr, usize>,
    next_port: usize,
    /// Relayed addresses whose allocation ended, for the media core to forget.
    ended: Vec<SocketAddr>,
}

impl Allocations {
    pub fn new(limits: AllocationLimits) -> Self {
        Self {
            limits: AllocationLimits {
                total: limits.total.min(PORTS),
                ..limits
            },
            by_client: HashMap::new(),
            by_relayed: HashMap::new(),
            per_credential: HashMap::new(),
            per_address: HashMap::new(),
            next_port: 0,
            ended: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }

    pub fn holder(&self, client: &ClientKey) -> Option<Holder<'_>> {
        self.by_client.get(client).map(|a| Holder {
            credential: &a.credential,
            key: &a.key,
            relayed: a.relayed,
        })
    }

    /// A new allocation for `client`, relayed on `relay_ip` and a free port; the caller has
    /// checked that the client holds none.
    pub fn allocate(
        &mut self,
        client: ClientKey,
        credential: &str,
        key: [u8; 16],
        relay_ip: IpAddr,
        lifetime: Duration,
        now: Instant,
    ) -> Result<SocketAddr, Refused> {
        if self.by_client.len() >= self.limits.total {
            return Err(Refused::Capacity);
        }
        let held_by_credential = self.per_credential.get(credential).copied().unwrap_or(0);
        let held_by_address = self
            .per_address
            .get(&client.addr.ip())
            .copied()
            .unwrap_or(0);
        if held_by_credential >= self.limits.per_credential
            || held_by_address >= self.limits.per_address
        {
            return Err(Refused::Quota);
        }
        let relayed = (0..PORTS)
            .map(|i| {
                let port = FIRST_PORT + ((self.next_port + i) % PORTS) as u16;
                SocketAddr::new(relay_ip, port)
            })
            .find(|addr| !self.by_relayed.contains_key(addr))
            .ok_or(Refused::Capacity)?;
        self.next_port = usize::from(relayed.port() - FIRST_PORT) + 1;
        self.by_relayed.insert(relayed, client);
        *self
            .per_credential
            .entry(credential.to_string())
            .or_default() += 1;
        *self.per_address.entry(client.addr.ip()).or_default() += 1;
        self.by_client.insert(
            client,
            Allocation {
                credential: credential.to_string(),
                key,
                relayed,
                expires: now + lifetime,
                permissions: Vec::new(),
                channels: Vec::new(),
            },
        );
        Ok(relayed)
    }

    /// Extends the allocation's life; false when there is none.
    pub fn refresh(&mut self, client: &ClientKey, lifetime: Duration, now: Instant) -> bool {
        match self.by_client.get_mut(client) {
            Some(a) => {
                a.expires = now + lifetime;
                true
            }
            None => false,
        }
    }

    /// Ends the client's allocation, if it has one.
    pub fn remove(&mut self, client: &ClientKey) {
        let Some(a) = self.by_client.remove(client) else {
            return;
        };
        self.by_relayed.remove(&a.relayed);
        release(&mut self.per_credential, a.credential);
        release(&mut self.per_address, client.addr.ip());
        self.ended.push(a.relayed);
    }

    /// Installs or refreshes a permission for `peer`; false when there is no allocation or no
    /// room for another permission.
    pub fn permit(&mut self, client: &ClientKey, peer: IpAddr, now: Instant) -> bool {
        let Some(a) = self.by_client.get_mut(client) else {
            return false;
        };
        let until = now + PERMISSION_LIFETIME;
        if let Some(p) = a.permissions.iter_mut().find(|(ip, _)| *ip == peer) {
            p.1 = until;
            return true;
        }
        if a.permissions.len() >= MAX_PERMISSIONS {
            return false;
        }
        a.permissions.push((peer, until));
        true
    }

    /// Binds (or refreshes) `channel` to `peer`, with its permission.
    pub fn bind_channel(
        &mut self,
        client: &ClientKey,
        channel: u16,
        peer: SocketAddr,
        now: Instant,
    ) -> Result<(), BindRefused> {
        let a = self
            .by_client
            .get_mut(client)
            .ok_or(BindRefused::Conflict)?;
        let until = now + CHANNEL_LIFETIME;
        let full = a.channels.len() >= MAX_CHANNELS;
        match a
            .channels
            .iter_mut()
            .find(|(n, p, _)| *n == channel || *p == peer)
        {
            Some(bound) if bound.0 == channel && bound.1 == peer => bound.2 = until,
            Some(_) => return Err(BindRefused::Conflict),
            None if full => return Err(BindRefused::TooMany),
            None => a.channels.push((channel, peer, until)),
        }
        if self.permit(client, peer.ip(), now) {
            Ok(())
        } else {
            Err(BindRefused::TooMany)
        }
    }

    /// Where a client's data goes: its relayed address and the peer, if it may send there.
    /// `channel` names the peer for ChannelData; `peer` for a Send indication.
    pub fn inbound(
        &self,
        client: &ClientKey,
        to: Inbound,
        now: Instant,
    ) -> Option<(SocketAddr, SocketAddr)> {
        let a = self.by_client.get(client)?;
        let peer = match to {
            Inbound::Channel(number) => {
                a.channels
                    .iter()
                    .find(|(n, _, until)| *n == number && *until > now)?
                    .1
            }
            Inbound::Peer(peer) => peer,
        };
        a.permissions
            .iter()
            .any(|(ip, until)| *ip == peer.ip() && *until > now)
            .then_some((a.relayed, peer))
    }

    /// Where the media core's datagram from `peer` to `relayed` goes: the client, and the
    /// channel to frame it on (none: a Data indication). `None` when the allocation is gone or
    /// the client gave `peer` no permission.
    pub fn outbound(
        &self,
        relayed: SocketAddr,
        peer: SocketAddr,
        now: Instant,
    ) -> Option<(ClientKey, Option<u16>)> {
        let client = self.by_relayed.get(&relayed)?;
        let a = self.by_client.get(client)?;
        if !a
            .permissions
            .iter()
            .any(|(ip, until)| *ip == peer.ip() && *until > now)
        {
            return None;
        }
        let channel = a
            .channels
            .iter()
            .find(|(_, p, until)| *p == peer && *until > now)
            .map(|(n, _, _)| *n);
        Some((*client, channel))
    }

    /// Drops what has expired at `now`.
    pub fn expire(&mut self, now: Instant) {
        let expired: Vec<ClientKey> = self
            .by_client
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(client, _)| *client)
            .collect();
        for client in expired {
            self.remove(&client);
        }
        for a in self.by_client.values_mut() {
            a.permissions.retain(|(_, until)| *until > now);
            a.channels.retain(|(_, _, until)| *until > now);
        }
    }

    /// When the next allocation expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_client.values().map(|a| a.expires).min()
    }

    /// The relayed addresses whose allocations ended since the last call.
    pub fn take_ended(&mut self) -> Vec<SocketAddr> {
        std::mem::take(&mut self.ended)
    }
}

/// What a client's data names as its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    Channel(u16),
    Peer(SocketAddr),
}

fn release<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: K) {
    if let Some(n) = counts.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(port: u16) -> ClientKey {
        ClientKey {
            transport: ClientTransport::Udp,
            addr: SocketAddr::from(([198, 51, 100, 1], port)),
        }
    }

    const RELAY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const LIFE: Duration = Duration::from_secs(600);

    #[test]
    fn the_configuration_knows_how_many_ports_there_are() {
        assert_eq!(PORTS, crate::config::TURN_RELAYED_PORTS);
    }

    #[test]
    fn quotas_hold_per_credential_per_address_and_in_all() {
        let now = Instant::now();
        let mut table = Allocations::new(AllocationLimits {
            total: 3,
            per_credential: 2,
            per_address: 2,
        });
        table
            .allocate(client(1), "u:a", [0; 16], RELAY, LIFE, now)
            .unwrap();
        table
            .allocate(client(2), "u:a", [0; 16], RELAY, LIFE, now)
            .unwrap();
        assert_eq!(
            table.allocate(client(3), "u:a", [0; 16], RELAY, LIFE, now),
            Err(Refused::Quota),
            "a third for one credential"
        );
        assert_eq!(
            table.allocate(client(3), "u:b", [0; 16], RELAY, LIFE, now),
            Err(Refused::Quota),
            "a third from one address"
        );
        let elsewhere = ClientKey {
            transport: ClientTransport::Tcp,
            addr: SocketAddr::from(([203, 0, 113, 9], 1)),
        };
        table
            .allocate(elsewhere, "u:c", [0; 16], RELAY, LIFE, now)
            .unwrap();
        let fourth = ClientKey {
            transport: ClientTransport::Tcp,
            addr: SocketAddr::from(([203, 0, 113, 10], 1)),
        };
        assert_eq!(
            table.allocate(fourth, "u:d", [0; 16], RELAY, LIFE, now),
            Err(Refused::Capacity)
        );
        table.remove(&client(1));
        table
            .allocate(client(3), "u:a", [0; 16], RELAY, LIFE, now)
            .unwrap();
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn relayed_addresses_are_unique_and_lead_back_to_their_client() {
        let now = Instant::now();
        let mut table = Allocations::new(AllocationLimits {
            total: 10,
            per_credential: 10,
            per_address: 10,
        });
        let a = table
            .allocate(client(1), "u:a", [0; 16], RELAY, LIFE, now)
            .unwrap();
        let b = table
            .allocate(client(2), "u:a", [0; 16], RELAY, LIFE, now)
            .unwrap();
        assert_ne!(a, b);
        let zaal = SocketAddr::new(RELAY, 10000);
        assert_eq!(table.outbound(a, zaal, now), None, "no permission yet");
        assert!(table.permit(&client(1), zaal.ip(), now));
        assert_eq!(table.outbound(a, zaal, now), Some((client(1), None)));
        table.bind_channel(&client(1), 0x4000, zaal, now).unwrap();
        assert_eq!(
            table.outbound(a, zaal, now),
            Some((client(1), Some(0x4000)))
        );
        assert_eq!(
            table.inbound(&client(1), Inbound::Channel(0x4000), now),
            Some((a, zaal))
        );
        assert_eq!(
            table.bind_channel(&client(1), 0x4001, zaal, now),
            Err(BindRefused::Conflict),
            "the peer has a channel"
        );
        assert_eq!(table.inbound(&client(2), Inbound::Peer(zaal), now), None);
    }

    #[test]
    fn everything_expires_on_its_own_clock() {
        let now = Instant::now();
        let mut table = Allocations::new(AllocationLimits {
            total: 10,
            per_credential: 10,
            per_address: 10,
        });
        let relayed = table
            .allocate(
                client(1),
                "u:a",
                [0; 16],
                RELAY,
                Duration::from_secs(900),
                now,
            )
            .unwrap();
        let zaal = SocketAddr::new(RELAY, 10000);
        table.bind_channel(&client(1), 0x4000, zaal, now).unwrap();
        let later = now + PERMISSION_LIFETIME;
        table.expire(later);
        assert_eq!(
            table.inbound(&client(1), Inbound::Channel(0x4000), later),
            None,
            "the permission expired before the channel"
        );
        assert_eq!(table.next_expiry(), Some(now + Duration::from_secs(900)));
        table.expire(now + Duration::from_secs(900));
        assert!(table.is_empty());
        assert_eq!(table.take_ended(), vec![relayed]);
        assert!(table.take_ended().is_empty());
    }
}
