//! The event store's contract, run against every adapter compiled into this build.
//!
//! `conformance` is written once against the `EventStore` trait; each adapter instantiates it
//! with [`conformance_suite!`]. Adapter-specific proofs (PostgreSQL's write lock) live beside it.
//! Every test gets a fresh, migrated database from `#[sqlx::test]`.

mod conformance;
mod postgres_log;
mod support;

use keryu_infra::personal_data::MasterKey;
use keryu_infra::postgres::PgEventStore;
use sqlx::PgPool;

/// Declares one `#[sqlx::test]` per conformance case, each on a fresh PostgreSQL database.
macro_rules! conformance_suite {
    ($($case:ident),* $(,)?) => {
        mod postgres_conformance {
            use super::*;
            $(
                #[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
                async fn $case(pool: PgPool) {
                    conformance::$case(&PgEventStore::new(pool, MasterKey::development())).await;
                }
            )*
        }
    };
}

conformance_suite!(
    appends_a_new_stream_and_reads_it_back,
    no_stream_is_refused_once_the_stream_exists,
    exact_version_is_the_optimistic_lock,
    any_version_appends_whatever_the_state,
    an_empty_append_is_refused,
    retrying_an_append_returns_the_first_result,
    reusing_some_event_ids_is_a_conflict,
    a_precondition_on_another_stream_guards_the_append,
    reads_a_stream_from_a_version_with_a_limit,
    reads_the_global_log_in_pages,
    concurrent_writers_to_one_stream_never_both_win,
    a_subscription_catches_up_then_follows_live,
    many_writers_and_one_follower_lose_nothing,
);
