//! Keryu's command side: axum routes that turn HTTP requests into domain commands.
//!
//! Every request is authenticated (bearer JWT), authorised by role ([`rbac`]), validated, and
//! turned into one command on one aggregate; accepted commands append events and nothing else.
//! Errors of every layer are answered as RFC 9457 problems ([`problem`]). A retried POST with an
//! `Idempotency-Key` gets the first answer ([`idempotency`]).

mod aggregates;

use keryu_infra::http::json;
pub use keryu_infra::http::{auth, problem};
mod context;
mod credentials;
pub mod idempotency;
pub mod rbac;
mod response;
mod routes;
pub mod schemas;
mod state;
mod subject_cache;
pub mod webhooks;

pub use credentials::hash_password;
pub use response::KERYU_POSITION;
pub use routes::{custodian_id_for_email, router};
pub use state::{AppState, Settings};
