//! The request headers that decide who a client is and whether its page may act: `Origin` and
//! `Sec-Fetch-Site` through the origin rule (`signalling::origin`), and `X-Forwarded-For` lines
//! through the trusted-proxy rule (`signalling::client_ip`).
//!
//! Both are read on every request before anything else about it, so no header may panic them;
//! a normalised origin normalises to itself, an untrusted peer's header is never believed, and
//! the client found behind a trusted proxy is the peer or an address the header names.

#![no_main]

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use zaal::config::web_origin;
use zaal::signalling::client_ip::client_ip;
use zaal::signalling::origin::Origins;

fuzz_target!(|data: &[u8]| {
    // The input is header values separated by newlines: the first is `Origin`, the second
    // `Sec-Fetch-Site`, the rest `X-Forwarded-For` lines.
    let mut parts = data.split(|b| *b == b'\n');
    let mut headers = HeaderMap::new();
    let mut text = Vec::new();
    for (name, part) in ["origin", "sec-fetch-site"].into_iter().zip(parts.by_ref()) {
        if let Ok(value) = HeaderValue::from_bytes(part) {
            headers.insert(name, value);
        }
        text.push(part);
    }
    for line in parts {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append("x-forwarded-for", value);
        }
    }
    if let Some(origin) = text.first().and_then(|o| std::str::from_utf8(o).ok())
        && let Some(normal) = web_origin(origin)
    {
        assert_eq!(web_origin(&normal).as_deref(), Some(normal.as_str()));
    }
    let origins = Origins::new(
        "https://meet.example.nl",
        "127.0.0.1:8080".parse().unwrap(),
        false,
        &["https://portal.example.nl".into()],
    );
    let _ = origins.allow(&headers);

    let proxy: IpAddr = "10.0.0.2".parse().unwrap();
    let stranger: IpAddr = "198.51.100.9".parse().unwrap();
    assert_eq!(client_ip(stranger, &headers, &[proxy]), stranger);
    let behind = client_ip(proxy, &headers, &[proxy]);
    if behind != proxy {
        let named = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|line| line.split(','))
            .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
            .any(|ip| zaal::privacy::pii::canonical_ip(ip) == behind);
        assert!(named, "a client the header does not name");
    }
});
