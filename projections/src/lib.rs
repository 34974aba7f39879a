//! Read models for halley's API, built by tailing the event log.
//!
//! A [`Projector`] folds the log into an in-memory model ([`ReadModels`]: tenants, admins,
//! users with their protected items and vaults, policies, server settings, schedules,
//! devices and jobs, indexed tenant first), publishes the position it reached so that a write
//! can wait until its own events are visible, and saves the model together with that
//! position as one snapshot, so a restart replays only the tail. Every accessor takes a
//! [`Scope`]: a tenant never sees another tenant's rows.
//!
//! Must not know: HTTP, how the log stores records, or any business rule (effects of events
//! come from `domain`).

mod error;
mod models;
pub mod query;
mod runner;
pub mod snapshot;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod timing;

pub use error::ProjectionError;
pub use models::reports::{
    day_of, severity, Activity, DayStats, DayWorst, TenantDay, ACTIVITY_DAYS,
};
pub use models::{ReadModels, Scope};
pub use runner::{
    rebuild, CaughtUp, Projection, ProjectionHandle, Projector, ProjectorConfig, ReadGuard,
    RebuildProgress, Rebuilt, SnapshotInfo, Status,
};
pub use snapshot::{Loaded, SnapshotStore};
