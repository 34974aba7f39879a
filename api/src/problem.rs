//! RFC 9457 problem details, and [`ApiError`]: the one place where an error becomes a
//! response. Handlers return `Result<_, ApiError>`; every extractor and fallback answers
//! through it too, so no error leaves the server in another shape.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use domain::DomainError;
use projections::ProjectionError;
use serde::Serialize;
use utoipa::ToSchema;
use writer::WriteError;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid input: `field` is the JSON path of the body field (`hosts[1]`,
/// `permissions.allow_edit_webhooks`), the query or path parameter, or the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// A problem+json body. `type` ends with a stable kind (`not-found`, `validation`, …) that
/// clients match on rather than on `title` wording.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For validation problems: which inputs were wrong.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Problem {
        Problem {
            type_uri: format!("/problems/{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpResponse::build(status)
            .content_type(PROBLEM_JSON)
            .json(self)
    }
}

/// Every way a request can fail, each with exactly one status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: input that parses but breaks a rule, naming each field.
    #[error("invalid input: {0:?}")]
    Invalid(Vec<FieldError>),
    /// 400: input that does not parse at all (broken JSON, empty body).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// 401. The detail is deliberately vague for credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// 403: the object is visible, the action is not the caller's to take.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404: missing, or another tenant's (indistinguishable on purpose).
    #[error("not found: {0}")]
    NotFound(String),
    /// 409, naming the field the conflict is on when there is one.
    #[error("conflict: {detail}")]
    Conflict {
        detail: String,
        field: Option<String>,
    },
    /// 409: `If-Match` named an older version.
    #[error("version mismatch: expected {expected}, current {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
    /// 409: the first request with this `Idempotency-Key` is still being answered.
    #[error("a request with this Idempotency-Key is in flight")]
    IdempotencyInFlight,
    /// 413.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 415.
    #[error("unsupported content type")]
    UnsupportedMediaType,
    /// 422: an `Idempotency-Key` reused with a different body.
    #[error("Idempotency-Key reused with a different request body")]
    IdempotencyMismatch,
    /// 429 with `Retry-After`.
    #[error("rate limited for {retry_after_secs} s: {detail}")]
    TooManyRequests {
        retry_after_secs: u64,
        detail: String,
    },
    /// 429: the domain refused a login until `until` (Unix seconds). The login handler turns
    /// it into [`ApiError::TooManyRequests`] with the injected clock; elsewhere the system
    /// clock computes `Retry-After`.
    #[error("locked out until {until}")]
    LockedOut { until: i64 },
    /// 501: a route that exists in the contract but is not served by this version.
    #[error("not implemented: {0}")]
    NotImplemented(String),
    /// 503: the writer or the projections stopped; the cause is logged, not returned.
    #[error("service unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// 500: a bug. The cause is logged, never returned.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A 400 naming one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Invalid(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> ApiError {
        ApiError::Internal(Box::new(e))
    }

    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        match self {
            ApiError::Invalid(errors) => {
                let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                Problem {
                    errors: errors.clone(),
                    ..Problem::new(
                        status,
                        "validation",
                        format!("invalid input: {}", fields.join(", ")),
                    )
                }
            }
            ApiError::Malformed(detail) => Problem::new(status, "malformed", detail.clone()),
            ApiError::Unauthorized(detail) => Problem::new(status, "unauthorized", *detail),
            ApiError::Forbidden(detail) => Problem::new(status, "forbidden", detail.clone()),
            ApiError::NotFound(detail) => Problem::new(status, "not-found", detail.clone()),
            ApiError::Conflict { detail, field } => Problem {
                errors: field
                    .iter()
                    .map(|f| FieldError {
                        field: f.clone(),
                        message: detail.clone(),
                    })
                    .collect(),
                ..Problem::new(status, "conflict", detail.clone())
            },
            ApiError::VersionMismatch { .. } => {
                Problem::new(status, "version-mismatch", self.to_string())
            }
            ApiError::IdempotencyInFlight => {
                Problem::new(status, "idempotency-in-flight", self.to_string())
            }
            ApiError::PayloadTooLarge { .. } => {
                Problem::new(status, "payload-too-large", self.to_string())
            }
            ApiError::UnsupportedMediaType => Problem::new(
                status,
                "unsupported-media-type",
                "request bodies must be application/json",
            ),
            ApiError::IdempotencyMismatch => {
                Problem::new(status, "idempotency-key-reused", self.to_string())
            }
            ApiError::TooManyRequests { detail, .. } => {
                Problem::new(status, "rate-limited", detail.clone())
            }
            ApiError::LockedOut { .. } => Problem::new(
                status,
                "rate-limited",
                "too many failed logins; try again later",
            ),
            ApiError::NotImplemented(detail) => {
                Problem::new(status, "not-implemented", detail.clone())
            }
            ApiError::Unavailable(_) => Problem::new(
                status,
                "unavailable",
                "the server cannot take this request now; retry later",
            ),
            ApiError::Internal(_) => Problem::new(status, "internal", "internal error"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_) | ApiError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. }
            | ApiError::VersionMismatch { .. }
            | ApiError::IdempotencyInFlight => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } | ApiError::LockedOut { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, cause = ?cause, "internal error");
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "service unavailable");
            }
            _ => {}
        }
        let mut response = self.problem().response();
        let retry_after = match self {
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::LockedOut { until } => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                Some(u64::try_from(*until).unwrap_or(0).saturating_sub(now))
            }
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> ApiError {
        match e {
            DomainError::Invalid { field, reason } => ApiError::invalid(field, reason),
            DomainError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            DomainError::Conflict { ref field, .. } => ApiError::Conflict {
                field: Some(field.clone()),
                detail: e.to_string(),
            },
            DomainError::AlreadyExists { .. }
            | DomainError::TenantRemoved { .. }
            | DomainError::InvalidTransition { .. }
            | DomainError::LimitReached { .. } => ApiError::Conflict {
                detail: e.to_string(),
                field: None,
            },
            DomainError::Suspended { .. } => ApiError::Forbidden(e.to_string()),
            DomainError::LockedOut { until } => ApiError::LockedOut { until },
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> ApiError {
        match e {
            WriteError::Domain(e) => e.into(),
            WriteError::VersionMismatch {
                expected, actual, ..
            } => ApiError::VersionMismatch { expected, actual },
            WriteError::Log(_) | WriteError::Unavailable => ApiError::Unavailable(Box::new(e)),
        }
    }
}

impl From<ProjectionError> for ApiError {
    fn from(e: ProjectionError) -> ApiError {
        ApiError::Unavailable(Box::new(e))
    }
}
