//! The halley domain: typed ids, the aggregates (tenants, admins, users with their protected
//! items and vaults, policies, server settings, schedules, devices, jobs), the events that
//! change them with their type codes and payload codec, the commands callers send, and
//! `decide`, which turns a command into events or a typed rejection.
//!
//! This crate is pure. It knows nothing of IO, async, HTTP, storage or the clock, and it has
//! no randomness: callers pass `now` and freshly generated ids, and everything here is a
//! deterministic function of its inputs.
//!
//! The write path is `decide(&state, command, now)` → events → append to the log →
//! `state.apply(&event)` for each. Read models and subscribers see only the events
//! (`Event::type_code`, `stream`, `tenant`, `resource_id`; `codec::encode`/`decode` for
//! storage); the halley codes 4900–4999 are listed in `EVENTS.md` beside this crate.

pub mod codec;
pub mod commands;
mod decide;
mod error;
pub mod events;
pub mod filter;
pub mod ids;
pub mod model;
pub mod resolution;
pub mod state;
pub mod validate;

pub use codec::{decode, encode, DecodeError, Encoded, SCHEMA_VERSION};
pub use commands::Command;
pub use decide::{decide, Decision};
pub use error::DomainError;
pub use events::Event;
pub use ids::{
    AdminId, CampaignId, DeviceId, IdError, ItemId, JobId, PolicyId, ReportId, ResourceId,
    ScheduleId, TenantId, TenantRef, UserId, VaultId, WebhookId,
};
pub use state::State;

#[cfg(test)]
mod testing;
