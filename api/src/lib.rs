//! halley's HTTP surface: actix-web routes, their DTOs and conversions to domain commands,
//! authentication and tenant scoping, problem+json errors, and the OpenAPI document.
//!
//! Handlers read the read models and write through the command writer, both reached through
//! [`AppState`]; they never open storage themselves. This crate must not know storage
//! details (sled trees, record layout): it sees the log through the `EventLog` trait, the
//! projections through their handle, and its own secrets through [`KeyValue`].
//!
//! How a route is written: see `routes/tenants.rs` — a `#[utoipa::path]` + actix method
//! macro per handler, the [`Scope`] extractor, reads through `state.read_models.read()`
//! with `scope.read()`, writes through [`write::Write`], request/response DTOs converted
//! explicitly, and registration in `routes::scope`.

pub mod agent;
pub mod auth;
pub mod bootstrap;
pub mod extract;
pub mod idempotency;
pub mod openapi;
mod ops;
pub mod paging;
mod problem;
pub mod reply;
mod routes;
pub mod secrets;
mod state;
pub mod write;

pub use auth::{Auth, Scope};
pub use problem::{ApiError, FieldError, Problem, PROBLEM_JSON};
pub use state::{ApiConfig, AppState, Argon2Params, KeyValue, StoreError};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

/// Request body limit when no [`ApiConfig`] is at hand.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// Registers every route, `/openapi.json`, and the problem+json fallback (404, or 405 with
/// `Allow` for a known path) on an actix `App`.
///
/// The caller supplies the state: `App::new().app_data(web::Data::new(state)).configure(api::configure)`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    register(&mut utoipa_actix_web::service_config::ServiceConfig::new(
        cfg,
    ));
    // Handlers use `extract::{Json, Query}`; should actix's own extractors be used anyway,
    // their failures still become problem+json.
    cfg.app_data(
        web::PathConfig::default()
            .error_handler(|e, _| ApiError::invalid("path", e.to_string()).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| ApiError::invalid("query", e.to_string()).into()),
    )
    .app_data(
        web::JsonConfig::default().error_handler(|e, _| ApiError::Malformed(e.to_string()).into()),
    )
    .default_service(web::to(fallback));
}

/// Every route, each registered with its OpenAPI description; [`openapi::document`] is
/// built from this same function.
fn register(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    ops::routes(cfg);
    cfg.service(openapi::serve).service(routes::scope());
}

async fn fallback(req: HttpRequest) -> HttpResponse {
    match openapi::allowed_methods(req.path()) {
        Some(methods) if !methods.contains(req.method()) => {
            let allow: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
            let mut response = Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                format!("{} is not allowed on {}", req.method(), req.path()),
            )
            .response();
            if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
        _ => Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no resource at {} {}", req.method(), req.path()),
        )
        .response(),
    }
}
