//! The log pipeline: where every record the server writes goes, and what it may contain.
//!
//! Owns the tracing subscriber, the four log streams of SPEC §4 (`access`, `technical`, `focus`,
//! `bridge`) and the typed wrappers for personal data. Other modules log through `tracing` with
//! one of the stream targets below; nothing else reaches a file. It must never let a personal
//! field reach a stream that may not hold it, and never writes log records to stdout or stderr.

pub mod logfile;
pub mod pii;
pub mod retention;
pub mod statement;
pub mod streams;
pub mod subject;

pub use streams::{LogGuard, Stream, init_logging};

/// `tracing` target of the `access` stream: HTTP requests.
pub const ACCESS: &str = "access";
/// `tracing` target of the `focus` stream: conference and participant identifiers, joins, leaves.
pub const FOCUS: &str = "focus";
/// `tracing` target of the `bridge` stream: media sessions by participant identifier.
pub const BRIDGE: &str = "bridge";
/// `tracing` target of the `technical` stream (also every warning or error of any other target).
pub const TECHNICAL: &str = "technical";
