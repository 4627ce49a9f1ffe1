//! The certificate the HTTPS listener presents, swapped while it runs: a renewed file, a new
//! ACME certificate or a tls-alpn-01 challenge certificate reaches the next handshake, and open
//! connections keep the one they were made with.
//!
//! Loading and making certificates is pure apart from reading the named files; a bad file is an
//! error for the caller to report, never a reason to stop serving the last good certificate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

/// ALPN protocol of ACME's tls-alpn-01 challenge (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("the private key in {path} is not one TLS can use (RSA, ECDSA or Ed25519): {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the private key in {key} does not belong to the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the certificate is not valid X.509: {0}")]
    Parse(String),
}

/// A certificate chain with its signing key, ready for handshakes.
pub type Certified = Arc<CertifiedKey>;

/// Reads a PEM certificate chain and its private key.
pub fn load_pem(cert: &Path, key: &Path) -> Result<Certified, CertificateError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| CertificateError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    };
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    certified(&cert_pem, &key_pem).map_err(|e| match e {
        PemError::NoCertificate => CertificateError::NoCertificate {
            path: cert.to_path_buf(),
        },
        PemError::Key(reason) => CertificateError::Key {
            path: key.to_path_buf(),
            reason,
        },
        PemError::Mismatch => CertificateError::Mismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        },
    })
}

/// Why PEM text is not a usable certificate and key.
#[derive(Debug)]
pub enum PemError {
    NoCertificate,
    Key(String),
    Mismatch,
}

/// A chain and its key from PEM text.
pub fn certified(cert_pem: &[u8], key_pem: &[u8]) -> Result<Certified, PemError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(PemError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| PemError::Key(e.to_string()))?;
    let signing = any_supported_type(&key).map_err(|e| PemError::Key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        // A key type whose public half cannot be derived is let through; the handshake checks.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(_) => Err(PemError::Mismatch),
    }
}

/// A self-signed certificate for `names` (host names or IP addresses), and its PEM texts.
pub fn self_signed(names: &[String]) -> Result<(Certified, String, String), CertificateError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Zaal (self-signed)");
    let cert = params.self_signed(&key)?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    let certified = certified(cert_pem.as_bytes(), key_pem.as_bytes())
        .map_err(|_| CertificateError::Parse("a certificate just made".into()))?;
    Ok((certified, cert_pem, key_pem))
}

/// The tls-alpn-01 answer for `host` (RFC 8737): a self-signed certificate carrying the digest
/// of the key authorisation.
pub fn acme_challenge(host: &str, digest: &[u8]) -> Result<Certified, CertificateError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key)?;
    // Not through `certified`: its key check parses the certificate, and the parser refuses
    // the critical acmeIdentifier extension that only the validation server reads.
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
        .map_err(|e| CertificateError::Parse(e.to_string()))?;
    let signing = any_supported_type(&key).map_err(|e| CertificateError::Parse(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// The SHA-256 fingerprint of a certificate, as browsers show it (`AB:CD:…`).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The end of a certificate's validity, in seconds since the Unix epoch.
pub fn not_after(cert: &CertificateDer<'_>) -> Result<i64, CertificateError> {
    validity(cert).map(|(_, end)| end)
}

/// The start of a certificate's validity, in seconds since the Unix epoch.
pub fn not_before(cert: &CertificateDer<'_>) -> Result<i64, CertificateError> {
    validity(cert).map(|(start, _)| start)
}

fn validity(cert: &CertificateDer<'_>) -> Result<(i64, i64), CertificateError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| CertificateError::Parse(e.to_string()))?;
    let validity = parsed.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

/// What the listener presents: the current certificate, and tls-alpn-01 challenge answers while
/// an ACME order waits for them.
#[derive(Debug, Default)]
pub struct Certificates {
    current: RwLock<Option<Certified>>,
    challenges: Mutex<HashMap<String, Certified>>,
}

impl Certificates {
    pub fn new(current: Option<Certified>) -> Self {
        Self {
            current: RwLock::new(current),
            challenges: Mutex::default(),
        }
    }

    /// From the next handshake on, `certified` is presented.
    pub fn replace(&self, certified: Certified) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(certified);
    }

    pub fn current(&self) -> Option<Certified> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_challenge(&self, host: &str, answer: Option<Certified>) {
        let mut challenges = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        match answer {
            Some(answer) => challenges.insert(host.to_ascii_lowercase(), answer),
            None => challenges.remove(&host.to_ascii_lowercase()),
        };
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Certified> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // Only the validation server asks for this protocol; it gets the challenge or nothing.
            let host = hello.server_name()?.to_ascii_lowercase();
            let challenges = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
            return challenges.get(&host).cloned();
        }
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_loads_back_from_its_pem() {
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let (made, cert_pem, key_pem) = self_signed(&names).unwrap();
        let loaded = certified(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
        assert_eq!(
            fingerprint(&made.cert[0]),
            fingerprint(&loaded.cert[0]),
            "the same certificate"
        );
        assert_eq!(fingerprint(&made.cert[0]).len(), 32 * 3 - 1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(not_after(&made.cert[0]).unwrap() > now);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (_, cert_a, _) = self_signed(&["a.example".to_string()]).unwrap();
        let (_, _, key_b) = self_signed(&["b.example".to_string()]).unwrap();
        assert!(matches!(
            certified(cert_a.as_bytes(), key_b.as_bytes()),
            Err(PemError::Mismatch)
        ));
        assert!(matches!(
            certified(b"not pem", key_b.as_bytes()),
            Err(PemError::NoCertificate)
        ));
        assert!(matches!(
            certified(
                cert_a.as_bytes(),
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            ),
            Err(PemError::Key(_))
        ));
    }

    #[test]
    fn replacing_reaches_the_next_lookup() {
        let (a, _, _) = self_signed(&["a.example".to_string()]).unwrap();
        let (b, _, _) = self_signed(&["a.example".to_string()]).unwrap();
        let certificates = Certificates::new(Some(a.clone()));
        assert!(Arc::ptr_eq(&certificates.current().unwrap(), &a));
        certificates.replace(b.clone());
        assert!(Arc::ptr_eq(&certificates.current().unwrap(), &b));
    }
}
