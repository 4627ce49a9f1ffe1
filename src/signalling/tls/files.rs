//! Certificate files watched while the server runs: when `tls.cert` or `tls.key` changes on
//! disk (a certbot renewal, an operator's copy), the pair is read again and presented from the
//! next handshake on. Open connections and meetings are not touched.
//!
//! A pair that does not load (half written, a key of another certificate, unreadable) is
//! reported in the technical stream with what to fix, and the last good certificate stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{error, info};

use super::certificates::{Certificates, fingerprint, load_pem};
use crate::privacy::TECHNICAL;

/// How often the files are looked at: a renewal is served within this time.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// Watches `cert` and `key` until the task is dropped.
pub async fn watch(certificates: Arc<Certificates>, cert: PathBuf, key: PathBuf) {
    let mut seen = (stamp(&cert), stamp(&key));
    // The pair that failed last, so that a broken pair is reported once, not every interval.
    let mut failed: Option<(Option<Stamp>, Option<Stamp>)> = None;
    let mut every = tokio::time::interval(WATCH_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = (stamp(&cert), stamp(&key));
        if now == seen || failed == Some(now) {
            continue;
        }
        let (cert_path, key_path) = (cert.clone(), key.clone());
        let loaded = tokio::task::spawn_blocking(move || load_pem(&cert_path, &key_path)).await;
        match loaded {
            Ok(Ok(certified)) => {
                info!(
                    target: TECHNICAL,
                    event = "tls-certificate-reloaded",
                    fingerprint = %fingerprint(&certified.cert[0]),
                );
                certificates.replace(certified);
                seen = now;
                failed = None;
            }
            Ok(Err(e)) => {
                error!(
                    target: TECHNICAL,
                    event = "tls-certificate-refused",
                    "the changed certificate files cannot be used, so the last good certificate \
                     is still served: {e}"
                );
                failed = Some(now);
            }
            Err(e) => error!(target: TECHNICAL, error = %e, "certificate reload failed"),
        }
    }
}
