//! The bytes of TURN that the relay path touches for every packet, written without allocating:
//! telling ChannelData from STUN, finding an attribute's value in a datagram, checking and adding
//! MESSAGE-INTEGRITY with a long-term key, and framing what goes back to a client (ChannelData,
//! or a Data indication while no channel is bound). Control messages (allocations, permissions)
//! are built with rtc-stun's types in `server.rs`.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use hmac::{Hmac, Mac};
use rtc::stun::attributes::AttrType;
use rtc::stun::message::Message;
use sha1::Sha1;

pub const STUN_HEADER: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
pub const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
pub const ATTR_XOR_PEER_ADDRESS: u16 = 0x0012;
pub const ATTR_DATA: u16 = 0x0013;
const INTEGRITY_LEN: usize = 20;
/// A Data indication: method Data (0x007), class indication.
const DATA_INDICATION: u16 = 0x0017;
/// Channel numbers a client may bind (RFC 8656 §12).
pub const CHANNELS: std::ops::RangeInclusive<u16> = 0x4000..=0x4FFF;

/// Whether a datagram is a STUN message (first two bits zero, the magic cookie).
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= STUN_HEADER && datagram[0] < 4 && datagram[4..8] == MAGIC_COOKIE
}

/// A ChannelData message: its channel and where its payload lies.
pub fn channel_data(datagram: &[u8]) -> Option<(u16, Range<usize>)> {
    let header = datagram.get(..4)?;
    let number = u16::from_be_bytes([header[0], header[1]]);
    if !CHANNELS.contains(&number) {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    // Over UDP the datagram may carry padding after the payload; never less than the length.
    (4 + len <= datagram.len()).then_some((number, 4..4 + len))
}

/// The attributes of a STUN message as (type, offset of the attribute, range of its value);
/// stops at the first that does not fit the message.
fn attributes(datagram: &[u8]) -> impl Iterator<Item = (u16, usize, Range<usize>)> + '_ {
    let body = datagram
        .get(2..4)
        .map_or(0, |l| usize::from(u16::from_be_bytes([l[0], l[1]])));
    let end = if is_stun(datagram) && STUN_HEADER + body <= datagram.len() {
        STUN_HEADER + body
    } else {
        STUN_HEADER
    };
    let mut at = STUN_HEADER;
    std::iter::from_fn(move || {
        if at + 4 > end {
            return None;
        }
        let kind = u16::from_be_bytes([datagram[at], datagram[at + 1]]);
        let len = usize::from(u16::from_be_bytes([datagram[at + 2], datagram[at + 3]]));
        if at + 4 + len > end {
            return None;
        }
        let found = (kind, at, at + 4..at + 4 + len);
        at += 4 + len.next_multiple_of(4);
        Some(found)
    })
}

/// Where the value of the first attribute of `kind` lies.
pub fn attribute(datagram: &[u8], kind: u16) -> Option<Range<usize>> {
    attributes(datagram)
        .find(|(k, _, _)| *k == kind)
        .map(|(_, _, value)| value)
}

/// The transport address in an XOR-…-ADDRESS value (RFC 8489 §14.2).
pub fn xor_address(datagram: &[u8], value: Range<usize>) -> Option<SocketAddr> {
    let v = datagram.get(value)?;
    let port = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]) ^ 0x2112;
    let ip = match v.get(1)? {
        0x01 if v.len() == 8 => {
            let mut octets = [0u8; 4];
            for (i, o) in octets.iter_mut().enumerate() {
                *o = v[4 + i] ^ MAGIC_COOKIE[i];
            }
            IpAddr::from(octets)
        }
        0x02 if v.len() == 20 => {
            let mut octets = [0u8; 16];
            for (i, o) in octets.iter_mut().enumerate() {
                let pad = if i < 4 {
                    MAGIC_COOKIE[i]
                } else {
                    datagram[8 + i - 4]
                };
                *o = v[4 + i] ^ pad;
            }
            IpAddr::from(octets)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Whether the message's MESSAGE-INTEGRITY is the HMAC-SHA1 of it under `key` (RFC 8489
/// §14.5: over the message up to that attribute, the header's length counting to its end).
pub fn integrity_holds(datagram: &[u8], key: &[u8]) -> bool {
    let Some((_, offset, value)) =
        attributes(datagram).find(|(k, _, _)| *k == ATTR_MESSAGE_INTEGRITY)
    else {
        return false;
    };
    if value.len() != INTEGRITY_LEN {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        return false;
    };
    let counted = (offset + 4 + INTEGRITY_LEN - STUN_HEADER) as u16;
    mac.update(&datagram[..2]);
    mac.update(&counted.to_be_bytes());
    mac.update(&datagram[4..offset]);
    mac.verify_slice(&datagram[value]).is_ok()
}

/// Adds MESSAGE-INTEGRITY made with `key` to a message being built (as rtc-stun's own
/// `MessageIntegrity`, which wants a crypto provider for one HMAC).
pub fn sign(m: &mut Message, key: &[u8]) {
    let length = m.length;
    m.length += (INTEGRITY_LEN + 4) as u32;
    m.write_length();
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(&m.raw);
    let tag = mac.finalize().into_bytes();
    m.length = length;
    m.write_length();
    m.add(AttrType(ATTR_MESSAGE_INTEGRITY), &tag);
}

/// Every value of attributes of `kind`, in order (CreatePermission may name several peers).
pub fn attributes_of(datagram: &[u8], kind: u16) -> impl Iterator<Item = Range<usize>> + '_ {
    attributes(datagram)
        .filter(move |(k, _, _)| *k == kind)
        .map(|(_, _, value)| value)
}

/// Frames `payload` for a client as ChannelData on `channel`, padded to four bytes when the
/// client is on a stream (RFC 8656 §12.5), into `out` (cleared first).
pub fn write_channel_data(out: &mut Vec<u8>, channel: u16, payload: &[u8], stream: bool) {
    out.clear();
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    if stream {
        out.resize(out.len().next_multiple_of(4), 0);
    }
}

/// Frames `payload` from `peer` as a Data indication (for a client without a channel to that
/// peer), into `out` (cleared first); `transaction` tells indications apart.
pub fn write_data_indication(
    out: &mut Vec<u8>,
    peer: SocketAddr,
    payload: &[u8],
    transaction: [u8; 12],
) {
    out.clear();
    out.extend_from_slice(&DATA_INDICATION.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&MAGIC_COOKIE);
    out.extend_from_slice(&transaction);
    let port = peer.port() ^ 0x2112;
    match peer.ip() {
        IpAddr::V4(ip) => {
            out.extend_from_slice(&ATTR_XOR_PEER_ADDRESS.to_be_bytes());
            out.extend_from_slice(&8u16.to_be_bytes());
            out.extend_from_slice(&[0, 0x01]);
            out.extend_from_slice(&port.to_be_bytes());
            for (i, o) in ip.octets().iter().enumerate() {
                out.push(o ^ MAGIC_COOKIE[i]);
            }
        }
        IpAddr::V6(ip) => {
            out.extend_from_slice(&ATTR_XOR_PEER_ADDRESS.to_be_bytes());
            out.extend_from_slice(&20u16.to_be_bytes());
            out.extend_from_slice(&[0, 0x02]);
            out.extend_from_slice(&port.to_be_bytes());
            for (i, o) in ip.octets().iter().enumerate() {
                let pad = if i < 4 {
                    MAGIC_COOKIE[i]
                } else {
                    transaction[i - 4]
                };
                out.push(o ^ pad);
            }
        }
    }
    out.extend_from_slice(&ATTR_DATA.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(4), 0);
    let body = (out.len() - STUN_HEADER) as u16;
    out[2..4].copy_from_slice(&body.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::stun::message::Getter;
    use rtc::turn::proto::{data::Data, peeraddr::PeerAddress};

    #[test]
    fn data_indications_decode_with_rtc_stun() {
        for peer in [
            "192.0.2.7:10000".parse::<SocketAddr>().unwrap(),
            "[2001:db8::7]:10000".parse().unwrap(),
        ] {
            let mut out = Vec::new();
            write_data_indication(&mut out, peer, b"hello", [7; 12]);
            let mut m = Message::new();
            m.unmarshal_binary(&out).unwrap();
            let mut addr = PeerAddress::default();
            addr.get_from(&m).unwrap();
            assert_eq!(SocketAddr::new(addr.ip, addr.port), peer);
            let mut data = Data::default();
            data.get_from(&m).unwrap();
            assert_eq!(data.0, b"hello");
            // And our own reader agrees.
            let value = attribute(&out, ATTR_XOR_PEER_ADDRESS).unwrap();
            assert_eq!(xor_address(&out, value), Some(peer));
            assert_eq!(&out[attribute(&out, ATTR_DATA).unwrap()], b"hello");
        }
    }

    #[test]
    fn channel_data_is_framed_and_read_back() {
        let mut out = Vec::new();
        write_channel_data(&mut out, 0x4001, b"abcde", true);
        assert_eq!(out.len(), 12, "padded on a stream");
        assert_eq!(channel_data(&out), Some((0x4001, 4..9)));
        write_channel_data(&mut out, 0x4001, b"abcde", false);
        assert_eq!(out.len(), 9);
        assert_eq!(channel_data(&out[..8]), None, "shorter than its length");
        assert_eq!(channel_data(&[0x30, 0, 0, 0]), None, "not a channel number");
        assert!(!is_stun(&out));
    }

    #[test]
    fn integrity_made_here_checks_here_and_is_refused_under_another_key() {
        let mut m = Message::new();
        m.typ = rtc::stun::message::BINDING_REQUEST;
        m.new_transaction_id().unwrap();
        m.write_header();
        sign(&mut m, b"key");
        let mut raw = m.raw.clone();
        assert!(integrity_holds(&raw, b"key"));
        assert!(!integrity_holds(&raw, b"other"));
        raw[STUN_HEADER - 1] ^= 1;
        assert!(!integrity_holds(&raw, b"key"), "a changed byte breaks it");
        // Malformed input never panics.
        for len in 0..raw.len() {
            let _ = integrity_holds(&raw[..len], b"key");
            let _ = attribute(&raw[..len], ATTR_DATA);
        }
    }
}
