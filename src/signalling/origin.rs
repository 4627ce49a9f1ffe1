//! Which pages may act on this server: the `Origin` check of the signalling WebSocket and of
//! every request that changes something (a cookie alone must not let another site's page join
//! as a host or end a room; `SameSite=Strict` does not cover sibling subdomains).
//!
//! A browser names the page's origin in `Origin` (and, where it speaks Fetch Metadata, in
//! `Sec-Fetch-Site`); a request without either comes from no browser page and carries no
//! victim's cookie, so it is let through. Pure and unit-tested; it must never log the origin it
//! refused (an address of the participant's browsing).

use std::net::SocketAddr;

use axum::http::HeaderMap;

use crate::config::web_origin;

/// The origins allowed to act: the server's own and the operator's list, normalised.
#[derive(Debug, Clone)]
pub struct Origins(Vec<String>);

impl Origins {
    /// The server's own origins (its public address, and the address it listens on, with
    /// `localhost` for a loopback one) and `extra`.
    pub fn new(public_url: &str, bound: SocketAddr, tls: bool, extra: &[String]) -> Self {
        let scheme = if tls { "https" } else { "http" };
        let mut own: Vec<String> = web_origin(public_url).into_iter().collect();
        if !bound.ip().is_unspecified() {
            own.extend(web_origin(&format!("{scheme}://{bound}")));
        }
        if bound.ip().is_loopback() {
            own.extend(web_origin(&format!(
                "{scheme}://localhost:{}",
                bound.port()
            )));
        }
        own.extend(extra.iter().cloned());
        own.sort();
        own.dedup();
        Self(own)
    }

    /// Whether the page behind a request may act.
    pub fn allow(&self, headers: &HeaderMap) -> bool {
        if let Some(origin) = headers.get("origin") {
            // "null" (a sandboxed frame, a file, a redirect across sites) is no origin at all.
            return origin
                .to_str()
                .ok()
                .and_then(web_origin)
                .is_some_and(|origin| self.0.contains(&origin));
        }
        match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
            None | Some(b"same-origin") | Some(b"none") => true,
            Some(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_the_servers_own_pages_and_the_listed_ones_may_act() {
        let origins = Origins::new(
            "https://meet.example.nl",
            "127.0.0.1:8080".parse().unwrap(),
            false,
            &["https://portal.example.nl".into()],
        );
        for allowed in [
            "https://meet.example.nl",
            "https://MEET.example.nl:443",
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "https://portal.example.nl",
        ] {
            assert!(origins.allow(&headers(&[("origin", allowed)])), "{allowed}");
        }
        for refused in [
            "https://evil.example",
            "null",
            "https://meet.example.nl.evil.example",
            "http://meet.example.nl",
            "https://sub.meet.example.nl",
            "http://127.0.0.1:8081",
        ] {
            assert!(
                !origins.allow(&headers(&[("origin", refused)])),
                "{refused}"
            );
        }
        assert!(origins.allow(&headers(&[])), "no browser page");
        assert!(origins.allow(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!origins.allow(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!origins.allow(&headers(&[("sec-fetch-site", "same-site")])));
    }

    #[test]
    fn an_unspecified_listen_address_is_no_origin() {
        let origins = Origins::new(
            "http://localhost:8080",
            "0.0.0.0:8080".parse().unwrap(),
            false,
            &[],
        );
        assert!(origins.allow(&headers(&[("origin", "http://localhost:8080")])));
        assert!(!origins.allow(&headers(&[("origin", "http://0.0.0.0:8080")])));
    }
}
