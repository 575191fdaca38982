//! The one typed configuration of a Keryu process, loaded from the environment.
//!
//! Keys keep the names operators already know (`DATABASE_URL`); Keryu's own keys are prefixed
//! `KERYU_`. A `.env` file in the working directory is read first, and real environment variables
//! win over it. Every key has a default that works on a developer's machine; the defaults that
//! would be unsafe in production (the JWT secret) are reported by [`Config::warnings`].

mod secret;

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

pub use secret::Secret;

/// Everything a Keryu process needs to know about its surroundings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The PostgreSQL database holding the event log and the read models.
    pub database: DatabaseConfig,
    /// The HTTP API.
    pub http: HttpConfig,
    /// Bearer tokens.
    pub auth: AuthConfig,
    /// Defaults applied to commands that do not say otherwise.
    pub commands: CommandDefaults,
}

/// Where the event store lives and how many connections a process may hold to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`. The default disables TLS because on loopback it only costs time (each new
    /// connection would negotiate it); set `sslmode=verify-full` for a remote server.
    pub url: Secret,
    /// `KERYU_DATABASE_MAX_CONNECTIONS`: the size of the connection pool.
    pub max_connections: u32,
}

/// The HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `KERYU_HTTP_ADDR`: the listen address.
    pub addr: SocketAddr,
    /// `KERYU_HTTP_BODY_LIMIT`: the largest request body accepted, in bytes.
    pub body_limit: usize,
}

/// How bearer tokens are verified and minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// `KERYU_JWT_ALGORITHM`: `HS256` (shared secret), `RS256` or `EdDSA` (key pair).
    pub algorithm: JwtAlgorithm,
    /// `KERYU_JWT_SECRET`: the HS256 shared secret.
    pub secret: Secret,
    /// `KERYU_JWT_PUBLIC_KEY_FILE`: PEM public key verifying RS256/EdDSA tokens.
    pub public_key_file: Option<PathBuf>,
    /// `KERYU_JWT_PRIVATE_KEY_FILE`: PEM private key for minting RS256/EdDSA tokens; without it
    /// this deployment only verifies tokens minted elsewhere.
    pub private_key_file: Option<PathBuf>,
    /// `KERYU_JWT_ISSUER`: the `iss` claim minted and required.
    pub issuer: String,
    /// `KERYU_JWT_AUDIENCE`: the `aud` claim minted and required.
    pub audience: String,
    /// `KERYU_JWT_LIFETIME_SECONDS`: how long minted tokens are valid.
    pub token_lifetime_seconds: u32,
}

/// The token signature algorithms Keryu accepts (exactly one per deployment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret.
    Hs256,
    /// RSA PKCS#1 v1.5 with SHA-256.
    Rs256,
    /// Ed25519.
    EdDsa,
}

/// Defaults for commands that leave a setting out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandDefaults {
    /// `KERYU_DEFAULT_MAX_ATTEMPTS`: delivery attempts of a notification (1–10).
    pub max_attempts: u32,
}

/// The default database: the local PostgreSQL of a developer's machine or CI.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/keryu?sslmode=disable";
/// The JWT secret used when none is configured: fine on a laptop, fatal in production.
pub const DEVELOPMENT_JWT_SECRET: &str = "keryu-development-secret-do-not-use-in-production";

/// A configuration key that is present but unusable.
#[derive(Debug, thiserror::Error)]
#[error("configuration key {key} is invalid: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub key: &'static str,
    /// Why its value was refused.
    pub reason: String,
}

impl Config {
    /// Reads `.env` (if any) and then the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first key whose value cannot be used.
    pub fn load() -> Result<Config, ConfigError> {
        // A missing .env is the normal case in production; a malformed one is not ignored.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(error) if error.not_found() => {}
            Err(error) => {
                return Err(ConfigError {
                    key: ".env",
                    reason: error.to_string(),
                });
            }
        }
        Config::from_lookup(|key| std::env::var(key).ok())
    }

    /// Builds the configuration from any key lookup, so it can be tested without touching the
    /// process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first key whose value cannot be used.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let keys = Keys(&lookup);
        let auth = AuthConfig {
            algorithm: keys.parse("KERYU_JWT_ALGORITHM", JwtAlgorithm::Hs256)?,
            secret: Secret::new(keys.text("KERYU_JWT_SECRET", DEVELOPMENT_JWT_SECRET)),
            public_key_file: keys
                .optional("KERYU_JWT_PUBLIC_KEY_FILE")
                .map(PathBuf::from),
            private_key_file: keys
                .optional("KERYU_JWT_PRIVATE_KEY_FILE")
                .map(PathBuf::from),
            issuer: keys.text("KERYU_JWT_ISSUER", "keryu"),
            audience: keys.text("KERYU_JWT_AUDIENCE", "keryu-api"),
            token_lifetime_seconds: keys.positive("KERYU_JWT_LIFETIME_SECONDS", 3600)?,
        };
        if auth.algorithm != JwtAlgorithm::Hs256 && auth.public_key_file.is_none() {
            return Err(ConfigError {
                key: "KERYU_JWT_PUBLIC_KEY_FILE",
                reason: "RS256 and EdDSA need the public key that verifies tokens".to_owned(),
            });
        }
        let max_attempts = keys.positive("KERYU_DEFAULT_MAX_ATTEMPTS", 3)?;
        if max_attempts > 10 {
            return Err(ConfigError {
                key: "KERYU_DEFAULT_MAX_ATTEMPTS",
                reason: format!("{max_attempts} is more than 10"),
            });
        }
        Ok(Config {
            database: DatabaseConfig {
                url: Secret::new(keys.text("DATABASE_URL", DEFAULT_DATABASE_URL)),
                max_connections: keys.positive("KERYU_DATABASE_MAX_CONNECTIONS", 10)?,
            },
            http: HttpConfig {
                addr: keys.parse("KERYU_HTTP_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
                body_limit: keys.positive("KERYU_HTTP_BODY_LIMIT", 64 * 1024)?,
            },
            auth,
            commands: CommandDefaults { max_attempts },
        })
    }

    /// Settings that work but should not reach production, each as a sentence for the log.
    pub fn warnings(&self) -> Vec<&'static str> {
        let mut warnings = Vec::new();
        if self.auth.algorithm == JwtAlgorithm::Hs256
            && self.auth.secret.expose() == DEVELOPMENT_JWT_SECRET
        {
            warnings.push(
                "KERYU_JWT_SECRET is not set: tokens are signed with the public development \
                 secret, so anyone can mint one",
            );
        }
        warnings
    }
}

impl FromStr for JwtAlgorithm {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "HS256" => Ok(JwtAlgorithm::Hs256),
            "RS256" => Ok(JwtAlgorithm::Rs256),
            "EdDSA" => Ok(JwtAlgorithm::EdDsa),
            other => Err(format!("{other:?} is not one of HS256, RS256, EdDSA")),
        }
    }
}

/// Typed reads of environment keys, each error naming its key.
struct Keys<'a, F>(&'a F);

impl<F: Fn(&str) -> Option<String>> Keys<'_, F> {
    fn optional(&self, key: &str) -> Option<String> {
        (self.0)(key).filter(|value| !value.trim().is_empty())
    }

    fn text(&self, key: &str, default: &str) -> String {
        self.optional(key).unwrap_or_else(|| default.to_owned())
    }

    fn parse<T>(&self, key: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.optional(key) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|error| ConfigError {
                key,
                reason: format!("{raw:?}: {error}"),
            }),
        }
    }

    fn positive<T>(&self, key: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Default + Copy,
        T::Err: Display,
    {
        let value = self.parse(key, default)?;
        if value > T::default() {
            Ok(value)
        } else {
            Err(ConfigError {
                key,
                reason: "must be a positive number".to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|key| {
            pairs
                .iter()
                .find(|(name, _)| *name == key)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn defaults_work_locally_and_warn_about_the_secret() {
        let config = config(&[]).expect("defaults are valid");
        assert_eq!(config.database.url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(config.database.max_connections, 10);
        assert_eq!(config.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.auth.algorithm, JwtAlgorithm::Hs256);
        assert_eq!(config.commands.max_attempts, 3);
        assert_eq!(config.warnings().len(), 1);
    }

    #[test]
    fn environment_overrides_defaults() {
        let config = config(&[
            ("DATABASE_URL", "postgres://db.example/keryu"),
            ("KERYU_DATABASE_MAX_CONNECTIONS", "32"),
            ("KERYU_HTTP_ADDR", "0.0.0.0:9000"),
            ("KERYU_JWT_SECRET", "a-real-secret"),
            ("KERYU_DEFAULT_MAX_ATTEMPTS", "5"),
        ])
        .expect("valid values");
        assert_eq!(config.database.url.expose(), "postgres://db.example/keryu");
        assert_eq!(config.database.max_connections, 32);
        assert_eq!(config.http.addr.port(), 9000);
        assert_eq!(config.commands.max_attempts, 5);
        assert!(config.warnings().is_empty());
    }

    #[test]
    fn a_bad_value_names_its_key() {
        for (key, value) in [
            ("KERYU_DATABASE_MAX_CONNECTIONS", "many"),
            ("KERYU_DATABASE_MAX_CONNECTIONS", "0"),
            ("KERYU_HTTP_ADDR", "localhost"),
            ("KERYU_JWT_ALGORITHM", "none"),
            ("KERYU_DEFAULT_MAX_ATTEMPTS", "11"),
        ] {
            let error = config(&[(key, value)]).expect_err(value);
            assert_eq!(error.key, key);
        }
    }

    #[test]
    fn asymmetric_tokens_need_a_public_key() {
        let error = config(&[("KERYU_JWT_ALGORITHM", "RS256")]).expect_err("no key");
        assert_eq!(error.key, "KERYU_JWT_PUBLIC_KEY_FILE");
    }

    #[test]
    fn secrets_are_masked_in_debug_output() {
        let config = config(&[
            ("KERYU_JWT_SECRET", "hunter2-hunter2"),
            ("DATABASE_URL", "postgres://keryu:pa55word@db/keryu"),
        ])
        .expect("valid");
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("pa55word"), "{printed}");
    }
}
