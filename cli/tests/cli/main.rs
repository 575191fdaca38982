//! The `keryu` binary, run as a user would run it, against the local PostgreSQL.

mod delivery;
mod events;
mod migrate;
mod ops;
mod serve;
mod support;
mod upcast;
