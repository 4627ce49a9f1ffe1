//! Web origins (RFC 6454) as the configuration names them: `http.public_url` and
//! `http.allowed_origins` become `scheme://host[:port]`, lower-case, without the scheme's default
//! port, so that the signalling compares the `Origin` header of a request with a plain string.
//! Pure; it must never resolve a name.

use super::{ConfigError, invalid};

/// The origin of an `http://` or `https://` address, normalised; `None` if it is not one (a
/// path, a query or user information make it an address, not an origin, and are dropped only
/// from `http.public_url`, which may carry a path).
pub fn web_origin(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let (host, port) = match authority.rsplit_once(':') {
        // An IPv6 literal's colons are inside its brackets.
        Some((host, port)) if !port.contains(']') => (host.to_string(), Some(port.to_string())),
        _ => (authority.clone(), None),
    };
    // A host name, or an IPv6 literal in brackets: anything else (spaces, control characters,
    // a stray bracket) is no origin a browser sends, and would not compare as one.
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        });
    let name = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
    if host.is_empty() || !(literal || name) {
        return None;
    }
    match port {
        Some(port) if port.parse::<u16>().is_err() => None,
        Some(port) if port == default_port => Some(format!("{scheme}://{host}")),
        Some(port) => Some(format!("{scheme}://{host}:{port}")),
        None => Some(format!("{scheme}://{host}")),
    }
}

/// `http.allowed_origins`: each an origin and nothing more.
pub fn origin_list(key: &'static str, values: &[String]) -> Result<Vec<String>, ConfigError> {
    values
        .iter()
        .map(|value| {
            let origin = web_origin(value)
                .filter(|_| value.trim().trim_end_matches('/').matches('/').count() == 2)
                .ok_or_else(|| {
                    invalid(
                        key,
                        format!("`{value}` is not an origin like https://meet.example.nl"),
                    )
                })?;
            Ok(origin)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_compared_normalised() {
        let cases = [
            ("https://Meet.Example.nl", Some("https://meet.example.nl")),
            (
                "https://meet.example.nl:443/",
                Some("https://meet.example.nl"),
            ),
            ("http://127.0.0.1:8080/room", Some("http://127.0.0.1:8080")),
            ("http://[::1]:8080", Some("http://[::1]:8080")),
            ("http://[::1]", Some("http://[::1]")),
            ("HTTP://host:80", Some("http://host")),
            ("ftp://host", None),
            ("https://user@host", None),
            ("https://:443", None),
            ("https://host:http", None),
            ("null", None),
            // Found by fuzzing: a control character in the host made the result trim to a
            // different origin when normalised again.
            ("http://\0[::1]x\t", None),
            ("http://a b.example", None),
            ("http://[::1", None),
        ];
        for (url, origin) in cases {
            assert_eq!(web_origin(url).as_deref(), origin, "{url}");
        }
        assert!(origin_list("k", &["https://a.example".into()]).is_ok());
        assert!(origin_list("k", &["https://a.example/path".into()]).is_err());
        assert!(origin_list("k", &["a.example".into()]).is_err());
    }
}
