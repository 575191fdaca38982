//! Personal data in the log: encrypted with a key per person, readable until that key is
//! destroyed.
//!
//! Events declare their personal fields ([`keryu_domain::ContainsPersonalData`]). On append the
//! store moves those fields into one envelope per event, `"$personal": {"owner", "fields",
//! "sealed"}`, where `sealed` is the fields' JSON encrypted with AES-256-GCM under the owner's
//! data key, authenticated with the event id (so a ciphertext cannot be moved to another event).
//! Data keys are random, one per owner (a subject, a custodian), and stored wrapped by the
//! master key from configuration ([`MasterKey`]) in `data_keys`. On read the store opens the
//! envelopes again; where the owner's key was destroyed ([`Vault::erase`]) the fields read back
//! as `null`, which the domain reads as [`keryu_domain::Personal::Erased`].
//!
//! The log itself never changes: its hash chain covers the envelopes, so erasure leaves it
//! verifiable. Field *names* and owners stay readable; values do not.

mod envelope;
mod keys;
mod phone_lookup;

pub use envelope::{PERSONAL_FIELD, SealError};
pub use keys::{DEVELOPMENT_MASTER_KEY, InvalidMasterKey, MasterKey, Vault};
pub use phone_lookup::PhoneLookup;
