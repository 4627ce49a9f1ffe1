//! `zaal-bench`: classrooms of simulated participants against a real Zaal server, and what the
//! server spends on them.
//!
//! Every participant is a real WebRTC peer (webrtc-rs) that joins through the signalling
//! WebSocket, publishes Opus-shaped audio (50 packets/s) and, if it is a video sender,
//! VP8-shaped video at `--video-kbps`, and receives everyone else. Receivers count loss from the
//! RTP sequence numbers of what arrives; payloads carry a number and a send time of their own,
//! for one-way latency and for how much video the server chose not to send. The server's CPU time
//! and memory come from `/proc` of its process: one the tool starts itself (the `zaal` binary
//! next to this one), or `--server URL --server-pid PID`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

#[path = "zaal-bench/soak.rs"]
mod soak;
use serde_json::json;
use zaal::focus::RoomName;
use zaal::store::Store;
use zaal_sim::{SimOptions, SimulatedParticipant};

#[derive(Parser, Debug)]
#[command(
    name = "zaal-bench",
    about = "Load a Zaal server with simulated classrooms"
)]
struct Args {
    /// Rooms to fill
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Participants per room
    #[arg(long, default_value_t = 4)]
    participants: usize,
    /// Participants per room who send video (the first ones)
    #[arg(long, default_value_t = 1)]
    video_senders: usize,
    /// Participants per room who send audio (default: the video senders)
    #[arg(long)]
    audio_senders: Option<usize>,
    /// Video bit rate per sender
    #[arg(long, default_value_t = 500)]
    video_kbps: u32,
    /// How long to measure, after everyone has joined
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Spread the joins over this long
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    ramp: Duration,
    /// Time between the last join and the start of the measurement
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// The server's `media.last_n` (most videos per receiver; 0: no limit) for a server the
    /// tool starts itself; its configured default otherwise
    #[arg(long)]
    last_n: Option<u32>,
    /// Write the results here as JSON
    #[arg(long)]
    json: Option<PathBuf>,
    /// Use a running server (its rooms `bench-1` … must exist and admit guests)
    #[arg(long, requires = "server_pid")]
    server: Option<String>,
    /// The process id of that server, for its CPU time and memory
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print no progress line
    #[arg(long)]
    quiet: bool,
    /// Churn: during the measurement, every this long one participant (round the rooms) leaves
    /// and a new one joins in its place, and the server's memory, descriptors, threads and tasks
    /// are sampled for the soak figures (`churn` in the results)
    #[arg(long, value_parser = humantime::parse_duration)]
    churn_every: Option<Duration>,
    /// Run the server the tool starts on these processors only (a list such as `0`, `0-1` or
    /// `0,2`). With `--load-cpus` on other processors, the simulated participants never take
    /// the server's core from it, as participants on other machines never would.
    #[arg(long, value_parser = CpuList::parse, conflicts_with = "server")]
    server_cpus: Option<CpuList>,
    /// Run the simulated participants on these processors only
    #[arg(long, value_parser = CpuList::parse)]
    load_cpus: Option<CpuList>,
    /// How the participants reach the media: `udp` (the media port), or `tcp` (ICE over TCP
    /// only, as from a network that drops UDP; a server the tool starts gets media.tcp_port)
    #[arg(long, value_enum, default_value_t = MediaTransport::Udp)]
    transport: MediaTransport,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum MediaTransport {
    Udp,
    Tcp,
}

impl MediaTransport {
    fn name(self) -> &'static str {
        match self {
            MediaTransport::Udp => "udp",
            MediaTransport::Tcp => "tcp",
        }
    }
}

/// A set of processors to run on, from a list such as `0`, `1-3` or `0,2-3`.
#[derive(Clone, Debug, PartialEq)]
struct CpuList(Vec<usize>);

impl CpuList {
    fn parse(text: &str) -> Result<Self, String> {
        let mut cpus = Vec::new();
        for part in text.split(',') {
            let number = |s: &str| {
                s.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n < libc::CPU_SETSIZE as usize)
                    .ok_or_else(|| format!("`{s}` is not a processor number"))
            };
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => (number(part)?, number(part)?),
            };
            if first > last {
                return Err(format!("`{part}` is an empty range"));
            }
            cpus.extend(first..=last);
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(Self(cpus))
    }

    fn to_set(&self) -> libc::cpu_set_t {
        // SAFETY: an all-zero cpu_set_t is the empty set, and CPU_SET writes inside it: every
        // number was checked against CPU_SETSIZE when parsed.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &cpu in &self.0 {
                libc::CPU_SET(cpu, &mut set);
            }
            set
        }
    }
}

/// Restricts the calling thread, and the threads it starts from now on, to `set`.
fn run_on(set: &libc::cpu_set_t) -> std::io::Result<()> {
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let result = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The processors a process may run on, as `/proc` lists them (`Cpus_allowed_list`).
fn allowed_cpus(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field(&status, "Cpus_allowed_list:").map(str::to_string)
}

/// The server the tool started itself; stopped when dropped.
struct OwnServer {
    child: Child,
    _dir: tempfile_dir::TempDir,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory without pulling a crate into the server's dependencies.
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> std::io::Result<Self> {
            let path = std::env::temp_dir().join(format!(
                "zaal-bench-{}-{}",
                std::process::id(),
                rand::random::<u32>()
            ));
            std::fs::create_dir_all(&path)?;
            Ok(Self(path))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn room_name(i: usize) -> String {
    format!("bench-{}", i + 1)
}

/// How the `i`-th participant of room `room` joins: the first ones send video, the first ones
/// audio, all over the chosen transport.
fn participant_options(args: &Args, server: &str, room: usize, i: usize, name: &str) -> SimOptions {
    let mut options = SimOptions::new(server, &room_name(room), name);
    options.send_video = i < args.video_senders;
    options.send_audio = i < args.audio_senders.unwrap_or(args.video_senders);
    options.video_kbps = args.video_kbps;
    options.media_tcp = args.transport == MediaTransport::Tcp;
    options
}

fn start_server(
    rooms: usize,
    participants: usize,
    last_n: Option<u32>,
    cpus: Option<&CpuList>,
    transport: MediaTransport,
) -> Result<(OwnServer, String, u32), String> {
    // The ICE-TCP port has no "pick one" value (0 turns it off): take one that is free now.
    let tcp_port = match transport {
        MediaTransport::Udp => 0,
        MediaTransport::Tcp => std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port(),
    };
    let dir = tempfile_dir::TempDir::new().map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    let store = Store::open(&data).map_err(|e| e.to_string())?;
    for i in 0..rooms {
        let room = RoomName::parse(&room_name(i)).map_err(|e| e.to_string())?;
        store
            .create_room(&room, "bench")
            .map_err(|e| e.to_string())?;
    }
    drop(store);
    let exe = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("zaal");
    let mut command = Command::new(&exe);
    if let Some(cpus) = cpus {
        use std::os::unix::process::CommandExt;
        let set = cpus.to_set();
        // SAFETY: between fork and exec the closure only makes one system call, which is
        // async-signal-safe, on a set built before the fork. Every thread the server starts
        // inherits it.
        unsafe {
            command.pre_exec(move || run_on(&set));
        }
    }
    let mut child = command
        .arg("serve")
        .env("ZAAL__DATA__DIR", &data)
        .env("ZAAL__LOGS__DIR", dir.path().join("logs"))
        .env("ZAAL__HTTP__LISTEN", "127.0.0.1:0")
        .env("ZAAL__MEDIA__UDP_PORT", "0")
        .env("ZAAL__MEDIA__TCP_PORT", tcp_port.to_string())
        .env("ZAAL__TURN__ENABLED", "false")
        .env("ZAAL__MEDIA__BIND", "127.0.0.1")
        .env("ZAAL__MEDIA__ADVERTISE_IPS", "127.0.0.1")
        .env("ZAAL__FOCUS__WAIT_FOR_HOST", "false")
        .env(
            "ZAAL__FOCUS__MAX_PARTICIPANTS",
            (participants + 1).max(2).to_string(),
        )
        .envs(last_n.map(|n| ("ZAAL__MEDIA__LAST_N", n.to_string())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            let on = if cpus.is_some() {
                " on the processors of --server-cpus"
            } else {
                ""
            };
            format!("cannot start {}{on}: {e}", exe.display())
        })?;
    let pid = child.id();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(rest) = line.strip_prefix("Zaal listening on ") {
                    break rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                }
            }
            _ => return Err("the server stopped before it listened".into()),
        }
    };
    // Keep draining stdout so the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    Ok((OwnServer { child, _dir: dir }, url, pid))
}

/// What /proc says of a process.
struct Usage {
    /// User + system CPU seconds.
    cpu_seconds: f64,
    /// Resident memory (`VmRSS`).
    rss_bytes: u64,
    /// The resident part of its private memory (`RssAnon`): heap, stacks, buffers. Unlike
    /// `VmRSS` it leaves out the pages of the executable itself, which are read in as code runs
    /// for the first time (the first participants bring about 3 MB of it: DTLS, SRTP, the
    /// media path) and do not grow with participants.
    private_bytes: u64,
}

fn process_usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Usage {
        cpu_seconds: (utime + stime) / ticks.max(1.0),
        rss_bytes: status_kib(&status, "VmRSS:")? * 1024,
        private_bytes: status_kib(&status, "RssAnon:")? * 1024,
    })
}

/// What a `/proc/PID/status` line says after its `key`.
fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

/// A `/proc/PID/status` line's figure in KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status_field(status, key)?
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The server's forwarding counters, from /metrics.
/// What one scrape of the server's `/metrics` says.
struct Scrape {
    forwarded: u64,
    payload_bytes: u64,
    /// The forwarding-delay histogram: cumulative packet counts by upper bound in seconds.
    delay: Vec<(f64, u64)>,
    /// The server's media worker threads (one `zaal_media_worker_peers` series each).
    workers: usize,
}

async fn scrape(client: &reqwest::Client, server: &str) -> Option<Scrape> {
    let text = client
        .get(format!("{server}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(Scrape {
        forwarded: value("zaal_rtp_packets_forwarded_total ")?,
        payload_bytes: value("zaal_rtp_payload_bytes_forwarded_total ")?,
        delay: delay_buckets(&text),
        workers: text
            .lines()
            .filter(|l| l.starts_with("zaal_media_worker_peers{"))
            .count(),
    })
}

fn delay_buckets(metrics: &str) -> Vec<(f64, u64)> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("zaal_forwarding_delay_seconds_bucket{le=\""))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The `p`-th percentile (0–100), in milliseconds, of what was counted into a histogram between
/// two scrapes of it, interpolated within its bucket (the lower bound when it falls above every
/// bound).
fn histogram_percentile_ms(before: &[(f64, u64)], after: &[(f64, u64)], p: f64) -> f64 {
    let counts: Vec<(f64, u64)> = after
        .iter()
        .map(|&(le, n)| {
            let earlier = before.iter().find(|b| b.0 == le).map_or(0, |b| b.1);
            (le, n.saturating_sub(earlier))
        })
        .collect();
    let Some(&(_, total)) = counts.last() else {
        return 0.0;
    };
    if total == 0 {
        return 0.0;
    }
    let target = p / 100.0 * total as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for &(le, cumulative) in &counts {
        if cumulative as f64 >= target && cumulative > below {
            if le.is_infinite() {
                return lower * 1000.0;
            }
            let fraction = (target - below as f64) / (cumulative - below) as f64;
            return (lower + fraction * (le - lower)) * 1000.0;
        }
        (lower, below) = (le, cumulative);
    }
    lower * 1000.0
}

/// The `p`-th percentile (0–100) of sorted samples.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)])
}

#[derive(Default)]
struct Totals {
    /// RTP packets, by the received streams' sequence numbers.
    expected: u64,
    received: u64,
    /// Probes, by the numbers the publishers put in their payloads.
    probes_expected: u64,
    probes_received: u64,
    packets: u64,
}

fn totals(participants: &[SimulatedParticipant]) -> Totals {
    let mut t = Totals::default();
    for p in participants {
        let o = p.observed();
        t.expected += o.rtp_expected;
        t.received += o.rtp_received;
        t.probes_expected += o.probes_expected;
        t.probes_received += o.probes_received;
        t.packets += o
            .received
            .values()
            .map(|r| r.audio_packets + r.video_packets)
            .sum::<u64>();
    }
    t
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // Before the runtime starts its threads, so that they inherit it.
    if let Some(cpus) = &args.load_cpus
        && let Err(e) = run_on(&cpus.to_set())
    {
        eprintln!("zaal-bench: cannot run on the processors of --load-cpus: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("zaal-bench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zaal-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    if args.participants == 0 || args.rooms == 0 {
        return Err("--rooms and --participants must be at least 1".into());
    }
    let audio_senders = args.audio_senders.unwrap_or(args.video_senders);
    let (_own, server, pid) = match (&args.server, args.server_pid) {
        (Some(url), Some(pid)) => (None, url.trim_end_matches('/').to_string(), pid),
        _ => {
            let (own, url, pid) = start_server(
                args.rooms,
                args.participants,
                args.last_n,
                args.server_cpus.as_ref(),
                args.transport,
            )?;
            (Some(own), url, pid)
        }
    };
    let client = reqwest::Client::new();
    let baseline = process_usage(pid).ok_or("cannot read the server's /proc entry")?;
    let total = args.rooms * args.participants;
    let mut participants = Vec::with_capacity(total);
    let gap = args.ramp.checked_div(total as u32).unwrap_or_default();
    let started = Instant::now();
    for room in 0..args.rooms {
        for i in 0..args.participants {
            let options = participant_options(&args, &server, room, i, &format!("p{room}-{i}"));
            let p = SimulatedParticipant::join(options)
                .await
                .map_err(|e| format!("participant {i} of room {room}: {e}"))?;
            participants.push(p);
            tokio::time::sleep(gap).await;
        }
        if !args.quiet {
            eprint!("\rjoined {}/{total}", participants.len());
        }
    }
    if !args.quiet {
        eprintln!(" in {:.1} s", started.elapsed().as_secs_f64());
    }
    tokio::time::sleep(args.warmup).await;

    // The measurement window.
    for p in &participants {
        p.take_latency();
    }
    let cpu0 = process_usage(pid).ok_or("the server is gone")?.cpu_seconds;
    let first = scrape(&client, &server)
        .await
        .ok_or("cannot read the server's /metrics")?;
    let fwd0 = first.forwarded;
    let t0 = totals(&participants);
    let window_start = Instant::now();
    let mut last = (window_start, fwd0);
    let mut churn = Churn::new(args.churn_every, args.duration);
    while window_start.elapsed() < args.duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        churn
            .step(
                &args,
                &server,
                pid,
                &client,
                &mut participants,
                window_start,
            )
            .await?;
        if !args.quiet {
            let now = Instant::now();
            let fwd = scrape(&client, &server)
                .await
                .map_or(last.1, |s| s.forwarded);
            let t = totals(&participants);
            let loss =
                1.0 - (t.received - t0.received) as f64 / (t.expected - t0.expected).max(1) as f64;
            eprint!(
                "\r[{:>4.0} s] {total} participants, forwarding {:>7.0} packets/s, loss {:.3} %   ",
                window_start.elapsed().as_secs_f64(),
                (fwd - last.1) as f64 / now.duration_since(last.0).as_secs_f64(),
                loss.max(0.0) * 100.0
            );
            last = (now, fwd);
        }
    }
    let elapsed = window_start.elapsed().as_secs_f64();
    let end = process_usage(pid).ok_or("the server is gone")?;
    let cpu1 = end.cpu_seconds;
    let last_scrape = scrape(&client, &server)
        .await
        .ok_or("cannot read the server's /metrics")?;
    let fwd1 = last_scrape.forwarded;
    let t1 = totals(&participants);
    let mut latency: Vec<u32> = participants.iter().flat_map(|p| p.take_latency()).collect();
    latency.sort_unstable();
    if !args.quiet {
        eprintln!();
    }
    let forwarded_packets = fwd1 - fwd0;
    let cpu = cpu1 - cpu0;
    let expected = t1.expected - t0.expected;
    let received = t1.received - t0.received;
    let probes_expected = t1.probes_expected - t0.probes_expected;
    let probes_received = t1.probes_received - t0.probes_received;
    let report = json!({
        "rooms": args.rooms,
        "participants": total,
        "video_senders": args.video_senders * args.rooms,
        "audio_senders": audio_senders.min(args.participants) * args.rooms,
        "video_kbps": args.video_kbps,
        "transport": args.transport.name(),
        "duration_s": elapsed,
        "forwarded_packets": forwarded_packets,
        "forwarded_pps": forwarded_packets as f64 / elapsed,
        "forwarded_bps": (last_scrape.payload_bytes - first.payload_bytes) as f64 * 8.0 / elapsed,
        "received_pps": (t1.packets - t0.packets) as f64 / elapsed,
        "loss_ratio": if expected == 0 { 0.0 } else { (1.0 - received as f64 / expected as f64).max(0.0) },
        "payload_gap_ratio": if probes_expected == 0 { 0.0 } else { (1.0 - probes_received as f64 / probes_expected as f64).max(0.0) },
        "latency_ms_p50": percentile(&latency, 50.0) / 1000.0,
        "latency_ms_p99": percentile(&latency, 99.0) / 1000.0,
        "latency_samples": latency.len(),
        "server_delay_ms_p50": histogram_percentile_ms(&first.delay, &last_scrape.delay, 50.0),
        "server_delay_ms_p99": histogram_percentile_ms(&first.delay, &last_scrape.delay, 99.0),
        "server_cpu_seconds": cpu,
        "server_cpu_us_per_forwarded_packet": if forwarded_packets == 0 { 0.0 } else { cpu * 1e6 / forwarded_packets as f64 },
        "server_rss_bytes": end.rss_bytes,
        "server_rss_per_participant_bytes": end.rss_bytes.saturating_sub(baseline.rss_bytes) / total as u64,
        "server_private_bytes": end.private_bytes,
        "server_memory_per_participant_bytes": end.private_bytes.saturating_sub(baseline.private_bytes) / total as u64,
        "server_media_workers": last_scrape.workers,
        "server_cpus": allowed_cpus(pid),
        "load_cpus": allowed_cpus(std::process::id()),
        "churn": churn.report(),
    });
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    println!("{text}");
    if let Some(path) = &args.json {
        let mut file =
            std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        writeln!(file, "{text}").map_err(|e| e.to_string())?;
    }
    for p in participants {
        p.vanish();
    }
    Ok(())
}

/// The churn of a soak run: who is replaced next, and the samples so far.
struct Churn {
    every: Option<Duration>,
    next_swap: Instant,
    sample_every: Duration,
    next_sample: Instant,
    swapped: usize,
    joins: u64,
    samples: Vec<soak::Sample>,
}

impl Churn {
    fn new(every: Option<Duration>, duration: Duration) -> Self {
        let now = Instant::now();
        Self {
            every,
            next_swap: now + every.unwrap_or_default(),
            // About 60 samples over the run, at most one every 5 s.
            sample_every: (duration / 60).max(Duration::from_secs(5)),
            next_sample: now,
            swapped: 0,
            joins: 0,
            samples: Vec::new(),
        }
    }

    async fn step(
        &mut self,
        args: &Args,
        server: &str,
        pid: u32,
        client: &reqwest::Client,
        participants: &mut [SimulatedParticipant],
        started: Instant,
    ) -> Result<(), String> {
        let Some(every) = self.every else {
            return Ok(());
        };
        let now = Instant::now();
        if now >= self.next_sample {
            self.next_sample = now + self.sample_every;
            let metrics = match client.get(format!("{server}/metrics")).send().await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let at = started.elapsed().as_secs_f64();
            self.samples
                .push(soak::sample(pid, at, &metrics).ok_or("the server is gone")?);
        }
        while Instant::now() >= self.next_swap {
            self.next_swap += every;
            let index = self.swapped % participants.len();
            self.swapped += 1;
            let (room, i) = (index / args.participants, index % args.participants);
            let name = format!("p{room}-{i}-{}", self.swapped);
            let options = participant_options(args, server, room, i, &name);
            let fresh = SimulatedParticipant::join(options)
                .await
                .map_err(|e| format!("a churn join into room {room}: {e}"))?;
            let old = std::mem::replace(&mut participants[index], fresh);
            old.leave().await;
            self.joins += 1;
        }
        Ok(())
    }

    fn report(&self) -> serde_json::Value {
        match self.every {
            Some(_) => soak::report(&self.samples, self.joins),
            None => serde_json::Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_histogram_between_two_scrapes() {
        let text = "zaal_forwarding_delay_seconds_bucket{le=\"0.0001\"} 10\n\
                    zaal_forwarding_delay_seconds_bucket{le=\"0.001\"} 110\n\
                    zaal_forwarding_delay_seconds_bucket{le=\"+Inf\"} 120\n";
        let after = delay_buckets(text);
        assert_eq!(after.len(), 3);
        let before = [(0.0001, 10), (0.001, 10), (f64::INFINITY, 10)];
        // Between the scrapes: 100 packets, all between 0.1 and 1 ms, then 10 above.
        let p50 = histogram_percentile_ms(&before, &after, 50.0);
        assert!((p50 - 0.595).abs() < 1e-9, "{p50}");
        assert!((histogram_percentile_ms(&before, &after, 99.0) - 1.0).abs() < 1e-9);
        assert_eq!(
            histogram_percentile_ms(&after, &after, 99.0),
            0.0,
            "nothing counted"
        );
        let none_before = [];
        assert!((histogram_percentile_ms(&none_before, &after, 5.0) - 0.06).abs() < 1e-9);
    }

    #[test]
    fn processor_lists() {
        assert_eq!(CpuList::parse("0"), Ok(CpuList(vec![0])));
        assert_eq!(CpuList::parse("2-4,0,3"), Ok(CpuList(vec![0, 2, 3, 4])));
        for bad in ["", "x", "3-1", "1-", "5000", "-1"] {
            assert!(CpuList::parse(bad).is_err(), "{bad}");
        }
        let set = CpuList(vec![1, 3]).to_set();
        // SAFETY: CPU_ISSET reads inside the set for numbers below CPU_SETSIZE.
        let members: Vec<usize> = (0..8)
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect();
        assert_eq!(members, [1, 3]);
    }

    #[test]
    fn percentiles_of_sorted_samples() {
        let samples: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50.0), 51.0);
        assert_eq!(percentile(&samples, 99.0), 99.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
        assert_eq!(percentile(&[7], 50.0), 7.0);
    }
}
