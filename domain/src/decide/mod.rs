//! `decide`: a command and the current state in, events or a typed rejection out. Pure: the
//! same state, command and `now` always give the same answer, and nothing is changed until
//! the caller appends the events and applies them.

mod devices;
mod jobs;
mod policies;
mod schedules;
mod tenants;
mod users;
mod webhooks;

#[cfg(test)]
mod tests;

use crate::commands::Command;
use crate::error::DomainError;
use crate::events::Event;
use crate::ids::{DeviceId, ItemId, JobId, PolicyId, ScheduleId, TenantRef, UserId, VaultId};
use crate::model::{Device, Job, Policy, Schedule, User};
use crate::state::State;

pub type Decision = Result<Vec<Event>, DomainError>;

/// Decides what a command means against `state` at `now` (Unix seconds). An empty `Ok` means
/// the command changes nothing (e.g. a patch equal to the current values).
pub fn decide(state: &State, command: Command, now: i64) -> Decision {
    use Command as C;
    match command {
        C::CreateTenant(c) => tenants::create(state, c),
        C::UpdateTenant(c) => tenants::update(state, c),
        C::RemoveTenant(c) => tenants::remove(state, c),
        C::SetEmailSettings(c) => tenants::set_email(state, c),
        C::UpdateServerSettings(c) => tenants::update_server(state, c),
        C::RecordServerStarted(c) => tenants::server_started(c, now),
        C::CreateAdmin(c) => tenants::create_admin(state, c),
        C::UpdateAdmin(c) => tenants::update_admin(state, c),
        C::RemoveAdmin(c) => tenants::remove_admin(state, c),
        C::RecordAdminLogin(c) => tenants::admin_login(state, c, now),
        C::RecordUserLogin(c) => users::login(state, c, now),
        C::CreatePolicy(c) => policies::create(state, c),
        C::UpdatePolicy(c) => policies::update(state, c),
        C::RemovePolicy(c) => policies::remove(state, c),
        C::CreateUser(c) => users::create(state, c),
        C::UpdateUser(c) => users::update(state, c),
        C::RemoveUser(c) => users::remove(state, c),
        C::TransferUser(c) => users::transfer(state, c),
        C::CreateItem(c) => users::create_item(state, c),
        C::UpdateItem(c) => users::update_item(state, c),
        C::RemoveItem(c) => users::remove_item(state, c),
        C::DuplicateItem(c) => users::duplicate_item(state, c),
        C::CreateVault(c) => users::create_vault(state, c),
        C::UpdateVault(c) => users::update_vault(state, c),
        C::RemoveVault(c) => users::remove_vault(state, c),
        C::ReplaceVaultAddress(c) => users::replace_vault_address(state, c),
        C::CreateSchedule(c) => schedules::create(state, c, now),
        C::UpdateSchedule(c) => schedules::update(state, c),
        C::RemoveSchedule(c) => schedules::remove(state, c),
        C::RegisterDevice(c) => devices::register(state, c, now),
        C::ConnectDevice(c) => devices::connect(state, c, now),
        C::DisconnectDevice(c) => devices::disconnect(state, c, now),
        C::RemoveDevice(c) => devices::remove(state, c),
        C::StartJob(c) => jobs::start(state, c, now),
        C::ReportJobProgress(c) => jobs::progress(state, c, now),
        C::AppendJobLog(c) => jobs::log(state, c),
        C::FinishJob(c) => jobs::finish(state, c, now),
        C::AbandonJob(c) => jobs::abandon(state, c, now),
        C::ReviveJob(c) => jobs::revive(state, c, now),
        C::RecordMissedJob(c) => jobs::missed(state, c),
        C::RecordSkippedJob(c) => jobs::skipped(state, c),
        C::RecordRunDispatched(c) => jobs::dispatched(state, c, now),
        C::CreateWebhook(c) => webhooks::create(state, c),
        C::UpdateWebhook(c) => webhooks::update(state, c),
        C::RemoveWebhook(c) => webhooks::remove(state, c),
        C::RotateWebhookSecret(c) => webhooks::rotate_secret(state, c, now),
        C::DisableWebhook(c) => webhooks::disable(state, c, now),
    }
}

/// New objects may be created under the top level or under a live tenant, never under a
/// removed one.
fn live_owner(state: &State, owner: TenantRef) -> Result<(), DomainError> {
    match owner {
        TenantRef::Root => Ok(()),
        TenantRef::Tenant(id) if state.tenant_removed(id) => Err(DomainError::TenantRemoved { id }),
        TenantRef::Tenant(id) => state
            .tenant(id)
            .map(|_| ())
            .ok_or_else(|| DomainError::not_found("tenant", id)),
    }
}

fn user(state: &State, id: UserId) -> Result<&User, DomainError> {
    state
        .user(id)
        .ok_or_else(|| DomainError::not_found("user", id))
}

fn item_owner(state: &State, id: ItemId) -> Result<&User, DomainError> {
    state
        .item_owner(id)
        .and_then(|u| state.user(u))
        .ok_or_else(|| DomainError::not_found("protected_item", id))
}

fn vault_owner(state: &State, id: VaultId) -> Result<&User, DomainError> {
    state
        .vault_owner(id)
        .and_then(|u| state.user(u))
        .ok_or_else(|| DomainError::not_found("vault", id))
}

fn policy(state: &State, id: PolicyId) -> Result<&Policy, DomainError> {
    state
        .policy(id)
        .ok_or_else(|| DomainError::not_found("policy", id))
}

fn schedule(state: &State, id: ScheduleId) -> Result<&Schedule, DomainError> {
    state
        .schedule(id)
        .ok_or_else(|| DomainError::not_found("schedule", id))
}

fn device(state: &State, id: DeviceId) -> Result<&Device, DomainError> {
    state
        .device(id)
        .ok_or_else(|| DomainError::not_found("device", id))
}

fn job(state: &State, id: JobId) -> Result<&Job, DomainError> {
    state
        .job(id)
        .ok_or_else(|| DomainError::not_found("job", id))
}

/// A policy given for a user or admin must exist and belong to the same tenant; otherwise the
/// field is invalid (the policy is not the caller's to name).
fn policy_of_tenant(
    state: &State,
    field: &str,
    id: PolicyId,
    tenant: TenantRef,
) -> Result<(), DomainError> {
    match state.policy(id) {
        Some(p) if p.tenant == tenant => Ok(()),
        _ => Err(DomainError::invalid(
            field,
            format!("no policy {id} in tenant {tenant}"),
        )),
    }
}

/// `[a-z0-9_-]`, 1–64 characters: engine and vault kind names.
fn validate_kind(field: &str, kind: &str) -> Result<(), DomainError> {
    let ok = !kind.is_empty()
        && kind.len() <= 64
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !ok {
        return Err(DomainError::invalid(
            field,
            "must be 1 to 64 of a-z 0-9 _ -",
        ));
    }
    Ok(())
}

/// Free text that may be empty: at most `max` characters, no control characters.
fn validate_text(field: &str, text: &str, max: usize) -> Result<(), DomainError> {
    if text.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}
