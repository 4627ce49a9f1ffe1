//! Certificates from ACME (RFC 8555), obtained at start-up and renewed ahead of expiry, for the
//! one host name of `http.public_url`.
//!
//! The challenge is http-01 on the redirect listener when there is one, otherwise tls-alpn-01
//! on the HTTPS listener itself (RFC 8737). The account and the certificate are kept under
//! `data.dir/acme/`, readable by Zaal's user only. A failure is reported in the technical
//! stream with what to check and retried with a growing pause; whatever certificate is being
//! served meanwhile stays.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use tracing::{error, info};

use super::certificates::{Certificates, acme_challenge, certified, fingerprint};
use super::redirect::Http01Tokens;
use crate::config::AcmeSettings;
use crate::privacy::TECHNICAL;

/// The longest pause between two checks of the certificate, and after repeated failures.
const MAX_PAUSE: Duration = Duration::from_secs(12 * 3600);
/// The first pause after a failure; it doubles with each failure after it.
const FIRST_RETRY: Duration = Duration::from_secs(30);
/// How long the ACME server may take to validate a challenge and to issue.
const ORDER_PATIENCE: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("the ACME server at {directory}: {}", causes(.source))]
    Server {
        directory: String,
        source: instant_acme::Error,
    },
    #[error("the ACME server refused the order for {host}: {status}")]
    Refused { host: String, status: String },
    #[error("the ACME server offers no {0} challenge")]
    NoChallenge(&'static str),
    #[error("cannot keep ACME state in {path}: {source}")]
    Store {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Certificate(#[from] super::certificates::CertificateError),
    #[error("the ACME server sent a certificate that cannot be used")]
    Unusable,
}

/// An error with everything it was caused by: an HTTP client's own message ("client error
/// (Connect)") says little without the TLS or network error under it.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        source = cause.source();
    }
    text
}

/// When a certificate valid from `not_before` to `not_after` (seconds since the epoch) is due
/// for renewal: with a third of its lifetime left, as certbot does (30 days of Let's Encrypt's 90).
pub fn renewal_due(not_before: i64, not_after: i64) -> i64 {
    not_after - (not_after - not_before).max(0) / 3
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Writes `contents` to `path`, readable by the owner only, replacing it atomically.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), AcmeError> {
    let store = |source| AcmeError::Store {
        path: path.to_path_buf(),
        source,
    };
    let partial = path.with_extension("partial");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&partial).map_err(store)?;
    file.write_all(contents).map_err(store)?;
    file.sync_all().map_err(store)?;
    std::fs::rename(&partial, path).map_err(store)
}

/// The ACME client for one host.
pub struct Acme {
    settings: AcmeSettings,
    dir: PathBuf,
    certificates: Arc<Certificates>,
    /// Set when http-01 is answered by the redirect listener.
    http01: Option<Arc<Http01Tokens>>,
}

/// The validity of the certificate being served, once there is one.
struct Served {
    not_before: i64,
    not_after: i64,
}

impl Acme {
    /// Sets up `data_dir/acme` and serves a cached certificate at once, if one is still valid.
    pub fn new(
        settings: AcmeSettings,
        data_dir: &Path,
        certificates: Arc<Certificates>,
        http01: Option<Arc<Http01Tokens>>,
    ) -> Result<Self, AcmeError> {
        let dir = data_dir.join("acme");
        std::fs::create_dir_all(&dir).map_err(|source| AcmeError::Store {
            path: dir.clone(),
            source,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        Ok(Self {
            settings,
            dir,
            certificates,
            http01,
        })
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.join(format!("{}.crt", self.settings.host))
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join(format!("{}.key", self.settings.host))
    }

    fn account_path(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    /// The cached certificate, if it loads: presented at once, so a restart does not wait for
    /// the ACME server.
    pub fn load_cached(&self) -> Option<(i64, i64)> {
        let cert = std::fs::read(self.cert_path()).ok()?;
        let key = std::fs::read(self.key_path()).ok()?;
        let certified = certified(&cert, &key).ok()?;
        let not_before = super::certificates::not_before(&certified.cert[0]).ok()?;
        let not_after = super::certificates::not_after(&certified.cert[0]).ok()?;
        if not_after <= unix_now() {
            return None;
        }
        self.certificates.replace(certified);
        Some((not_before, not_after))
    }

    /// Obtains and renews for as long as the server runs.
    pub async fn run(self) {
        let mut served = self.load_cached().map(|(not_before, not_after)| Served {
            not_before,
            not_after,
        });
        let mut retry = FIRST_RETRY;
        loop {
            let due = served
                .as_ref()
                .map(|s| renewal_due(s.not_before, s.not_after));
            if due.is_none_or(|due| due <= unix_now()) {
                match self.obtain().await {
                    Ok(fresh) => {
                        served = Some(fresh);
                        retry = FIRST_RETRY;
                    }
                    Err(e) => {
                        error!(
                            target: TECHNICAL,
                            event = "acme-failed",
                            host = %self.settings.host,
                            "no certificate from ACME (check that {} resolves to this server and \
                             that the challenge's port is reachable from the internet; retrying \
                             in {}): {e}",
                            self.settings.host,
                            humantime::format_duration(retry),
                        );
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(MAX_PAUSE);
                        continue;
                    }
                }
            }
            let due = served
                .as_ref()
                .map_or(0, |s| renewal_due(s.not_before, s.not_after));
            let wait = Duration::from_secs((due - unix_now()).max(1) as u64);
            tokio::time::sleep(wait.min(MAX_PAUSE)).await;
        }
    }

    async fn account(&self) -> Result<Account, AcmeError> {
        let server = |source| AcmeError::Server {
            directory: self.settings.directory.clone(),
            source,
        };
        let builder = match &self.settings.ca {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        }
        .map_err(server)?;
        if let Ok(saved) = std::fs::read(self.account_path())
            && let Ok(credentials) = serde_json::from_slice::<AccountCredentials>(&saved)
        {
            return builder.from_credentials(credentials).await.map_err(server);
        }
        let contact: Vec<&str> = self.settings.contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.settings.directory.clone(),
                None,
            )
            .await
            .map_err(server)?;
        let saved = serde_json::to_vec(&credentials).map_err(|e| AcmeError::Store {
            path: self.account_path(),
            source: std::io::Error::other(e),
        })?;
        write_private(&self.account_path(), &saved)?;
        Ok(account)
    }

    /// One order, from the account to the certificate being served and cached.
    async fn obtain(&self) -> Result<Served, AcmeError> {
        let server = |source| AcmeError::Server {
            directory: self.settings.directory.clone(),
            source,
        };
        let host = self.settings.host.clone();
        let account = self.account().await?;
        let identifiers = [Identifier::Dns(host.clone())];
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(server)?;
        let mut tokens = Vec::new();
        let answered = async {
            let mut authorizations = order.authorizations();
            while let Some(authorization) = authorizations.next().await {
                let mut authorization = authorization.map_err(server)?;
                if authorization.status == AuthorizationStatus::Valid {
                    continue;
                }
                let kind = match self.http01 {
                    Some(_) => ChallengeType::Http01,
                    None => ChallengeType::TlsAlpn01,
                };
                let mut challenge =
                    authorization
                        .challenge(kind.clone())
                        .ok_or(AcmeError::NoChallenge(match kind {
                            ChallengeType::Http01 => "http-01",
                            _ => "tls-alpn-01",
                        }))?;
                let key_authorization = challenge.key_authorization();
                match &self.http01 {
                    Some(http01) => {
                        http01.insert(&challenge.token, key_authorization.as_str());
                        tokens.push(challenge.token.clone());
                    }
                    None => {
                        let answer = acme_challenge(&host, key_authorization.digest().as_ref())?;
                        self.certificates.set_challenge(&host, Some(answer));
                    }
                }
                challenge.set_ready().await.map_err(server)?;
            }
            let patience = RetryPolicy::new().timeout(ORDER_PATIENCE);
            let status = order.poll_ready(&patience).await.map_err(server)?;
            if status != OrderStatus::Ready {
                return Err(AcmeError::Refused {
                    host: host.clone(),
                    status: format!("{status:?}"),
                });
            }
            let key_pem = order.finalize().await.map_err(server)?;
            let cert_pem = order.poll_certificate(&patience).await.map_err(server)?;
            Ok((cert_pem, key_pem))
        }
        .await;
        // The answers are only for the order just made.
        if let Some(http01) = &self.http01 {
            for token in &tokens {
                http01.remove(token);
            }
        }
        self.certificates.set_challenge(&host, None);
        let (cert_pem, key_pem) = answered?;
        let fresh =
            certified(cert_pem.as_bytes(), key_pem.as_bytes()).map_err(|_| AcmeError::Unusable)?;
        let not_before = super::certificates::not_before(&fresh.cert[0])?;
        let not_after = super::certificates::not_after(&fresh.cert[0])?;
        write_private(&self.key_path(), key_pem.as_bytes())?;
        write_private(&self.cert_path(), cert_pem.as_bytes())?;
        info!(
            target: TECHNICAL,
            event = "acme-certificate",
            host = %host,
            fingerprint = %fingerprint(&fresh.cert[0]),
            valid_days = (not_after - unix_now()) / 86_400,
        );
        self.certificates.replace(fresh);
        Ok(Served {
            not_before,
            not_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_with_a_third_of_the_lifetime_left() {
        let day = 86_400;
        assert_eq!(
            renewal_due(0, 90 * day),
            60 * day,
            "Let's Encrypt: 30 days ahead"
        );
        assert_eq!(
            renewal_due(0, 6 * day),
            4 * day,
            "a short-lived certificate"
        );
        assert_eq!(
            renewal_due(10, 5),
            5,
            "a nonsensical one: renew when it ends"
        );
    }

    #[test]
    fn state_files_are_for_the_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("account.json");
        write_private(&path, b"{}").unwrap();
        write_private(&path, b"{\"again\":1}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"again\":1}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
