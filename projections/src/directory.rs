//! The directory read model: templates (latest version and approval state) and custodians
//! (without their password hashes: the read side never holds a secret).

use chrono::{DateTime, Utc};
use keryu_domain::custodian::CustodianEvent;
use keryu_domain::template::{TemplateContent, TemplateEvent};
use keryu_infra::event_store::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::projection::{Applied, Projection};

/// Folds template and custodian events into `templates` and `custodians`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirectoryProjection;

impl Projection for DirectoryProjection {
    fn name(&self) -> &'static str {
        "directory"
    }

    fn tables_sql(&self) -> &'static str {
        include_str!("../sql/directory.sql")
    }

    fn categories(&self) -> &'static [&'static str] {
        &["template", "custodian"]
    }

    async fn apply(
        &self,
        connection: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<Vec<Applied>, sqlx::Error> {
        // Template and custodian events are few (nothing like a notification's), so one statement
        // each costs nothing worth batching.
        let mut applied = Vec::with_capacity(events.len());
        for recorded in events {
            applied.push(self.apply_event(connection, recorded).await?);
        }
        Ok(applied)
    }
}

impl DirectoryProjection {
    async fn apply_event(
        &self,
        connection: &mut PgConnection,
        recorded: &RecordedEvent,
    ) -> Result<Applied, sqlx::Error> {
        let Ok(id) = recorded.stream.id().parse::<Uuid>() else {
            return Ok(Applied::Ignored);
        };
        let position = i64::try_from(recorded.position.0).unwrap_or(i64::MAX);
        match recorded.stream.category() {
            "template" => match recorded.to_domain::<TemplateEvent>() {
                Ok(event) => apply_template(connection, id, position, event).await,
                Err(_) => Ok(Applied::Unknown),
            },
            "custodian" => match recorded.to_domain::<CustodianEvent>() {
                Ok(event) => apply_custodian(connection, id, position, event).await,
                Err(_) => Ok(Applied::Unknown),
            },
            _ => Ok(Applied::Ignored),
        }
    }
}

async fn apply_template(
    connection: &mut PgConnection,
    id: Uuid,
    position: i64,
    event: TemplateEvent,
) -> Result<Applied, sqlx::Error> {
    let version = |version: u32| i32::try_from(version).unwrap_or(i32::MAX);
    match event {
        TemplateEvent::TemplateCreated(created) => {
            let TemplateContent {
                content,
                variables,
                language,
                content_sid,
            } = created.content;
            sqlx::query(
                "INSERT INTO templates (id, name, version, status, content, variables, language, \
                 content_sid, created_at, updated_at, position) \
                 VALUES ($1, $2, 1, 'draft', $3, $4, $5, $6, $7, $7, $8) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(&created.name)
            .bind(content)
            .bind(sqlx::types::Json(variables))
            .bind(language)
            .bind(content_sid)
            .bind(created.at)
            .bind(position)
            .execute(connection)
            .await?;
        }
        TemplateEvent::TemplateEdited(changed) | TemplateEvent::TemplateVersionCreated(changed) => {
            let TemplateContent {
                content,
                variables,
                language,
                content_sid,
            } = changed.content;
            sqlx::query(
                "UPDATE templates SET version = $2, status = 'draft', content = $3, \
                 variables = $4, language = $5, content_sid = $6, rejection_reason = NULL, \
                 updated_at = $7, position = $8 WHERE id = $1",
            )
            .bind(id)
            .bind(version(changed.version))
            .bind(content)
            .bind(sqlx::types::Json(variables))
            .bind(language)
            .bind(content_sid)
            .bind(changed.at)
            .bind(position)
            .execute(connection)
            .await?;
        }
        TemplateEvent::TemplateSubmitted(review) => {
            set_template_status(connection, id, position, "submitted", review.at).await?;
        }
        TemplateEvent::TemplateApproved(review) => {
            set_template_status(connection, id, position, "approved", review.at).await?;
            sqlx::query("UPDATE templates SET approved_version = $2 WHERE id = $1")
                .bind(id)
                .bind(version(review.version))
                .execute(connection)
                .await?;
        }
        TemplateEvent::TemplateRejected(review) => {
            set_template_status(connection, id, position, "rejected", review.at).await?;
            sqlx::query("UPDATE templates SET rejection_reason = $2 WHERE id = $1")
                .bind(id)
                .bind(review.reason)
                .execute(connection)
                .await?;
        }
    }
    Ok(Applied::Changed)
}

async fn set_template_status(
    connection: &mut PgConnection,
    id: Uuid,
    position: i64,
    status: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE templates SET status = $2, updated_at = $3, position = $4 WHERE id = $1")
        .bind(id)
        .bind(status)
        .bind(at)
        .bind(position)
        .execute(connection)
        .await?;
    Ok(())
}

async fn apply_custodian(
    connection: &mut PgConnection,
    id: Uuid,
    position: i64,
    event: CustodianEvent,
) -> Result<Applied, sqlx::Error> {
    let query = match event {
        CustodianEvent::CustodianCreated(created) => sqlx::query(
            "INSERT INTO custodians (id, email, name, role, active, created_at, updated_at, \
             position) VALUES ($1, $2, $3, $4, true, $5, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(created.email.to_string())
        .bind(created.name)
        .bind(created.role.as_str())
        .bind(created.at)
        .bind(position),
        CustodianEvent::CustodianRoleChanged(changed) => sqlx::query(
            "UPDATE custodians SET role = $2, updated_at = $3, position = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(changed.role.as_str())
        .bind(changed.at)
        .bind(position),
        // The hash is a secret and stays out of the read model; only the time is kept.
        CustodianEvent::CustodianPasswordChanged(changed) => {
            sqlx::query("UPDATE custodians SET updated_at = $2, position = $3 WHERE id = $1")
                .bind(id)
                .bind(changed.at)
                .bind(position)
        }
        CustodianEvent::CustodianDeactivated(deactivated) => sqlx::query(
            "UPDATE custodians SET active = false, updated_at = $2, position = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(deactivated.at)
        .bind(position),
    };
    query.execute(connection).await?;
    Ok(Applied::Changed)
}
