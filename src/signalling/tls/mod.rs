//! HTTPS of Zaal's own: the TLS listener's configuration (rustls, TLS 1.2 and 1.3 only, ALPN
//! `h2` and `http/1.1`), where its certificate comes from (PEM files watched for changes, a
//! self-signed one, or ACME), and the plain-HTTP listener that redirects to it.
//!
//! Everything here is set up once at start-up by [`Tls::start`]; what changes while the server
//! runs is only the certificate, swapped in [`Certificates`]. It never logs a client's address
//! and never stops the server over a certificate it cannot renew: the last good one stays.

mod acme;
mod certificates;
mod files;
mod redirect;

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::{CertificateSource, TlsSettings};
use certificates::{ACME_TLS_ALPN, Certificates};
pub use certificates::{CertificateError, fingerprint};
pub use redirect::Http01Tokens;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Certificate(#[from] CertificateError),
    #[error("{0}")]
    Acme(#[from] acme::AcmeError),
    #[error("cannot set up TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// The running HTTPS set-up: what the listener accepts with, and the tasks that keep its
/// certificate fresh.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// For the redirect listener: http-01 answers while an ACME order waits.
    pub http01: Arc<Http01Tokens>,
    /// One line for the operator: where the certificate comes from.
    pub summary: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Tls {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// rustls with the ring provider: its cipher suites are all AEAD with forward secrecy.
fn server_config(certificates: Arc<Certificates>, acme: bool) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if acme {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    Ok(config)
}

impl Tls {
    /// `None` when TLS is off. Must run inside the runtime: it starts the watcher or the ACME
    /// client.
    pub fn start(settings: &TlsSettings, data_dir: &Path) -> Result<Option<Self>, TlsError> {
        let Some(source) = &settings.source else {
            return Ok(None);
        };
        let http01 = Arc::new(Http01Tokens::default());
        let mut tasks = Vec::new();
        let (certificates, summary, acme) = match source {
            CertificateSource::Files { cert, key } => {
                let certified = certificates::load_pem(cert, key)?;
                let summary = format!(
                    "TLS with the certificate in {} (SHA-256 {}), read again when it changes",
                    cert.display(),
                    fingerprint(&certified.cert[0])
                );
                let certificates = Arc::new(Certificates::new(Some(certified)));
                tasks.push(tokio::spawn(files::watch(
                    certificates.clone(),
                    cert.clone(),
                    key.clone(),
                )));
                (certificates, summary, false)
            }
            CertificateSource::SelfSigned { names } => {
                let (certified, _, _) = certificates::self_signed(names)?;
                let summary = format!(
                    "TLS with a self-signed certificate for {}: browsers will warn; its SHA-256 \
                     fingerprint is {}",
                    names.join(", "),
                    fingerprint(&certified.cert[0])
                );
                (Arc::new(Certificates::new(Some(certified))), summary, false)
            }
            CertificateSource::Acme(acme) => {
                let certificates = Arc::new(Certificates::new(None));
                let challenge = if settings.redirect_listen.is_some() {
                    "http-01 on http.redirect_listen"
                } else {
                    "tls-alpn-01 on http.listen"
                };
                let summary = format!(
                    "TLS with certificates for {} from {} (ACME, {challenge})",
                    acme.host, acme.directory
                );
                let client = acme::Acme::new(
                    acme.clone(),
                    data_dir,
                    certificates.clone(),
                    settings.redirect_listen.map(|_| http01.clone()),
                )?;
                tasks.push(tokio::spawn(client.run()));
                (certificates, summary, true)
            }
        };
        let config = server_config(certificates, acme)?;
        Ok(Some(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            http01,
            summary,
            tasks,
        }))
    }
}

/// The redirect listener's routes (see [`redirect`]).
pub fn redirect_router(https_base: &str, tokens: Arc<Http01Tokens>) -> axum::Router {
    redirect::router(https_base, tokens)
}
