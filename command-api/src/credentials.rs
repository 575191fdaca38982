//! Passwords: hashed with Argon2id (default parameters: 19 MiB, 2 passes), never stored or
//! logged in clear. Hashing is deliberately slow, so it runs on the blocking pool, off the
//! async workers.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash as PhcHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use keryu_domain::custodian::PasswordHash;

use crate::problem::{Problem, ProblemKind};

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// A hash of a valid password, in PHC string form.
///
/// # Errors
/// A validation problem for a password out of bounds; an internal problem if hashing fails.
pub async fn hash_password(password: String) -> Result<PasswordHash, Problem> {
    let length = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&length) {
        return Err(Problem::new(
            ProblemKind::Validation,
            format!(
                "password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long"
            ),
        ));
    }
    let hashed = tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
    })
    .await;
    match hashed {
        Ok(Ok(hash)) => Ok(PasswordHash(hash)),
        Ok(Err(error)) => {
            tracing::error!(%error, "password hashing failed");
            Err(Problem::new(
                ProblemKind::Internal,
                "password hashing failed",
            ))
        }
        Err(error) => {
            tracing::error!(%error, "password hashing task failed");
            Err(Problem::new(
                ProblemKind::Internal,
                "password hashing failed",
            ))
        }
    }
}

/// A hash of a random password, checked when the user is unknown.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    Argon2::default()
        .hash_password(uuid::Uuid::new_v4().as_bytes())
        .map(|hash| hash.to_string())
        .unwrap_or_default()
});

/// Whether `password` matches `hash`. With no hash (unknown user) a dummy hash is checked all the
/// same, so a login takes as long for an unknown email as for a wrong password.
pub async fn verify_password(password: String, hash: Option<PasswordHash>) -> bool {
    let known = hash.is_some();
    let verified = tokio::task::spawn_blocking(move || {
        let hash = hash.map_or_else(|| DUMMY_HASH.clone(), |hash| hash.0);
        PhcHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false);
    known && verified
}
