//! What every handler needs: the store, token handling, and the command defaults.

use std::sync::Arc;

use keryu_infra::postgres::PgEventStore;
use sqlx::PgPool;

use crate::auth::{HasTokenVerifier, TokenIssuer, TokenVerifier};
use crate::idempotency::IdempotencyState;
use crate::subject_cache::SubjectCache;

/// The shared state of the command API; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: PgEventStore,
    verifier: TokenVerifier,
    issuer: Option<TokenIssuer>,
    settings: Settings,
    subjects: SubjectCache,
}

/// Tunables of the command API.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Delivery attempts of a notification that does not say.
    pub default_max_attempts: u32,
    /// How often a command is decided again after losing a race with a concurrent one.
    pub command_attempts: u32,
    /// Largest request body, in bytes.
    pub body_limit: usize,
}

impl AppState {
    /// The state of an API over `store`. Without an `issuer`, `POST /api/auth/token` is
    /// unavailable (tokens are minted elsewhere, e.g. with RS256 by an identity provider).
    pub fn new(
        store: PgEventStore,
        verifier: TokenVerifier,
        issuer: Option<TokenIssuer>,
        settings: Settings,
    ) -> Self {
        AppState(Arc::new(Inner {
            store,
            verifier,
            issuer,
            settings,
            subjects: SubjectCache::default(),
        }))
    }

    /// The event store.
    pub fn store(&self) -> &PgEventStore {
        &self.0.store
    }

    /// The token minter, if this deployment mints tokens.
    pub fn issuer(&self) -> Option<&TokenIssuer> {
        self.0.issuer.as_ref()
    }

    /// The subjects this process has created notifications for (see [`SubjectCache`]).
    pub(crate) fn subjects(&self) -> &SubjectCache {
        &self.0.subjects
    }

    /// The tunables.
    pub fn settings(&self) -> Settings {
        self.0.settings
    }
}

impl HasTokenVerifier for AppState {
    fn token_verifier(&self) -> &TokenVerifier {
        &self.0.verifier
    }
}

impl IdempotencyState for AppState {
    fn pool(&self) -> &PgPool {
        self.0.store.pool()
    }

    fn body_limit(&self) -> usize {
        self.0.settings.body_limit
    }
}
