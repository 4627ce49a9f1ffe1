//! The soak figures of a churn run: what the server holds (resident memory, open file
//! descriptors, threads, runtime tasks) sampled through the run, and how far the end lies from
//! the start. A server that leaks per join grows with the number of joins; one that does not
//! stays flat while participants come and go.

use serde_json::{Value, json};

/// One look at the server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at_s: f64,
    pub rss_bytes: u64,
    pub fds: u64,
    pub threads: u64,
    /// Tasks alive in the server's async runtime (`zaal_runtime_tasks`).
    pub tasks: u64,
}

/// What `/proc` and `/metrics` say of the server now; `None` if it is gone.
pub fn sample(pid: u32, at_s: f64, metrics: &str) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let tasks = metrics
        .lines()
        .find_map(|l| l.strip_prefix("zaal_runtime_tasks "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Some(Sample {
        at_s,
        rss_bytes: field("VmRSS:")? * 1024,
        fds,
        threads: field("Threads:")?,
        tasks,
    })
}

/// The report: every sample, and for each figure the change from the first sample after the
/// warm-up (the first tenth of the run) to the mean of the last tenth, as a ratio.
pub fn report(samples: &[Sample], joins: u64) -> Value {
    let n = samples.len();
    let tenth = (n / 10).max(1);
    let start = samples.get(tenth.min(n.saturating_sub(1)));
    let end = &samples[n.saturating_sub(tenth)..];
    let drift = |figure: fn(&Sample) -> u64| -> f64 {
        let Some(start) = start else { return 0.0 };
        let first = figure(start) as f64;
        if first == 0.0 || end.is_empty() {
            return 0.0;
        }
        let last = end.iter().map(|s| figure(s) as f64).sum::<f64>() / end.len() as f64;
        last / first - 1.0
    };
    json!({
        "joins": joins,
        "rss_drift_ratio": drift(|s| s.rss_bytes),
        "fds_drift_ratio": drift(|s| s.fds),
        "threads_drift_ratio": drift(|s| s.threads),
        "tasks_drift_ratio": drift(|s| s.tasks),
        "samples": samples.iter().map(|s| json!({
            "at_s": s.at_s, "rss_bytes": s.rss_bytes, "fds": s.fds,
            "threads": s.threads, "tasks": s.tasks,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(i: u64, rss: u64) -> Sample {
        Sample {
            at_s: i as f64,
            rss_bytes: rss,
            fds: 40,
            threads: 6,
            tasks: 20 + i,
        }
    }

    #[test]
    fn drift_compares_the_end_with_the_start_after_warm_up() {
        // Warm-up growth in the first tenth does not count; a leak in the rest does.
        let mut samples = vec![at(0, 10)];
        samples.extend((1..20).map(|i| at(i, 100)));
        let flat = report(&samples, 5);
        assert_eq!(flat["rss_drift_ratio"], 0.0);
        assert_eq!(flat["fds_drift_ratio"], 0.0);
        let leaking: Vec<Sample> = (0..20).map(|i| at(i, 100 + 10 * i)).collect();
        let grown = report(&leaking, 5)["rss_drift_ratio"].as_f64().unwrap();
        assert!(grown > 0.5, "{grown}");
        assert_eq!(report(&[], 0)["rss_drift_ratio"], 0.0);
    }
}
