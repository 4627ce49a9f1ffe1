//! Whether the server's long-running parts still run. A part that stops unexpectedly (a media
//! worker thread or the focus task, after a panic outside what they isolate themselves) says so
//! here; `/healthz` then answers 503 and `zaal serve` exits non-zero, so that the supervisor
//! restarts a server that would otherwise look alive while carrying no media or no signalling.
//! It holds no detail of the failure: what failed is logged where it failed.

use tokio::sync::watch;

#[derive(Debug)]
pub struct Health {
    failed: watch::Sender<Option<&'static str>>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            failed: watch::Sender::new(None),
        }
    }
}

impl Health {
    /// `part` ("media worker", "focus") stopped unexpectedly; the first failure is kept.
    pub fn fail(&self, part: &'static str) {
        self.failed.send_if_modified(|failed| {
            if failed.is_none() {
                *failed = Some(part);
                true
            } else {
                false
            }
        });
    }

    /// The part that failed, if one did.
    pub fn failed(&self) -> Option<&'static str> {
        *self.failed.borrow()
    }

    /// Returns once a part has failed, with its name.
    pub async fn wait_for_failure(&self) -> &'static str {
        let mut failed = self.failed.subscribe();
        let part = match failed.wait_for(Option::is_some).await {
            Ok(part) => *part,
            // The sender lives in `self`: it cannot be gone while this borrows it.
            Err(_) => None,
        };
        part.unwrap_or("server")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_failure_is_reported_and_awaited() {
        let health = std::sync::Arc::new(Health::default());
        assert_eq!(health.failed(), None);
        let waiting = tokio::spawn({
            let health = health.clone();
            async move { health.wait_for_failure().await }
        });
        health.fail("focus");
        health.fail("media worker");
        assert_eq!(waiting.await.unwrap(), "focus");
        assert_eq!(health.failed(), Some("focus"));
    }
}
