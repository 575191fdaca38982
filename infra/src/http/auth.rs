//! Bearer tokens: who is calling, and in which role.
//!
//! Tokens are JWTs verified with exactly one configured algorithm and key: HS256 with a shared
//! secret by default, or RS256 / EdDSA with a public key when tokens are minted elsewhere.
//! Pinning one algorithm is what defeats `alg: none` and algorithm confusion (an HS256 token
//! "signed" with a public RSA key is refused because HS256 is not the configured algorithm).
//! `exp`, `iss` and `aud` are always checked.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use keryu_domain::Role;
use serde::{Deserialize, Serialize};

use super::problem::{Problem, ProblemKind};

/// The claims Keryu reads from and writes into a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The caller: a custodian id for people, any stable name for integrations.
    pub sub: String,
    /// What the caller may do.
    pub role: Role,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Who minted the token; must equal the configured issuer.
    pub iss: String,
    /// Who the token is for; must equal the configured audience.
    pub aud: String,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject.
    pub subject: String,
    /// The token's role.
    pub role: Role,
}

/// Verifies tokens with the one configured algorithm and key.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    /// A verifier accepting only `algorithm` with `key`, and only tokens for `issuer` and
    /// `audience`.
    pub fn new(algorithm: Algorithm, key: DecodingKey, issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        TokenVerifier { key, validation }
    }

    /// The caller a bearer token stands for.
    ///
    /// # Errors
    /// An `unauthenticated` [`Problem`] for a token that is malformed, forged, expired, or for
    /// another issuer or audience. The reason is logged, not returned: callers learn nothing
    /// about why a forged token failed.
    pub fn verify(&self, token: &str) -> Result<Caller, Problem> {
        match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) => Ok(Caller {
                subject: data.claims.sub,
                role: data.claims.role,
            }),
            Err(error) => {
                tracing::debug!(%error, "refused a bearer token");
                Err(Problem::new(
                    ProblemKind::Unauthenticated,
                    "the bearer token is invalid or expired",
                ))
            }
        }
    }
}

/// Mints tokens, for `keryu token issue` and `POST /api/auth/token`.
#[derive(Clone)]
pub struct TokenIssuer {
    algorithm: Algorithm,
    key: EncodingKey,
    issuer: String,
    audience: String,
    lifetime: Duration,
}

impl TokenIssuer {
    /// An issuer signing with `algorithm` and `key`, for `issuer` and `audience`, whose tokens
    /// live for `lifetime`.
    pub fn new(
        algorithm: Algorithm,
        key: EncodingKey,
        issuer: &str,
        audience: &str,
        lifetime: Duration,
    ) -> Self {
        TokenIssuer {
            algorithm,
            key,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            lifetime,
        }
    }

    /// How long minted tokens are valid, in seconds.
    pub fn lifetime_seconds(&self) -> i64 {
        self.lifetime.num_seconds()
    }

    /// A signed token for `subject` in `role`.
    ///
    /// # Errors
    /// When the key cannot sign with the configured algorithm.
    pub fn issue(&self, subject: &str, role: Role) -> Result<String, jsonwebtoken::errors::Error> {
        let now = Utc::now();
        let claims = Claims {
            sub: subject.to_owned(),
            role,
            exp: (now + self.lifetime).timestamp(),
            iat: now.timestamp(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.key)
    }
}

/// Anything that can hand out the request's [`TokenVerifier`] (the application state).
pub trait HasTokenVerifier {
    /// The verifier of this deployment.
    fn token_verifier(&self) -> &TokenVerifier;
}

impl<S> FromRequestParts<S> for Caller
where
    S: HasTokenVerifier + Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::Unauthenticated,
                    "send `Authorization: Bearer <token>`",
                )
            })?;
        state.token_verifier().verify(token.trim())
    }
}

/// A key file named by the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read {key} file {path}")]
    Read {
        /// The configuration key naming the file.
        key: &'static str,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a usable key for the algorithm.
    #[error("{key} is not a usable key for the configured algorithm")]
    Invalid {
        /// The configuration key naming the file.
        key: &'static str,
        /// Why.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
}

/// The verifier, and the issuer when this deployment can mint tokens, from the configuration.
///
/// # Errors
/// [`KeyError`] naming the configuration key whose file is unreadable or unusable.
pub fn from_config(
    config: &crate::config::AuthConfig,
) -> Result<(TokenVerifier, Option<TokenIssuer>), KeyError> {
    use crate::config::JwtAlgorithm;
    let read = |key: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|source| KeyError::Read {
            key,
            path: path.display().to_string(),
            source,
        })
    };
    let invalid = |key: &'static str| move |source| KeyError::Invalid { key, source };
    let lifetime = Duration::seconds(i64::from(config.token_lifetime_seconds));
    let (algorithm, decoding, encoding) = match config.algorithm {
        JwtAlgorithm::Hs256 => {
            let secret = config.secret.expose().as_bytes();
            let decoding = DecodingKey::from_secret(secret).map_err(invalid("KERYU_JWT_SECRET"))?;
            let encoding = EncodingKey::from_secret(secret).map_err(invalid("KERYU_JWT_SECRET"))?;
            (Algorithm::HS256, decoding, Some(encoding))
        }
        asymmetric => {
            let algorithm = if asymmetric == JwtAlgorithm::Rs256 {
                Algorithm::RS256
            } else {
                Algorithm::EdDSA
            };
            let public = config
                .public_key_file
                .as_deref()
                .ok_or_else(|| KeyError::Invalid {
                    key: "KERYU_JWT_PUBLIC_KEY_FILE",
                    source: jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into(),
                })?;
            let public = read("KERYU_JWT_PUBLIC_KEY_FILE", public)?;
            let decoding = if algorithm == Algorithm::RS256 {
                DecodingKey::from_rsa_pem(&public)
            } else {
                DecodingKey::from_ed_pem(&public)
            }
            .map_err(invalid("KERYU_JWT_PUBLIC_KEY_FILE"))?;
            let encoding = match config.private_key_file.as_deref() {
                None => None,
                Some(path) => {
                    let private = read("KERYU_JWT_PRIVATE_KEY_FILE", path)?;
                    let key = if algorithm == Algorithm::RS256 {
                        EncodingKey::from_rsa_pem(&private)
                    } else {
                        EncodingKey::from_ed_pem(&private)
                    };
                    Some(key.map_err(invalid("KERYU_JWT_PRIVATE_KEY_FILE"))?)
                }
            };
            (algorithm, decoding, encoding)
        }
    };
    let verifier = TokenVerifier::new(algorithm, decoding, &config.issuer, &config.audience);
    let issuer = encoding
        .map(|key| TokenIssuer::new(algorithm, key, &config.issuer, &config.audience, lifetime));
    Ok((verifier, issuer))
}
