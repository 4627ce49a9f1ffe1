//! HTTPS of Zaal's own: a self-signed trial, certificate files replaced while a meeting runs,
//! the redirect listener, what the TLS port refuses, and the configuration errors that name
//! their keys. (ACME against a real ACME server is in tests/acme.rs.)

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{TestServer, eventually, eventually_async, media_flows};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_tungstenite::tungstenite::Message;
use zaal_sim::{SimOptions, SimulatedParticipant};

/// A certificate authority of the test's own, and leaf certificates it signs for loopback.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Zaal test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            issuer: rcgen::Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// A leaf for 127.0.0.1 written to `dir/name.crt` and `dir/name.key`; its DER.
    fn leaf(&self, dir: &Path, name: &str) -> Vec<u8> {
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        cert.der().to_vec()
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

/// The certificate a new TLS connection to `addr` is shown, verified against `config`.
async fn presented(addr: std::net::SocketAddr, config: Arc<rustls::ClientConfig>) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("a TLS handshake the client trusts");
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn addr_of(base: &str) -> std::net::SocketAddr {
    base.trim_start_matches("https://").parse().unwrap()
}

/// `curl` with the given arguments; its exit status and standard output.
fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["--silent", "--max-time", "5"])
        .args(args)
        .output()
        .expect("curl is installed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// `openssl s_client` to `addr` with one TLS version: whether a session was established.
fn handshake_with(addr: &str, version: &str) -> bool {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", addr, version])
        // The client must be willing, so that a refusal is the server's.
        .args(["-cipher", "DEFAULT@SECLEVEL=0"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("Cipher is") && !text.contains("Cipher is (NONE)")
}

fn output_line(server: &TestServer, prefix: &str) -> Option<String> {
    server
        .output
        .lock()
        .unwrap()
        .iter()
        .find_map(|line| line.strip_prefix(prefix).map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_trial_serves_everything_over_https_and_refuses_old_tls_and_plain_http() {
    let server = TestServer::start(&[
        ("ZAAL__TLS__SELF_SIGNED", "true"),
        ("ZAAL__HTTP__REDIRECT_LISTEN", "127.0.0.1:0"),
    ]);
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let fingerprint = eventually("the fingerprint line", Duration::from_secs(5), || {
        output_line(&server, "TLS with a self-signed certificate")
    })
    .await;
    assert!(
        fingerprint.contains("SHA-256 fingerprint is "),
        "{fingerprint}"
    );
    for path in ["/", "/healthz", "/privacy", "/maths-3b", "/api/me"] {
        let (ok, status) = curl(&[
            "--insecure",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code} %{http_version}",
            &server.url(path),
        ]);
        assert!(ok, "{path} over HTTPS");
        assert!(
            ["200 2", "401 2"].contains(&status.as_str()),
            "{path}: {status} (HTTP/2 by ALPN)"
        );
    }
    let (_, headers) = curl(&["--insecure", "--head", &server.url("/")]);
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age="),
        "{headers}"
    );
    // Plain HTTP on the TLS port gets no page, and TLS before 1.2 no session.
    let addr = server.base.trim_start_matches("https://").to_string();
    let (plain, body) = curl(&[&format!("http://{addr}/healthz")]);
    assert!(!plain && body.is_empty(), "plain HTTP answered: {body}");
    assert!(handshake_with(&addr, "-tls1_2"), "TLS 1.2 is served");
    assert!(handshake_with(&addr, "-tls1_3"), "TLS 1.3 is served");
    assert!(!handshake_with(&addr, "-tls1_1"), "TLS 1.1 is refused");
    assert!(!handshake_with(&addr, "-tls1"), "TLS 1.0 is refused");
    // The redirect listener sends every path to HTTPS, keeping path and query.
    let redirect = eventually("the redirect line", Duration::from_secs(5), || {
        output_line(&server, "Redirecting plain HTTP on ")
    })
    .await;
    let redirect_addr = redirect.split_whitespace().next().unwrap();
    let (ok, answer) = curl(&[
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_code} %{redirect_url}",
        "--header",
        "Host: evil.example",
        &format!("http://{redirect_addr}/maths-3b?x=1"),
    ]);
    assert!(ok);
    assert_eq!(answer, format!("308 {}/maths-3b?x=1", server.base));
    let (_, missing) = curl(&[
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_code}",
        &format!("http://{redirect_addr}/.well-known/acme-challenge/unknown"),
    ]);
    assert_eq!(missing, "404", "no challenge is pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_reaches_the_next_connection_while_the_meeting_goes_on() {
    let ca = TestCa::new();
    let files = tempfile::tempdir().unwrap();
    let first = ca.leaf(files.path(), "first");
    let cert = files.path().join("zaal.crt");
    let key = files.path().join("zaal.key");
    std::fs::copy(files.path().join("first.crt"), &cert).unwrap();
    std::fs::copy(files.path().join("first.key"), &key).unwrap();
    let server = TestServer::start(&[
        ("ZAAL__TLS__CERT", cert.to_str().unwrap()),
        ("ZAAL__TLS__KEY", key.to_str().unwrap()),
    ]);
    let addr = addr_of(&server.base);
    assert_eq!(presented(addr, ca.client_config()).await, first);

    // A meeting over wss://, in a room made in the server's store (the API client of the
    // other tests speaks plain HTTP only).
    zaal::store::Store::open(&server.data_dir())
        .unwrap()
        .create_room(
            &zaal::focus::RoomName::parse("tls-renewal").unwrap(),
            "test",
        )
        .unwrap();
    let join = |name: &str| {
        let mut options = SimOptions::new(&server.base, "tls-renewal", name);
        options.tls = Some(ca.client_config());
        SimulatedParticipant::join(options)
    };
    let anna = join("Anna").await.expect("Anna joins over wss");
    let bram = join("Bram").await.expect("Bram joins over wss");
    media_flows(&anna, &bram.id).await;
    media_flows(&bram, &anna.id).await;

    // A renewal: a new certificate (a new key) replaces the files, key first, as certbot's
    // copy would.
    let second = ca.leaf(files.path(), "second");
    std::fs::copy(files.path().join("second.key"), &key).unwrap();
    std::fs::copy(files.path().join("second.crt"), &cert).unwrap();
    eventually_async("the new certificate to be served", || {
        let config = ca.client_config();
        let second = second.clone();
        async move { (presented(addr, config).await == second).then_some(()) }
    })
    .await;

    // The meeting was not touched: media still flows both ways and the signalling
    // connections opened before the renewal still carry messages.
    media_flows(&anna, &bram.id).await;
    media_flows(&bram, &anna.id).await;
    anna.send_raw(Message::text(
        r#"{"type":"chat","text":"still here after the renewal"}"#,
    ));
    bram.wait_for("Anna's chat", Duration::from_secs(10), |o| {
        o.messages
            .iter()
            .any(|m| m["type"] == "chat" && m["text"] == "still here after the renewal")
    })
    .await
    .expect("the chat arrives over the old connection");
    assert!(anna.observed().ended.is_none() && bram.observed().ended.is_none());

    // A broken pair (a key of another certificate) is refused and the last good one stays.
    std::fs::copy(files.path().join("first.key"), &key).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(presented(addr, ca.client_config()).await, second);
    let logged = eventually(
        "the refusal in the technical stream",
        Duration::from_secs(10),
        || {
            let text = common::read_stream(&server.logs_dir(), "technical");
            text.contains("tls-certificate-refused").then_some(text)
        },
    )
    .await;
    assert!(
        logged.contains("does not belong to the certificate"),
        "{logged}"
    );
}

/// `zaal check-config` with the given environment: success, and what it printed on stderr.
fn check_config(env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zaal"));
    command.arg("check-config");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn check_config_names_the_tls_keys_at_fault() {
    let files = tempfile::tempdir().unwrap();
    let cert = files.path().join("zaal.crt");
    std::fs::write(&cert, "not yet a certificate").unwrap();
    let cert = cert.to_str().unwrap();
    let (ok, err) = check_config(&[
        ("ZAAL__TLS__CERT", cert),
        ("ZAAL__TLS__KEY", "/nonexistent/zaal.key"),
    ]);
    assert!(!ok);
    assert!(
        err.contains("`tls.key`") && err.contains("/nonexistent/zaal.key"),
        "{err}"
    );
    let (ok, err) = check_config(&[
        ("ZAAL__TLS__CERT", cert),
        ("ZAAL__TLS__KEY", cert),
        ("ZAAL__TLS__SELF_SIGNED", "true"),
    ]);
    assert!(!ok);
    assert!(
        err.contains("`tls.self_signed`") && err.contains("tls.cert"),
        "{err}"
    );
    let (ok, err) = check_config(&[("ZAAL__HTTP__REDIRECT_LISTEN", "0.0.0.0:80")]);
    assert!(!ok);
    assert!(err.contains("`http.redirect_listen`"), "{err}");
    let (ok, _) = check_config(&[("ZAAL__TLS__SELF_SIGNED", "true")]);
    assert!(ok, "a self-signed trial is a valid configuration");
}

#[tokio::test]
async fn turn_over_tls_shares_the_https_port_with_web_clients() {
    let ca = TestCa::new();
    let files = tempfile::tempdir().unwrap();
    ca.leaf(files.path(), "zaal");
    let cert = files.path().join("zaal.crt");
    let key = files.path().join("zaal.key");
    let server = TestServer::start(&[
        ("ZAAL__TLS__CERT", cert.to_str().unwrap()),
        ("ZAAL__TLS__KEY", key.to_str().unwrap()),
    ]);
    let addr = addr_of(&server.base);

    // A TURN client: TLS without ALPN, then STUN. Its Allocate is answered by TURN (challenged
    // with 401), on the port that serves the web pages.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(ca.client_config())
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    let mut allocate = vec![0x00, 0x03, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42];
    allocate.extend_from_slice(&[7; 12]);
    allocate.extend_from_slice(&[0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0]); // REQUESTED-TRANSPORT UDP
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(&allocate).await.unwrap();
    let mut header = [0u8; 20];
    tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut header))
        .await
        .expect("TURN answers within 5 s")
        .unwrap();
    assert_eq!(&header[..2], &[0x01, 0x13], "an Allocate error response");
    assert_eq!(&header[8..20], &[7; 12], "to this transaction");
    let mut body = vec![0u8; usize::from(u16::from_be_bytes([header[2], header[3]]))];
    tls.read_exact(&mut body).await.unwrap();
    // ERROR-CODE (0x0009) 401 comes first.
    assert_eq!(&body[..2], &[0x00, 0x09]);
    assert_eq!((body[6], body[7]), (4, 1), "401 Unauthorized");

    // A web client without ALPN still gets its page, and one with ALPN its HTTP/2.
    let (ok, status) = curl(&[
        "--insecure",
        "--no-alpn",
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_code} %{http_version}",
        &server.url("/healthz"),
    ]);
    assert!(ok);
    assert_eq!(status, "200 1.1");
    let (ok, status) = curl(&[
        "--insecure",
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_code} %{http_version}",
        &server.url("/healthz"),
    ]);
    assert!(ok);
    assert_eq!(status, "200 2");
}
