//! Who may do what: the role half of access control.
//!
//! Roles decide which commands a caller may issue at all; for custodians, the subject the
//! command concerns must also be assigned to them (checked by [`require_subject_access`] once the
//! subject is loaded, or [`require_custodian_of`] against a cached copy). Everything else in the
//! API asks this module, so the whole policy is readable in one place and tested as a matrix.

use std::collections::BTreeSet;

use keryu_domain::subject::Subject;
use keryu_domain::{CustodianId, Role};
use uuid::Uuid;

use crate::auth::Caller;
use crate::problem::{Problem, ProblemKind};

/// Every command the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Create a notification.
    CreateNotification,
    /// Retry a failed notification.
    RetryNotification,
    /// Cancel a waiting notification.
    CancelNotification,
    /// Register a subject.
    CreateSubject,
    /// Change a subject's details.
    UpdateSubject,
    /// Deactivate a subject.
    DeactivateSubject,
    /// Erase a subject's personal data (admins only: it cannot be undone).
    EraseSubject,
    /// Replace a subject's custodians.
    AssignCustodians,
    /// Write, edit or submit a template.
    EditTemplate,
    /// Approve or reject a template.
    ReviewTemplate,
    /// Raise an alarm.
    RaiseAlarm,
    /// Acknowledge or resolve an alarm.
    HandleAlarm,
    /// Create, change or deactivate custodians.
    ManageCustodians,
}

impl Action {
    /// Every action, for exhaustive tests.
    pub const ALL: [Action; 13] = [
        Action::CreateNotification,
        Action::RetryNotification,
        Action::CancelNotification,
        Action::CreateSubject,
        Action::UpdateSubject,
        Action::DeactivateSubject,
        Action::EraseSubject,
        Action::AssignCustodians,
        Action::EditTemplate,
        Action::ReviewTemplate,
        Action::RaiseAlarm,
        Action::HandleAlarm,
        Action::ManageCustodians,
    ];
}

/// Whether `role` may issue `action` at all (custodians: for their own subjects only).
pub fn allows(role: Role, action: Action) -> bool {
    use Action as A;
    match role {
        Role::Admin => true,
        Role::Integrator => !matches!(
            action,
            A::ReviewTemplate | A::ManageCustodians | A::EraseSubject
        ),
        Role::Custodian => matches!(
            action,
            A::CreateNotification
                | A::RetryNotification
                | A::CancelNotification
                | A::UpdateSubject
                | A::RaiseAlarm
                | A::HandleAlarm
        ),
        Role::Auditor => false,
    }
}

/// Refuses `caller` unless its role allows `action`.
///
/// # Errors
/// A `forbidden` problem.
pub fn authorize(caller: &Caller, action: Action) -> Result<(), Problem> {
    if allows(caller.role, action) {
        Ok(())
    } else {
        Err(Problem::new(
            ProblemKind::Forbidden,
            format!("the {} role may not do this", caller.role),
        ))
    }
}

/// For custodians, refuses access to a subject not assigned to them. Answers `not found`
/// rather than `forbidden`, so custodians cannot probe which subjects exist.
///
/// # Errors
/// A `not-found` problem.
pub fn require_subject_access(caller: &Caller, subject: &Subject) -> Result<(), Problem> {
    require_custodian_of(caller, &subject.custodians)
}

/// [`require_subject_access`] for a subject known only by its `custodians` (e.g. a cached
/// copy of it).
///
/// # Errors
/// A `not-found` problem.
pub fn require_custodian_of(
    caller: &Caller,
    custodians: &BTreeSet<CustodianId>,
) -> Result<(), Problem> {
    if caller.role != Role::Custodian {
        return Ok(());
    }
    let assigned = Uuid::parse_str(&caller.subject)
        .map(CustodianId)
        .is_ok_and(|custodian| custodians.contains(&custodian));
    if assigned {
        Ok(())
    } else {
        Err(Problem::new(ProblemKind::NotFound, "no such subject"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_matrix() {
        use Action as A;
        let expected: [(Role, &[Action]); 4] = [
            (Role::Admin, &A::ALL),
            (
                Role::Integrator,
                &[
                    A::CreateNotification,
                    A::RetryNotification,
                    A::CancelNotification,
                    A::CreateSubject,
                    A::UpdateSubject,
                    A::DeactivateSubject,
                    A::AssignCustodians,
                    A::EditTemplate,
                    A::RaiseAlarm,
                    A::HandleAlarm,
                ],
            ),
            (
                Role::Custodian,
                &[
                    A::CreateNotification,
                    A::RetryNotification,
                    A::CancelNotification,
                    A::UpdateSubject,
                    A::RaiseAlarm,
                    A::HandleAlarm,
                ],
            ),
            (Role::Auditor, &[]),
        ];
        for (role, allowed) in expected {
            for action in A::ALL {
                assert_eq!(
                    allows(role, action),
                    allowed.contains(&action),
                    "{role} {action:?}"
                );
            }
        }
    }
}
