//! Slowing down password guessing: host logins and room passwords.
//!
//! After a failure, the next attempt for the same key (an account, a client address, a room)
//! must wait `base`, doubling with each further failure up to `max`; a success clears the key.
//! Attempts during the wait are refused without checking the password at all, so guessing costs
//! time whatever the attacker does. An attempt reserves its keys before the password is checked
//! ([`SharedThrottle::begin`]): while one is being checked, a concurrent attempt with any of the
//! same keys is refused too, so a burst of guesses costs one check, not one each. Pure: the caller passes the instant. Addresses used as keys
//! live only in memory and are forgotten once their wait has long passed.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys kept at most; beyond this the entries whose wait is over are dropped first.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    next_allowed: Instant,
}

#[derive(Debug)]
pub struct Throttle<K> {
    base: Duration,
    max: Duration,
    entries: HashMap<K, Entry>,
    /// Keys with an attempt being checked right now.
    in_flight: HashSet<K>,
}

impl<K: Eq + Hash + Clone> Throttle<K> {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            entries: HashMap::new(),
            in_flight: HashSet::new(),
        }
    }

    /// Reserves `keys` for one attempt: refused (with the wait) while any of them waits after a
    /// failure or has an attempt in flight. The reservation ends with [`Self::failed`],
    /// [`Self::succeeded`] or [`Self::release`].
    pub fn begin(&mut self, now: Instant, keys: &[K]) -> Result<(), Duration> {
        let wait = self.wait(now, keys);
        if !wait.is_zero() {
            return Err(wait);
        }
        if keys.iter().any(|k| self.in_flight.contains(k)) {
            return Err(self.base.max(Duration::from_secs(1)));
        }
        self.in_flight.extend(keys.iter().cloned());
        Ok(())
    }

    /// Ends a reservation without a verdict (the check could not be made).
    pub fn release(&mut self, keys: &[K]) {
        for key in keys {
            self.in_flight.remove(key);
        }
    }

    /// How long the caller must still wait before an attempt with any of `keys`; zero if none.
    pub fn wait(&self, now: Instant, keys: &[K]) -> Duration {
        keys.iter()
            .filter_map(|k| self.entries.get(k))
            .map(|e| e.next_allowed.saturating_duration_since(now))
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Records a failed attempt for every key.
    pub fn failed(&mut self, now: Instant, keys: &[K]) {
        self.release(keys);
        if self.entries.len() >= MAX_KEYS {
            self.forget_expired(now);
        }
        if self.entries.len() >= MAX_KEYS {
            // Still full: drop the entry that becomes free soonest.
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.next_allowed)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        for key in keys {
            let entry = self.entries.entry(key.clone()).or_insert(Entry {
                failures: 0,
                next_allowed: now,
            });
            entry.failures = entry.failures.saturating_add(1);
            let factor = 1u32 << (entry.failures - 1).min(20);
            let delay = self.base.saturating_mul(factor).min(self.max);
            entry.next_allowed = now + delay;
        }
    }

    /// Records a success: the keys start afresh.
    pub fn succeeded(&mut self, keys: &[K]) {
        self.release(keys);
        for key in keys {
            self.entries.remove(key);
        }
    }

    fn forget_expired(&mut self, now: Instant) {
        let max = self.max;
        self.entries.retain(|_, e| e.next_allowed + max > now);
    }
}

/// A throttle shared by request handlers. The lock is held for a map lookup, never across an
/// await.
#[derive(Debug)]
pub struct SharedThrottle {
    inner: std::sync::Mutex<Throttle<String>>,
}

impl SharedThrottle {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            inner: std::sync::Mutex::new(Throttle::new(base, max)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Throttle<String>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn wait(&self, now: Instant, key: &str) -> Duration {
        self.wait_any(now, &[key.to_string()])
    }

    pub fn wait_any(&self, now: Instant, keys: &[String]) -> Duration {
        self.lock().wait(now, keys)
    }

    pub fn failed(&self, now: Instant, key: &str) {
        self.failed_all(now, &[key.to_string()]);
    }

    pub fn failed_all(&self, now: Instant, keys: &[String]) {
        self.lock().failed(now, keys);
    }

    pub fn succeeded(&self, key: &str) {
        self.succeeded_all(&[key.to_string()]);
    }

    pub fn succeeded_all(&self, keys: &[String]) {
        self.lock().succeeded(keys);
    }

    /// Reserves `keys` for one attempt (see [`Throttle::begin`]); `Err` is how long to wait.
    /// Dropping the attempt without a verdict releases the keys.
    pub fn begin(self: &Arc<Self>, now: Instant, keys: Vec<String>) -> Result<Attempt, Duration> {
        self.lock().begin(now, &keys)?;
        Ok(Attempt {
            throttle: self.clone(),
            keys,
            done: false,
        })
    }
}

/// One reserved attempt: it ends with its verdict, or released if dropped without one.
#[derive(Debug)]
pub struct Attempt {
    throttle: Arc<SharedThrottle>,
    keys: Vec<String>,
    done: bool,
}

impl Attempt {
    pub fn failed(mut self, now: Instant) {
        self.done = true;
        self.throttle.lock().failed(now, &self.keys);
    }

    pub fn succeeded(mut self) {
        self.done = true;
        self.throttle.lock().succeeded(&self.keys);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.done {
            self.throttle.lock().release(&self.keys);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_in_flight_holds_off_concurrent_ones_with_any_shared_key() {
        let t0 = Instant::now();
        let shared = Arc::new(SharedThrottle::new(
            Duration::from_secs(1),
            Duration::from_secs(8),
        ));
        let keys = |account: &str, client: &str| {
            vec![
                format!("login:{account}|{client}"),
                format!("client:{client}"),
            ]
        };
        let first = shared.begin(t0, keys("juf", "192.0.2.1")).unwrap();
        assert!(
            shared.begin(t0, keys("juf", "192.0.2.1")).is_err(),
            "the same guess again"
        );
        assert!(
            shared.begin(t0, keys("meester", "192.0.2.1")).is_err(),
            "another account, same address"
        );
        let elsewhere = shared.begin(t0, keys("juf", "198.51.100.9")).unwrap();
        elsewhere.succeeded();
        first.failed(t0);
        assert!(
            shared.begin(t0, keys("juf", "192.0.2.1")).is_err(),
            "waiting after the failure"
        );
        assert!(
            shared.begin(t0, keys("juf", "198.51.100.9")).is_ok(),
            "the account itself is not locked for other addresses"
        );
        // An attempt dropped without a verdict frees its keys.
        let later = t0 + Duration::from_secs(2);
        drop(shared.begin(later, keys("juf", "192.0.2.1")).unwrap());
        assert!(shared.begin(later, keys("juf", "192.0.2.1")).is_ok());
    }

    #[test]
    fn each_failure_doubles_the_wait_up_to_the_maximum() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(1), Duration::from_secs(8));
        let k = ["account:juf".to_string()];
        assert_eq!(t.wait(t0, &k), Duration::ZERO);
        t.failed(t0, &k);
        assert_eq!(t.wait(t0, &k), Duration::from_secs(1));
        t.failed(t0 + Duration::from_secs(1), &k);
        assert_eq!(
            t.wait(t0 + Duration::from_secs(1), &k),
            Duration::from_secs(2)
        );
        t.failed(t0 + Duration::from_secs(3), &k);
        assert_eq!(
            t.wait(t0 + Duration::from_secs(3), &k),
            Duration::from_secs(4)
        );
        for _ in 0..10 {
            t.failed(t0 + Duration::from_secs(100), &k);
        }
        assert_eq!(
            t.wait(t0 + Duration::from_secs(100), &k),
            Duration::from_secs(8)
        );
        t.succeeded(&k);
        assert_eq!(t.wait(t0 + Duration::from_secs(100), &k), Duration::ZERO);
    }

    #[test]
    fn any_throttled_key_makes_the_caller_wait() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..3 {
            t.failed(t0, &["ip:1".to_string()]);
        }
        let keys = ["account:new".to_string(), "ip:1".to_string()];
        assert_eq!(t.wait(t0, &keys), Duration::from_secs(4));
        assert_eq!(t.wait(t0, &["ip:2".to_string()]), Duration::ZERO);
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(1), Duration::from_secs(2));
        for i in 0..(MAX_KEYS + 500) {
            t.failed(t0, &[i]);
        }
        assert!(t.entries.len() <= MAX_KEYS);
    }
}
