//! The subjects notifications are created for, kept in memory so that creating a notification
//! does not read and decode the subject's stream every time.
//!
//! The cache is only ever a guess: a notification decided from a cached subject is appended
//! with a precondition that the subject's stream is still at the cached version, so a subject
//! changed since (deactivated, erased, given another number — here or in another process) is
//! caught by the store, the entry dropped and the subject read again. Nothing in the cache has
//! to be invalidated for correctness; [`SubjectCache::forget`] after a subject command only
//! spares the next notification that retry, and keeps an erased subject's number no longer in
//! memory than needed.
//!
//! It holds phone numbers in memory only; [`PhoneNumber`]'s `Debug` masks them, and nothing
//! here logs an entry. An erased subject's entry is dropped at once in the process that erased
//! it, and in any other at its next notification for the subject (refused by the store) or
//! when evicted.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use keryu_domain::subject::Subject;
use keryu_domain::{CustodianId, PhoneNumber, SubjectId};
use keryu_infra::event_store::StreamVersion;
use keryu_infra::repository::Loaded;

/// Most subjects kept: a few hundred bytes each, so a few MiB at most.
const CAPACITY: usize = 10_000;

/// What creating a notification needs of an active subject, as of one version of its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    /// Where notifications go.
    pub phone: PhoneNumber,
    /// Who may notify the subject besides admins and integrators.
    pub custodians: BTreeSet<CustodianId>,
    /// The version of the subject's stream these fields are from: the append's precondition.
    pub version: StreamVersion,
}

impl Recipient {
    /// The recipient a loaded subject is, `None` when it cannot be notified (missing, inactive,
    /// erased or without a number).
    pub fn of(loaded: Loaded<Subject>) -> Option<Recipient> {
        let Loaded { state, version } = loaded;
        match (state.phone, version) {
            (Some(phone), Some(version)) if state.active => Some(Recipient {
                phone,
                custodians: state.custodians,
                version,
            }),
            _ => None,
        }
    }
}

/// A bounded map of subject id to [`Recipient`], shared by the handlers of one process.
///
/// A full cache makes room by dropping an arbitrary entry (the map's hash order, which is
/// random): no bookkeeping on the hot path, and a miss only costs the read the cache saves.
#[derive(Debug)]
pub struct SubjectCache {
    entries: Mutex<HashMap<SubjectId, Recipient>>,
    capacity: usize,
}

impl Default for SubjectCache {
    fn default() -> Self {
        SubjectCache::with_capacity(CAPACITY)
    }
}

impl SubjectCache {
    /// A cache of at most `capacity` subjects (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        SubjectCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The cached recipient of `id`, if any.
    pub fn get(&self, id: SubjectId) -> Option<Recipient> {
        self.lock().get(&id).cloned()
    }

    /// Remembers `recipient` for `id`, unless a newer version of the subject is cached already
    /// (a slower request filling what a faster one has already replaced).
    pub fn insert(&self, id: SubjectId, recipient: Recipient) {
        let mut entries = self.lock();
        if entries
            .get(&id)
            .is_some_and(|cached| cached.version > recipient.version)
        {
            return;
        }
        if entries.len() >= self.capacity
            && !entries.contains_key(&id)
            && let Some(evicted) = entries.keys().next().copied()
        {
            entries.remove(&evicted);
        }
        entries.insert(id, recipient);
    }

    /// Drops what is cached of `id`: the subject changed, or the store refused a notification
    /// decided from the entry.
    pub fn forget(&self, id: SubjectId) {
        self.lock().remove(&id);
    }

    /// The map; a handler that panicked while holding it left it consistent (every operation
    /// is a single map call), so a poisoned lock is used as it is.
    fn lock(&self) -> MutexGuard<'_, HashMap<SubjectId, Recipient>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipient(version: StreamVersion) -> Recipient {
        Recipient {
            phone: "+14155238886".parse().expect("phone"),
            custodians: BTreeSet::new(),
            version,
        }
    }

    #[test]
    fn keeps_the_newest_version_and_forgets_on_demand() {
        let cache = SubjectCache::with_capacity(4);
        let id = SubjectId(uuid::Uuid::now_v7());
        cache.insert(id, recipient(3));
        cache.insert(id, recipient(2));
        assert_eq!(cache.get(id).map(|r| r.version), Some(3));
        cache.insert(id, recipient(4));
        assert_eq!(cache.get(id).map(|r| r.version), Some(4));
        cache.forget(id);
        assert_eq!(cache.get(id), None);
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        let cache = SubjectCache::with_capacity(3);
        let ids: Vec<SubjectId> = (0..10).map(|_| SubjectId(uuid::Uuid::now_v7())).collect();
        for id in &ids {
            cache.insert(*id, recipient(0));
        }
        assert_eq!(cache.lock().len(), 3);
        assert!(cache.get(ids[9]).is_some(), "the last one in is kept");
    }
}
