//! The TURN servers a participant is told of in `joined` (`iceServers`), each with a credential
//! of its own in the TURN REST scheme, valid for `turn.credential_ttl`.
//!
//! The credential's tag is random: it tells credentials apart (the TURN server counts
//! allocations per credential) and says nothing about who holds it. A credential is a secret
//! of its participant's: it is sent only to them and never logged.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::protocol::IceServerView;
use crate::sfu::turn::TurnSecret;

#[derive(Debug, Clone)]
pub struct TurnOffer {
    pub secret: TurnSecret,
    pub ttl: Duration,
    /// `turn:` URLs, over UDP and over TCP for each advertised media address, on the TURN port.
    pub urls: Vec<String>,
}

impl TurnOffer {
    /// The offer for Zaal's own TURN server on `port` of each of `addresses`.
    pub fn embedded(
        secret: TurnSecret,
        ttl: Duration,
        addresses: &[SocketAddr],
        port: u16,
    ) -> Self {
        let urls = ["udp", "tcp"]
            .iter()
            .flat_map(|transport| {
                addresses.iter().map(move |a| {
                    format!(
                        "turn:{}?transport={transport}",
                        SocketAddr::new(a.ip(), port)
                    )
                })
            })
            .collect();
        Self { secret, ttl, urls }
    }

    /// Also offers TURN over TLS on the HTTPS listener at `public_url` (`https://host[:port]`):
    /// for a network that lets out only HTTPS. The host is the certificate's, so the browser
    /// can check it.
    pub fn with_tls_on(mut self, public_url: &str) -> Self {
        if let Some(url) = tls_url(public_url) {
            self.urls.push(url);
        }
        self
    }

    /// What one participant is given: the servers, with a credential minted now.
    pub fn ice_servers(&self) -> Vec<IceServerView> {
        use rand::RngCore;
        let mut tag = [0u8; 9];
        rand::rng().fill_bytes(&mut tag);
        let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let credential = self.secret.mint(now, self.ttl.as_secs(), &tag);
        vec![IceServerView {
            urls: self.urls.clone(),
            username: credential.username,
            credential: credential.password,
        }]
    }
}

/// `turns:host:port?transport=tcp` for an `https://` public URL.
fn tls_url(public_url: &str) -> Option<String> {
    let rest = public_url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let with_port = match authority.rsplit_once(':') {
        Some((_, port)) if !port.ends_with(']') && port.parse::<u16>().is_ok() => {
            authority.to_string()
        }
        _ => format!("{authority}:443"),
    };
    (!authority.is_empty()).then(|| format!("turns:{with_port}?transport=tcp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_participant_gets_a_credential_of_its_own_for_every_address() {
        let offer = TurnOffer::embedded(
            TurnSecret::new("s"),
            Duration::from_secs(3600),
            &[
                "192.0.2.1:10000".parse().unwrap(),
                "[2001:db8::1]:10000".parse().unwrap(),
            ],
            3478,
        );
        let a = offer.ice_servers();
        let b = offer.ice_servers();
        assert_eq!(
            a[0].urls,
            [
                "turn:192.0.2.1:3478?transport=udp",
                "turn:[2001:db8::1]:3478?transport=udp",
                "turn:192.0.2.1:3478?transport=tcp",
                "turn:[2001:db8::1]:3478?transport=tcp"
            ]
        );
        assert_ne!(a[0].username, b[0].username);
        assert_eq!(
            a[0].credential,
            TurnSecret::new("s").password(&a[0].username)
        );
        let tls = offer.clone().with_tls_on("https://meet.school.example");
        assert_eq!(
            tls.urls.last().unwrap(),
            "turns:meet.school.example:443?transport=tcp"
        );
        let tls = offer.clone().with_tls_on("https://[2001:db8::1]:8443/");
        assert_eq!(
            tls.urls.last().unwrap(),
            "turns:[2001:db8::1]:8443?transport=tcp"
        );
        assert_eq!(offer.clone().with_tls_on("http://x").urls.len(), 4);
        let json = serde_json::to_value(&a[0]).unwrap();
        assert!(json["urls"].is_array() && json["username"].is_string());
        assert!(json["credential"].is_string());
    }
}
