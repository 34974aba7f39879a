//! Device registration (within the user's device limit), connections and removal.

use super::users::check_not_suspended;
use super::{device, user, validate_text, Decision};
use crate::commands::*;
use crate::error::DomainError;
use crate::events::*;
use crate::model::DeviceSpec;
use crate::state::State;
use crate::validate::*;

const MAX_FIELD_CHARS: usize = 255;

fn validate_device(spec: &DeviceSpec) -> Result<(), DomainError> {
    validate_name("friendly_name", &spec.friendly_name)?;
    validate_text("platform", &spec.platform, MAX_FIELD_CHARS)?;
    validate_text("arch", &spec.arch, MAX_FIELD_CHARS)?;
    validate_text("os_version", &spec.os_version, MAX_FIELD_CHARS)?;
    validate_text("client_version", &spec.client_version, MAX_FIELD_CHARS)?;
    if !spec.timezone.is_empty() {
        validate_timezone("timezone", &spec.timezone)?;
    }
    Ok(())
}

pub(super) fn register(state: &State, c: RegisterDevice, now: i64) -> Decision {
    if state.device(c.device_id).is_some() {
        return Err(DomainError::already_exists("device", c.device_id));
    }
    let owner = user(state, c.user_id)?;
    check_not_suspended(state, owner)?;
    if let Some(limit) = owner.spec.max_devices {
        let count = state.user_devices(owner.id).count();
        if count >= limit as usize {
            return Err(DomainError::LimitReached {
                what: "devices",
                limit,
            });
        }
    }
    validate_device(&c.spec)?;
    if c.token_hash.is_empty() {
        return Err(DomainError::invalid("device_token", "hash is empty"));
    }
    Ok(vec![DeviceRegistered {
        device_id: c.device_id,
        tenant: owner.tenant,
        user_id: owner.id,
        spec: c.spec,
        token_hash: c.token_hash,
        at: now,
    }
    .into()])
}

pub(super) fn connect(state: &State, c: ConnectDevice, now: i64) -> Decision {
    let current = device(state, c.device_id)?;
    check_not_suspended(state, user(state, current.user)?)?;
    validate_text("client_version", &c.client_version, MAX_FIELD_CHARS)?;
    if let Some(ip) = &c.ip {
        validate_text("ip", ip, MAX_FIELD_CHARS)?;
    }
    Ok(vec![DeviceConnected {
        device_id: current.id,
        tenant: current.tenant,
        user_id: current.user,
        at: now,
        ip: c.ip,
        client_version: c.client_version,
    }
    .into()])
}

pub(super) fn disconnect(state: &State, c: DisconnectDevice, now: i64) -> Decision {
    let current = device(state, c.device_id)?;
    if !current.online() {
        return Err(DomainError::InvalidTransition {
            kind: "device",
            id: current.id.to_string(),
            action: "disconnect",
            current: "offline".into(),
        });
    }
    Ok(vec![DeviceDisconnected {
        device_id: current.id,
        tenant: current.tenant,
        user_id: current.user,
        at: now,
    }
    .into()])
}

pub(super) fn remove(state: &State, c: RemoveDevice) -> Decision {
    let current = device(state, c.device_id)?;
    Ok(vec![DeviceRemoved {
        device_id: current.id,
        tenant: current.tenant,
        user_id: current.user,
    }
    .into()])
}
