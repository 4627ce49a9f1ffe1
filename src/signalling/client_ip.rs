//! Who the client is, behind a reverse proxy.
//!
//! Only proxies listed in `http.trusted_proxies` are believed; from them, the address is the
//! right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries further left
//! are whatever the client claimed). Pure and unit-tested.

use std::net::IpAddr;

use crate::privacy::pii::canonical_ip;

pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    let peer = canonical_ip(peer);
    if !trusted.contains(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for entry in header.rsplit(',') {
        match entry.trim().parse::<IpAddr>().map(canonical_ip) {
            Ok(ip) => {
                client = ip;
                if !trusted.contains(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let proxy = ip("10.0.0.2");
        let trusted = [proxy];
        assert_eq!(
            client_ip(ip("198.51.100.9"), Some("203.0.113.5"), &trusted),
            ip("198.51.100.9"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            client_ip(proxy, Some("203.0.113.5"), &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(
            client_ip(proxy, Some("1.2.3.4, 203.0.113.5"), &trusted),
            ip("203.0.113.5"),
            "the left part is the client's own claim"
        );
        assert_eq!(
            client_ip(proxy, Some("203.0.113.5, 10.0.0.2"), &trusted),
            ip("203.0.113.5"),
            "chained trusted proxies are skipped"
        );
        assert_eq!(client_ip(proxy, Some("garbage"), &trusted), proxy);
        assert_eq!(client_ip(proxy, None, &trusted), proxy);
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.2"), Some("2001:db8::1"), &trusted),
            ip("2001:db8::1")
        );
    }
}
