//! RFC 4571 framing: on an ICE-TCP connection every STUN, DTLS, SRTP and SRTCP datagram travels
//! as a 16-bit big-endian length and that many bytes. Pure: it splits bytes that arrived into
//! datagrams and frames datagrams to send; it never reads or writes a socket.

use bytes::{Buf, BufMut, BytesMut};

/// The largest datagram accepted on a connection: as on the UDP port (`core::MAX_DATAGRAM`).
/// A longer frame is no media of ours, and reading it would let a client make the server hold
/// 64 KiB per connection.
pub const MAX_FRAME: usize = 2048;
const LENGTH_BYTES: usize = 2;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FramingError {
    #[error("an ICE-TCP frame of {0} bytes is longer than {MAX_FRAME}")]
    TooLong(usize),
}

/// Splits what a connection delivered into datagrams.
#[derive(Debug, Default)]
pub struct FrameReader {
    buffer: BytesMut,
}

impl FrameReader {
    /// Where the next bytes read from the connection go (room for at least one whole frame).
    pub fn buffer(&mut self) -> &mut BytesMut {
        self.buffer.reserve(LENGTH_BYTES + MAX_FRAME);
        &mut self.buffer
    }

    /// The next whole datagram, if one has arrived; empty frames (allowed by RFC 4571, meaning
    /// nothing) are skipped. The datagrams share the reader's allocation, so reading frames
    /// allocates only when the buffer's room runs out.
    pub fn next_frame(&mut self) -> Result<Option<BytesMut>, FramingError> {
        loop {
            let Some(header) = self.buffer.get(..LENGTH_BYTES) else {
                return Ok(None);
            };
            let length = u16::from_be_bytes([header[0], header[1]]) as usize;
            if length > MAX_FRAME {
                return Err(FramingError::TooLong(length));
            }
            if self.buffer.len() < LENGTH_BYTES + length {
                return Ok(None);
            }
            self.buffer.advance(LENGTH_BYTES);
            let frame = self.buffer.split_to(length);
            if !frame.is_empty() {
                return Ok(Some(frame));
            }
        }
    }

    /// Bytes of an unfinished frame held.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }
}

/// Appends `datagram` to `out` as one frame. Datagrams longer than a frame can say are not
/// framed (the core sends none: its datagrams are at most an MTU).
pub fn write_frame(out: &mut BytesMut, datagram: &[u8]) -> bool {
    let Ok(length) = u16::try_from(datagram.len()) else {
        return false;
    };
    out.reserve(LENGTH_BYTES + datagram.len());
    out.put_u16(length);
    out.put_slice(datagram);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(datagrams: &[&[u8]]) -> BytesMut {
        let mut out = BytesMut::new();
        for d in datagrams {
            assert!(write_frame(&mut out, d));
        }
        out
    }

    #[test]
    fn frames_split_wherever_the_bytes_break_come_out_whole_and_in_order() {
        let wire = framed(&[b"stun", b"", b"dtls-record", &[7u8; MAX_FRAME]]);
        // Every way of cutting the stream in two delivers the same datagrams.
        for cut in 0..=wire.len() {
            let mut reader = FrameReader::default();
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                reader.buffer().extend_from_slice(part);
                while let Some(frame) = reader.next_frame().unwrap() {
                    got.push(frame.to_vec());
                }
            }
            assert_eq!(
                got,
                vec![
                    b"stun".to_vec(),
                    b"dtls-record".to_vec(),
                    vec![7u8; MAX_FRAME]
                ],
                "cut at {cut}"
            );
            assert_eq!(reader.pending(), 0);
        }
    }

    #[test]
    fn a_frame_longer_than_any_datagram_is_refused_before_it_is_read() {
        let mut reader = FrameReader::default();
        reader.buffer().extend_from_slice(&[0xff, 0xff, 1, 2, 3]);
        assert_eq!(reader.next_frame(), Err(FramingError::TooLong(0xffff)));
        let mut reader = FrameReader::default();
        reader
            .buffer()
            .extend_from_slice(&((MAX_FRAME + 1) as u16).to_be_bytes());
        assert_eq!(
            reader.next_frame(),
            Err(FramingError::TooLong(MAX_FRAME + 1))
        );
    }

    #[test]
    fn a_datagram_too_long_for_its_length_field_is_not_framed() {
        let mut out = BytesMut::new();
        assert!(!write_frame(&mut out, &vec![0u8; 70_000]));
        assert!(out.is_empty());
    }
}
