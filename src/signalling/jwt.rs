//! Signed join links: JSON Web Tokens with Jitsi-compatible claims.
//!
//! A reservation system (or `zaal token`) signs `iss`, `aud`, `sub`, `room` (`*` for any room),
//! `exp`, `nbf`, `context.user.name` and a moderator flag (`context.user.moderator`, or a top-level
//! `moderator`; booleans or the strings "true"/"false"). Verification checks every one of them and
//! names the first that fails, so a reservation system's developer can tell a clock problem from a
//! wrong key. HS256 uses `auth.jwt_secret`; RS256 `auth.jwt_public_key`. `sub` is not checked:
//! Jitsi uses it for a tenant, which Zaal does not have.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::JwtSettings;
use crate::focus::RoomName;

/// Clock skew tolerated between the signer and this server.
const LEEWAY_SECONDS: u64 = 5;
/// The longest token this server accepts, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token was refused; each has its own protocol error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("this server accepts no signed links (no key is configured)")]
    Disabled,
    #[error("the token is not a well-formed signed link")]
    Malformed,
    #[error("the token's signature is not valid for this server")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token comes from another issuer")]
    WrongIssuer,
    #[error("the token is for another room")]
    WrongRoom,
    #[error("the token is valid for longer than this server allows (auth.token_max_lifetime)")]
    TooLong,
}

impl TokenError {
    pub fn code(self) -> &'static str {
        match self {
            TokenError::Disabled => "tokens-disabled",
            TokenError::Malformed => "token-malformed",
            TokenError::BadSignature => "token-bad-signature",
            TokenError::Expired => "token-expired",
            TokenError::NotYetValid => "token-not-yet-valid",
            TokenError::WrongAudience => "token-wrong-audience",
            TokenError::WrongIssuer => "token-wrong-issuer",
            TokenError::WrongRoom => "token-wrong-room",
            TokenError::TooLong => "token-too-long",
        }
    }
}

/// Which rooms a token opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomScope {
    Any,
    Room(RoomName),
}

/// A verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub name: Option<String>,
    pub moderator: bool,
    pub room: RoomScope,
    pub subject: String,
}

impl VerifiedToken {
    pub fn allows(&self, room: &RoomName) -> bool {
        match &self.room {
            RoomScope::Any => true,
            RoomScope::Room(r) => r == room,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct User {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    moderator: Option<Value>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Context {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<User>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    room: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    context: Option<Context>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    moderator: Option<Value>,
}

fn truthy(value: &Option<Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Verifies a token for `room` (or, with `None`, for any room it names).
pub fn verify(
    token: &str,
    settings: &JwtSettings,
    room: Option<&RoomName>,
) -> Result<VerifiedToken, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    let key = match header.alg {
        Algorithm::HS256 => settings
            .secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.as_bytes())),
        Algorithm::RS256 => settings
            .public_key_pem
            .as_ref()
            .and_then(|pem| DecodingKey::from_rsa_pem(pem).ok()),
        _ => return Err(TokenError::BadSignature),
    };
    let Some(key) = key else {
        return Err(
            if settings.secret.is_none() && settings.public_key_pem.is_none() {
                TokenError::Disabled
            } else {
                TokenError::BadSignature
            },
        );
    };
    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_nbf = true;
    validation.set_issuer(&[settings.issuer.as_str()]);
    validation.set_audience(&[settings.audience.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let data =
        jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => TokenError::BadSignature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidAudience => TokenError::WrongAudience,
            ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
            _ => TokenError::Malformed,
        })?;
    let claims = data.claims;
    let max = settings.max_lifetime.as_secs();
    let issued = claims.iat.unwrap_or(0);
    if claims.exp > unix(SystemTime::now()) + max + LEEWAY_SECONDS
        || (issued > 0 && claims.exp.saturating_sub(issued) > max)
    {
        return Err(TokenError::TooLong);
    }
    let scope = if claims.room.trim() == "*" {
        RoomScope::Any
    } else {
        RoomScope::Room(RoomName::parse(claims.room.trim()).map_err(|_| TokenError::WrongRoom)?)
    };
    let user = claims.context.as_ref().and_then(|c| c.user.as_ref());
    let verified = VerifiedToken {
        name: user
            .and_then(|u| u.name.clone())
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
        moderator: truthy(&claims.moderator) || user.is_some_and(|u| truthy(&u.moderator)),
        room: scope,
        subject: claims.sub,
    };
    if let Some(room) = room
        && !verified.allows(room)
    {
        return Err(TokenError::WrongRoom);
    }
    Ok(verified)
}

/// What `zaal token` mints.
pub struct Mint<'a> {
    pub name: &'a str,
    pub room: Option<&'a RoomName>,
    pub moderator: bool,
    pub ttl: Duration,
    /// When the token becomes valid (default: now).
    pub not_before: Option<SystemTime>,
}

/// Signs a token with the HS256 secret.
pub fn mint(settings: &JwtSettings, mint: &Mint<'_>) -> Result<String, TokenError> {
    let secret = settings.secret.as_ref().ok_or(TokenError::Disabled)?;
    if mint.ttl > settings.max_lifetime {
        return Err(TokenError::TooLong);
    }
    let now = SystemTime::now();
    let claims = Claims {
        iss: settings.issuer.clone(),
        aud: settings.audience.clone(),
        sub: "zaal".into(),
        room: mint
            .room
            .map(|r| r.as_str().to_string())
            .unwrap_or_else(|| "*".into()),
        exp: unix(now + mint.ttl),
        nbf: Some(unix(mint.not_before.unwrap_or(now))),
        iat: Some(unix(now)),
        context: Some(Context {
            user: Some(User {
                name: Some(mint.name.to_string()),
                moderator: Some(Value::Bool(mint.moderator)),
            }),
        }),
        moderator: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "the-shared-secret-of-the-reservation-system";

    fn settings() -> JwtSettings {
        JwtSettings {
            secret: Some(SECRET.into()),
            public_key_pem: None,
            issuer: "zaal".into(),
            audience: "zaal".into(),
            max_lifetime: Duration::from_secs(31 * 86_400),
        }
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    fn sign(claims: Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn claims(extra: Value) -> Value {
        let now = unix(SystemTime::now());
        let mut base = json!({
            "iss": "zaal", "aud": "zaal", "sub": "meet.example.nl", "room": "groep-8",
            "exp": now + 3600, "nbf": now - 10,
            "context": {"user": {"name": "Juf Anna", "moderator": true}}
        });
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    }

    #[test]
    fn a_minted_moderator_token_verifies() {
        let r = room("groep-8");
        let token = mint(
            &settings(),
            &Mint {
                name: "Juf Anna",
                room: Some(&r),
                moderator: true,
                ttl: Duration::from_secs(7200),
                not_before: None,
            },
        )
        .unwrap();
        let v = verify(&token, &settings(), Some(&r)).unwrap();
        assert!(v.moderator);
        assert_eq!(v.name.as_deref(), Some("Juf Anna"));
        assert_eq!(v.room, RoomScope::Room(r));
        assert_eq!(
            verify(&token, &settings(), Some(&room("groep-7"))),
            Err(TokenError::WrongRoom)
        );
    }

    #[test]
    fn every_claim_is_checked_with_its_own_error() {
        let s = settings();
        let r = room("groep-8");
        let now = unix(SystemTime::now());
        let cases = [
            (
                sign(claims(json!({"exp": now - 600})), SECRET),
                TokenError::Expired,
            ),
            (
                sign(claims(json!({"nbf": now + 600})), SECRET),
                TokenError::NotYetValid,
            ),
            (
                sign(claims(json!({"exp": now + 32 * 86_400})), SECRET),
                TokenError::TooLong,
            ),
            (
                // Issued long ago, for longer than allowed, though little of it is left.
                sign(
                    claims(json!({"iat": now - 40 * 86_400, "exp": now + 3600})),
                    SECRET,
                ),
                TokenError::TooLong,
            ),
            (
                sign(claims(json!({})), "another-secret-of-sufficient-length-123"),
                TokenError::BadSignature,
            ),
            (
                sign(claims(json!({"aud": "jitsi"})), SECRET),
                TokenError::WrongAudience,
            ),
            (
                sign(claims(json!({"iss": "someone-else"})), SECRET),
                TokenError::WrongIssuer,
            ),
            (
                sign(claims(json!({"room": "groep-7"})), SECRET),
                TokenError::WrongRoom,
            ),
            ("not.a.token".to_string(), TokenError::Malformed),
            ("".to_string(), TokenError::Malformed),
        ];
        for (token, expected) in cases {
            assert_eq!(verify(&token, &s, Some(&r)), Err(expected), "{expected:?}");
        }
        let disabled = JwtSettings {
            secret: None,
            ..settings()
        };
        assert_eq!(
            verify(&sign(claims(json!({})), SECRET), &disabled, Some(&r)),
            Err(TokenError::Disabled)
        );
    }

    #[test]
    fn rs256_tokens_verify_with_the_configured_public_key() {
        let private = include_bytes!("../../tests/fixtures/rs256-private.pem");
        let public = include_bytes!("../../tests/fixtures/rs256-public.pem");
        let s = JwtSettings {
            secret: None,
            public_key_pem: Some(public.to_vec()),
            ..settings()
        };
        let key = EncodingKey::from_rsa_pem(private).unwrap();
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims(json!({})), &key).unwrap();
        let v = verify(&token, &s, Some(&room("groep-8"))).unwrap();
        assert!(v.moderator);
        // An HS256 token cannot pass for it: no secret is configured.
        assert_eq!(
            verify(&sign(claims(json!({})), SECRET), &s, Some(&room("groep-8"))),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn jitsi_variants_of_the_claims_are_understood() {
        let s = settings();
        let any = sign(
            claims(
                json!({"room": "*", "context": {"user": {"name": "Gast"}}, "moderator": "true"}),
            ),
            SECRET,
        );
        let v = verify(&any, &s, Some(&room("what-ever"))).unwrap();
        assert!(v.moderator, "top-level moderator as a string");
        assert_eq!(v.room, RoomScope::Any);
        let guest = sign(
            claims(json!({"context": {"user": {"name": "Pupil", "moderator": "false"}}})),
            SECRET,
        );
        assert!(
            !verify(&guest, &s, Some(&room("groep-8")))
                .unwrap()
                .moderator
        );
        let mut no_exp = claims(json!({}));
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            verify(&sign(no_exp, SECRET), &s, None),
            Err(TokenError::Malformed),
            "exp is required"
        );
    }
}
