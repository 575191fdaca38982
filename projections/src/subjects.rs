//! The subjects read model: details, active flag and assigned custodians. An erased subject
//! keeps its row, with its personal columns NULL and `erased` set.

use keryu_domain::PhoneNumber;
use keryu_domain::subject::SubjectEvent;
use keryu_infra::event_store::RecordedEvent;
use keryu_infra::personal_data::PhoneLookup;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::projection::{Applied, Projection};

/// Folds subject events into `subjects` and `subject_custodians`.
#[derive(Debug, Clone)]
pub struct SubjectsProjection {
    phones: PhoneLookup,
}

impl SubjectsProjection {
    /// The projection, fingerprinting numbers with `phones` for lookups by number.
    pub fn new(phones: PhoneLookup) -> Self {
        SubjectsProjection { phones }
    }
}

impl Projection for SubjectsProjection {
    fn name(&self) -> &'static str {
        "subjects"
    }

    fn tables_sql(&self) -> &'static str {
        include_str!("../sql/subjects.sql")
    }

    fn categories(&self) -> &'static [&'static str] {
        &["subject"]
    }

    async fn apply(
        &self,
        connection: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<Vec<Applied>, sqlx::Error> {
        // Subject events are few (nothing like a notification's), so one statement
        // each costs nothing worth batching.
        let mut applied = Vec::with_capacity(events.len());
        for recorded in events {
            applied.push(self.apply_event(connection, recorded).await?);
        }
        Ok(applied)
    }
}

impl SubjectsProjection {
    async fn apply_event(
        &self,
        connection: &mut PgConnection,
        recorded: &RecordedEvent,
    ) -> Result<Applied, sqlx::Error> {
        if recorded.stream.category() != "subject" {
            return Ok(Applied::Ignored);
        }
        let (Ok(event), Ok(id)) = (
            recorded.to_domain::<SubjectEvent>(),
            recorded.stream.id().parse::<Uuid>(),
        ) else {
            return Ok(Applied::Unknown);
        };
        let position = i64::try_from(recorded.position.0).unwrap_or(i64::MAX);
        match event {
            SubjectEvent::SubjectRegistered(registered) => {
                let phone = registered.phone.known();
                sqlx::query(
                    "INSERT INTO subjects (id, name, phone, phone_fingerprint, preferences, \
                     active, created_at, updated_at, position) \
                     VALUES ($1, $2, $3, $4, $5, true, $6, $6, $7) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(registered.name.known())
                .bind(phone.map(PhoneNumber::as_str))
                .bind(phone.map(|phone| self.phones.fingerprint(phone)))
                .bind(Some(&registered.preferences).filter(|p| !p.is_null()))
                .bind(registered.at)
                .bind(position)
                .execute(connection)
                .await?;
            }
            SubjectEvent::SubjectUpdated(update) => {
                sqlx::query(
                    "UPDATE subjects SET name = coalesce($2, name), phone = coalesce($3, phone), \
                     phone_fingerprint = coalesce($4, phone_fingerprint), \
                     preferences = coalesce($5, preferences), updated_at = $6, position = $7 \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(update.name.as_deref())
                .bind(update.phone.as_ref().map(PhoneNumber::as_str))
                .bind(
                    update
                        .phone
                        .as_ref()
                        .map(|phone| self.phones.fingerprint(phone)),
                )
                .bind(update.preferences.as_ref())
                .bind(update.at)
                .bind(position)
                .execute(connection)
                .await?;
            }
            SubjectEvent::SubjectDeactivated(deactivated) => {
                sqlx::query(
                    "UPDATE subjects SET active = false, updated_at = $2, position = $3 \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(deactivated.at)
                .bind(position)
                .execute(connection)
                .await?;
            }
            SubjectEvent::SubjectErased(erased) => {
                sqlx::query(
                    "UPDATE subjects SET name = NULL, phone = NULL, phone_fingerprint = NULL, \
                     preferences = NULL, active = false, erased = true, updated_at = $2, \
                     position = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(erased.at)
                .bind(position)
                .execute(connection)
                .await?;
            }
            SubjectEvent::SubjectCustodiansAssigned(assigned) => {
                let custodians: Vec<Uuid> = assigned.custodian_ids.iter().map(|c| c.0).collect();
                sqlx::query("DELETE FROM subject_custodians WHERE subject_id = $1")
                    .bind(id)
                    .execute(&mut *connection)
                    .await?;
                sqlx::query(
                    "INSERT INTO subject_custodians (subject_id, custodian_id) \
                     SELECT $1, unnest($2::uuid[])",
                )
                .bind(id)
                .bind(&custodians)
                .execute(&mut *connection)
                .await?;
                sqlx::query("UPDATE subjects SET updated_at = $2, position = $3 WHERE id = $1")
                    .bind(id)
                    .bind(assigned.at)
                    .bind(position)
                    .execute(connection)
                    .await?;
            }
        }
        Ok(Applied::Changed)
    }
}
