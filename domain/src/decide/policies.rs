//! Policies: at most one default per tenant, random delay within bounds.

use super::{live_owner, policy, set, validate_text, Decision};
use crate::commands::*;
use crate::error::DomainError;
use crate::events::*;
use crate::ids::{PolicyId, TenantRef};
use crate::model::PolicySpec;
use crate::state::State;
use crate::validate::*;

const MAX_DESCRIPTION_CHARS: usize = 4096;

fn validate_policy(
    state: &State,
    tenant: TenantRef,
    spec: &PolicySpec,
    this: PolicyId,
) -> Result<(), DomainError> {
    validate_name("name", &spec.name)?;
    validate_text("description", &spec.description, MAX_DESCRIPTION_CHARS)?;
    validate_random_delay("random_delay_secs", spec.random_delay_secs)?;
    for name in spec.settings.keys() {
        validate_name("settings", name)?;
    }
    if spec.is_default {
        if let Some(other) = state.default_policy(tenant) {
            if other != this {
                return Err(DomainError::conflict(
                    "is_default",
                    format!("policy {other} is already the tenant's default"),
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn create(state: &State, c: CreatePolicy) -> Decision {
    if state.policy(c.policy_id).is_some() {
        return Err(DomainError::already_exists("policy", c.policy_id));
    }
    live_owner(state, c.tenant)?;
    validate_policy(state, c.tenant, &c.spec, c.policy_id)?;
    Ok(vec![PolicyCreated {
        policy_id: c.policy_id,
        tenant: c.tenant,
        spec: c.spec,
    }
    .into()])
}

pub(super) fn update(state: &State, c: UpdatePolicy) -> Decision {
    let current = policy(state, c.policy_id)?;
    let mut spec = current.spec.clone();
    let p = c.patch;
    set(&mut spec.name, p.name);
    set(&mut spec.description, p.description);
    set(&mut spec.is_default, p.is_default);
    set(&mut spec.random_delay_secs, p.random_delay_secs);
    set(&mut spec.settings, p.settings);
    if spec == current.spec {
        return Ok(vec![]);
    }
    validate_policy(state, current.tenant, &spec, current.id)?;
    Ok(vec![PolicyUpdated {
        policy_id: current.id,
        tenant: current.tenant,
        spec,
    }
    .into()])
}

pub(super) fn remove(state: &State, c: RemovePolicy) -> Decision {
    let current = policy(state, c.policy_id)?;
    let users = state
        .users()
        .filter(|u| u.spec.policy == Some(current.id))
        .count();
    if users > 0 {
        return Err(DomainError::conflict(
            "policy_id",
            format!("{users} users still have this policy"),
        ));
    }
    Ok(vec![PolicyRemoved {
        policy_id: current.id,
        tenant: current.tenant,
    }
    .into()])
}
