//! The privacy promises of SPEC §2, proved against the real server: where personal data goes,
//! retention, data-subject requests, usage reports and the generated statement.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{TestServer, eventually};
use serde_json::Value;
use zaal_sim::{SimOptions, SimulatedParticipant};

const PROBE_NAME: &str = "Probe Ödegaard-7731";
const PROBE_IP: &str = "127.0.0.23";

/// Every file under `dir` (recursively) whose bytes contain `needle`, by file name.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        {
            found.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    found
}

/// The streams (file-name prefixes) among `files`.
fn streams(files: &[String]) -> Vec<String> {
    let mut s: Vec<String> = files
        .iter()
        .map(|f| f.split('.').next().unwrap().to_string())
        .collect();
    s.sort();
    s.dedup();
    s
}

fn probe_client() -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(PROBE_IP.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// A conference with the probe participant (name and address), then a clean stop so that every
/// stream is flushed.
async fn run_probe_conference(server: &mut TestServer) {
    server.create_room("probe-room").await;
    let client = probe_client();
    for path in ["/", "/probe-room", "/api/rooms/probe-room", "/privacy"] {
        let r = client.get(server.url(path)).send().await.unwrap();
        assert!(r.status().is_success(), "{path}");
    }
    let mut options = SimOptions::new(&server.base, "probe-room", PROBE_NAME);
    options.local_ip = PROBE_IP.parse().unwrap();
    let probe = SimulatedParticipant::join(options).await.unwrap();
    let other = SimulatedParticipant::join(SimOptions::new(&server.base, "probe-room", "Other"))
        .await
        .unwrap();
    other
        .wait_for("the probe's media", Duration::from_secs(20), |o| {
            o.received
                .get(&probe.id)
                .is_some_and(|r| r.audio_packets > 20 && r.video_packets > 20)
        })
        .await
        .unwrap();
    probe.leave().await;
    other.leave().await;
    assert!(server.stop().success(), "clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_reaches_only_the_allowed_streams() {
    let mut server = TestServer::start(&[]);
    run_probe_conference(&mut server).await;
    let (logs, data) = (server.logs_dir(), server.data_dir());

    let name_files = files_containing(&logs, PROBE_NAME);
    assert_eq!(streams(&name_files), vec!["technical"], "{name_files:?}");
    let ip_files = files_containing(&logs, PROBE_IP);
    assert_eq!(
        streams(&ip_files),
        vec!["access", "technical"],
        "{ip_files:?}"
    );
    assert!(files_containing(&data, PROBE_NAME).is_empty());
    assert!(files_containing(&data, PROBE_IP).is_empty());
    // Identifiers: the focus stream has them, the technical stream (which has names) never does.
    let focus = files_containing(&logs, "participant-joined");
    assert_eq!(streams(&focus), vec!["focus"]);
    let output = server.output.lock().unwrap().join("\n");
    assert!(!output.contains(PROBE_NAME), "stdout/stderr: {output}");
    assert!(!output.contains(PROBE_IP), "stdout/stderr: {output}");
    // Every record is a JSON object with an RFC 3339 timestamp.
    for entry in std::fs::read_dir(&logs).unwrap().flatten() {
        for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            let ts = record["timestamp"].as_str().unwrap();
            assert!(humantime::parse_rfc3339_weak(ts).is_ok(), "{ts}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_mode_none_and_no_names_leave_nothing_on_disk() {
    let mut server = TestServer::start(&[
        ("ZAAL__PRIVACY__IP_MODE", "none"),
        ("ZAAL__PRIVACY__LOG_NAMES", "false"),
    ]);
    run_probe_conference(&mut server).await;
    for dir in [server.logs_dir(), server.data_dir()] {
        assert!(files_containing(&dir, PROBE_IP).is_empty(), "{dir:?}");
        assert!(files_containing(&dir, "127.0.0.0").is_empty(), "{dir:?}");
        assert!(files_containing(&dir, PROBE_NAME).is_empty(), "{dir:?}");
    }
    // The requests were still logged, without an address.
    assert!(!files_containing(&server.logs_dir(), "\"path\":\"/probe-room\"").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_ip_mode_writes_only_the_prefix() {
    let mut server = TestServer::start(&[("ZAAL__PRIVACY__IP_MODE", "truncated")]);
    run_probe_conference(&mut server).await;
    for dir in [server.logs_dir(), server.data_dir()] {
        assert!(files_containing(&dir, PROBE_IP).is_empty(), "{dir:?}");
    }
    let truncated = files_containing(&server.logs_dir(), "\"client_ip\":\"127.0.0.0\"");
    assert_eq!(streams(&truncated), vec!["access", "technical"]);
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

fn records(dir: &Path, stream: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{stream}."))
        })
        .map(|e| std::fs::read_to_string(e.path()).unwrap().lines().count())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_applies_each_streams_retention() {
    let mut server = TestServer::start(&[]);
    let written = SystemTime::now();
    run_probe_conference(&mut server).await;
    let logs = server.logs_dir();
    for stream in ["access", "technical", "focus", "bridge"] {
        assert!(records(&logs, stream) > 0, "{stream} has records");
    }
    let day = Duration::from_secs(86400);
    let hour = Duration::from_secs(3600);
    let purge_at = |at: SystemTime| {
        let (ok, out, err) = server.command(&["purge", "--now", &rfc3339(at)], &[]);
        assert!(ok, "{err}");
        out
    };
    // The bridge keeps 24 h.
    purge_at(written + 23 * hour);
    assert!(records(&logs, "bridge") > 0);
    let report = purge_at(written + 25 * hour);
    assert_eq!(records(&logs, "bridge"), 0, "{report}");
    assert!(report.contains("bridge"));
    assert!(records(&logs, "focus") > 0);
    // Focus keeps 7 days.
    purge_at(written + 6 * day);
    assert!(records(&logs, "focus") > 0);
    purge_at(written + 8 * day);
    assert_eq!(records(&logs, "focus"), 0);
    // Access and technical keep 14 days.
    purge_at(written + 13 * day);
    assert!(records(&logs, "access") > 0);
    assert!(records(&logs, "technical") > 0);
    purge_at(written + 15 * day);
    assert_eq!(records(&logs, "access"), 0);
    assert_eq!(records(&logs, "technical"), 0);
}

#[tokio::test]
async fn purge_is_exact_at_the_boundary() {
    let server = TestServer::start(&[("ZAAL__RETENTION__ACCESS", "2h")]);
    let logs = server.logs_dir();
    std::fs::create_dir_all(&logs).unwrap();
    let lines = [
        "2026-03-01T10:59:59.999999Z",
        "2026-03-01T11:00:00Z",
        "2026-03-01T11:00:00.000001Z",
    ]
    .map(|ts| format!("{{\"timestamp\":\"{ts}\",\"path\":\"/\"}}\n"))
    .concat();
    std::fs::write(
        logs.join("access.2026-03-01-10.jsonl"),
        "{\"timestamp\":\"2026-03-01T10:30:00Z\"}\n",
    )
    .unwrap();
    std::fs::write(logs.join("access.2026-03-01-11.jsonl"), &lines).unwrap();
    let (ok, out, err) = server.command(
        &["purge", "--now", "2026-03-01T13:00:00Z"],
        &[("ZAAL__RETENTION__ACCESS", "2h")],
    );
    assert!(ok, "{err}");
    assert!(out.contains("2 records removed"), "{out}");
    assert!(!logs.join("access.2026-03-01-10.jsonl").exists());
    let left = std::fs::read_to_string(logs.join("access.2026-03-01-11.jsonl")).unwrap();
    assert_eq!(left.lines().count(), 2);
    assert!(!left.contains("10:59:59"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_requests_find_and_erase_exactly_one_person_while_running() {
    let server = TestServer::start(&[]);
    server.create_room("klas").await;
    let mut options = SimOptions::new(&server.base, "klas", PROBE_NAME);
    options.local_ip = PROBE_IP.parse().unwrap();
    let probe = SimulatedParticipant::join(options).await.unwrap();
    let mut other_options = SimOptions::new(&server.base, "klas", "Bram Jansen");
    other_options.local_ip = "127.0.0.24".parse().unwrap();
    let other = SimulatedParticipant::join(other_options).await.unwrap();
    let client = probe_client();
    for _ in 0..5 {
        client.get(server.url("/klas")).send().await.unwrap();
    }
    let export = |args: &[&str]| -> Value {
        let (ok, out, err) = server.command(args, &[]);
        assert!(ok, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    // The records are written in the background: wait until they are on disk.
    let logs = server.logs_dir();
    eventually(
        "the probe's records on disk",
        Duration::from_secs(10),
        || {
            (files_containing(&logs, PROBE_IP).len() >= 2
                && !files_containing(&logs, "127.0.0.24").is_empty())
            .then_some(())
        },
    )
    .await;

    let by_name = export(&["subject", "export", "--name", "probe ödegaard-7731"]);
    let technical = by_name["records"]["technical"].as_array().unwrap();
    assert_eq!(technical.len(), 1, "the join record: {by_name}");
    assert_eq!(technical[0]["name"], PROBE_NAME);
    assert!(by_name["records"]["focus"].as_array().unwrap().is_empty());

    let by_ip = export(&["subject", "export", "--ip", PROBE_IP]);
    let access = by_ip["records"]["access"].as_array().unwrap();
    assert!(
        access.len() >= 6,
        "five page loads and the WebSocket: {by_ip}"
    );
    assert!(access.iter().all(|r| r["client_ip"] == PROBE_IP));
    let others_before = export(&["subject", "export", "--ip", "127.0.0.24"]);

    let erased = export(&["subject", "erase", "--ip", PROBE_IP]);
    assert_eq!(
        erased["erased"]["access"].as_u64().unwrap() as usize,
        access.len()
    );
    assert_eq!(erased["erased"]["technical"], 1);
    assert_eq!(erased["erased"]["focus"], 0);
    let after = export(&["subject", "export", "--ip", PROBE_IP]);
    assert!(after["records"]["access"].as_array().unwrap().is_empty());
    assert_eq!(
        export(&["subject", "export", "--ip", "127.0.0.24"]),
        others_before
    );

    // The server goes on writing after the rewrite: nothing is lost.
    for _ in 0..3 {
        client.get(server.url("/klas")).send().await.unwrap();
    }
    eventually(
        "new records after the erasure",
        Duration::from_secs(10),
        || {
            let found = export(&["subject", "export", "--ip", PROBE_IP]);
            (found["records"]["access"].as_array().unwrap().len() == 3).then_some(())
        },
    )
    .await;
    probe.leave().await;
    other.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_report_counts_conferences_without_identifiers() {
    let server = TestServer::start(&[("ZAAL__FOCUS__EMPTY_GRACE", "1s")]);
    server.create_room("klas-a").await;
    server.create_room("klas-b").await;
    let mut everyone = Vec::new();
    for (room, name) in [
        ("klas-a", "Anna"),
        ("klas-a", "Bram"),
        ("klas-a", "Cem"),
        ("klas-b", "Dirk"),
        ("klas-b", "Eva"),
    ] {
        everyone.push(
            SimulatedParticipant::join(SimOptions::new(&server.base, room, name))
                .await
                .unwrap(),
        );
    }
    let ids: Vec<String> = everyone
        .iter()
        .flat_map(|p| [p.id.clone(), p.conference.clone()])
        .collect();
    for p in everyone {
        p.leave().await;
    }
    let health = || async {
        reqwest::get(server.url("/healthz"))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while health().await["conferences"] != 0 {
        assert!(std::time::Instant::now() < deadline, "conferences ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let today = humantime::format_rfc3339_seconds(SystemTime::now()).to_string()[..10].to_string();
    let report = || {
        let (ok, out, err) = server.command(&["report", "--from", &today, "--to", &today], &[]);
        assert!(ok, "{err}");
        out
    };
    let out = eventually(
        "both conferences in the report",
        Duration::from_secs(10),
        || {
            let out = report();
            let v: Value = serde_json::from_str(&out).unwrap();
            (v["usage"][0]["conferences"] == 2).then_some(out)
        },
    )
    .await;
    let v: Value = serde_json::from_str(&out).unwrap();
    let day = &v["usage"][0];
    assert_eq!(day["period"], today.as_str());
    assert_eq!(day["participants"], 5);
    assert_eq!(day["peak_concurrent_participants"], 5);
    assert_eq!(day["conference_sizes"]["3-5"], 1);
    assert_eq!(day["conference_sizes"]["2"], 1);
    assert_eq!(day["conference_durations"]["<5m"], 2);
    for secret in ids
        .iter()
        .map(String::as_str)
        .chain(["klas-a", "klas-b", "Anna", "127.0.0.1"])
    {
        assert!(!out.contains(secret), "the report holds `{secret}`");
    }
    let (ok, csv, _) = server.command(&["report", "--format", "csv"], &[]);
    assert!(ok);
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{today},2,5,5,")),
        "{csv}"
    );
    for secret in &ids {
        assert!(
            files_containing(&server.data_dir(), secret).is_empty(),
            "data dir holds {secret}"
        );
    }
}

#[tokio::test]
async fn the_privacy_statement_follows_the_configuration() {
    let default = TestServer::start(&[]);
    let text = reqwest::get(default.url("/privacy?lang=en"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("kept for 14 days to resolve problems"));
    let configured = TestServer::start(&[
        ("ZAAL__RETENTION__TECHNICAL", "10d"),
        ("ZAAL__PRIVACY__CONTACT_EMAIL", "privacy@school.example"),
        ("ZAAL__PRIVACY__CONTROLLER", "Stichting Voorbeeldschool"),
    ]);
    let page = reqwest::get(configured.url("/privacy?lang=en"))
        .await
        .unwrap();
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    let text = page.text().await.unwrap();
    assert!(text.contains("kept for 10 days to resolve problems"));
    assert!(!text.contains("kept for 14 days to resolve problems"));
    assert!(text.contains("privacy@school.example"));
    assert!(text.contains("Stichting Voorbeeldschool"));
    let dutch = reqwest::get(configured.url("/privacy?lang=nl"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(dutch.contains("10 dagen"));
    let (ok, printed, _) = configured.command(&["privacy-statement", "--lang", "nl"], &[]);
    assert!(ok);
    assert!(printed.contains("10 dagen") && printed.contains("privacy@school.example"));
}

#[tokio::test]
async fn the_statements_date_moves_only_when_its_text_changes() {
    let today = {
        let now = time::OffsetDateTime::now_utc();
        let months = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        format!(
            "{} {} {}",
            now.day(),
            months[usize::from(u8::from(now.month())) - 1],
            now.year()
        )
    };
    let page = |server: &TestServer| {
        let url = server.url("/privacy?lang=en");
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let mut server = TestServer::start(&[]);
    let first = format!("Version 1, last changed on {today}.");
    assert!(page(&server).await.contains(&first), "first edition");
    let (ok, shown, _) = server.command(&["privacy-statement", "--diff"], &[]);
    assert!(ok);
    assert!(shown.contains("first version"), "{shown}");

    // The same configuration again: the same edition, whatever the day.
    server.restart(&[]);
    assert!(page(&server).await.contains(&first), "unchanged text");

    // A trial configuration is printed as the edition it would become, and publishes nothing.
    let shorter = [("ZAAL__RETENTION__FOCUS", "4d")];
    let (ok, printed, note) = server.command(&["privacy-statement"], &shorter);
    assert!(ok);
    assert!(printed.contains(&format!("Version 2, last changed on {today}.")));
    assert!(note.contains("not served yet"), "{note}");
    let (_, shown, _) = server.command(&["privacy-statement", "--diff"], &shorter);
    let changed: Vec<&str> = shown
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(changed.len(), 2, "one sentence out, one in: {shown}");
    assert!(changed[0].starts_with('-') && changed[0].contains("kept for 7 days"));
    assert!(changed[1].starts_with('+') && changed[1].contains("kept for 4 days"));
    assert!(shown.starts_with("--- version 1 ("), "{shown}");
    assert!(
        page(&server).await.contains(&first),
        "still the first edition"
    );

    // Served with the new text: a new edition, and --diff shows what changed since the last.
    server.restart(&shorter);
    let text = page(&server).await;
    assert!(
        text.contains(&format!("Version 2, last changed on {today}.")),
        "new edition"
    );
    assert!(text.contains("kept for 4 days"));
    let (_, dutch, _) = server.command(&["privacy-statement", "--lang", "nl", "--diff"], &[]);
    assert!(
        dutch.contains("-") && dutch.contains("+") && dutch.contains("4 dagen"),
        "{dutch}"
    );
    assert!(
        server
            .output
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("`privacy.controller` is empty")),
        "serve names the placeholder"
    );
}

#[test]
fn check_config_warns_while_the_statement_has_placeholders() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_zaal"));
        cmd.env("ZAAL__DATA__DIR", dir.path().join("data"))
            .env("ZAAL__LOGS__DIR", dir.path().join("logs"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.arg("check-config").output().unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let empty = run(&[]);
    assert!(
        empty.contains("warning: `privacy.controller` is empty"),
        "{empty}"
    );
    assert!(
        empty.contains("warning: `privacy.contact_email` is empty"),
        "{empty}"
    );
    let filled = run(&[
        ("ZAAL__PRIVACY__CONTROLLER", "Stichting Voorbeeldschool"),
        ("ZAAL__PRIVACY__CONTACT_EMAIL", "privacy@school.example"),
    ]);
    assert!(!filled.contains("warning"), "{filled}");
    assert!(
        !dir.path().join("data").exists(),
        "check-config creates nothing"
    );
}
