//! The one typed configuration of a Keryu process, loaded from the environment.
//!
//! Keys keep the names operators already know (`DATABASE_URL`); Keryu's own keys are prefixed
//! `KERYU_`. A `.env` file in the working directory is read first, and real environment variables
//! win over it. Every key has a default that works on a developer's machine.

/// Everything a Keryu process needs to know about its surroundings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The PostgreSQL database holding the event log and the read models.
    pub database: DatabaseConfig,
}

/// Where the event store lives and how many connections a process may hold to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`. The default disables TLS because on loopback it only costs time (each new
    /// connection would negotiate it); set `sslmode=require` or stricter for a remote server.
    pub url: String,
    /// `KERYU_DATABASE_MAX_CONNECTIONS`: the size of the connection pool.
    pub max_connections: u32,
}

/// The default database: the local PostgreSQL of a developer's machine or CI.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/keryu?sslmode=disable";

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
        // A missing .env is the normal case in production; a malformed one is not silently ignored.
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
        let max_connections = match lookup("KERYU_DATABASE_MAX_CONNECTIONS") {
            None => 10,
            Some(raw) => parse_positive(&raw).ok_or_else(|| ConfigError {
                key: "KERYU_DATABASE_MAX_CONNECTIONS",
                reason: format!("{raw:?} is not a positive integer"),
            })?,
        };
        Ok(Config {
            database: DatabaseConfig {
                url: lookup("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
                max_connections,
            },
        })
    }
}

fn parse_positive(raw: &str) -> Option<u32> {
    raw.trim().parse().ok().filter(|value| *value > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_locally() {
        let config = Config::from_lookup(|_| None).expect("defaults are valid");
        assert_eq!(config.database.url, DEFAULT_DATABASE_URL);
        assert_eq!(config.database.max_connections, 10);
    }

    #[test]
    fn environment_overrides_defaults() {
        let config = Config::from_lookup(|key| match key {
            "DATABASE_URL" => Some("postgres://db.example/keryu".to_owned()),
            "KERYU_DATABASE_MAX_CONNECTIONS" => Some("32".to_owned()),
            _ => None,
        })
        .expect("valid values");
        assert_eq!(config.database.url, "postgres://db.example/keryu");
        assert_eq!(config.database.max_connections, 32);
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let error = Config::from_lookup(|key| {
            (key == "KERYU_DATABASE_MAX_CONNECTIONS").then(|| "many".to_owned())
        })
        .expect_err("not a number");
        assert_eq!(error.key, "KERYU_DATABASE_MAX_CONNECTIONS");
    }
}
