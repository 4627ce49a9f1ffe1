//! Certificates from ACME, end to end against Pebble (the ACME test server, Debian's `pebble`
//! package, installed by the test command) on loopback: Pebble validates the challenge against
//! the running Zaal for real, through its own mock DNS (`pebble-challtestsrv`) that resolves
//! every name to 127.0.0.1.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestServer, eventually};

/// A free loopback port (the listeners are told it in advance, as Pebble must be).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running process, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pebble with its mock DNS, validating on `http_port` (http-01) and `tls_port` (tls-alpn-01).
struct Pebble {
    directory: String,
    management: u16,
    /// The CA of Pebble's own HTTPS listeners, for the ACME client.
    ca: std::path::PathBuf,
    _dns: Running,
    _pebble: Running,
}

impl Pebble {
    fn start(dir: &Path, http_port: u16, tls_port: u16) -> Self {
        for binary in ["pebble", "pebble-challtestsrv"] {
            assert!(
                Command::new("sh")
                    .args(["-c", &format!("command -v {binary}")])
                    .stdout(Stdio::null())
                    .status()
                    .unwrap()
                    .success(),
                "{binary} is missing: the test command installs Debian's pebble package"
            );
        }
        // Pebble's own listeners need a certificate: one from a CA of the test's own.
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let ca = dir.join("pebble-ca.pem");
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        std::fs::write(dir.join("pebble.crt"), leaf.pem()).unwrap();
        std::fs::write(dir.join("pebble.key"), leaf_key.serialize_pem()).unwrap();
        let (acme, management, dns, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{acme}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": dir.join("pebble.crt"),
                "privateKey": dir.join("pebble.key"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        let dns_server = Running(
            Command::new("pebble-challtestsrv")
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .args(["-dns01", &format!("127.0.0.1:{dns}")])
                .args(["-management", &format!("127.0.0.1:{dns_management}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for_port(dns_management, "pebble-challtestsrv");
        let pebble = Running(
            Command::new("pebble")
                .arg("-config")
                .arg(dir.join("pebble.json"))
                .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
                // No pauses before validating, and no nonces refused on purpose: the test is
                // of Zaal, not of how it copes with a deliberately difficult server.
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for_port(acme, "pebble");
        wait_for_port(management, "pebble's management interface");
        Self {
            directory: format!("https://127.0.0.1:{acme}/dir"),
            management,
            ca,
            _dns: dns_server,
            _pebble: pebble,
        }
    }

    /// The root Pebble issues from (made at its start), as PEM.
    fn root(&self, dir: &Path) -> std::path::PathBuf {
        let path = dir.join("pebble-root.pem");
        let out = Command::new("curl")
            // The management interface has a certificate of Pebble's own making; what matters
            // is the root it hands out, which then verifies Zaal's certificate.
            .args([
                "--silent",
                "--show-error",
                "--fail",
                "--max-time",
                "5",
                "--insecure",
            ])
            .arg(format!("https://127.0.0.1:{}/roots/0", self.management))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "Pebble's root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&path, out.stdout).unwrap();
        path
    }
}

/// Starts Zaal with ACME against a fresh Pebble and checks the certificate is served.
async fn obtains_a_certificate(with_redirect_listener: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (https, redirect) = (free_port(), free_port());
    let pebble = Pebble::start(dir.path(), redirect, https);
    let listen = format!("127.0.0.1:{https}");
    let public_url = format!("https://zaal.test:{https}");
    let redirect_listen = format!("127.0.0.1:{redirect}");
    let ca = pebble.ca.to_str().unwrap().to_string();
    let mut env = vec![
        ("ZAAL__HTTP__LISTEN", listen.as_str()),
        ("ZAAL__HTTP__PUBLIC_URL", public_url.as_str()),
        ("ZAAL__TLS__ACME", "on"),
        ("ZAAL__TLS__ACME_DIRECTORY", pebble.directory.as_str()),
        ("ZAAL__TLS__ACME_CA", ca.as_str()),
        ("ZAAL__TLS__ACME_CONTACT", "beheer@school.example"),
    ];
    if with_redirect_listener {
        env.push(("ZAAL__HTTP__REDIRECT_LISTEN", redirect_listen.as_str()));
    }
    let server = TestServer::start(&env);
    assert_eq!(server.base, public_url);
    let issued = eventually("a certificate from Pebble", Duration::from_secs(60), || {
        let technical = common::read_stream(&server.logs_dir(), "technical");
        technical
            .lines()
            .find(|l| l.contains("acme-certificate") && l.contains("zaal.test"))
            .map(str::to_string)
    })
    .await;
    assert!(issued.contains("fingerprint"), "{issued}");
    let root = pebble.root(dir.path());
    let out = Command::new("curl")
        .args(["--silent", "--fail", "--max-time", "5", "--cacert"])
        .arg(&root)
        .args(["--resolve", &format!("zaal.test:{https}:127.0.0.1")])
        .arg(format!("{public_url}/"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the start page over HTTPS, trusted through Pebble's root: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("<html"));
    // The account and the certificate are kept for Zaal's user alone.
    let acme = server.data_dir().join("acme");
    for name in ["account.json", "zaal.test.crt", "zaal.test.key"] {
        let meta = std::fs::metadata(acme.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_http_01_through_the_redirect_listener() {
    obtains_a_certificate(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_tls_alpn_01_on_the_https_listener() {
    obtains_a_certificate(false).await;
}
