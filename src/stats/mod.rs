//! Counting, never identifying: Prometheus metrics and usage reports.
//!
//! Owns what Zaal tells operators about load. It reads counters the other parts keep and turns
//! them into aggregate numbers; it must never keep or expose an identifier, a name, a room name
//! or an address (SPEC P11).

pub mod metrics;
pub mod refusals;
pub mod usage;
