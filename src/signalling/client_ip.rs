//! Who the client is, behind a reverse proxy.
//!
//! Only proxies listed in `http.trusted_proxies` are believed; from them, the address is the
//! right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries further left
//! are whatever the client claimed). A request may carry the header on several lines (a proxy
//! that appends one of its own): they are one list, in order, so the client cannot choose its
//! address by sending a line first. Pure and unit-tested.

use std::net::IpAddr;

use axum::http::HeaderMap;

use crate::privacy::pii::canonical_ip;

/// The client of a request that came from `peer` with these headers.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let lines: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        // A line that is not text ends the list there: nothing left of it is believed.
        .map(|line| line.to_str().unwrap_or("garbage"))
        .collect();
    from_forwarded(peer, &lines, trusted)
}

fn from_forwarded(peer: IpAddr, lines: &[&str], trusted: &[IpAddr]) -> IpAddr {
    let peer = canonical_ip(peer);
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut client = peer;
    for entry in lines.iter().rev().flat_map(|line| line.rsplit(',')) {
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
            from_forwarded(ip("198.51.100.9"), &["203.0.113.5"], &trusted),
            ip("198.51.100.9"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            from_forwarded(proxy, &["203.0.113.5"], &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(
            from_forwarded(proxy, &["1.2.3.4, 203.0.113.5"], &trusted),
            ip("203.0.113.5"),
            "the left part is the client's own claim"
        );
        assert_eq!(
            from_forwarded(proxy, &["203.0.113.5, 10.0.0.2"], &trusted),
            ip("203.0.113.5"),
            "chained trusted proxies are skipped"
        );
        assert_eq!(from_forwarded(proxy, &["garbage"], &trusted), proxy);
        assert_eq!(from_forwarded(proxy, &[], &trusted), proxy);
        assert_eq!(
            from_forwarded(proxy, &["1.2.3.4", "203.0.113.5"], &trusted),
            ip("203.0.113.5"),
            "a second line is the proxy's: the first was the client's own claim"
        );
        assert_eq!(
            from_forwarded(proxy, &["203.0.113.5", "garbage"], &trusted),
            proxy,
            "nothing left of an unreadable entry is believed"
        );
        assert_eq!(
            from_forwarded(ip("::ffff:10.0.0.2"), &["2001:db8::1"], &trusted),
            ip("2001:db8::1")
        );
    }
}
