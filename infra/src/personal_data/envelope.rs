//! The stored form of an event's personal fields: one envelope in place of the fields.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keryu_domain::DataOwner;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::keys::DataKey;
use crate::event_store::StreamName;

/// The member of a stored payload that holds its sealed personal fields. The `$` keeps it apart
/// from any payload field name (serde field names are identifiers).
pub const PERSONAL_FIELD: &str = "$personal";

/// Personal data could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The database holding the data keys failed.
    #[error("data keys: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored data key does not unwrap: the configured master key is not the one it was
    /// wrapped with, or the row was altered.
    #[error(
        "the data key of {owner} does not unwrap: is KERYU_MASTER_KEY the one it was written with?"
    )]
    Unwrap {
        /// Whose key.
        owner: Uuid,
    },
    /// An envelope names an owner without any row in `data_keys`.
    #[error("no data key for {owner}")]
    MissingKey {
        /// Whose key.
        owner: Uuid,
    },
    /// Encryption failed, or a ciphertext does not authenticate (it was altered or moved).
    #[error("personal data does not encrypt or authenticate")]
    Crypto,
    /// The payload or envelope has not the expected shape.
    #[error("malformed personal data: {0}")]
    Malformed(String),
}

/// The envelope as stored: readable owner and field names, sealed values.
#[derive(Serialize, Deserialize)]
struct Envelope {
    owner: Uuid,
    fields: Vec<String>,
    /// base64 of `nonce ‖ ciphertext ‖ tag`.
    sealed: String,
}

/// The id of the person an event's personal data belongs to.
pub(super) fn owner_of(stream: &StreamName, owner: DataOwner) -> Result<Uuid, SealError> {
    match owner {
        DataOwner::Other(owner) => Ok(owner),
        DataOwner::ThisStream => stream.id().parse().map_err(|_| {
            SealError::Malformed(format!("stream {stream} is not named after a UUID"))
        }),
    }
}

/// Replaces `fields` of the payload by their envelope, sealed for `event_id` only. Fields the
/// payload omits are left out; with none present the payload stays as it is.
pub(super) fn seal(
    data: &mut Value,
    owner: Uuid,
    fields: &[&str],
    key: &DataKey,
    event_id: Uuid,
) -> Result<(), SealError> {
    let Value::Object(payload) = data else {
        return Err(SealError::Malformed("the payload is not an object".into()));
    };
    let mut personal = Map::new();
    for field in fields {
        if let Some(value) = payload.remove(*field) {
            personal.insert((*field).to_owned(), value);
        }
    }
    if personal.is_empty() {
        return Ok(());
    }
    let envelope = Envelope {
        owner,
        fields: personal.keys().cloned().collect(),
        sealed: STANDARD.encode(key.encrypt(
            event_id.as_bytes(),
            Value::Object(personal).to_string().into_bytes(),
        )?),
    };
    let envelope = serde_json::to_value(envelope).map_err(malformed)?;
    payload.insert(PERSONAL_FIELD.to_owned(), envelope);
    Ok(())
}

/// The owner of a payload's envelope, if it has one.
pub(super) fn sealed_owner(data: &Value) -> Option<Result<Uuid, SealError>> {
    let owner = data.get(PERSONAL_FIELD)?.get("owner")?;
    Some(serde_json::from_value(owner.clone()).map_err(malformed))
}

/// Puts the sealed fields back into the payload: decrypted with the owner's key, or `null`
/// each when `key_of` says the owner was erased (`Ok(None)`).
pub(super) fn open(
    data: &mut Value,
    event_id: Uuid,
    key_of: impl Fn(Uuid) -> Result<Option<DataKey>, SealError>,
) -> Result<(), SealError> {
    let Some(raw) = data
        .as_object_mut()
        .and_then(|payload| payload.remove(PERSONAL_FIELD))
    else {
        return Ok(());
    };
    let envelope: Envelope = serde_json::from_value(raw).map_err(malformed)?;
    let fields = match key_of(envelope.owner)? {
        Some(key) => {
            let sealed = STANDARD.decode(&envelope.sealed).map_err(malformed)?;
            let plaintext = key.decrypt(event_id.as_bytes(), &sealed)?;
            match serde_json::from_slice(&plaintext).map_err(malformed)? {
                Value::Object(fields) => fields,
                _ => {
                    return Err(SealError::Malformed(
                        "sealed fields are not an object".into(),
                    ));
                }
            }
        }
        None => envelope
            .fields
            .into_iter()
            .map(|field| (field, Value::Null))
            .collect(),
    };
    if let Some(payload) = data.as_object_mut() {
        payload.extend(fields);
    }
    Ok(())
}

fn malformed(error: impl std::fmt::Display) -> SealError {
    SealError::Malformed(error.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key() -> DataKey {
        DataKey::for_tests()
    }

    #[test]
    fn sealed_fields_leave_the_payload_and_come_back() {
        let (owner, event_id, key) = (Uuid::from_u128(7), Uuid::from_u128(9), key());
        let original =
            json!({"id": "n-1", "recipient": "+34600111222", "content": {"body": "Hola"}});
        let mut data = original.clone();
        seal(
            &mut data,
            owner,
            &["recipient", "content", "absent"],
            &key,
            event_id,
        )
        .expect("test value");
        let stored = data.to_string();
        assert!(
            !stored.contains("+34600111222") && !stored.contains("Hola"),
            "{stored}"
        );
        assert_eq!(data["id"], "n-1");
        assert_eq!(
            data[PERSONAL_FIELD]["fields"],
            json!(["content", "recipient"])
        );
        assert_eq!(
            sealed_owner(&data)
                .expect("test value")
                .expect("test value"),
            owner
        );

        let mut opened = data.clone();
        open(&mut opened, event_id, |_| Ok(Some(key.clone()))).expect("test value");
        assert_eq!(opened, original);

        let mut erased = data.clone();
        open(&mut erased, event_id, |_| Ok(None)).expect("test value");
        assert_eq!(
            erased,
            json!({"id": "n-1", "recipient": null, "content": null})
        );

        let mut moved = data;
        assert!(open(&mut moved, Uuid::from_u128(10), |_| Ok(Some(key.clone()))).is_err());
    }

    #[test]
    fn a_payload_without_personal_fields_is_left_alone() {
        let mut data = json!({"at": "2026-11-29T00:00:00Z"});
        seal(&mut data, Uuid::nil(), &["phone"], &key(), Uuid::nil()).expect("test value");
        assert_eq!(data, json!({"at": "2026-11-29T00:00:00Z"}));
        assert!(sealed_owner(&data).is_none());
    }
}
