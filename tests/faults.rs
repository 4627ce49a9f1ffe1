//! Faults from outside the process, against the real binary: the modes of what it leaves on
//! disk, and a database that is locked or damaged at start-up.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TestServer, eventually, media_flows, read_stream};
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
    server.create_room("klas").await;
    let a = SimulatedParticipant::join(SimOptions::new(&server.base, "klas", "Anna"))
        .await
        .unwrap();
    let b = SimulatedParticipant::join(SimOptions::new(&server.base, "klas", "Bram"))
        .await
        .unwrap();
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
