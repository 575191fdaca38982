//! The one typed configuration of a Keryu process, loaded from the environment.
//!
//! Keys keep the names operators already know (`DATABASE_URL`); Keryu's own keys are prefixed
//! `KERYU_`. A `.env` file in the working directory is read first, and real environment variables
//! win over it. Every key has a default that works on a developer's machine; the defaults that
//! would be unsafe in production (the JWT secret, the master key, the pepper) are reported by [`Config::warnings`].

mod secret;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use keryu_domain::notification::OutcomeUnknownPolicy;

use crate::personal_data::{DEVELOPMENT_MASTER_KEY, InvalidMasterKey, MasterKey, PhoneLookup};
use crate::telemetry::LogFormat;

pub use secret::Secret;

/// Everything a Keryu process needs to know about its surroundings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The PostgreSQL database holding the event log and the read models.
    pub database: DatabaseConfig,
    /// The HTTP API.
    pub http: HttpConfig,
    /// Bearer tokens.
    pub auth: AuthConfig,
    /// Defaults applied to commands that do not say otherwise.
    pub commands: CommandDefaults,
    /// NATS JetStream, where the log is relayed for the dispatchers.
    pub nats: NatsConfig,
    /// Twilio's Messages API and its status callbacks.
    pub twilio: TwilioConfig,
    /// How dispatchers send.
    pub dispatcher: DispatcherConfig,
    /// Logs and readiness.
    pub observability: ObservabilityConfig,
    /// Keys protecting personal data.
    pub privacy: PrivacyConfig,
}

/// The secrets that keep personal data in the database unreadable on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacyConfig {
    /// `KERYU_MASTER_KEY`: base64 of 32 bytes wrapping every data key (see
    /// [`crate::personal_data`]). Losing it loses every personal field in the log; the default
    /// is a public development key.
    pub master_key: Secret,
    /// `KERYU_PHONE_PEPPER`: the HMAC key of phone-number lookups; changing it needs a rebuild
    /// of the subjects read model.
    pub phone_pepper: Secret,
}

impl PrivacyConfig {
    /// The master key.
    ///
    /// # Errors
    /// [`InvalidMasterKey`] when it is not base64 of 32 bytes (a loaded configuration has been
    /// checked already).
    pub fn master_key(&self) -> Result<MasterKey, InvalidMasterKey> {
        MasterKey::from_base64(self.master_key.expose())
    }

    /// Phone-number fingerprints under the configured pepper.
    pub fn phone_lookup(&self) -> PhoneLookup {
        PhoneLookup::new(self.phone_pepper.expose())
    }
}

/// How a process reports on itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservabilityConfig {
    /// `KERYU_LOG_FORMAT`: `pretty` (default) or `json` (one object per line).
    pub log_format: LogFormat,
    /// `KERYU_READY_MAX_LAG_EVENTS`: a projector reports not ready while a read model or
    /// process is further behind the log than this.
    pub ready_max_lag_events: i64,
}

/// Where the event store lives and how many connections a process may hold to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`. The default disables TLS because on loopback it only costs time (each new
    /// connection would negotiate it); set `sslmode=verify-full` for a remote server.
    pub url: Secret,
    /// `KERYU_DATABASE_MAX_CONNECTIONS`: the size of the connection pool (the log writer keeps
    /// one more connection of its own).
    pub max_connections: u32,
}

/// The HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `KERYU_HTTP_ADDR`: the listen address.
    pub addr: SocketAddr,
    /// `KERYU_HTTP_BODY_LIMIT`: the largest request body accepted, in bytes.
    pub body_limit: usize,
    /// `KERYU_HTTP_TIMEOUT_SECONDS`: the longest a request may take (408 after).
    pub timeout_seconds: u64,
    /// `KERYU_RATE_LIMIT_PER_TOKEN`: requests per second per bearer token (0 = unlimited);
    /// bursts of twice as many are allowed.
    pub rate_limit_per_token: u32,
    /// `KERYU_RATE_LIMIT_PER_IP`: requests per second per client address (0 = unlimited).
    pub rate_limit_per_ip: u32,
    /// `KERYU_TRUST_FORWARDED_FOR`: take the client address from the last `X-Forwarded-For`
    /// entry (set when a trusted load balancer is in front; otherwise clients could forge it).
    pub trust_forwarded_for: bool,
    /// `ALLOWED_HOSTS` (the seed's name): comma-separated host names this deployment answers
    /// to; requests for another `Host` are refused, and browsers on these hosts may call the
    /// API (CORS). Empty: any host, no cross-origin access. `*` allows any.
    pub allowed_hosts: Vec<String>,
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

/// Where the relay publishes the log and the dispatchers consume it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// `NATS_URL`: the server (credentials in the URL are masked).
    pub url: Secret,
    /// `KERYU_NATS_STREAM`: the JetStream stream holding the relayed events.
    pub stream: String,
    /// `KERYU_NATS_SUBJECT_PREFIX`: events are published on `<prefix>.<category>.<event type>`.
    pub subject_prefix: String,
    /// `KERYU_NATS_MAX_AGE_SECONDS`: how long the stream keeps an event (the log itself keeps
    /// it for ever; the stream is only a delivery channel).
    pub max_age_seconds: u64,
    /// `KERYU_NATS_DUPLICATE_WINDOW_SECONDS`: how long JetStream remembers a `Nats-Msg-Id`, i.e.
    /// how late a republish after a crash is still recognised as a duplicate.
    pub duplicate_window_seconds: u64,
    /// `KERYU_NATS_DISPATCHER_CONSUMER`: the durable consumer all dispatchers share.
    pub dispatcher_consumer: String,
}

/// Twilio's Messages API: the real one when an account is configured, else the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioConfig {
    /// `TWILIO_ACCOUNT_SID`; without it `keryu serve` runs the simulator in-process.
    pub account_sid: Option<String>,
    /// `TWILIO_AUTH_TOKEN`: Basic-auth password and the key of callback signatures.
    pub auth_token: Secret,
    /// `TWILIO_PHONE_NUMBER`: the WhatsApp sender, E.164 (default: Twilio's sandbox sender).
    pub sender: String,
    /// `TWILIO_API_BASE`: scheme and host of the API.
    pub api_base: String,
    /// `PUBLIC_BASE_URL`: how Twilio reaches this deployment; the status callback URL is
    /// `<PUBLIC_BASE_URL>/webhooks/twilio/status` and signatures are checked against it.
    pub public_base_url: String,
    /// `KERYU_TWILIO_TIMEOUT_MS`: the longest a create-message call may take.
    pub request_timeout_ms: u64,
}

/// The path Twilio posts status callbacks to.
pub const STATUS_CALLBACK_PATH: &str = "/webhooks/twilio/status";

impl TwilioConfig {
    /// The URL Twilio calls back about `notification`'s message. The notification id rides in
    /// the query string, which Twilio's signature covers, so the webhook learns authentically
    /// which notification a callback is about without a lookup.
    pub fn status_callback_url(&self, notification: uuid::Uuid) -> String {
        format!(
            "{}{STATUS_CALLBACK_PATH}?notification={notification}",
            self.public_base_url
        )
    }
}

/// How dispatchers claim and send.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatcherConfig {
    /// `KERYU_DISPATCHER_ID`: names this dispatcher in the events it appends (audit trail).
    pub id: String,
    /// `KERYU_DISPATCHER_CONCURRENCY`: sends in flight per process.
    pub concurrency: usize,
    /// `KERYU_SENDER_MPS`: messages per second per sender number, shared by every dispatcher
    /// (0 = unlimited). Twilio's sandbox allows 1; a production WhatsApp sender 80.
    pub sender_mps: f64,
    /// `KERYU_SENDER_BURST`: messages a sender may send back to back after being idle.
    pub sender_burst: u32,
    /// `KERYU_SENDER_JITTER_MS`: how much longer one call's way to Twilio may take than a later
    /// call's before Twilio could count more than MPS + burst in one second; the sender then
    /// sends MPS messages per second plus this.
    pub sender_jitter_ms: u64,
    /// `KERYU_DISPATCH_LEASE_SECONDS`: how long a claimed attempt may go without an outcome
    /// before it is declared unknown.
    pub lease_seconds: u64,
    /// `KERYU_OUTCOME_UNKNOWN_POLICY`: `retry` (may send twice) or `fail` (may send nothing).
    pub outcome_unknown_policy: OutcomeUnknownPolicy,
}

/// The default database: the local PostgreSQL of a developer's machine or CI.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/keryu?sslmode=disable";
/// The JWT secret used when none is configured: fine on a laptop, fatal in production.
pub const DEVELOPMENT_JWT_SECRET: &str = "keryu-development-secret-do-not-use-in-production";
/// The phone-number pepper used when none is configured: public, like the development keys.
pub const DEVELOPMENT_PHONE_PEPPER: &str = "keryu-development-pepper";
/// Twilio's shared WhatsApp sandbox sender.
pub const TWILIO_SANDBOX_SENDER: &str = "+14155238886";

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
        let file = match std::env::var("KERYU_CONFIG_FILE") {
            Ok(path) if !path.trim().is_empty() => {
                let text = std::fs::read_to_string(&path).map_err(|error| ConfigError {
                    key: "KERYU_CONFIG_FILE",
                    reason: format!("cannot read {path}: {error}"),
                })?;
                file_keys(&text)?
            }
            _ => BTreeMap::new(),
        };
        Config::from_lookup(|key| std::env::var(key).ok().or_else(|| file.get(key).cloned()))
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
        let master_key = keys.text("KERYU_MASTER_KEY", DEVELOPMENT_MASTER_KEY);
        if let Err(error) = MasterKey::from_base64(&master_key) {
            return Err(ConfigError {
                key: "KERYU_MASTER_KEY",
                reason: error.to_string(),
            });
        }
        let http_addr = keys.parse("KERYU_HTTP_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?;
        Ok(Config {
            database: DatabaseConfig {
                url: Secret::new(keys.text("DATABASE_URL", DEFAULT_DATABASE_URL)),
                max_connections: keys.positive("KERYU_DATABASE_MAX_CONNECTIONS", 10)?,
            },
            http: HttpConfig {
                addr: http_addr,
                body_limit: keys.positive("KERYU_HTTP_BODY_LIMIT", 64 * 1024)?,
                timeout_seconds: keys.positive("KERYU_HTTP_TIMEOUT_SECONDS", 30)?,
                rate_limit_per_token: keys.parse("KERYU_RATE_LIMIT_PER_TOKEN", 1000)?,
                rate_limit_per_ip: keys.parse("KERYU_RATE_LIMIT_PER_IP", 1000)?,
                trust_forwarded_for: keys.parse("KERYU_TRUST_FORWARDED_FOR", false)?,
                allowed_hosts: keys
                    .text("ALLOWED_HOSTS", "")
                    .split(',')
                    .map(|host| host.trim().to_ascii_lowercase())
                    .filter(|host| !host.is_empty())
                    .collect(),
            },
            auth,
            commands: CommandDefaults { max_attempts },
            nats: NatsConfig {
                url: Secret::new(keys.text("NATS_URL", "nats://127.0.0.1:4222")),
                stream: keys.text("KERYU_NATS_STREAM", "KERYU_EVENTS"),
                subject_prefix: keys.text("KERYU_NATS_SUBJECT_PREFIX", "keryu.events"),
                max_age_seconds: keys.positive("KERYU_NATS_MAX_AGE_SECONDS", 7 * 24 * 3600)?,
                duplicate_window_seconds: keys
                    .positive("KERYU_NATS_DUPLICATE_WINDOW_SECONDS", 600)?,
                dispatcher_consumer: keys
                    .text("KERYU_NATS_DISPATCHER_CONSUMER", "keryu-dispatcher"),
            },
            twilio: TwilioConfig {
                account_sid: keys.optional("TWILIO_ACCOUNT_SID"),
                auth_token: Secret::new(keys.text("TWILIO_AUTH_TOKEN", "")),
                sender: keys.text("TWILIO_PHONE_NUMBER", TWILIO_SANDBOX_SENDER),
                api_base: keys
                    .text("TWILIO_API_BASE", "https://api.twilio.com")
                    .trim_end_matches('/')
                    .to_owned(),
                public_base_url: keys
                    .text("PUBLIC_BASE_URL", &format!("http://{http_addr}"))
                    .trim_end_matches('/')
                    .to_owned(),
                request_timeout_ms: keys.positive("KERYU_TWILIO_TIMEOUT_MS", 10_000)?,
            },
            dispatcher: DispatcherConfig {
                id: keys.text(
                    "KERYU_DISPATCHER_ID",
                    &format!("dispatcher-{}", std::process::id()),
                ),
                concurrency: keys.positive("KERYU_DISPATCHER_CONCURRENCY", 32)?,
                sender_mps: keys.non_negative("KERYU_SENDER_MPS", 1.0)?,
                sender_burst: keys.positive("KERYU_SENDER_BURST", 1)?,
                sender_jitter_ms: keys.parse("KERYU_SENDER_JITTER_MS", 10)?,
                lease_seconds: keys.positive("KERYU_DISPATCH_LEASE_SECONDS", 60)?,
                outcome_unknown_policy: keys.parse_with(
                    "KERYU_OUTCOME_UNKNOWN_POLICY",
                    OutcomeUnknownPolicy::Retry,
                    parse_outcome_unknown_policy,
                )?,
            },
            observability: ObservabilityConfig {
                log_format: keys.parse("KERYU_LOG_FORMAT", LogFormat::Pretty)?,
                ready_max_lag_events: keys.positive("KERYU_READY_MAX_LAG_EVENTS", 10_000)?,
            },
            privacy: PrivacyConfig {
                master_key: Secret::new(master_key),
                phone_pepper: Secret::new(
                    keys.text("KERYU_PHONE_PEPPER", DEVELOPMENT_PHONE_PEPPER),
                ),
            },
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
        if self.privacy.master_key.expose() == DEVELOPMENT_MASTER_KEY {
            warnings.push(
                "KERYU_MASTER_KEY is not set: personal data is encrypted with the public \
                 development key, so anyone with the database can read it",
            );
        }
        if self.privacy.phone_pepper.expose() == DEVELOPMENT_PHONE_PEPPER {
            warnings.push(
                "KERYU_PHONE_PEPPER is not set: phone-number fingerprints use the public \
                 development pepper",
            );
        }
        warnings
    }
}

/// The keys of a TOML configuration file: the environment's names at the top level
/// (`KERYU_SENDER_MPS = 80`, `DATABASE_URL = "postgres://…"`), so one vocabulary serves the
/// environment, `.env` and the file; the environment wins over the file.
fn file_keys(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let table: toml::Table = text.parse().map_err(|error: toml::de::Error| ConfigError {
        key: "KERYU_CONFIG_FILE",
        reason: error.to_string(),
    })?;
    table
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(number) => number.to_string(),
                toml::Value::Float(number) => number.to_string(),
                toml::Value::Boolean(flag) => flag.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .map_or_else(|| item.to_string(), str::to_owned)
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => {
                    return Err(ConfigError {
                        key: "KERYU_CONFIG_FILE",
                        reason: format!("{key} = {other} is not a plain value"),
                    });
                }
            };
            Ok((key, text))
        })
        .collect()
}

fn parse_outcome_unknown_policy(raw: &str) -> Result<OutcomeUnknownPolicy, String> {
    match raw {
        "retry" => Ok(OutcomeUnknownPolicy::Retry),
        "fail" => Ok(OutcomeUnknownPolicy::Fail),
        other => Err(format!("{other:?} is not one of retry, fail")),
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

    fn parse_with<T>(
        &self,
        key: &'static str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.optional(key) {
            None => Ok(default),
            Some(raw) => parse(raw.trim()).map_err(|reason| ConfigError { key, reason }),
        }
    }

    fn non_negative(&self, key: &'static str, default: f64) -> Result<f64, ConfigError> {
        let value: f64 = self.parse(key, default)?;
        if value.is_finite() && value >= 0.0 {
            Ok(value)
        } else {
            Err(ConfigError {
                key,
                reason: "must be zero or a positive number".to_owned(),
            })
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
        // The JWT secret, the master key and the pepper are public development values.
        assert_eq!(config.warnings().len(), 3);
        assert!(config.privacy.master_key().is_ok());
        assert_eq!(config.twilio.account_sid, None);
        assert_eq!(
            config.twilio.status_callback_url(uuid::Uuid::nil()),
            "http://127.0.0.1:8080/webhooks/twilio/status\
             ?notification=00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(config.dispatcher.sender_mps, 1.0);
        assert_eq!(config.dispatcher.sender_jitter_ms, 10);
    }

    #[test]
    fn the_public_url_names_the_callback() {
        let config = config(&[
            ("PUBLIC_BASE_URL", "https://keryu.example/"),
            ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000"),
            ("KERYU_OUTCOME_UNKNOWN_POLICY", "fail"),
        ])
        .expect("valid values");
        assert!(
            config
                .twilio
                .status_callback_url(uuid::Uuid::nil())
                .starts_with("https://keryu.example/webhooks/twilio/status?notification=")
        );
        assert_eq!(
            config.dispatcher.outcome_unknown_policy,
            OutcomeUnknownPolicy::Fail
        );
    }

    #[test]
    fn a_master_key_that_is_not_32_bytes_is_refused() {
        let error = config(&[("KERYU_MASTER_KEY", "c2hvcnQ=")]).expect_err("16 bits short");
        assert_eq!(error.key, "KERYU_MASTER_KEY");
    }

    #[test]
    fn environment_overrides_defaults() {
        let config = config(&[
            ("DATABASE_URL", "postgres://db.example/keryu"),
            ("KERYU_DATABASE_MAX_CONNECTIONS", "32"),
            ("KERYU_HTTP_ADDR", "0.0.0.0:9000"),
            ("KERYU_JWT_SECRET", "a-real-secret"),
            ("KERYU_DEFAULT_MAX_ATTEMPTS", "5"),
            (
                "KERYU_MASTER_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ),
            ("KERYU_PHONE_PEPPER", "a-real-pepper"),
        ])
        .expect("valid values");
        assert_eq!(config.database.url.expose(), "postgres://db.example/keryu");
        assert_eq!(config.database.max_connections, 32);
        assert_eq!(config.http.addr.port(), 9000);
        assert_eq!(config.commands.max_attempts, 5);
        assert!(config.warnings().is_empty());
    }

    #[test]
    fn the_example_env_file_documents_every_key_read() {
        let asked = std::cell::RefCell::new(Vec::new());
        Config::from_lookup(|key| {
            asked.borrow_mut().push(key.to_owned());
            None
        })
        .expect("defaults are valid");
        let example = include_str!("../../.env.example");
        let documented: Vec<&str> = example
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once('=').map(|(key, _)| key.trim()))
            .collect();
        for key in asked.into_inner() {
            assert!(
                documented.contains(&key.as_str()),
                "{key} is missing from .env.example"
            );
        }
    }

    #[test]
    fn a_toml_file_uses_the_environment_names() {
        let keys = file_keys(
            "KERYU_SENDER_MPS = 80\nALLOWED_HOSTS = [\"a.example\", \"b.example\"]\n\
             KERYU_TRUST_FORWARDED_FOR = true\nNATS_URL = \"nats://nats:4222\"\n",
        )
        .expect("valid TOML");
        let config = Config::from_lookup(|key| keys.get(key).cloned()).expect("valid values");
        assert_eq!(config.dispatcher.sender_mps, 80.0);
        assert_eq!(config.http.allowed_hosts, ["a.example", "b.example"]);
        assert!(config.http.trust_forwarded_for);
        assert!(file_keys("[section]\nKEY = 1").is_err());
        assert!(file_keys("not toml").is_err());
    }

    #[test]
    fn a_bad_value_names_its_key() {
        for (key, value) in [
            ("KERYU_DATABASE_MAX_CONNECTIONS", "many"),
            ("KERYU_DATABASE_MAX_CONNECTIONS", "0"),
            ("KERYU_HTTP_ADDR", "localhost"),
            ("KERYU_JWT_ALGORITHM", "none"),
            ("KERYU_DEFAULT_MAX_ATTEMPTS", "11"),
            ("KERYU_SENDER_MPS", "-1"),
            ("KERYU_SENDER_JITTER_MS", "-5"),
            ("KERYU_OUTCOME_UNKNOWN_POLICY", "maybe"),
            ("KERYU_DISPATCHER_CONCURRENCY", "0"),
            ("KERYU_LOG_FORMAT", "xml"),
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
            ("TWILIO_AUTH_TOKEN", "twilio-t0ken"),
            ("NATS_URL", "nats://user:natspa55@nats:4222"),
        ])
        .expect("valid");
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("pa55word"), "{printed}");
        assert!(!printed.contains("twilio-t0ken"), "{printed}");
        assert!(!printed.contains("natspa55"), "{printed}");
    }
}
