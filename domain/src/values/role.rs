//! What a user of Keryu may do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::error::Violation;

/// The roles of Keryu's access control. What each may do is decided at the API's edge; the
/// domain only records which role a custodian has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including custodian administration and template approval.
    Admin,
    /// A person looking after subjects: only their subjects and those subjects' data.
    Custodian,
    /// A system posting notifications, subjects and alarms.
    Integrator,
    /// Read-only access, including the event log.
    Auditor,
}

impl Role {
    /// Every role, for exhaustive checks.
    pub const ALL: [Role; 4] = [
        Role::Admin,
        Role::Custodian,
        Role::Integrator,
        Role::Auditor,
    ];

    /// The role's name as used in tokens and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Custodian => "custodian",
            Role::Integrator => "integrator",
            Role::Auditor => "auditor",
        }
    }
}

impl FromStr for Role {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == raw)
            .ok_or(DomainError::invalid("role", Violation::UnknownRole))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_and_print_in_lowercase() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            let json = serde_json::to_value(role).expect("serialises");
            assert_eq!(json, role.as_str());
            assert_eq!(role.to_string(), role.as_str());
        }
        assert_eq!(
            "Admin".parse::<Role>(),
            Err(DomainError::invalid("role", Violation::UnknownRole))
        );
    }
}
