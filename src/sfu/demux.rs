//! Which peer connection a datagram on the shared media port belongs to.
//!
//! Every participant's ICE, DTLS, SRTP and SRTCP arrive on the same UDP port. A STUN binding
//! request names its target in the USERNAME attribute (`serverUfrag:clientUfrag`, RFC 8445
//! §7.2.2), so the first datagram from a new address is matched by the server's ufrag; after that
//! the source address identifies the peer. A new address is bound only by a request whose
//! MESSAGE-INTEGRITY proves it knows the connection's ICE password: the ufrag travels in the
//! clear, so anyone who saw one could otherwise move a participant's media to an address of
//! their choosing, or evict the address it comes from. Pure: no sockets, no clock; unit-tested
//! here.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use sha1::Sha1;

const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const STUN_HEADER_LEN: usize = 20;
const STUN_ATTR_USERNAME: u16 = 0x0006;
const STUN_ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const MESSAGE_INTEGRITY_LEN: usize = 20;
/// How many source addresses one peer may hold at once (ICE restarts, NAT rebinding). Bounded so
/// that forged STUN cannot grow the table.
const MAX_ADDRESSES_PER_PEER: usize = 4;

/// Whether a datagram is STUN (RFC 7983: first byte 0–3, and the magic cookie).
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= STUN_HEADER_LEN && datagram[0] < 4 && datagram[4..8] == STUN_MAGIC_COOKIE
}

/// The ICE credentials of one server-side connection: the username fragment STUN requests name it
/// by, and the password that keys their MESSAGE-INTEGRITY (short-term credentials, RFC 8445
/// §7.2.2).
#[derive(Clone, PartialEq, Eq)]
pub struct IceCredentials {
    pub ufrag: String,
    pub pwd: String,
}

impl std::fmt::Debug for IceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceCredentials")
            .field("ufrag", &self.ufrag)
            .field("pwd", &"[redacted]")
            .finish()
    }
}

/// The attributes of a STUN message, each with its offset in the datagram; stops at the first
/// malformed one.
fn stun_attributes(datagram: &[u8]) -> impl Iterator<Item = (u16, usize, &[u8])> {
    let body_len = datagram
        .get(2..4)
        .map_or(0, |len| u16::from_be_bytes([len[0], len[1]]) as usize);
    // A message longer than its datagram is no message: nothing in it is read.
    let end = if is_stun(datagram) && STUN_HEADER_LEN + body_len <= datagram.len() {
        STUN_HEADER_LEN + body_len
    } else {
        STUN_HEADER_LEN
    };
    let mut at = STUN_HEADER_LEN;
    std::iter::from_fn(move || {
        let header = datagram.get(at..at + 4).filter(|_| at + 4 <= end)?;
        let kind = u16::from_be_bytes([header[0], header[1]]);
        let len = u16::from_be_bytes([header[2], header[3]]) as usize;
        let value = datagram
            .get(at + 4..at + 4 + len)
            .filter(|_| at + 4 + len <= end)?;
        let offset = at;
        at += 4 + ((len + 3) & !3);
        Some((kind, offset, value))
    })
}

/// The server-side ufrag a STUN message is addressed to: the part of USERNAME before the colon.
pub fn stun_target_ufrag(datagram: &[u8]) -> Option<&str> {
    if !is_stun(datagram) {
        return None;
    }
    let (_, _, value) =
        stun_attributes(datagram).find(|(kind, _, _)| *kind == STUN_ATTR_USERNAME)?;
    let username = std::str::from_utf8(value).ok()?;
    username.split(':').next().filter(|u| !u.is_empty())
}

/// Whether a STUN message carries a MESSAGE-INTEGRITY made with `pwd` (RFC 8489 §14.5: HMAC-SHA1
/// over the message up to that attribute, with the header's length counting up to its end).
pub fn stun_integrity_holds(datagram: &[u8], pwd: &str) -> bool {
    if !is_stun(datagram) {
        return false;
    }
    let Some((_, offset, value)) =
        stun_attributes(datagram).find(|(kind, _, _)| *kind == STUN_ATTR_MESSAGE_INTEGRITY)
    else {
        return false;
    };
    if value.len() != MESSAGE_INTEGRITY_LEN {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(pwd.as_bytes()) else {
        return false;
    };
    let counted = (offset + 4 + MESSAGE_INTEGRITY_LEN - STUN_HEADER_LEN) as u16;
    mac.update(&datagram[..2]);
    mac.update(&counted.to_be_bytes());
    mac.update(&datagram[4..offset]);
    mac.verify_slice(value).is_ok()
}

/// The routing table from datagrams to peers.
#[derive(Debug)]
pub struct Directory<K> {
    by_ufrag: HashMap<String, K>,
    by_addr: HashMap<SocketAddr, K>,
    peers: HashMap<K, Entry>,
}

/// What the directory knows of one peer.
#[derive(Debug)]
struct Entry {
    pwd: String,
    /// Bound addresses, the most recently confirmed last.
    addrs: Vec<SocketAddr>,
}

impl<K: Copy + Eq + Hash> Default for Directory<K> {
    fn default() -> Self {
        Self {
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            peers: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash> Directory<K> {
    pub fn insert_peer(&mut self, credentials: IceCredentials, key: K) {
        self.by_ufrag.insert(credentials.ufrag, key);
        self.peers.insert(
            key,
            Entry {
                pwd: credentials.pwd,
                addrs: Vec::new(),
            },
        );
    }

    pub fn remove_peer(&mut self, ufrag: &str, key: K) {
        self.by_ufrag.remove(ufrag);
        let addrs = self.peers.remove(&key).map(|e| e.addrs);
        for addr in addrs.unwrap_or_default() {
            if self.by_addr.get(&addr) == Some(&key) {
                self.by_addr.remove(&addr);
            }
        }
    }

    /// Whether datagrams from `addr` reach a peer.
    pub fn is_bound(&self, addr: SocketAddr) -> bool {
        self.by_addr.contains_key(&addr)
    }

    /// The peer a bound address routes to.
    pub fn bound_to(&self, addr: SocketAddr) -> Option<K> {
        self.by_addr.get(&addr).copied()
    }

    /// Forgets a bound address (a TCP connection that closed): whatever comes from it next
    /// must prove itself again.
    pub fn unbind(&mut self, addr: SocketAddr) {
        if let Some(key) = self.by_addr.remove(&addr)
            && let Some(entry) = self.peers.get_mut(&key)
        {
            entry.addrs.retain(|a| *a != addr);
        }
    }

    /// The peer a datagram from `from` belongs to. A STUN request naming a known ufrag, with
    /// MESSAGE-INTEGRITY made with that peer's password, also (re)binds `from` to that peer
    /// (one without is dropped unless it comes from the peer's own address); anything else must
    /// come from a bound address.
    pub fn route(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<K> {
        if let Some(ufrag) = stun_target_ufrag(datagram)
            && let Some(&key) = self.by_ufrag.get(ufrag)
        {
            if self.by_addr.get(&from) == Some(&key) {
                // Consent checks from the address in use: the connection checks their
                // integrity itself, and a forged one cannot move anything.
                self.refresh(from, key);
                return Some(key);
            }
            let proven = self
                .peers
                .get(&key)
                .is_some_and(|entry| stun_integrity_holds(datagram, &entry.pwd));
            if !proven {
                return None;
            }
            self.bind(from, key);
            return Some(key);
        }
        self.by_addr.get(&from).copied()
    }

    /// Marks an address as the peer's most recently confirmed one, so that eviction (below)
    /// always drops a stale address, never the one the peer is using.
    fn refresh(&mut self, from: SocketAddr, key: K) {
        if let Some(list) = self.peers.get_mut(&key).map(|e| &mut e.addrs)
            && list.last() != Some(&from)
            && let Some(position) = list.iter().position(|a| *a == from)
        {
            let addr = list.remove(position);
            list.push(addr);
        }
    }

    fn bind(&mut self, from: SocketAddr, key: K) {
        if let Some(previous) = self.by_addr.insert(from, key)
            && let Some(entry) = self.peers.get_mut(&previous)
        {
            entry.addrs.retain(|a| *a != from);
        }
        let Some(list) = self.peers.get_mut(&key).map(|e| &mut e.addrs) else {
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

/// STUN binding requests as browsers send them, for the tests of this module and of the routing
/// built on it.
#[cfg(test)]
pub(crate) mod requests {
    use super::*;

    /// Appends MESSAGE-INTEGRITY made with `pwd`.
    pub fn signed(mut msg: Vec<u8>, pwd: &str) -> Vec<u8> {
        let body = msg.len() - STUN_HEADER_LEN + 24;
        msg[2..4].copy_from_slice(&(body as u16).to_be_bytes());
        let mut mac = Hmac::<Sha1>::new_from_slice(pwd.as_bytes()).unwrap();
        mac.update(&msg);
        let tag = mac.finalize().into_bytes();
        msg.extend_from_slice(&STUN_ATTR_MESSAGE_INTEGRITY.to_be_bytes());
        msg.extend_from_slice(&20u16.to_be_bytes());
        msg.extend_from_slice(&tag);
        msg
    }

    pub fn stun_without_integrity(username: &str) -> Vec<u8> {
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
}

#[cfg(test)]
mod tests {
    use super::requests::{signed, stun_without_integrity};
    use super::*;

    const PWD: &str = "the-ice-password-of-the-peer-0001";

    fn credentials(ufrag: &str) -> IceCredentials {
        IceCredentials {
            ufrag: ufrag.into(),
            pwd: PWD.into(),
        }
    }

    /// A binding request with USERNAME and, keyed with [`PWD`], MESSAGE-INTEGRITY.
    fn stun_with_username(username: &str) -> Vec<u8> {
        signed(stun_without_integrity(username), PWD)
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
            let _ = stun_integrity_holds(&bytes, PWD);
            let mut with_cookie = bytes.clone();
            if with_cookie.len() >= 20 {
                with_cookie[0] = 0;
                with_cookie[4..8].copy_from_slice(&STUN_MAGIC_COOKIE);
                let _ = stun_target_ufrag(&with_cookie);
                let _ = stun_integrity_holds(&with_cookie, PWD);
            }
        }
    }

    /// RFC 5769 §2.1, the sample request: its MESSAGE-INTEGRITY, followed by a FINGERPRINT.
    #[test]
    fn checks_message_integrity_as_the_rfc_test_vector_has_it() {
        let sample: [u8; 108] = [
            0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
            0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e,
            0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24,
            0x00, 0x04, 0x6e, 0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1,
            0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68,
            0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c,
            0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5,
            0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
        ];
        assert_eq!(stun_target_ufrag(&sample), Some("evtj"));
        assert!(stun_integrity_holds(&sample, "VOkJxbRl1RmTxUk/WvJxBt"));
        assert!(!stun_integrity_holds(&sample, "VOkJxbRl1RmTxUk/WvJxBT"));
        let mut tampered = sample;
        tampered[47] ^= 1; // the priority
        assert!(!stun_integrity_holds(&tampered, "VOkJxbRl1RmTxUk/WvJxBt"));
        assert!(!stun_integrity_holds(
            &sample[..80],
            "VOkJxbRl1RmTxUk/WvJxBt"
        ));
        let unsigned = stun_without_integrity("evtj:h6vY");
        assert!(!stun_integrity_holds(&unsigned, "VOkJxbRl1RmTxUk/WvJxBt"));
    }

    #[test]
    fn only_a_request_that_knows_the_password_binds_an_address() {
        let mut dir = Directory::<u32>::default();
        dir.insert_peer(credentials("aaaa"), 1);
        let real = SocketAddr::from(([192, 0, 2, 1], 5000));
        assert_eq!(dir.route(real, &stun_with_username("aaaa:x")), Some(1));
        // An attacker who saw the ufrag, from four addresses of their own (as many as a peer
        // may hold): unsigned, or signed with a guess.
        for port in 0..4u16 {
            let forger = SocketAddr::from(([198, 51, 100, 7], 6000 + port));
            assert_eq!(dir.route(forger, &stun_without_integrity("aaaa:x")), None);
            let guessed = signed(stun_without_integrity("aaaa:x"), "not-the-password");
            assert_eq!(dir.route(forger, &guessed), None);
            assert_eq!(dir.route(forger, &[0x80; 20]), None, "not bound");
        }
        assert_eq!(
            dir.route(real, &[0x80; 20]),
            Some(1),
            "the real address stays"
        );
        assert_eq!(dir.by_addr.len(), 1);
        // From the address in use, consent checks pass on to the connection.
        assert_eq!(dir.route(real, &stun_without_integrity("aaaa:x")), Some(1));
    }

    #[test]
    fn routes_by_ufrag_then_address() {
        let mut dir = Directory::<u32>::default();
        dir.insert_peer(credentials("aaaa"), 1);
        dir.insert_peer(credentials("bbbb"), 2);
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
    fn an_unbound_address_must_prove_itself_again() {
        let mut dir = Directory::<u32>::default();
        dir.insert_peer(credentials("aaaa"), 1);
        let closed: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(dir.route(closed, &stun_with_username("aaaa:x")), Some(1));
        assert!(dir.is_bound(closed));
        dir.unbind(closed);
        assert!(!dir.is_bound(closed));
        assert_eq!(
            dir.route(closed, &[0x80; 20]),
            None,
            "media from it go nowhere"
        );
        assert_eq!(
            dir.route(closed, &stun_without_integrity("aaaa:x")),
            None,
            "nor an unsigned request"
        );
        assert_eq!(dir.route(closed, &stun_with_username("aaaa:x")), Some(1));
    }

    #[test]
    fn addresses_per_peer_are_bounded() {
        let mut dir = Directory::<u32>::default();
        dir.insert_peer(credentials("aaaa"), 1);
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
        dir.insert_peer(credentials("aaaa"), 1);
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
