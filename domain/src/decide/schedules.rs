//! Schedules: a user's item to a user's vault, with valid triggers.

use super::{live_owner, schedule, set, user, Decision};
use crate::commands::*;
use crate::error::DomainError;
use crate::events::*;
use crate::model::{ScheduleSpec, User};
use crate::state::State;
use crate::validate::*;

fn validate_schedule(owner: &User, spec: &ScheduleSpec) -> Result<(), DomainError> {
    validate_name("name", &spec.name)?;
    if !owner.items.contains_key(&spec.item) {
        return Err(DomainError::invalid(
            "protected_item_id",
            format!("no protected item {} of this user", spec.item),
        ));
    }
    if !owner.vaults.contains_key(&spec.vault) {
        return Err(DomainError::invalid(
            "vault_id",
            format!("no vault {} of this user", spec.vault),
        ));
    }
    for (i, trigger) in spec.triggers.iter().enumerate() {
        validate_trigger(&format!("triggers[{i}]"), trigger)?;
    }
    Ok(())
}

pub(super) fn create(state: &State, c: CreateSchedule, now: i64) -> Decision {
    if state.schedule(c.schedule_id).is_some() {
        return Err(DomainError::already_exists("schedule", c.schedule_id));
    }
    let owner = user(state, c.user_id)?;
    live_owner(state, owner.tenant)?;
    validate_schedule(owner, &c.spec)?;
    Ok(vec![ScheduleCreated {
        schedule_id: c.schedule_id,
        tenant: owner.tenant,
        user_id: owner.id,
        spec: c.spec,
        at: now,
    }
    .into()])
}

pub(super) fn update(state: &State, c: UpdateSchedule) -> Decision {
    let current = schedule(state, c.schedule_id)?;
    let owner = user(state, current.user)?;
    let mut spec = current.spec.clone();
    let p = c.patch;
    set(&mut spec.name, p.name);
    set(&mut spec.item, p.item);
    set(&mut spec.vault, p.vault);
    set(&mut spec.skip_if_running, p.skip_if_running);
    set(&mut spec.triggers, p.triggers);
    if spec == current.spec {
        return Ok(vec![]);
    }
    validate_schedule(owner, &spec)?;
    Ok(vec![ScheduleUpdated {
        schedule_id: current.id,
        tenant: current.tenant,
        user_id: current.user,
        spec,
    }
    .into()])
}

pub(super) fn remove(state: &State, c: RemoveSchedule) -> Decision {
    let current = schedule(state, c.schedule_id)?;
    Ok(vec![ScheduleRemoved {
        schedule_id: current.id,
        tenant: current.tenant,
        user_id: current.user,
    }
    .into()])
}
