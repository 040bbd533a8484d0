//! Who a connection is: a JWT's `sub`, or a generated anonymous id.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// How connections are authenticated.
#[derive(Clone)]
pub enum Auth {
    /// Everyone is an anonymous user with a generated id.
    Anonymous,
    /// A JWT in the handshake is required; its `sub` is the user, `exp` is
    /// enforced.
    Jwt {
        /// The verification key.
        key: DecodingKey,
        /// HS256 (shared secret) or RS256 (public key).
        algorithm: Algorithm,
        /// Required `aud`, if any (else `aud` is not checked).
        audience: Option<String>,
        /// Required `iss`, if any.
        issuer: Option<String>,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            // Never print the key.
            Self::Jwt { .. } => f.write_str("Jwt"),
        }
    }
}

/// An authenticated identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id.
    pub user: String,
    /// The token's `info` claim (JSON), shown in presence.
    pub info: Option<serde_json::Value>,
    /// A generated id (no token).
    pub anonymous: bool,
    /// The token's `exp` (Unix seconds), if it has one.
    pub expires: Option<u64>,
    /// Room patterns the token grants (claims `rooms` and `publish`).
    pub grants: Option<Box<crate::rooms::Grants>>,
    /// Rooms to join at once (from the connect proxy).
    pub rooms: Vec<String>,
}

impl Identity {
    /// An anonymous user with a generated id.
    pub fn anonymous() -> Self {
        Self {
            user: anonymous_id(),
            info: None,
            anonymous: true,
            expires: None,
            grants: None,
            rooms: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    info: Option<serde_json::Value>,
    #[serde(default)]
    exp: Option<u64>,
    /// Room patterns this user may join.
    #[serde(default)]
    rooms: Vec<String>,
    /// Room patterns this user may publish to.
    #[serde(default)]
    publish: Vec<String>,
}

/// A refused token (the reason is logged, the client only sees
/// "unauthorized").
#[derive(Debug, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct AuthError(String);

impl Auth {
    /// An HS256 secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::Jwt {
            key: DecodingKey::from_secret(secret),
            algorithm: Algorithm::HS256,
            audience: None,
            issuer: None,
        }
    }

    /// An RSA public key (PEM) verifying RS256 tokens.
    pub fn rs256_pem(pem: &[u8]) -> Result<Self, AuthError> {
        Ok(Self::Jwt {
            key: DecodingKey::from_rsa_pem(pem).map_err(|e| AuthError(e.to_string()))?,
            algorithm: Algorithm::RS256,
            audience: None,
            issuer: None,
        })
    }

    /// Also requires these `aud` and `iss` claims (when given).
    pub fn expecting(mut self, aud: Option<String>, iss: Option<String>) -> Self {
        if let Self::Jwt {
            audience, issuer, ..
        } = &mut self
        {
            *audience = aud;
            *issuer = iss;
        }
        self
    }

    /// Whether a token is required.
    pub fn required(&self) -> bool {
        matches!(self, Self::Jwt { .. })
    }

    /// Authenticates a token (ignored when anonymous).
    pub fn identify(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        match self {
            Self::Anonymous => Ok(Identity::anonymous()),
            Self::Jwt {
                key,
                algorithm,
                audience,
                issuer,
            } => {
                let token = token.ok_or_else(|| AuthError("missing".into()))?;
                let mut validation = Validation::new(*algorithm);
                validation.required_spec_claims = ["sub"].into_iter().map(String::from).collect();
                validation.leeway = 0;
                // `nbf` is honoured when present; `aud`/`iss` only when
                // configured (tokens from identity providers carry an `aud`).
                validation.validate_nbf = true;
                match audience {
                    Some(aud) => validation.set_audience(&[aud]),
                    None => validation.validate_aud = false,
                }
                if let Some(iss) = issuer {
                    validation.set_issuer(&[iss]);
                }
                let data = jsonwebtoken::decode::<Claims>(token, key, &validation)
                    .map_err(|e| AuthError(e.to_string()))?;
                if data.claims.sub.is_empty() {
                    return Err(AuthError("empty sub".into()));
                }
                let c = data.claims;
                let grants = (!c.rooms.is_empty() || !c.publish.is_empty()).then(|| {
                    Box::new(crate::rooms::Grants {
                        join: c.rooms,
                        publish: c.publish,
                    })
                });
                Ok(Identity {
                    user: c.sub,
                    info: c.info,
                    anonymous: false,
                    expires: c.exp,
                    grants,
                    rooms: Vec::new(),
                })
            }
        }
    }
}

fn anonymous_id() -> String {
    use base64::Engine as _;
    let bytes: [u8; 9] = rand::random();
    format!(
        "anon-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Unix time in seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
