use thiserror::Error;

use crate::ids::TenantId;

/// Why `decide` refused a command. Each variant maps to one HTTP status in the API: `Invalid`
/// → 400 naming `field` (the API's field name, e.g. `triggers[0].window.from`), `NotFound` →
/// 404, `AlreadyExists` / `Conflict` / `InvalidTransition` / `TenantRemoved` /
/// `LimitReached` → 409, `Suspended` → 403, `LockedOut` → 429.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: &'static str, id: String },
    /// The value is well-formed but clashes with other state (a taken user name, a second
    /// default policy, an object still in use).
    #[error("conflict on {field}: {reason}")]
    Conflict { field: String, reason: String },
    #[error("tenant {id} was removed")]
    TenantRemoved { id: TenantId },
    #[error("cannot {action} {kind} {id}: it is {current}")]
    InvalidTransition {
        kind: &'static str,
        id: String,
        action: &'static str,
        current: String,
    },
    #[error("{kind} {id} is suspended")]
    Suspended { kind: &'static str, id: String },
    #[error("limit of {limit} {what} reached")]
    LimitReached { what: &'static str, limit: u32 },
    #[error("too many failed logins; locked until {until}")]
    LockedOut { until: i64 },
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DomainError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn not_found(kind: &'static str, id: impl ToString) -> Self {
        DomainError::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    pub fn already_exists(kind: &'static str, id: impl ToString) -> Self {
        DomainError::AlreadyExists {
            kind,
            id: id.to_string(),
        }
    }

    pub fn conflict(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DomainError::Conflict {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field a validation or conflict error names, for the API's `errors[].field`.
    pub fn field(&self) -> Option<&str> {
        match self {
            DomainError::Invalid { field, .. } | DomainError::Conflict { field, .. } => Some(field),
            _ => None,
        }
    }
}
