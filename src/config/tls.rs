//! The HTTPS settings: where the certificate comes from (PEM files, a self-signed one, or ACME),
//! and the plain-HTTP listener that redirects to HTTPS and answers ACME's http-01 challenges.
//!
//! Every contradiction between keys is refused here, naming the keys, so the server never
//! starts half-secure. Pure apart from checking that the named files can be read.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// Let's Encrypt's production directory: where ACME certificates come from by default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
    pub self_signed: bool,
    pub acme: String,
    pub acme_directory: String,
    pub acme_contact: String,
    pub acme_ca: String,
}

/// Where the HTTPS listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// PEM files, read again whenever they change on disk (a certbot renewal).
    Files { cert: PathBuf, key: PathBuf },
    /// Made at start-up for the listen address and the public host name: a LAN trial.
    SelfSigned { names: Vec<String> },
    /// Obtained and renewed from an ACME server.
    Acme(AcmeSettings),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The one host name the certificate is for: `http.public_url`'s.
    pub host: String,
    pub directory: String,
    /// `mailto:` address for the ACME account, if any.
    pub contact: Option<String>,
    /// The ACME server's own CA (PEM), for a private ACME server; `None`: the system's roots.
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// `None`: the listener speaks plain HTTP (a proxy in front terminates TLS, or a trial on
    /// localhost).
    pub source: Option<CertificateSource>,
    /// The plain-HTTP listener that redirects to HTTPS (and serves http-01 challenges).
    pub redirect_listen: Option<SocketAddr>,
}

impl TlsSettings {
    pub fn enabled(&self) -> bool {
        self.source.is_some()
    }
}

/// The host of an `http://` or `https://` address, without port or path.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    (!host.is_empty()).then_some(host)
}

/// Whether a public CA can issue a certificate for `host`: a name with a dot, not an address,
/// and not in a name space reserved for local use (RFC 6761, RFC 8375).
pub fn is_public_host(host: &str) -> bool {
    const LOCAL: [&str; 8] = [
        ".localhost",
        ".local",
        ".test",
        ".invalid",
        ".example",
        ".internal",
        ".lan",
        ".home.arpa",
    ];
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host.parse::<IpAddr>().is_err()
        && host.contains('.')
        && !LOCAL.iter().any(|suffix| host.ends_with(suffix))
}

fn path(key: &'static str, value: &str) -> Result<Option<PathBuf>, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let path = PathBuf::from(value);
    std::fs::File::open(&path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    Ok(Some(path))
}

/// Validates the `[tls]` keys and `http.redirect_listen` against `http.listen` and
/// `http.public_url`.
pub fn tls_settings(
    raw: &RawTls,
    redirect_listen: &str,
    listen: SocketAddr,
    public_url: Option<&str>,
    trusted_proxies: bool,
) -> Result<TlsSettings, ConfigError> {
    let cert = path("tls.cert", &raw.cert)?;
    let key = path("tls.key", &raw.key)?;
    let acme = match raw.acme.trim() {
        "auto" => None,
        "on" => Some(true),
        "off" => Some(false),
        other => {
            return Err(invalid(
                "tls.acme",
                format!("`{other}`: expected \"auto\", \"on\" or \"off\""),
            ));
        }
    };
    let https_host = public_url
        .filter(|url| url.starts_with("https://"))
        .and_then(url_host);
    let source = match (cert, key) {
        (Some(_), None) => return Err(invalid("tls.key", "`tls.cert` is set: give its key too")),
        (None, Some(_)) => {
            return Err(invalid(
                "tls.cert",
                "`tls.key` is set: give its certificate too",
            ));
        }
        (Some(_), Some(_)) if raw.self_signed => {
            return Err(invalid(
                "tls.self_signed",
                "cannot be combined with `tls.cert` and `tls.key`: choose one",
            ));
        }
        (Some(_), Some(_)) | (None, None) if acme == Some(true) && raw.self_signed => {
            return Err(invalid(
                "tls.acme",
                "\"on\" cannot be combined with `tls.self_signed`: choose one",
            ));
        }
        (Some(_), Some(_)) if acme == Some(true) => {
            return Err(invalid(
                "tls.acme",
                "\"on\" cannot be combined with `tls.cert` and `tls.key`: choose one",
            ));
        }
        (Some(cert), Some(key)) => Some(CertificateSource::Files { cert, key }),
        (None, None) if raw.self_signed => {
            let mut names = vec![listen.ip().to_string()];
            if let Some(host) = public_url.and_then(url_host)
                && !names.iter().any(|n| n == host)
            {
                names.push(host.to_string());
            }
            names.push("localhost".into());
            Some(CertificateSource::SelfSigned { names })
        }
        (None, None) => {
            // Behind a proxy that terminates TLS (trusted proxies are set), `auto` stays off.
            let wanted = match acme {
                Some(on) => on,
                None => https_host.is_some_and(is_public_host) && !trusted_proxies,
            };
            if wanted {
                let Some(host) = https_host.filter(|h| h.parse::<IpAddr>().is_err()) else {
                    return Err(invalid(
                        "tls.acme",
                        "\"on\" needs `http.public_url` to be an https:// address with a host name",
                    ));
                };
                Some(CertificateSource::Acme(acme_settings(raw, host)?))
            } else {
                None
            }
        }
    };
    let redirect_listen = match redirect_listen.trim() {
        "" => None,
        value => {
            let addr = value.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "http.redirect_listen",
                    "expected IP:port, e.g. 0.0.0.0:80, or empty",
                )
            })?;
            if source.is_none() {
                return Err(invalid(
                    "http.redirect_listen",
                    "redirects to HTTPS, but TLS is off: set `tls.cert` and `tls.key`, \
                     `tls.self_signed` or an https:// `http.public_url`, or leave this empty",
                ));
            }
            if addr.port() != 0 && addr == listen {
                return Err(invalid(
                    "http.redirect_listen",
                    "is the same address as `http.listen`",
                ));
            }
            Some(addr)
        }
    };
    if source.is_some()
        && let Some(url) = public_url
        && url.starts_with("http://")
    {
        return Err(invalid(
            "http.public_url",
            "TLS is on, so the public address starts with https://",
        ));
    }
    Ok(TlsSettings {
        source,
        redirect_listen,
    })
}

fn acme_settings(raw: &RawTls, host: &str) -> Result<AcmeSettings, ConfigError> {
    let directory = match raw.acme_directory.trim() {
        "" => LETS_ENCRYPT.to_string(),
        url if url.starts_with("https://") => url.to_string(),
        _ => {
            return Err(invalid(
                "tls.acme_directory",
                "expected the https:// address of an ACME directory",
            ));
        }
    };
    let contact = match raw.acme_contact.trim() {
        "" => None,
        address if address.contains('@') && !address.contains(char::is_whitespace) => {
            Some(if address.starts_with("mailto:") {
                address.to_string()
            } else {
                format!("mailto:{address}")
            })
        }
        _ => return Err(invalid("tls.acme_contact", "expected an e-mail address")),
    };
    Ok(AcmeSettings {
        host: host.to_ascii_lowercase(),
        directory,
        contact,
        ca: path("tls.acme_ca", &raw.acme_ca)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawTls {
        RawTls {
            cert: String::new(),
            key: String::new(),
            self_signed: false,
            acme: "auto".into(),
            acme_directory: String::new(),
            acme_contact: String::new(),
            acme_ca: String::new(),
        }
    }

    const LISTEN: SocketAddr =
        SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(0, 0, 0, 0)), 443);

    fn settings(raw: &RawTls, url: Option<&str>) -> Result<TlsSettings, ConfigError> {
        tls_settings(raw, "", LISTEN, url, false)
    }

    fn key_of(result: Result<TlsSettings, ConfigError>) -> &'static str {
        match result {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(url_host("https://meet.school.nl"), Some("meet.school.nl"));
        assert_eq!(
            url_host("https://meet.school.nl:8443/x"),
            Some("meet.school.nl")
        );
        assert_eq!(url_host("https://[::1]:8443"), Some("::1"));
        assert_eq!(url_host("https://"), None);
        assert!(is_public_host("meet.school.nl"));
        assert!(!is_public_host("localhost"));
        assert!(!is_public_host("zaal.test"));
        assert!(!is_public_host("192.0.2.7"));
        assert!(!is_public_host("printer.local"));
    }

    #[test]
    fn plain_http_by_default_and_acme_for_a_public_https_address() {
        assert_eq!(settings(&raw(), None).unwrap(), TlsSettings::default());
        assert_eq!(
            settings(&raw(), Some("https://zaal.test")).unwrap(),
            TlsSettings::default(),
            "no public CA issues for a reserved name"
        );
        let acme = settings(&raw(), Some("https://Meet.School.nl")).unwrap();
        let Some(CertificateSource::Acme(acme)) = acme.source else {
            panic!("ACME");
        };
        assert_eq!(acme.host, "meet.school.nl");
        assert_eq!(acme.directory, LETS_ENCRYPT);
        // Behind a proxy (trusted proxies set) the proxy terminates TLS.
        let proxied = tls_settings(&raw(), "", LISTEN, Some("https://meet.school.nl"), true);
        assert_eq!(proxied.unwrap(), TlsSettings::default());
        let off = RawTls {
            acme: "off".into(),
            ..raw()
        };
        assert_eq!(
            settings(&off, Some("https://meet.school.nl")).unwrap(),
            TlsSettings::default()
        );
    }

    #[test]
    fn contradictions_name_their_keys() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let existing = file.path().to_string_lossy().to_string();
        let only_cert = RawTls {
            cert: existing.clone(),
            ..raw()
        };
        assert_eq!(key_of(settings(&only_cert, None)), "tls.key");
        let both_and_self_signed = RawTls {
            cert: existing.clone(),
            key: existing.clone(),
            self_signed: true,
            ..raw()
        };
        assert_eq!(
            key_of(settings(&both_and_self_signed, None)),
            "tls.self_signed"
        );
        let missing_key = RawTls {
            cert: existing.clone(),
            key: "/nonexistent/zaal.key".into(),
            ..raw()
        };
        assert_eq!(key_of(settings(&missing_key, None)), "tls.key");
        let acme_on_without_host = RawTls {
            acme: "on".into(),
            ..raw()
        };
        assert_eq!(key_of(settings(&acme_on_without_host, None)), "tls.acme");
        let self_signed = RawTls {
            self_signed: true,
            ..raw()
        };
        assert_eq!(
            key_of(settings(&self_signed, Some("http://meet.school.nl"))),
            "http.public_url"
        );
        assert_eq!(
            key_of(tls_settings(&raw(), "0.0.0.0:80", LISTEN, None, false)),
            "http.redirect_listen",
            "a redirect to HTTPS without TLS"
        );
        let redirect = tls_settings(&self_signed, "0.0.0.0:80", LISTEN, None, false).unwrap();
        assert_eq!(
            redirect.redirect_listen,
            Some("0.0.0.0:80".parse().unwrap())
        );
        let Some(CertificateSource::SelfSigned { names }) = redirect.source else {
            panic!("self-signed");
        };
        assert!(names.contains(&"localhost".to_string()));
    }
}
