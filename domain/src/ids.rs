//! Typed identifiers, so a subject id can never be passed where a notification id is meant.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                $name(id)
            }
        }
    };
}

typed_id!(
    /// Identifies one notification (and its stream `notification-<id>`).
    NotificationId
);
typed_id!(
    /// Identifies one subject, a person notifications are about.
    SubjectId
);
typed_id!(
    /// Identifies one message template across all its versions.
    TemplateId
);
typed_id!(
    /// Identifies one alarm.
    AlarmId
);
typed_id!(
    /// Identifies one custodian, a user of Keryu.
    CustodianId
);
