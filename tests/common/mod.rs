//! The real `zaal` binary on ephemeral ports, in a temporary directory, for black-box tests.

#![allow(dead_code)]

pub mod relay;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const HOST: &str = "teacher";
pub const PASSWORD: &str = "correct horse battery";

pub struct TestServer {
    child: Child,
    pub base: String,
    pub media_port: u16,
    pub dir: tempfile::TempDir,
    /// The extra environment the server was started with.
    pub env: Vec<(String, String)>,
    /// Everything the server printed on stdout and stderr.
    pub output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn zaal() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zaal"))
}

impl TestServer {
    /// Starts a server with one host account and the given extra environment.
    pub fn start(extra_env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut add = zaal();
        test_env(&mut add, &dir, extra_env);
        let mut add = add
            .args(["user", "add", HOST])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("zaal user add");
        writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        assert!(add.wait().unwrap().success(), "zaal user add failed");

        let (child, base, media_port, lines) = spawn_serve(&dir, extra_env);
        Self {
            child,
            base,
            media_port,
            dir,
            env: extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            output: lines,
        }
    }

    /// Stops the server and starts it again on the same data and logs, with `extra_env` as its
    /// extra environment.
    pub fn restart(&mut self, extra_env: &[(&str, &str)]) {
        self.stop();
        let (child, base, media_port, lines) = spawn_serve(&self.dir, extra_env);
        self.child = child;
        self.base = base;
        self.media_port = media_port;
        self.output = lines;
        self.env = extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A scrape of `/metrics`.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// One figure from `/metrics`, by its series (name and labels).
    pub async fn metric(&self, series: &str) -> u64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in {text}"))
            .parse()
            .unwrap()
    }

    /// Waits (bounded, as [`eventually_async`]) until a figure from `/metrics` reaches
    /// `at_least`: the server counts some things only when its tasks get to them.
    pub async fn wait_for_metric(&self, series: &str, at_least: u64) {
        eventually_async(&format!("{series} to reach {at_least}"), || async {
            (self.metric(series).await >= at_least).then_some(())
        })
        .await;
    }

    /// Logs in as the host and returns the session cookie.
    pub async fn login(&self) -> String {
        let response = reqwest::Client::new()
            .post(self.url("/api/login"))
            .json(&serde_json::json!({"username": HOST, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let cookie = response
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap();
        cookie.split(';').next().unwrap().to_string()
    }

    /// Creates a room as the host.
    pub async fn create_room(&self, name: &str) {
        let cookie = self.login().await;
        let response = reqwest::Client::new()
            .post(self.url("/api/rooms"))
            .header("cookie", cookie)
            .json(&serde_json::json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    pub fn logs_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("logs")
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// Runs a `zaal` command with this server's configuration (the same environment it was
    /// started with); returns (status, stdout, stderr).
    pub fn command(&self, args: &[&str], extra_env: &[(&str, &str)]) -> (bool, String, String) {
        let mut cmd = zaal();
        test_env(&mut cmd, &self.dir, &[]);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let out = cmd.args(args).output().expect("run zaal");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Asks the server to stop (SIGTERM) and waits for it.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failed test shows what the bridge saw (identifiers only), which is most of what a
        // media failure on a loaded machine can be understood from.
        if std::thread::panicking() {
            let Ok(entries) = std::fs::read_dir(self.logs_dir()) else {
                return;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("bridge") {
                    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    eprintln!("--- {name} (last 80 lines)");
                    for line in &lines[lines.len().saturating_sub(80)..] {
                        eprintln!("{line}");
                    }
                }
            }
        }
    }
}

/// The environment every test server and command runs with: its own folders, ports chosen by
/// the system, media on loopback.
fn test_env(cmd: &mut Command, dir: &tempfile::TempDir, extra_env: &[(&str, &str)]) {
    cmd.env("ZAAL__DATA__DIR", dir.path().join("data"))
        .env("ZAAL__LOGS__DIR", dir.path().join("logs"))
        .env("ZAAL__HTTP__LISTEN", "127.0.0.1:0")
        .env("ZAAL__MEDIA__UDP_PORT", "0")
        .env("ZAAL__MEDIA__TCP_PORT", "0")
        .env("ZAAL__TURN__LISTEN", "127.0.0.1:0")
        .env("ZAAL__MEDIA__BIND", "127.0.0.1")
        .env("ZAAL__MEDIA__ADVERTISE_IPS", "127.0.0.1")
        // Most tests are about media, not hosts: guests may start a conference. Tests of the
        // waiting room turn this back on.
        .env("ZAAL__FOCUS__WAIT_FOR_HOST", "false");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
}

type Output = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Starts `zaal serve` and waits until it prints its address.
fn spawn_serve(
    dir: &tempfile::TempDir,
    extra_env: &[(&str, &str)],
) -> (Child, String, u16, Output) {
    let mut serve = zaal();
    test_env(&mut serve, dir, extra_env);
    let mut child = serve
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zaal serve");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                lines.lock().unwrap().push(line);
            }
        });
    }
    {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[zaal stderr] {line}");
                lines.lock().unwrap().push(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not print its address within 30 s");
        };
        if let Some(rest) = line.strip_prefix("Zaal listening on ") {
            let base = rest.split_whitespace().next().unwrap().to_string();
            let media_port = rest
                .rsplit(':')
                .next()
                .unwrap()
                .trim_end_matches(')')
                .parse()
                .unwrap();
            return (child, base, media_port, lines);
        }
    }
}

/// A room `room` created by the host, and two guests in it, Anna and Bram, publishing audio and
/// video to each other.
pub async fn two_in_a_room(
    server: &TestServer,
    room: &str,
) -> (
    zaal_sim::SimulatedParticipant,
    zaal_sim::SimulatedParticipant,
) {
    server.create_room(room).await;
    let join = |name: &str| {
        zaal_sim::SimulatedParticipant::join(zaal_sim::SimOptions::new(&server.base, room, name))
    };
    let anna = join("Anna").await.expect("Anna joins");
    let bram = join("Bram").await.expect("Bram joins");
    (anna, bram)
}

/// Waits until `receiver` gets fresh audio and video from `publisher` (20 packets of each).
pub async fn media_flows(receiver: &zaal_sim::SimulatedParticipant, publisher: &str) {
    let before = receiver.received_from(publisher);
    eventually("media to flow", Duration::from_secs(15), || {
        let now = receiver.received_from(publisher);
        (now.audio_packets > before.audio_packets + 20
            && now.video_packets > before.video_packets + 20)
            .then_some(())
    })
    .await;
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Like [`eventually`], for a condition that needs to await.
pub async fn eventually_async<T, F, Fut>(what: &str, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A JSON POST from the local address `from` (a loopback address of the test's choosing).
pub async fn post_from(
    from: &str,
    server: &TestServer,
    path: &str,
    body: serde_json::Value,
) -> reqwest::Response {
    reqwest::Client::builder()
        .local_address(from.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Everything one log stream holds so far (all its hourly files under `logs`).
pub fn read_stream(logs: &std::path::Path, stream: &str) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(logs).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(stream) {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    text
}

/// A TCP port free on loopback now, for a server port that has no "pick one" value (the
/// ICE-TCP port: 0 turns it off).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
