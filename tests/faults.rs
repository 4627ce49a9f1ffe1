//! Faults from outside the process, against the real binary: the modes of what it leaves on
//! disk, a `logs.dir` that fills up under a running meeting, `zaal purge` and `zaal subject
//! erase` killed half-way, and a database that is locked or damaged at start-up.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TestServer, eventually, eventually_async, media_flows, read_stream};
use serde_json::Value;
use zaal_sim::{SimOptions, SimulatedParticipant};

fn zaal() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zaal"))
}

/// `zaal` with `data.dir` and `logs.dir` under `root`.
fn zaal_in(root: &Path) -> Command {
    let mut cmd = zaal();
    cmd.env("ZAAL__DATA__DIR", root.join("data"))
        .env("ZAAL__LOGS__DIR", root.join("logs"))
        .env("ZAAL__HTTP__LISTEN", "127.0.0.1:0")
        .env("ZAAL__MEDIA__UDP_PORT", "0")
        .env("ZAAL__MEDIA__TCP_PORT", "0")
        .env("ZAAL__TURN__LISTEN", "127.0.0.1:0")
        .env("ZAAL__MEDIA__BIND", "127.0.0.1")
        .env("ZAAL__MEDIA__ADVERTISE_IPS", "127.0.0.1");
    cmd
}

/// Runs `cmd` to its end, which must come within `limit`: a command that hangs fails the test.
fn run_bounded(mut cmd: Command, stdin: &str, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run zaal");
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn add_host(root: &Path) {
    let mut cmd = zaal_in(root);
    cmd.args(["user", "add", common::HOST]);
    let (out, _) = run_bounded(
        cmd,
        &format!("{}\n", common::PASSWORD),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// Every folder and file under `dir` (itself included), with its mode.
fn modes_under(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = vec![(dir.to_path_buf(), mode(dir))];
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            out.extend(modes_under(&path));
        } else {
            out.push((path.clone(), mode(&path)));
        }
    }
    out
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn assert_private(dir: &Path) {
    for (path, mode) in modes_under(dir) {
        let wanted = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, wanted, "{} has mode {mode:o}", path.display());
    }
}

// ---------------------------------------------------------------------------------------------
// Modes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_under_data_and_logs_is_private_to_the_service() {
    let server = TestServer::start(&[]);
    // A login (a session row), a room, a conference with media: every database and every
    // stream gets written.
    let (a, b) = common::two_in_a_room(&server, "klas").await;
    media_flows(&a, &b.id).await;
    let logs = server.logs_dir();
    let data = server.data_dir();
    eventually("a file for every stream", Duration::from_secs(15), || {
        ["access", "technical", "focus", "bridge"]
            .iter()
            .all(|s| !read_stream(&logs, s).is_empty())
            .then_some(())
    })
    .await;
    // While the server runs, SQLite's write-ahead log and shared memory exist beside each file.
    let names = file_names(&data);
    for name in [
        "usage.sqlite3",
        "usage.sqlite3-shm",
        "usage.sqlite3-wal",
        "zaal.sqlite3",
        "zaal.sqlite3-shm",
        "zaal.sqlite3-wal",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    assert_private(&data);
    assert_private(&logs);

    // An erasure rewrites the technical file (temporary file, rename): still private.
    let (ok, out, err) = server.command(&["subject", "erase", "--name", "Anna"], &[]);
    assert!(ok, "{out}{err}");
    let erased: Value = serde_json::from_str(&out).unwrap();
    assert!(
        erased["erased"]["technical"].as_u64().unwrap() >= 1,
        "{out}"
    );
    // And a purge that cuts the current files in two (a retention of one hour, as of a moment
    // 59 minutes from now) rewrites the rest of them.
    let soon = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + Duration::from_secs(59 * 60),
    )
    .to_string();
    let hour = [
        ("ZAAL__RETENTION__ACCESS", "1h"),
        ("ZAAL__RETENTION__TECHNICAL", "1h"),
        ("ZAAL__RETENTION__FOCUS", "1h"),
        ("ZAAL__RETENTION__BRIDGE", "1h"),
    ];
    let (ok, out, err) = server.command(&["purge", "--now", &soon], &hour);
    assert!(ok, "{out}{err}");
    media_flows(&a, &b.id).await;
    assert_private(&data);
    assert_private(&logs);
    a.leave().await;
    b.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_the_operator_made_keeps_its_mode_and_start_up_says_so() {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("operator-logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o750)).unwrap();
    let logs_str = logs.to_str().unwrap().to_string();
    let server = TestServer::start(&[("ZAAL__LOGS__DIR", &logs_str)]);
    reqwest::get(server.url("/healthz")).await.unwrap();
    eventually("the access record", Duration::from_secs(10), || {
        read_stream(&logs, "access")
            .contains("/healthz")
            .then_some(())
    })
    .await;
    assert_eq!(mode(&logs), 0o750, "left as the operator made it");
    for (path, mode) in modes_under(&logs).into_iter().skip(1) {
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    let output = server.output.lock().unwrap().join("\n");
    assert!(
        output.contains(&format!("note: logs.dir {logs_str} has mode 750")),
        "{output}"
    );
    assert!(
        !output.contains("note: data.dir"),
        "Zaal made data.dir: {output}"
    );
}

// ---------------------------------------------------------------------------------------------
// A full logs.dir

/// Set in the copy of this test binary that runs inside a mount namespace: the folder to mount
/// the small file system on.
const MOUNT_POINT_VAR: &str = "ZAAL_FAULTS_MOUNT_POINT";

/// Runs the test `name` of this binary again, in a mount namespace of its own with `mount_point`
/// passed on; `false` (after saying why) only when this machine offers no mount namespaces.
fn rerun_in_mount_namespace(name: &str, mount_point: &Path) -> bool {
    let mut namespace = vec!["--mount", "--propagation", "private"];
    if !rustix::process::geteuid().is_root() {
        // An unprivileged user may still mount a tmpfs in a user namespace of their own.
        namespace.splice(0..0, ["--user", "--map-root-user"]);
    }
    let probe = Command::new("unshare")
        .args(&namespace)
        .arg("true")
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        other => {
            eprintln!(
                "SKIPPED {name}: this machine offers no mount namespace (`unshare {}`: {other:?})",
                namespace.join(" ")
            );
            return false;
        }
    }
    let out = Command::new("unshare")
        .args(&namespace)
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env(MOUNT_POINT_VAR, mount_point)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "in the namespace:\n{stdout}\n{stderr}"
    );
    eprintln!("{stderr}");
    true
}

/// Fills the file system under `path` with one file, to the last byte.
fn fill(path: &Path) {
    let mut filler = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match filler.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // What is left is less than a chunk; take it too.
    for size in [4096, 512, 1] {
        while filler.write(&chunk[..size]).is_ok_and(|n| n > 0) {}
    }
}

/// Every stream file under `dir`, by name, as its lines; asserts that each holds whole JSON
/// records only (no half-written line).
fn whole_records(dir: &Path) -> Vec<(String, Vec<String>)> {
    let mut files = Vec::new();
    for name in file_names(dir) {
        if !name.ends_with(".jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(dir.join(&name)).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{name} ends in half a record: {:?}",
            &text[text.len().saturating_sub(80)..]
        );
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        for line in &lines {
            assert!(
                serde_json::from_str::<Value>(line).is_ok_and(|v| v.is_object()),
                "{name} holds a broken record: {line:?}"
            );
        }
        files.push((name, lines));
    }
    files
}

async fn get(server: &TestServer, path: &str) -> u16 {
    reqwest::get(server.url(path))
        .await
        .unwrap()
        .status()
        .as_u16()
}

const ACCESS_ERRORS: &str = r#"zaal_log_write_errors_total{stream="access"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_logs_dir_costs_only_the_records_that_do_not_fit() {
    const NAME: &str = "a_full_logs_dir_costs_only_the_records_that_do_not_fit";
    let Some(mount_point) = std::env::var_os(MOUNT_POINT_VAR).map(PathBuf::from) else {
        let outside = tempfile::tempdir().unwrap();
        let logs = outside.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        rerun_in_mount_namespace(NAME, &logs);
        return;
    };
    // Inside the namespace: a 1 MiB file system as logs.dir, gone with the namespace.
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m,mode=0700", "zaal-test-logs"])
        .arg(&mount_point)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "mount a tmpfs on {}",
        mount_point.display()
    );
    let logs = mount_point.clone();
    let server = TestServer::start(&[("ZAAL__LOGS__DIR", logs.to_str().unwrap())]);
    let (a, b) = common::two_in_a_room(&server, "klas").await;
    media_flows(&a, &b.id).await;
    media_flows(&b, &a.id).await;
    assert_eq!(server.metric(ACCESS_ERRORS).await, 0);
    let before = whole_records(&logs);
    assert!(!before.is_empty());

    // The disk fills up. Requests go on until the access stream can no longer write.
    fill(&logs.join("filler"));
    let mut n = 0;
    eventually_async("access records to fail", || {
        n += 1;
        let path = format!("/while-full-{n}");
        let server = &server;
        async move {
            for i in 0..10 {
                assert_eq!(get(server, &format!("{path}-{i}")).await, 200);
            }
            (server.metric(ACCESS_ERRORS).await > 0).then_some(())
        }
    })
    .await;

    // The meeting goes on: media both ways, a newcomer joins and gets it, the host logs in.
    media_flows(&a, &b.id).await;
    media_flows(&b, &a.id).await;
    let c = SimulatedParticipant::join(SimOptions::new(&server.base, "klas", "Cas"))
        .await
        .unwrap();
    media_flows(&c, &a.id).await;
    server.login().await;
    let health: Value = reqwest::get(server.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["participants"], 3, "{health}");
    // Nothing written before is lost, and no file holds half a record.
    let during = whole_records(&logs);
    for (name, lines) in &before {
        let now = &during.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(now.starts_with(lines), "{name} lost records");
    }
    let errors_while_full = server.metric(ACCESS_ERRORS).await;

    // Space returns: records are written again, by themselves.
    std::fs::remove_file(logs.join("filler")).unwrap();
    let mut n = 0;
    eventually_async("access records to be written again", || {
        n += 1;
        let path = format!("/space-again-{n}");
        let server = &server;
        let logs = &logs;
        async move {
            assert_eq!(get(server, &path).await, 200);
            read_stream(logs, "access")
                .contains(&format!("\"{path}\""))
                .then_some(())
        }
    })
    .await;
    // From here on none fails: twenty requests, twenty records, the counter stands still.
    let settled = server.metric(ACCESS_ERRORS).await;
    assert!(settled >= errors_while_full);
    for i in 0..20 {
        assert_eq!(get(&server, &format!("/steady-{i}")).await, 200);
    }
    eventually("twenty records", Duration::from_secs(10), || {
        let access = read_stream(&logs, "access");
        (0..20)
            .all(|i| access.contains(&format!("\"/steady-{i}\"")))
            .then_some(())
    })
    .await;
    assert_eq!(server.metric(ACCESS_ERRORS).await, settled);
    // The other streams resume too: Cas's leave is a focus record.
    c.leave().await;
    eventually(
        "Cas's leave in the focus stream",
        Duration::from_secs(10),
        || {
            read_stream(&logs, "focus")
                .contains("participant-left")
                .then_some(())
        },
    )
    .await;
    media_flows(&a, &b.id).await;
    let after = whole_records(&logs);
    for (name, lines) in &before {
        let now = &after.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(now.starts_with(lines), "{name} lost records");
    }
    let output = server.output.lock().unwrap().join("\n");
    assert!(
        output.contains("cannot write the access log stream"),
        "{output}"
    );
    assert!(output.contains("the access log stream is written again"));
    a.leave().await;
    b.leave().await;
    drop(server);
    let _ = Command::new("umount").arg(&mount_point).status();
}

// ---------------------------------------------------------------------------------------------
// Commands killed half-way

/// A record as the server writes it, padded to a realistic size; `n` makes every line unique.
fn record(timestamp: &str, name: &str, n: usize) -> String {
    format!(
        r#"{{"timestamp":"{timestamp}","level":"INFO","event":"join","room":"klas","name":"{name}","client_ip":"10.0.{}.{}","n":{n},"detail":"{}"}}"#,
        n / 250 % 250,
        n % 250,
        "x".repeat(90)
    )
}

fn write_file(dir: &Path, name: &str, lines: &[String]) {
    let mut body = lines.join("\n");
    body.push('\n');
    std::fs::write(dir.join(name), body).unwrap();
}

fn rewrite_leftovers(dir: &Path) -> Vec<String> {
    file_names(dir)
        .into_iter()
        .filter(|n| n.contains(".rewrite-"))
        .collect()
}

/// Runs `cmd` again and again, killing it (SIGKILL) while it rewrites: the first run as soon as
/// its first temporary file appears, every later one when its second appears, so that each run
/// finishes one more rewrite than the last and dies inside the next. After each kill, `check`
/// sees the files. Returns how many runs were killed; the last run ends on its own, successfully.
fn kill_while_rewriting(mut cmd: impl FnMut() -> Command, dir: &Path, check: impl Fn()) -> usize {
    for round in 0..50 {
        let mut child = cmd()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let own = format!(".rewrite-{}", child.id());
        let wanted = if round == 0 { 1 } else { 2 };
        let mut seen = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        // Watched without a pause: a rewrite's temporary file lives for milliseconds.
        let killed = loop {
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            for name in file_names(dir) {
                if name.ends_with(&own) {
                    seen.insert(name);
                }
            }
            if seen.len() >= wanted {
                child.kill().unwrap();
                break true;
            }
            assert!(Instant::now() < deadline, "round {round} never ended");
        };
        let out = child.wait_with_output().unwrap();
        check();
        if !killed {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return round;
        }
        assert!(
            rewrite_leftovers(dir).len() <= 1,
            "a run clears what the runs before it left: {:?}",
            rewrite_leftovers(dir)
        );
    }
    panic!("the command never finished");
}

/// All lines of the stream files, sorted (a lost or doubled line shows).
fn all_lines(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = whole_records(dir)
        .into_iter()
        .flat_map(|(_, lines)| lines)
        .collect();
    lines.sort();
    lines
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

#[test]
fn subject_erase_killed_half_way_loses_no_one_elses_record() {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    // Eight technical files of 2.4 MB, each with Anna's records among everyone else's.
    const FILES: usize = 8;
    let (mut anna, mut others) = (Vec::new(), Vec::new());
    let mut n = 0;
    for hour in 0..FILES {
        let lines: Vec<String> = (0..12_000)
            .map(|i| {
                n += 1;
                let ts = format!("2026-03-10T{:02}:{:02}:{:02}Z", hour, i / 200, i % 60);
                let name = if i % 7 == 0 { "Anna" } else { "Bram" };
                let line = record(&ts, name, n);
                if name == "Anna" {
                    &mut anna
                } else {
                    &mut others
                }
                .push(line.clone());
                line
            })
            .collect();
        write_file(
            &logs,
            &format!("technical.2026-03-10-{hour:02}.jsonl"),
            &lines,
        );
    }
    let (anna, others) = (sorted(anna), sorted(others));
    let erase = || {
        let mut cmd = zaal_in(root.path());
        cmd.args(["subject", "erase", "--name", "anna"]);
        cmd
    };
    let killed = kill_while_rewriting(erase, &logs, || {
        let (mut left_anna, mut left_others) = (Vec::new(), Vec::new());
        for line in all_lines(&logs) {
            if line.contains("\"Anna\"") {
                left_anna.push(line);
            } else {
                left_others.push(line);
            }
        }
        assert_eq!(left_others, others, "every record of others, once");
        let original: HashSet<&String> = anna.iter().collect();
        assert!(left_anna.iter().all(|l| original.contains(l)));
    });
    eprintln!("subject erase: {killed} runs killed while rewriting, then one to the end");
    assert!(killed >= 2, "the kills landed inside rewrites ({killed})");
    assert!(
        rewrite_leftovers(&logs).is_empty(),
        "{:?}",
        file_names(&logs)
    );
    assert_eq!(all_lines(&logs), others, "exactly Anna's records are gone");
}

#[test]
fn purge_killed_half_way_loses_no_record_within_retention() {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    // As of 12:30 on 10 March, with the default retention, each stream's cutoff falls at 12:30
    // of its own day; the file of that hour is cut in two (a big one), those before it expire
    // whole, those after it stay whole.
    let now = "2026-03-10T12:30:00Z";
    let cutoff_days = [
        ("access", 14),
        ("technical", 14),
        ("focus", 7),
        ("bridge", 1),
    ];
    let (mut expired, mut kept) = (Vec::new(), Vec::new());
    let mut n = 0;
    for (stream, days) in cutoff_days {
        let day = humantime::parse_rfc3339("2026-03-10T00:00:00Z").unwrap()
            - Duration::from_secs(days * 86_400);
        let day = &humantime::format_rfc3339_seconds(day).to_string()[..10];
        for hour in 9..15 {
            let count = if hour == 12 { 20_000 } else { 300 };
            let lines: Vec<String> = (0..count)
                .map(|i| {
                    n += 1;
                    let minute = i * 60 / count;
                    let ts = format!("{day}T{hour:02}:{minute:02}:{:02}Z", i % 60);
                    let line = record(&ts, "Bram", n);
                    if (hour, minute) < (12, 30) {
                        &mut expired
                    } else {
                        &mut kept
                    }
                    .push(line.clone());
                    line
                })
                .collect();
            write_file(&logs, &format!("{stream}.{day}-{hour:02}.jsonl"), &lines);
        }
    }
    let kept = sorted(kept);
    let purge = || {
        let mut cmd = zaal_in(root.path());
        cmd.args(["purge", "--now", now]);
        cmd
    };
    let killed = kill_while_rewriting(purge, &logs, || {
        let left = all_lines(&logs);
        let left_set: HashSet<&String> = left.iter().collect();
        assert!(
            kept.iter().all(|l| left_set.contains(l)),
            "every record within retention survives"
        );
        let known: HashSet<&String> = expired.iter().chain(&kept).collect();
        assert!(left.iter().all(|l| known.contains(l)));
        let mut dedup = left.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), left.len(), "no record twice");
    });
    eprintln!("purge: {killed} runs killed while rewriting, then one to the end");
    assert!(killed >= 2, "the kills landed inside rewrites ({killed})");
    assert!(
        rewrite_leftovers(&logs).is_empty(),
        "{:?}",
        file_names(&logs)
    );
    assert_eq!(
        all_lines(&logs),
        kept,
        "exactly the expired records are gone"
    );
}

// ---------------------------------------------------------------------------------------------
// The database at start-up

/// `zaal serve` must fail within `limit`, saying `what` about `file`.
fn serve_fails(root: &Path, file: &str, what: &str, limit: Duration) {
    let mut cmd = zaal_in(root);
    cmd.arg("serve");
    let (out, took) = run_bounded(cmd, "", limit);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let path = root.join("data").join(file);
    assert!(
        stderr.contains(&path.display().to_string()) && stderr.contains(what),
        "names {} and says `{what}`: {stderr}",
        path.display()
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("Zaal listening"),
        "refused before serving"
    );
    eprintln!("{file}: {what}, after {took:?}");
}

#[test]
fn a_damaged_database_is_named_at_start_up() {
    const DAMAGED: &str = "is damaged or not a SQLite database";
    // Not a database at all.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("data")).unwrap();
    std::fs::write(
        root.path().join("data/zaal.sqlite3"),
        "this is not a database\n".repeat(1000),
    )
    .unwrap();
    serve_fails(
        root.path(),
        "zaal.sqlite3",
        DAMAGED,
        Duration::from_secs(30),
    );

    // A real database with one page overwritten (the hosts table's): found by the page check at
    // start-up, not at the first login.
    let root = tempfile::tempdir().unwrap();
    add_host(root.path());
    {
        let path = root.path().join("data/zaal.sqlite3");
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(4096)).unwrap();
        file.write_all(&[0xff; 64]).unwrap();
    }
    serve_fails(
        root.path(),
        "zaal.sqlite3",
        DAMAGED,
        Duration::from_secs(30),
    );

    // The usage database, beside a sound one.
    let root = tempfile::tempdir().unwrap();
    add_host(root.path());
    std::fs::write(root.path().join("data/usage.sqlite3"), vec![0x5a; 16384]).unwrap();
    serve_fails(
        root.path(),
        "usage.sqlite3",
        DAMAGED,
        Duration::from_secs(30),
    );
}

#[test]
fn a_locked_database_is_named_at_start_up_without_hanging() {
    const LOCKED: &str = "is locked by another process";
    let root = tempfile::tempdir().unwrap();
    add_host(root.path());
    let path = root.path().join("data/zaal.sqlite3");
    // Another process (this one) holds the write lock, as a second server or a careless tool
    // would: start-up gives up after the busy timeout, it does not wait for ever.
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    serve_fails(root.path(), "zaal.sqlite3", LOCKED, Duration::from_secs(30));
    holder.execute_batch("COMMIT;").unwrap();
    // Exclusive locking mode keeps out readers too.
    holder
        .pragma_update(None, "locking_mode", "EXCLUSIVE")
        .unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE; COMMIT;").unwrap();
    serve_fails(root.path(), "zaal.sqlite3", LOCKED, Duration::from_secs(30));
    drop(holder);
    // Once the lock is gone, the same files serve.
    let mut cmd = zaal_in(root.path());
    cmd.args(["user", "list"]);
    let (out, _) = run_bounded(cmd, "", Duration::from_secs(30));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(common::HOST));
}
