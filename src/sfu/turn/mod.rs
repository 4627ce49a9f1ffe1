//! Zaal's own TURN server (RFC 8656), for networks that let out no UDP but to the web, or only
//! TCP 443: the protocol, sans I/O, and the credentials the signalling hands out.
//!
//! It relays only between its clients and Zaal's own media port, and does so without a socket
//! of its own: a relayed datagram is handed to the media core as if it came from the
//! allocation's relayed address, and what the core sends to that address is framed back to the
//! client. So it can never be an open relay (any other peer is refused with 403), and relaying
//! costs no second trip through the kernel. It never logs; counts reach the metrics.

pub mod allocations;
pub mod credentials;
pub(crate) mod edge;
pub mod server;
pub(crate) mod stream;
#[cfg(test)]
mod tests;
mod wire;

pub use allocations::{AllocationLimits, ClientKey, ClientTransport};
pub use credentials::{TurnCredential, TurnSecret};
pub use server::{Handled, TurnConfig, TurnServer};
pub use stream::TurnStreams;
