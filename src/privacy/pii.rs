//! Personal data as types.
//!
//! An IP address, a display name or a secret (password, token, session id) can reach a log line
//! only through the wrappers here, which apply the operator's policy (`privacy.ip_mode`,
//! `privacy.log_names`) when they are formatted. Code elsewhere must never format a raw
//! `IpAddr`, name or token into a log field; these types make the allowed way the easy way.

use std::fmt;
use std::net::IpAddr;
use std::sync::OnceLock;

use crate::config::IpMode;

/// The log fields that hold an IP address. Only the `access` and `technical` streams accept a
/// record with one of these (enforced by the stream filter), and data-subject requests search them.
pub const IP_FIELDS: &[&str] = &["client_ip"];
/// The log fields that hold a display name. Only the `technical` stream accepts them.
pub const NAME_FIELDS: &[&str] = &["name"];

/// What the operator allows to be written, fixed once at start-up.
#[derive(Debug, Clone, Copy)]
pub struct PiiPolicy {
    pub ip_mode: IpMode,
    pub log_names: bool,
}

static POLICY: OnceLock<PiiPolicy> = OnceLock::new();

/// Installs the policy for this process. The first call wins; until it is made, the strictest
/// policy applies (no addresses, no names), so nothing leaks before configuration is read.
pub fn install_policy(policy: PiiPolicy) {
    let _ = POLICY.set(policy);
}

fn policy() -> PiiPolicy {
    POLICY.get().copied().unwrap_or(PiiPolicy {
        ip_mode: IpMode::None,
        log_names: false,
    })
}

/// Applies an IP mode to an address: the pure rule behind [`ClientIp`].
pub fn mask_ip(ip: IpAddr, mode: IpMode) -> Option<IpAddr> {
    let ip = canonical_ip(ip);
    match mode {
        IpMode::Full => Some(ip),
        IpMode::None => None,
        IpMode::Truncated => Some(match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                IpAddr::from([a, b, c, 0])
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], 0, 0, 0, 0, 0])
            }
        }),
    }
}

/// IPv4 addresses seen through a dual-stack socket arrive as `::ffff:a.b.c.d`; they are IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// A client's IP address, for the `access` and `technical` streams only. Formats according to
/// `privacy.ip_mode`: the full address, its /24 or /48 prefix, or `-`.
#[derive(Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match mask_ip(self.0, policy().ip_mode) {
            Some(ip) => write!(f, "{ip}"),
            None => f.write_str("-"),
        }
    }
}

impl fmt::Debug for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A participant's display name. Held in memory while the conference runs and sent to the other
/// participants of the same conference; it formats as `<name>` everywhere unless it is written
/// through [`DisplayName::for_technical_log`], and even then only when `privacy.log_names` allows.
#[derive(Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn new(name: String) -> Self {
        Self(name)
    }

    /// The name itself, for the participants of the same conference.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as the `technical` stream may hold it.
    pub fn for_technical_log(&self) -> LoggedName<'_> {
        LoggedName(&self.0)
    }
}

impl fmt::Debug for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<name>")
    }
}

/// A display name on its way into the `technical` stream.
pub struct LoggedName<'a>(&'a str);

impl fmt::Display for LoggedName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if policy().log_names {
            f.write_str(self.0)
        } else {
            f.write_str("-")
        }
    }
}

/// A password, token or session id: never formatted, whatever the policy.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_modes() {
        let v4: IpAddr = "192.0.2.77".parse().unwrap();
        let v6: IpAddr = "2001:db8:1234:5678::9".parse().unwrap();
        assert_eq!(mask_ip(v4, IpMode::Full), Some(v4));
        assert_eq!(mask_ip(v4, IpMode::Truncated), "192.0.2.0".parse().ok());
        assert_eq!(
            mask_ip(v6, IpMode::Truncated),
            "2001:db8:1234::".parse().ok()
        );
        assert_eq!(mask_ip(v4, IpMode::None), None);
        let mapped: IpAddr = "::ffff:192.0.2.77".parse().unwrap();
        assert_eq!(mask_ip(mapped, IpMode::Full), Some(v4));
    }

    #[test]
    fn names_and_secrets_do_not_debug_print() {
        let name = DisplayName::new("Alice".into());
        assert_eq!(format!("{name:?}"), "<name>");
        let secret = Secret::new("hunter2".into());
        assert_eq!(format!("{secret:?}"), "<secret>");
    }
}
