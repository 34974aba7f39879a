//! halley's HTTP surface: actix-web routes, problem+json errors, and the shared [`AppState`].
//!
//! Handlers read read models and talk to the log through [`AppState`]; they never open
//! storage themselves. This crate must not know storage details (sled trees, record layout):
//! it sees the log only through the `EventLog` trait and the projections through their
//! handle.

mod ops;
mod problem;

pub use problem::{Problem, PROBLEM_JSON};

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use eventlog::{CommitStats, EventLog, Position};
use projections::{ProjectionHandle, ReadModels};

/// Everything a handler may touch. Cheap to clone; one copy per HTTP worker.
#[derive(Clone)]
pub struct AppState {
    pub log: Arc<dyn EventLog>,
    /// The read models every GET answers from, and how far they have applied the log.
    pub read_models: ProjectionHandle<ReadModels>,
    /// The log backend's group-commit counters, for `/metrics`. A function rather than the
    /// backend itself, so handlers cannot reach past the `EventLog` trait.
    pub commit_stats: Arc<dyn Fn() -> CommitStats + Send + Sync>,
    /// The log head when the server started: `/readyz` answers 200 once the read models have
    /// caught up to it, so a restarted node does not serve reads from a half-replayed state.
    pub startup_head: Position,
}

/// Registers every route and the problem+json fallback on an actix `App` or scope.
///
/// The caller supplies the state: `App::new().app_data(web::Data::new(state)).configure(api::configure)`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(ops::configure)
        .default_service(web::to(not_found));
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("no resource at {} {}", req.method(), req.path()),
    )
    .response()
}
