//! Zaal: a self-hosted, privacy-first video-conferencing server.
//!
//! The map of the crate (SPEC §3): data flows signalling → focus → sfu, and every part logs
//! through privacy.

/// The command line: one module per subcommand.
pub mod cli;
/// Typed settings: defaults, `--config` file, `ZAAL__SECTION__KEY` environment.
pub mod config;
/// Rooms, conferences, participants and the media plan (no socket I/O).
pub mod focus;
/// Whether the long-running parts still run (for /healthz and the exit code).
pub mod health;
/// Random conference and participant identifiers, shared by the focus and the SFU.
pub mod ids;
/// Connections open, in all and per address, against limits (HTTP, WebSockets, ICE-TCP).
pub mod occupancy;
/// Log streams, personal-data wrappers, the privacy statement.
pub mod privacy;
/// Private folders (0700) and files (0600) under `data.dir` and `logs.dir`.
pub mod private_fs;
/// Assembles the parts into a running server.
pub mod server;
/// The media port: ICE-lite, DTLS-SRTP, RTP forwarding.
pub mod sfu;
/// HTTP: web client, API, WebSocket signalling.
pub mod signalling;
/// Aggregate counts: metrics and usage.
pub mod stats;
/// Durable state in SQLite: hosts, sessions, rooms.
pub mod store;
