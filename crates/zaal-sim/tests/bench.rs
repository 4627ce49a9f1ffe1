//! A tiny run of the load tool: it starts a server, media flows, and the report has every field.
//! (Speed is measured with the tool, never asserted here.)

use std::process::Command;

/// Runs the tool with `args` and returns the report it wrote.
fn report_of(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let status = Command::new(env!("CARGO_BIN_EXE_zaal-bench"))
        .args(args)
        .args(["--quiet", "--json"])
        .arg(&json)
        .status()
        .unwrap();
    assert!(status.success(), "zaal-bench {args:?}");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[test]
fn the_load_tool_runs_and_reports() {
    let report = report_of(&[
        "--rooms",
        "1",
        "--participants",
        "3",
        "--video-senders",
        "2",
        "--video-kbps",
        "200",
        "--duration",
        "2s",
        "--ramp",
        "500ms",
        "--warmup",
        "2s",
    ]);
    for field in [
        "forwarded_pps",
        "forwarded_bps",
        "loss_ratio",
        "payload_gap_ratio",
        "server_delay_ms_p50",
        "server_delay_ms_p99",
        "latency_ms_p50",
        "latency_ms_p99",
        "server_cpu_seconds",
        "server_cpu_us_per_forwarded_packet",
        "server_rss_bytes",
        "server_private_bytes",
        "server_memory_per_participant_bytes",
        "participants",
        "duration_s",
    ] {
        assert!(report[field].is_number(), "{field} in {report}");
    }
    assert_eq!(report["participants"], 3);
    assert!(
        report["server_media_workers"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert!(report["forwarded_pps"].as_f64().unwrap() > 0.0, "{report}");
    // Private memory is part of the resident memory, and participants cost some of it.
    let private = report["server_private_bytes"].as_u64().unwrap();
    assert!(
        private > 0 && private <= report["server_rss_bytes"].as_u64().unwrap(),
        "{report}"
    );
    assert!(
        report["server_memory_per_participant_bytes"]
            .as_u64()
            .unwrap()
            > 0,
        "{report}"
    );
    assert!(report["latency_samples"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["server_delay_ms_p99"].as_f64().unwrap() > 0.0,
        "the server's forwarding-delay histogram counted nothing: {report}"
    );
}

#[test]
fn the_load_tool_keeps_the_server_and_the_load_on_the_processors_it_is_given() {
    let report = report_of(&[
        "--participants",
        "2",
        "--video-senders",
        "1",
        "--video-kbps",
        "100",
        "--duration",
        "1s",
        "--ramp",
        "200ms",
        "--warmup",
        "1s",
        "--server-cpus",
        "0",
        "--load-cpus",
        "0",
    ]);
    assert_eq!(report["server_cpus"], "0", "{report}");
    assert_eq!(report["load_cpus"], "0", "{report}");
    // One processor, so the server starts one media worker (its default is one per processor).
    assert_eq!(report["server_media_workers"], 1, "{report}");
    assert!(report["forwarded_pps"].as_f64().unwrap() > 0.0, "{report}");

    // Processors this machine does not have: a clear error, before anything starts.
    for flag in ["--load-cpus", "--server-cpus"] {
        let out = Command::new(env!("CARGO_BIN_EXE_zaal-bench"))
            .args([flag, "1000", "--duration", "1s"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{flag}: {stderr}");
    }
}
