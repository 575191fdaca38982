//! The master key, the per-owner data keys it wraps, and the [`Vault`] that uses them.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sqlx::PgPool;
use uuid::Uuid;

use super::envelope::{self, SealError};
use crate::event_store::{NewEvent, RecordedEvent, StreamName};

/// Bytes of an AES-256 key.
const KEY_BYTES: usize = 32;
/// Bytes of an AES-GCM nonce, stored in front of each ciphertext.
const NONCE_BYTES: usize = 12;
/// Most data keys a process keeps unwrapped; past it the cache starts over.
const KEY_CACHE_CAPACITY: usize = 10_000;
/// How long a process keeps opening personal data with a key it read, without asking the
/// database again: another process's erasure shows in this one's reads of the log after at
/// most this long. Read models and aggregates do not wait for it: the erasure event itself
/// clears them.
const OPENING_KEY_TTL: Duration = Duration::from_secs(30);

/// The master key used when none is configured: public, so fine on a laptop and fatal in
/// production (`Config::warnings` says so). Base64 of 32 bytes.
pub const DEVELOPMENT_MASTER_KEY: &str = "a2VyeXUtZGV2ZWxvcG1lbnQtbWFzdGVyLWtleS0hISE=";

/// The key every data key is wrapped with: 32 bytes, configured as base64
/// (`KERYU_MASTER_KEY`, e.g. `openssl rand -base64 32`). It never reaches the database.
#[derive(Clone)]
pub struct MasterKey(Arc<RandomizedNonceKey>);

/// The configured master key is not base64 of 32 bytes.
#[derive(Debug, thiserror::Error)]
#[error("the master key must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)")]
pub struct InvalidMasterKey;

impl MasterKey {
    /// Reads a master key from base64.
    ///
    /// # Errors
    /// [`InvalidMasterKey`] unless `encoded` is base64 of exactly 32 bytes.
    pub fn from_base64(encoded: &str) -> Result<Self, InvalidMasterKey> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| InvalidMasterKey)?;
        if bytes.len() != KEY_BYTES {
            return Err(InvalidMasterKey);
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, &bytes).map_err(|_| InvalidMasterKey)?;
        Ok(MasterKey(Arc::new(key)))
    }

    /// The public development key ([`DEVELOPMENT_MASTER_KEY`]).
    pub fn development() -> Self {
        Self::from_base64(DEVELOPMENT_MASTER_KEY).unwrap_or_else(|_| {
            unreachable!("the development master key is valid base64 of 32 bytes")
        })
    }

    /// A new random data key, wrapped for storage.
    fn new_wrapped_data_key(&self, owner: Uuid) -> Result<(DataKey, Vec<u8>), SealError> {
        let mut bytes = [0u8; KEY_BYTES];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| SealError::Crypto)?;
        let key = DataKey::from_bytes(&bytes)?;
        let wrapped = encrypt(&self.0, owner.as_bytes(), bytes.to_vec())?;
        Ok((key, wrapped))
    }

    /// Unwraps a stored data key; the owner's id is authenticated with it, so a wrapped key
    /// copied onto another owner's row does not open.
    fn unwrap_data_key(&self, owner: Uuid, wrapped: &[u8]) -> Result<DataKey, SealError> {
        let bytes =
            decrypt(&self.0, owner.as_bytes(), wrapped).map_err(|_| SealError::Unwrap { owner })?;
        DataKey::from_bytes(&bytes)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(********)")
    }
}

/// One owner's key for the personal fields of their events.
#[derive(Clone)]
pub(super) struct DataKey(Arc<RandomizedNonceKey>);

impl DataKey {
    fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map(|key| DataKey(Arc::new(key)))
            .map_err(|_| SealError::Crypto)
    }

    #[cfg(test)]
    pub(super) fn for_tests() -> Self {
        Self::throwaway().expect("random key")
    }

    /// A key nobody keeps: what data about an already erased owner is sealed with.
    fn throwaway() -> Result<Self, SealError> {
        let mut bytes = [0u8; KEY_BYTES];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| SealError::Crypto)?;
        Self::from_bytes(&bytes)
    }

    pub(super) fn encrypt(&self, aad: &[u8], plaintext: Vec<u8>) -> Result<Vec<u8>, SealError> {
        encrypt(&self.0, aad, plaintext)
    }

    pub(super) fn decrypt(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        decrypt(&self.0, aad, sealed)
    }
}

/// `nonce ‖ ciphertext ‖ tag`, with a fresh random nonce.
fn encrypt(
    key: &RandomizedNonceKey,
    aad: &[u8],
    mut in_out: Vec<u8>,
) -> Result<Vec<u8>, SealError> {
    let nonce = key
        .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
        .map_err(|_| SealError::Crypto)?;
    let mut sealed = nonce.as_ref().to_vec();
    sealed.append(&mut in_out);
    Ok(sealed)
}

fn decrypt(key: &RandomizedNonceKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < NONCE_BYTES {
        return Err(SealError::Crypto);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Crypto)?;
    let mut in_out = ciphertext.to_vec();
    let plaintext_len = key
        .open_in_place(nonce, Aad::from(aad), &mut in_out)
        .map_err(|_| SealError::Crypto)?
        .len();
    in_out.truncate(plaintext_len);
    Ok(in_out)
}

/// Encrypts personal fields on their way into the log and decrypts them on the way out; erases
/// an owner by destroying their key. Cheap to clone (one per process is enough).
#[derive(Clone)]
pub struct Vault {
    master: MasterKey,
    pool: PgPool,
    /// Data keys read or created, by owner. Sealing trusts an entry whatever its age (a key
    /// destroyed meanwhile by another process merely seals a little more data nobody can read
    /// back); opening trusts it for [`OPENING_KEY_TTL`], and an erasure for ever.
    keys: Arc<Mutex<HashMap<Uuid, CachedKey>>>,
}

/// A data key as last read: `None` once destroyed.
#[derive(Clone)]
struct CachedKey {
    key: Option<DataKey>,
    read_at: Instant,
}

impl CachedKey {
    /// The key, or `None` when erased, if opening may still rely on this entry.
    fn for_opening(&self) -> Option<Option<DataKey>> {
        match &self.key {
            None => Some(None),
            Some(key) if self.read_at.elapsed() < OPENING_KEY_TTL => Some(Some(key.clone())),
            Some(_) => None,
        }
    }
}

/// Opens the envelopes of `events` with `keys` (`None`: the owner was erased).
fn open_with(
    keys: &HashMap<Uuid, Option<DataKey>>,
    events: &mut [RecordedEvent],
) -> Result<(), SealError> {
    for event in events {
        envelope::open(&mut event.data, event.event_id, |owner| {
            keys.get(&owner)
                .cloned()
                .ok_or(SealError::MissingKey { owner })
        })?;
    }
    Ok(())
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault").finish_non_exhaustive()
    }
}

impl Vault {
    /// A vault keeping its data keys in `pool`'s `data_keys` table, wrapped by `master`.
    pub fn new(pool: PgPool, master: MasterKey) -> Self {
        Vault {
            master,
            pool,
            keys: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Moves the personal fields of each event into its sealed envelope.
    ///
    /// # Errors
    /// When the database fails or a stored data key does not unwrap (another master key).
    pub async fn seal(
        &self,
        stream: &StreamName,
        events: &mut [NewEvent],
    ) -> Result<(), SealError> {
        for event in events {
            let Some(personal) = event.personal else {
                continue;
            };
            let owner = envelope::owner_of(stream, personal.owner)?;
            let key = self.sealing_key(owner).await?;
            envelope::seal(
                &mut event.data,
                owner,
                personal.fields,
                &key,
                event.event_id,
            )?;
        }
        Ok(())
    }

    /// Puts the personal fields back into each event that has an envelope, as `null` where the
    /// owner was erased. At most one query for the whole page, for the owners whose key this
    /// process has not read in the last [`OPENING_KEY_TTL`].
    ///
    /// # Errors
    /// When the database fails, a data key does not unwrap or an envelope does not open (the
    /// master key or the data was changed).
    pub async fn open(&self, events: &mut [RecordedEvent]) -> Result<(), SealError> {
        let keys = self.opening_keys(events.iter()).await?;
        open_with(&keys, events)
    }

    /// [`Self::open`] for several reads at once: one query for the keys of all of them, and an
    /// answer of its own for each, so that one envelope that does not open fails its own read
    /// only.
    ///
    /// # Errors
    /// When the database fails or a data key does not unwrap: then nothing is opened.
    pub(crate) async fn open_each(
        &self,
        reads: &mut [Vec<RecordedEvent>],
    ) -> Result<Vec<Result<(), SealError>>, SealError> {
        let keys = self.opening_keys(reads.iter().flatten()).await?;
        Ok(reads
            .iter_mut()
            .map(|events| open_with(&keys, events))
            .collect())
    }

    /// The keys (or erasures) of every owner with an envelope among `events`: from the cache
    /// where it may still be relied on, the rest with one query.
    async fn opening_keys<'a>(
        &self,
        events: impl Iterator<Item = &'a RecordedEvent>,
    ) -> Result<HashMap<Uuid, Option<DataKey>>, SealError> {
        let owners: HashSet<Uuid> = events
            .filter_map(|event| envelope::sealed_owner(&event.data))
            .collect::<Result<_, _>>()?;
        let mut keys: HashMap<Uuid, Option<DataKey>> = HashMap::with_capacity(owners.len());
        let mut unknown = Vec::new();
        {
            let cache = self.cache();
            for owner in owners {
                match cache.get(&owner).and_then(CachedKey::for_opening) {
                    Some(key) => {
                        keys.insert(owner, key);
                    }
                    None => unknown.push(owner),
                }
            }
        }
        if !unknown.is_empty() {
            let rows: Vec<(Uuid, Option<Vec<u8>>)> = sqlx::query_as(
                "SELECT owner_id, wrapped_key FROM data_keys WHERE owner_id = ANY($1)",
            )
            .bind(&unknown)
            .fetch_all(&self.pool)
            .await?;
            for (owner, wrapped) in rows {
                let key = wrapped
                    .map(|wrapped| self.master.unwrap_data_key(owner, &wrapped))
                    .transpose()?;
                self.remember(owner, key.clone());
                keys.insert(owner, key);
            }
        }
        Ok(keys)
    }

    /// Erases `owner`: destroys their data key, so every personal field sealed for them, in
    /// every event past and future, reads back as `null`. Idempotent; an owner without a key
    /// yet gets a destroyed one, so nothing written about them later is readable either.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn erase(&self, owner: Uuid) -> Result<(), SealError> {
        sqlx::query(
            "INSERT INTO data_keys (owner_id, wrapped_key, shredded_at) VALUES ($1, NULL, now()) \
             ON CONFLICT (owner_id) DO UPDATE \
             SET wrapped_key = NULL, shredded_at = coalesce(data_keys.shredded_at, now())",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        self.remember(owner, None);
        Ok(())
    }

    /// The owner's data key, created on first use; a throwaway one once they are erased.
    async fn sealing_key(&self, owner: Uuid) -> Result<DataKey, SealError> {
        if let Some(cached) = self.cache().get(&owner) {
            return match &cached.key {
                Some(key) => Ok(key.clone()),
                None => DataKey::throwaway(),
            };
        }
        let (candidate, wrapped) = self.master.new_wrapped_data_key(owner)?;
        // The insert loses to a concurrent one (or to an erasure) and then reads the winner.
        let stored: Option<Option<Vec<u8>>> = sqlx::query_scalar(
            "WITH created AS ( \
                 INSERT INTO data_keys (owner_id, wrapped_key) VALUES ($1, $2) \
                 ON CONFLICT (owner_id) DO NOTHING RETURNING wrapped_key) \
             SELECT wrapped_key FROM created \
             UNION ALL SELECT wrapped_key FROM data_keys WHERE owner_id = $1 \
             LIMIT 1",
        )
        .bind(owner)
        .bind(&wrapped)
        .fetch_optional(&self.pool)
        .await?;
        let key = match stored {
            // Created now by this call.
            Some(Some(stored)) if stored == wrapped => candidate,
            Some(Some(stored)) => self.master.unwrap_data_key(owner, &stored)?,
            Some(None) => {
                self.remember(owner, None);
                return DataKey::throwaway();
            }
            // A concurrent insert committed after this statement's snapshot: read it.
            None => return Box::pin(self.sealing_key(owner)).await,
        };
        self.remember(owner, Some(key.clone()));
        Ok(key)
    }

    /// Caches what the database just said of `owner`'s key.
    fn remember(&self, owner: Uuid, key: Option<DataKey>) {
        let mut cache = self.cache();
        if cache.len() >= KEY_CACHE_CAPACITY {
            cache.clear();
        }
        let read_at = Instant::now();
        cache.insert(owner, CachedKey { key, read_at });
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, CachedKey>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_opens_only_for_its_owner_and_master_key() {
        let master = MasterKey::development();
        let owner = Uuid::from_u128(1);
        let (key, wrapped) = master.new_wrapped_data_key(owner).expect("wraps");
        let unwrapped = master.unwrap_data_key(owner, &wrapped).expect("unwraps");
        let sealed = key.encrypt(b"event", b"secret".to_vec()).expect("seals");
        assert_eq!(
            unwrapped.decrypt(b"event", &sealed).expect("opens"),
            b"secret"
        );
        assert!(unwrapped.decrypt(b"other event", &sealed).is_err());
        assert!(
            master
                .unwrap_data_key(Uuid::from_u128(2), &wrapped)
                .is_err()
        );
        let other = MasterKey::from_base64(&STANDARD.encode([7u8; 32])).expect("valid");
        assert!(other.unwrap_data_key(owner, &wrapped).is_err());
    }

    #[test]
    fn opening_trusts_a_key_for_a_while_and_an_erasure_for_ever() {
        let long_ago = Instant::now()
            .checked_sub(OPENING_KEY_TTL + Duration::from_secs(1))
            .expect("the clock is past the TTL");
        let fresh = CachedKey {
            key: Some(DataKey::for_tests()),
            read_at: Instant::now(),
        };
        assert!(matches!(fresh.for_opening(), Some(Some(_))));
        let stale = CachedKey {
            read_at: long_ago,
            ..fresh
        };
        assert!(
            stale.for_opening().is_none(),
            "read again from the database"
        );
        let erased = CachedKey {
            key: None,
            read_at: long_ago,
        };
        assert!(matches!(erased.for_opening(), Some(None)));
    }

    #[test]
    fn a_master_key_is_base64_of_32_bytes() {
        assert!(MasterKey::from_base64(&STANDARD.encode([1u8; 32])).is_ok());
        assert!(MasterKey::from_base64(&STANDARD.encode([1u8; 16])).is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert_eq!(
            format!("{:?}", MasterKey::development()),
            "MasterKey(********)"
        );
    }
}
