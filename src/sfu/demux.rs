//! Which peer connection a datagram on the shared media port belongs to.
//!
//! Every participant's ICE, DTLS, SRTP and SRTCP arrive on the same UDP port. A STUN binding
//! request names its target in the USERNAME attribute (`serverUfrag:clientUfrag`, RFC 8445
//! §7.2.2), so the first datagram from a new address is matched by the server's ufrag; after that
//! the source address identifies the peer. Pure: no sockets, no clock; unit-tested here.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;

const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const STUN_HEADER_LEN: usize = 20;
const STUN_ATTR_USERNAME: u16 = 0x0006;
/// How many source addresses one peer may hold at once (ICE restarts, NAT rebinding). Bounded so
/// that forged STUN cannot grow the table.
const MAX_ADDRESSES_PER_PEER: usize = 4;

/// Whether a datagram is STUN (RFC 7983: first byte 0–3, and the magic cookie).
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= STUN_HEADER_LEN && datagram[0] < 4 && datagram[4..8] == STUN_MAGIC_COOKIE
}

/// The server-side ufrag a STUN message is addressed to: the part of USERNAME before the colon.
pub fn stun_target_ufrag(datagram: &[u8]) -> Option<&str> {
    if !is_stun(datagram) {
        return None;
    }
    let body_len = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
    let body = datagram.get(STUN_HEADER_LEN..STUN_HEADER_LEN + body_len)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        let value = rest.get(4..4 + len)?;
        if kind == STUN_ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next().filter(|u| !u.is_empty());
        }
        let padded = (len + 3) & !3;
        rest = rest.get(4 + padded..)?;
    }
    None
}

/// The routing table from datagrams to peers.
#[derive(Debug)]
pub struct Directory<K> {
    by_ufrag: HashMap<String, K>,
    by_addr: HashMap<SocketAddr, K>,
    addrs_of: HashMap<K, Vec<SocketAddr>>,
}

impl<K: Copy + Eq + Hash> Default for Directory<K> {
    fn default() -> Self {
        Self {
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            addrs_of: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash> Directory<K> {
    pub fn insert_peer(&mut self, ufrag: String, key: K) {
        self.by_ufrag.insert(ufrag, key);
        self.addrs_of.insert(key, Vec::new());
    }

    pub fn remove_peer(&mut self, ufrag: &str, key: K) {
        self.by_ufrag.remove(ufrag);
        for addr in self.addrs_of.remove(&key).unwrap_or_default() {
            if self.by_addr.get(&addr) == Some(&key) {
                self.by_addr.remove(&addr);
            }
        }
    }

    /// The peer a datagram from `from` belongs to. A STUN request naming a known ufrag also
    /// (re)binds `from` to that peer; anything else must come from a bound address.
    pub fn route(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<K> {
        if let Some(ufrag) = stun_target_ufrag(datagram)
            && let Some(&key) = self.by_ufrag.get(ufrag)
        {
            if self.by_addr.get(&from) == Some(&key) {
                self.refresh(from, key);
            } else {
                self.bind(from, key);
            }
            return Some(key);
        }
        self.by_addr.get(&from).copied()
    }

    /// Marks an address as the peer's most recently confirmed one, so that eviction (below)
    /// always drops a stale address, never the one the peer is using.
    fn refresh(&mut self, from: SocketAddr, key: K) {
        if let Some(list) = self.addrs_of.get_mut(&key)
            && list.last() != Some(&from)
            && let Some(position) = list.iter().position(|a| *a == from)
        {
            let addr = list.remove(position);
            list.push(addr);
        }
    }

    fn bind(&mut self, from: SocketAddr, key: K) {
        if let Some(previous) = self.by_addr.insert(from, key)
            && let Some(list) = self.addrs_of.get_mut(&previous)
        {
            list.retain(|a| *a != from);
        }
        let Some(list) = self.addrs_of.get_mut(&key) else {
            return;
        };
        list.push(from);
        if list.len() > MAX_ADDRESSES_PER_PEER {
            let oldest = list.remove(0);
            if self.by_addr.get(&oldest) == Some(&key) {
                self.by_addr.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_with_username(username: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        // A PRIORITY attribute first, to check that the walk skips attributes.
        attr.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        attr.extend_from_slice(&STUN_ATTR_USERNAME.to_be_bytes());
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        msg.extend_from_slice(&STUN_MAGIC_COOKIE);
        msg.extend_from_slice(&[7u8; 12]);
        msg.extend_from_slice(&attr);
        msg
    }

    #[test]
    fn reads_the_target_ufrag() {
        let msg = stun_with_username("serverfrag:clientfrag");
        assert_eq!(stun_target_ufrag(&msg), Some("serverfrag"));
        assert_eq!(stun_target_ufrag(&msg[..25]), None, "truncated");
        let mut not_stun = msg.clone();
        not_stun[4] = 0;
        assert_eq!(stun_target_ufrag(&not_stun), None);
        assert_eq!(stun_target_ufrag(&[0x80; 40]), None, "RTP is not STUN");
        assert_eq!(stun_target_ufrag(&stun_with_username(":x")), None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545F4914F6CDD1Du64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = stun_target_ufrag(&bytes);
            let mut with_cookie = bytes.clone();
            if with_cookie.len() >= 20 {
                with_cookie[0] = 0;
                with_cookie[4..8].copy_from_slice(&STUN_MAGIC_COOKIE);
                let _ = stun_target_ufrag(&with_cookie);
            }
        }
    }

    #[test]
    fn routes_by_ufrag_then_address() {
        let mut dir = Directory::<u32>::default();
        dir.insert_peer("aaaa".into(), 1);
        dir.insert_peer("bbbb".into(), 2);
        let alice: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let bob: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        let stranger: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        assert_eq!(dir.route(alice, &[0x80; 20]), None, "unknown address");
        assert_eq!(dir.route(alice, &stun_with_username("aaaa:x")), Some(1));
        assert_eq!(dir.route(bob, &stun_with_username("bbbb:y")), Some(2));
        assert_eq!(dir.route(alice, &[0x80; 20]), Some(1));
        assert_eq!(dir.route(bob, &[0x17; 20]), Some(2));
        assert_eq!(dir.route(stranger, &stun_with_username("zzzz:y")), None);
        dir.remove_peer("aaaa", 1);
        assert_eq!(dir.route(alice, &[0x80; 20]), None);
        assert_eq!(dir.route(alice, &stun_with_username("aaaa:x")), None);
        assert_eq!(dir.route(bob, &[0x80; 20]), Some(2));
    }

    #[test]
    fn addresses_per_peer_are_bounded() {
        let mut dir = Directory::<u32>::default();
        dir.insert_peer("aaaa".into(), 1);
        let stun = stun_with_username("aaaa:x");
        for port in 0..100u16 {
            let from = SocketAddr::from(([127, 0, 0, 1], 1000 + port));
            assert_eq!(dir.route(from, &stun), Some(1));
        }
        assert_eq!(dir.by_addr.len(), MAX_ADDRESSES_PER_PEER);
        let newest = SocketAddr::from(([127, 0, 0, 1], 1099));
        assert_eq!(dir.route(newest, &[0x80; 20]), Some(1));
        let oldest = SocketAddr::from(([127, 0, 0, 1], 1000));
        assert_eq!(dir.route(oldest, &[0x80; 20]), None);
    }

    #[test]
    fn the_address_in_use_is_never_evicted() {
        let mut dir = Directory::<u32>::default();
        dir.insert_peer("aaaa".into(), 1);
        let stun = stun_with_username("aaaa:x");
        let real = SocketAddr::from(([127, 0, 0, 1], 999));
        assert_eq!(dir.route(real, &stun), Some(1));
        for port in 0..20u16 {
            // Consent checks keep confirming the real address between other bindings.
            assert_eq!(dir.route(real, &stun), Some(1));
            let other = SocketAddr::from(([127, 0, 0, 1], 2000 + port));
            assert_eq!(dir.route(other, &stun), Some(1));
        }
        assert_eq!(dir.route(real, &[0x80; 20]), Some(1));
    }
}
