//! Typed settings: loading, layering and validation.
//!
//! Owns the one place where configuration enters the process: the compiled-in defaults
//! (`config/default.toml`), an optional file given with `--config`, and `ZAAL__SECTION__KEY`
//! environment variables, in that order of precedence. Every value is checked here and every
//! error names its key, so the rest of the program only ever sees valid [`Settings`]. It must
//! never silently accept an unknown key or fall back to a default on a bad value.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod limits;
mod origins;
mod privacy;
mod tls;

pub use limits::{LimitSettings, RawLimits, TURN_RELAYED_PORTS};
pub use origins::web_origin;
pub use privacy::{Country, IpMode, LegalBasis, MAX_RESPONSE_DAYS, PrivacySettings, RawPrivacy};
pub use tls::{AcmeSettings, CertificateSource, LETS_ENCRYPT, RawTls, TlsSettings, url_host};

/// The embedded defaults: the contract of every key.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(String),
    #[error("unknown configuration key `{0}`")]
    UnknownKey(String),
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// The configuration as written: strings where the file has strings, so that it can be printed
/// back exactly as the operator would write it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub http: RawHttp,
    pub tls: RawTls,
    pub media: RawMedia,
    pub turn: RawTurn,
    pub data: RawDir,
    pub logs: RawDir,
    pub privacy: RawPrivacy,
    pub retention: RawRetention,
    pub usage: RawUsage,
    pub focus: RawFocus,
    pub auth: RawAuth,
    pub limits: RawLimits,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub listen: String,
    pub public_url: String,
    pub trusted_proxies: Vec<String>,
    pub redirect_listen: String,
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMedia {
    pub udp_port: u16,
    pub tcp_port: u16,
    pub bind: String,
    pub advertise_ips: Vec<String>,
    pub last_n: u32,
    pub workers: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTurn {
    pub enabled: bool,
    pub listen: String,
    pub credential_ttl: String,
    pub realm: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDir {
    pub dir: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    pub access: String,
    pub technical: String,
    pub focus: String,
    pub bridge: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUsage {
    pub period: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFocus {
    pub empty_grace: String,
    pub max_participants: u32,
    pub reconnect_grace: String,
    pub wait_for_host: bool,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub session_ttl: String,
    pub setup_link_ttl: String,
    pub login_delay: String,
    pub login_delay_max: String,
    pub token_max_lifetime: String,
    pub jwt_secret: String,
    pub jwt_public_key: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
}

impl std::fmt::Debug for RawAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAuth")
            .field("session_ttl", &self.session_ttl)
            .field("setup_link_ttl", &self.setup_link_ttl)
            .field("login_delay", &self.login_delay)
            .field("login_delay_max", &self.login_delay_max)
            .field("token_max_lifetime", &self.token_max_lifetime)
            .field("jwt_secret", &"<redacted>")
            .field("jwt_public_key", &self.jwt_public_key)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .finish()
    }
}

/// Validated settings, as the rest of the program uses them.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http: HttpSettings,
    pub tls: TlsSettings,
    pub media: MediaSettings,
    pub turn: TurnSettings,
    pub data_dir: PathBuf,
    pub logs_dir: PathBuf,
    pub privacy: PrivacySettings,
    pub retention: RetentionSettings,
    pub usage_period: UsagePeriod,
    pub focus: FocusSettings,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    /// What the settings were made from, for `check-config`.
    pub raw: RawSettings,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Without a trailing slash; `None` means "derive from the bound address".
    pub public_url: Option<String>,
    pub trusted_proxies: Vec<IpAddr>,
    /// Origins besides the server's own whose pages may open the signalling WebSocket and
    /// send state-changing requests, normalised ([`web_origin`]).
    pub allowed_origins: Vec<String>,
}

/// Zaal's own TURN server (`[turn]`).
#[derive(Debug, Clone)]
pub struct TurnSettings {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub credential_ttl: Duration,
    pub realm: String,
}

#[derive(Debug, Clone)]
pub struct MediaSettings {
    pub udp_port: u16,
    /// The ICE-TCP port; 0: off.
    pub tcp_port: u16,
    pub bind: IpAddr,
    /// Empty means "the addresses of the bound interface(s)".
    pub advertise_ips: Vec<IpAddr>,
    /// The most videos one receiver gets; `None` (configured as 0): no limit.
    pub last_n: Option<usize>,
    /// Media worker threads; 0: one per core.
    pub workers: usize,
}

/// How usage reports group days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsagePeriod {
    Day,
    Week,
    Month,
}

impl UsagePeriod {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "day" => Some(UsagePeriod::Day),
            "week" => Some(UsagePeriod::Week),
            "month" => Some(UsagePeriod::Month),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RetentionSettings {
    pub access: Duration,
    pub technical: Duration,
    pub focus: Duration,
    pub bridge: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct FocusSettings {
    pub empty_grace: Duration,
    pub max_participants: usize,
    pub wait_for_host: bool,
    pub reconnect_grace: Duration,
    /// From `limits.conferences`.
    pub max_conferences: usize,
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub session_ttl: Duration,
    pub setup_link_ttl: Duration,
    pub login_delay: Duration,
    pub login_delay_max: Duration,
    pub jwt: JwtSettings,
}

/// How signed join links are verified.
#[derive(Clone, Default)]
pub struct JwtSettings {
    /// The HS256 shared secret, if any.
    pub secret: Option<String>,
    /// The RS256 public key (PEM), if any.
    pub public_key_pem: Option<Vec<u8>>,
    pub issuer: String,
    pub audience: String,
    /// Tokens valid for longer than this (from now, or from their `iat`) are refused.
    pub max_lifetime: Duration,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field("secret", &self.secret.as_ref().map(|_| "<secret>"))
            .field("public_key_pem", &self.public_key_pem.is_some())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("max_lifetime", &self.max_lifetime)
            .finish()
    }
}

/// The minimum length of an HS256 secret.
pub const MIN_JWT_SECRET: usize = 32;

impl Settings {
    /// Loads the layered configuration: defaults, then `file`, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, None)
    }

    /// As [`Settings::load`], with the environment given explicitly (`None`: the process's own).
    pub fn load_with_env(
        file: Option<&Path>,
        env: Option<BTreeMap<String, String>>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "configuration file {} does not exist",
                    path.display()
                )));
            }
            builder = builder.add_source(
                config::File::from(path.to_path_buf()).format(config::FileFormat::Toml),
            );
        }
        let mut environment = config::Environment::with_prefix("ZAAL")
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("media.advertise_ips")
            .with_list_parse_key("http.trusted_proxies")
            .with_list_parse_key("http.allowed_origins")
            .try_parsing(true);
        if let Some(env) = env {
            environment = environment.source(Some(env.into_iter().collect()));
        }
        let merged = builder
            .add_source(environment)
            .build()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        check_known_keys(&merged)?;
        let raw: RawSettings = merged
            .try_deserialize()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        Self::from_raw(raw)
    }

    /// Validates raw values into settings.
    pub fn from_raw(raw: RawSettings) -> Result<Self, ConfigError> {
        let listen = raw
            .http
            .listen
            .parse::<SocketAddr>()
            .map_err(|_| invalid("http.listen", "expected IP:port, e.g. 127.0.0.1:8080"))?;
        let public_url = match raw.http.public_url.trim() {
            "" => None,
            url if url.starts_with("http://") || url.starts_with("https://") => {
                Some(url.trim_end_matches('/').to_string())
            }
            _ => {
                return Err(invalid(
                    "http.public_url",
                    "expected an http:// or https:// address, or empty",
                ));
            }
        };
        let trusted_proxies = ip_list("http.trusted_proxies", &raw.http.trusted_proxies)?;
        let tls = tls::tls_settings(
            &raw.tls,
            &raw.http.redirect_listen,
            listen,
            public_url.as_deref(),
            !trusted_proxies.is_empty(),
        )?;
        let bind = raw
            .media
            .bind
            .parse::<IpAddr>()
            .map_err(|_| invalid("media.bind", "expected an IP address, e.g. 0.0.0.0"))?;
        let advertise_ips = ip_list("media.advertise_ips", &raw.media.advertise_ips)?;
        if let Some(ip) = advertise_ips.iter().find(|ip| ip.is_unspecified()) {
            return Err(invalid(
                "media.advertise_ips",
                format!("`{ip}` cannot be reached by a browser"),
            ));
        }
        if raw.media.workers > MAX_MEDIA_WORKERS {
            return Err(invalid(
                "media.workers",
                format!("at most {MAX_MEDIA_WORKERS} (0: one per core)"),
            ));
        }
        let privacy = privacy::privacy_settings(&raw.privacy)?;
        let turn = TurnSettings {
            enabled: raw.turn.enabled,
            listen: raw
                .turn
                .listen
                .parse()
                .map_err(|_| invalid("turn.listen", "expected IP:port, e.g. 0.0.0.0:3478"))?,
            credential_ttl: duration("turn.credential_ttl", &raw.turn.credential_ttl)?,
            realm: match raw.turn.realm.trim() {
                "" => public_url
                    .as_deref()
                    .and_then(url_host)
                    .unwrap_or("zaal")
                    .to_string(),
                realm if realm.len() > 128 || realm.chars().any(char::is_control) => {
                    return Err(invalid("turn.realm", "one line of at most 128 characters"));
                }
                realm => realm.to_string(),
            },
        };
        let data_dir = nonempty_dir("data.dir", &raw.data.dir)?;
        let logs_dir = nonempty_dir("logs.dir", &raw.logs.dir)?;
        let retention = RetentionSettings {
            access: retention("retention.access", &raw.retention.access)?,
            technical: retention("retention.technical", &raw.retention.technical)?,
            focus: retention("retention.focus", &raw.retention.focus)?,
            bridge: retention("retention.bridge", &raw.retention.bridge)?,
        };
        let usage_period = UsagePeriod::parse(raw.usage.period.trim()).ok_or_else(|| {
            invalid(
                "usage.period",
                format!("`{}`: expected day, week or month", raw.usage.period),
            )
        })?;
        if raw.focus.max_participants < 2 {
            return Err(invalid("focus.max_participants", "must be at least 2"));
        }
        let focus = FocusSettings {
            empty_grace: duration_allow_zero("focus.empty_grace", &raw.focus.empty_grace)?,
            max_participants: raw.focus.max_participants as usize,
            wait_for_host: raw.focus.wait_for_host,
            reconnect_grace: duration_allow_zero(
                "focus.reconnect_grace",
                &raw.focus.reconnect_grace,
            )?,
            max_conferences: limits::limit_settings(&raw.limits)?.conferences,
        };
        let secret = raw.auth.jwt_secret.trim();
        if !secret.is_empty() && secret.len() < MIN_JWT_SECRET {
            return Err(invalid(
                "auth.jwt_secret",
                format!("must be at least {MIN_JWT_SECRET} characters (or empty)"),
            ));
        }
        let public_key_pem = match raw.auth.jwt_public_key.trim() {
            "" => None,
            path => {
                let pem = std::fs::read(path).map_err(|e| {
                    invalid("auth.jwt_public_key", format!("cannot read {path}: {e}"))
                })?;
                jsonwebtoken::DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                    invalid(
                        "auth.jwt_public_key",
                        format!("{path} is not a PEM RSA public key: {e}"),
                    )
                })?;
                Some(pem)
            }
        };
        for (key, value) in [
            ("auth.jwt_issuer", &raw.auth.jwt_issuer),
            ("auth.jwt_audience", &raw.auth.jwt_audience),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(key, "must not be empty"));
            }
        }
        let login_delay = duration("auth.login_delay", &raw.auth.login_delay)?;
        let login_delay_max = duration("auth.login_delay_max", &raw.auth.login_delay_max)?;
        if login_delay_max < login_delay {
            return Err(invalid(
                "auth.login_delay_max",
                "must not be shorter than auth.login_delay",
            ));
        }
        let auth = AuthSettings {
            session_ttl: duration("auth.session_ttl", &raw.auth.session_ttl)?,
            setup_link_ttl: duration("auth.setup_link_ttl", &raw.auth.setup_link_ttl)?,
            login_delay,
            login_delay_max,
            jwt: JwtSettings {
                secret: (!secret.is_empty()).then(|| secret.to_string()),
                public_key_pem,
                issuer: raw.auth.jwt_issuer.trim().to_string(),
                audience: raw.auth.jwt_audience.trim().to_string(),
                max_lifetime: duration("auth.token_max_lifetime", &raw.auth.token_max_lifetime)?,
            },
        };
        Ok(Settings {
            http: HttpSettings {
                listen,
                public_url,
                trusted_proxies,
                allowed_origins: origins::origin_list(
                    "http.allowed_origins",
                    &raw.http.allowed_origins,
                )?,
            },
            tls,
            media: MediaSettings {
                udp_port: raw.media.udp_port,
                tcp_port: raw.media.tcp_port,
                bind,
                advertise_ips,
                last_n: (raw.media.last_n > 0).then_some(raw.media.last_n as usize),
                workers: raw.media.workers as usize,
            },
            turn,
            data_dir,
            logs_dir,
            privacy,
            retention,
            usage_period,
            focus,
            auth,
            limits: limits::limit_settings(&raw.limits)?,
            raw,
        })
    }

    /// The address participants use: `http.public_url`, or one derived from the address the
    /// server is bound to (https:// when the server itself speaks TLS).
    pub fn public_url(&self, bound: SocketAddr) -> String {
        if let Some(url) = &self.http.public_url {
            return url.clone();
        }
        let host = match bound {
            _ if bound.ip().is_unspecified() => "localhost".to_string(),
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        };
        let scheme = if self.tls.enabled() { "https" } else { "http" };
        format!("{scheme}://{host}:{}", bound.port())
    }

    /// The effective configuration in the same TOML shape as `config/default.toml`, with the
    /// JWT secret redacted.
    pub fn to_toml(&self) -> String {
        let mut raw = self.raw.clone();
        if !raw.auth.jwt_secret.is_empty() {
            raw.auth.jwt_secret = "<redacted>".into();
        }
        toml::to_string(&raw).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// More media worker threads than this is a typo, not a machine.
const MAX_MEDIA_WORKERS: u32 = 1024;

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

fn ip_list(key: &'static str, values: &[String]) -> Result<Vec<IpAddr>, ConfigError> {
    values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<IpAddr>()
                .map_err(|_| invalid(key, format!("`{v}` is not an IP address")))
        })
        .collect()
}

fn nonempty_dir(key: &'static str, value: &str) -> Result<PathBuf, ConfigError> {
    if value.trim().is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    Ok(PathBuf::from(value))
}

fn duration_allow_zero(key: &'static str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|_| {
        invalid(
            key,
            format!("`{value}` is not a duration; write e.g. 30s, 15m, 12h or 14d"),
        )
    })
}

/// A retention period: at least an hour, because the stream files are per hour.
fn retention(key: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let parsed = duration(key, value)?;
    if parsed < Duration::from_secs(3600) {
        return Err(invalid(key, "must be at least 1h"));
    }
    Ok(parsed)
}

fn duration(key: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let parsed = duration_allow_zero(key, value)?;
    if parsed.is_zero() {
        return Err(invalid(key, "must be longer than zero"));
    }
    Ok(parsed)
}

/// Every key of the merged configuration must be a key of the defaults.
fn check_known_keys(merged: &config::Config) -> Result<(), ConfigError> {
    let defaults: toml::Table = DEFAULT_TOML
        .parse()
        .expect("the embedded default configuration is valid TOML (checked by a unit test)");
    let table = merged
        .clone()
        .try_deserialize::<BTreeMap<String, config::Value>>()
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    for (section, value) in table {
        let Some(known) = defaults.get(&section).and_then(|v| v.as_table()) else {
            return Err(ConfigError::UnknownKey(section));
        };
        match value.into_table() {
            Ok(keys) => {
                if let Some(key) = keys.keys().find(|k| !known.contains_key(k.as_str())) {
                    return Err(ConfigError::UnknownKey(format!("{section}.{key}")));
                }
            }
            Err(_) => {
                return Err(ConfigError::Invalid {
                    key: "configuration",
                    reason: format!("`{section}` must be a section, not a value"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load_with_env(None, env(pairs))
    }

    #[test]
    fn defaults_are_the_documented_contract() {
        let s = load(&[]).unwrap();
        assert_eq!(
            s.http.listen,
            "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(s.media.udp_port, 10000);
        assert!(s.media.advertise_ips.is_empty());
        assert_eq!(s.media.workers, 0, "one per core");
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.logs_dir, PathBuf::from("./logs"));
        assert_eq!(s.privacy.ip_mode, IpMode::Full);
        assert!(s.privacy.log_names);
        assert_eq!(s.retention.access, Duration::from_secs(14 * 86400));
        assert_eq!(s.retention.technical, Duration::from_secs(14 * 86400));
        assert_eq!(s.retention.focus, Duration::from_secs(7 * 86400));
        assert_eq!(s.retention.bridge, Duration::from_secs(86400));
    }

    #[test]
    fn environment_overrides_with_lists() {
        let s = load(&[
            ("ZAAL__PRIVACY__IP_MODE", "none"),
            ("ZAAL__RETENTION__FOCUS", "4d"),
            ("ZAAL__MEDIA__ADVERTISE_IPS", "203.0.113.7,2001:db8::7"),
            ("ZAAL__MEDIA__UDP_PORT", "10500"),
            ("ZAAL__HTTP__LISTEN", "0.0.0.0:9000"),
        ])
        .unwrap();
        assert_eq!(s.privacy.ip_mode, IpMode::None);
        assert_eq!(s.retention.focus, Duration::from_secs(4 * 86400));
        assert_eq!(
            s.media.advertise_ips,
            vec![
                "203.0.113.7".parse::<IpAddr>().unwrap(),
                "2001:db8::7".parse().unwrap()
            ]
        );
        assert_eq!(s.media.udp_port, 10500);
        assert_eq!(s.http.listen.port(), 9000);
    }

    #[test]
    fn a_single_advertised_ip_is_a_list_too() {
        let s = load(&[("ZAAL__MEDIA__ADVERTISE_IPS", "127.0.0.1")]).unwrap();
        assert_eq!(s.media.advertise_ips, vec![IpAddr::from([127, 0, 0, 1])]);
    }

    #[test]
    fn file_layer_sits_between_defaults_and_environment() {
        let dir = std::env::temp_dir().join(format!("zaal-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("zaal.toml");
        std::fs::write(
            &path,
            "[retention]\nbridge = \"12h\"\naccess = \"3d\"\n[privacy]\nlog_names = false\n",
        )
        .unwrap();
        let s = Settings::load_with_env(Some(&path), env(&[("ZAAL__RETENTION__ACCESS", "2d")]))
            .unwrap();
        assert_eq!(s.retention.bridge, Duration::from_secs(12 * 3600));
        assert_eq!(s.retention.access, Duration::from_secs(2 * 86400));
        assert!(!s.privacy.log_names);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load(&[("ZAAL__HTTP__LISTN", "0.0.0.0:1")]).unwrap_err();
        assert_eq!(err.to_string(), "unknown configuration key `http.listn`");
        let err = load(&[("ZAAL__NOPE__X", "1")]).unwrap_err();
        assert_eq!(err.to_string(), "unknown configuration key `nope`");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("ZAAL__HTTP__LISTEN", "localhost", "http.listen"),
            ("ZAAL__PRIVACY__IP_MODE", "partial", "privacy.ip_mode"),
            ("ZAAL__RETENTION__BRIDGE", "soon", "retention.bridge"),
            ("ZAAL__RETENTION__ACCESS", "0s", "retention.access"),
            ("ZAAL__MEDIA__ADVERTISE_IPS", "1.2.3", "media.advertise_ips"),
            ("ZAAL__MEDIA__UDP_PORT", "70000", "media.udp_port"),
            ("ZAAL__MEDIA__WORKERS", "5000", "media.workers"),
            (
                "ZAAL__HTTP__PUBLIC_URL",
                "meet.example.nl",
                "http.public_url",
            ),
            (
                "ZAAL__FOCUS__MAX_PARTICIPANTS",
                "1",
                "focus.max_participants",
            ),
        ];
        for (var, value, key) in cases {
            let err = load(&[(var, value)]).unwrap_err().to_string();
            assert!(
                err.contains(key),
                "{var}={value}: `{err}` should name {key}"
            );
        }
    }

    #[test]
    fn the_jwt_secret_is_never_printed() {
        let secret = "a-very-long-shared-secret-of-the-reservation-system";
        let s = load(&[("ZAAL__AUTH__JWT_SECRET", secret)]).unwrap();
        assert_eq!(s.auth.jwt.secret.as_deref(), Some(secret));
        assert!(!s.to_toml().contains(secret));
        assert!(!format!("{s:?}").contains(secret));
        let err = load(&[("ZAAL__AUTH__JWT_SECRET", "short")]).unwrap_err();
        assert!(err.to_string().contains("auth.jwt_secret"));
    }

    #[test]
    fn printed_configuration_loads_back_identically() {
        let s = load(&[("ZAAL__PRIVACY__IP_MODE", "truncated")]).unwrap();
        let printed = s.to_toml();
        let raw: RawSettings = toml::from_str(&printed).unwrap();
        let again = Settings::from_raw(raw).unwrap();
        assert_eq!(again.privacy.ip_mode, IpMode::Truncated);
        assert_eq!(again.to_toml(), printed);
    }
}
