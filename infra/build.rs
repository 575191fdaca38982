//! `sqlx::migrate!` embeds `migrations/` at compile time, but cargo cannot see that: without
//! this, a new or edited migration is not built in until some Rust file of the crate changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
