//! The notification's lifecycle states, as the API and read models name them.

use serde::{Deserialize, Serialize};

/// Where a notification is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    /// Accepted (a transient state: always followed by Scheduled or Queued).
    #[default]
    Created,
    /// Waiting for its scheduled time.
    Scheduled,
    /// Waiting for a dispatcher.
    Queued,
    /// A dispatcher is sending it.
    Processing,
    /// The provider accepted it.
    Sent,
    /// It reached the handset.
    Delivered,
    /// The recipient read it.
    Read,
    /// Waiting for the next attempt.
    RetryScheduled,
    /// No more attempts (until a manual retry).
    Failed,
    /// Stopped before being sent.
    Cancelled,
    /// The provider could not deliver it after sending.
    Undelivered,
}

impl NotificationStatus {
    /// Every status, for exhaustive tests and dashboards.
    pub const ALL: [NotificationStatus; 11] = [
        NotificationStatus::Created,
        NotificationStatus::Scheduled,
        NotificationStatus::Queued,
        NotificationStatus::Processing,
        NotificationStatus::Sent,
        NotificationStatus::Delivered,
        NotificationStatus::Read,
        NotificationStatus::RetryScheduled,
        NotificationStatus::Failed,
        NotificationStatus::Cancelled,
        NotificationStatus::Undelivered,
    ];

    /// The status as the API and read models spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Created => "created",
            NotificationStatus::Scheduled => "scheduled",
            NotificationStatus::Queued => "queued",
            NotificationStatus::Processing => "processing",
            NotificationStatus::Sent => "sent",
            NotificationStatus::Delivered => "delivered",
            NotificationStatus::Read => "read",
            NotificationStatus::RetryScheduled => "retry_scheduled",
            NotificationStatus::Failed => "failed",
            NotificationStatus::Cancelled => "cancelled",
            NotificationStatus::Undelivered => "undelivered",
        }
    }
}
