//! ICE-TCP framing (RFC 4571): the reader that splits what a TCP connection delivers into
//! datagrams, before anything else of the server sees them.
//!
//! Input: a step byte, then the bytes of a connection. Beyond not panicking: however the bytes
//! are cut into reads (here, every `step` bytes), the same datagrams come out, each non-empty
//! and at most `MAX_FRAME` long, and a connection whose bytes the reader refuses is refused at
//! the same datagram; framing the datagrams again and reading them back gives them unchanged.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use zaal::sfu::fuzzing::{FrameReader, MAX_FRAME, write_frame};

/// The datagrams read from `reads`, and whether the reader refused the rest.
fn datagrams(reads: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
    let mut reader = FrameReader::default();
    let mut out = Vec::new();
    for read in reads {
        reader.buffer().extend_from_slice(read);
        loop {
            match reader.next_frame() {
                Ok(Some(datagram)) => out.push(datagram.to_vec()),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, wire)) = data.split_first() else {
        return;
    };
    let whole = datagrams(&[wire]);
    let reads: Vec<&[u8]> = wire.chunks(usize::from(step).max(1)).collect();
    assert_eq!(
        datagrams(&reads),
        whole,
        "the same datagrams however the reads fall"
    );
    for datagram in &whole.0 {
        assert!(!datagram.is_empty() && datagram.len() <= MAX_FRAME);
    }
    let mut again = BytesMut::new();
    for datagram in &whole.0 {
        assert!(write_frame(&mut again, datagram));
    }
    assert_eq!(datagrams(&[&again]), (whole.0, false));
});
