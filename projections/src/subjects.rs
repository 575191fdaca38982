//! The subjects read model: details, active flag and assigned custodians.

use keryu_domain::subject::SubjectEvent;
use keryu_infra::event_store::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::projection::{Applied, Projection};

/// Folds subject events into `subjects` and `subject_custodians`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubjectsProjection;

impl Projection for SubjectsProjection {
    fn name(&self) -> &'static str {
        "subjects"
    }

    fn tables_sql(&self) -> &'static str {
        include_str!("../sql/subjects.sql")
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
                sqlx::query(
                    "INSERT INTO subjects (id, name, phone, preferences, active, created_at, \
                     updated_at, position) VALUES ($1, $2, $3, $4, true, $5, $5, $6) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(&registered.name)
                .bind(registered.phone.as_str())
                .bind(&registered.preferences)
                .bind(registered.at)
                .bind(position)
                .execute(connection)
                .await?;
            }
            SubjectEvent::SubjectUpdated(update) => {
                sqlx::query(
                    "UPDATE subjects SET name = coalesce($2, name), phone = coalesce($3, phone), \
                     preferences = coalesce($4, preferences), updated_at = $5, position = $6 \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(update.name.as_deref())
                .bind(update.phone.as_ref().map(|phone| phone.as_str()))
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
