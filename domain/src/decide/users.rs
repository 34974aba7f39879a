//! Users, logins, transfers, and the protected items and vaults in a user's stream.

use super::{
    item_owner, live_owner, policy_of_tenant, set, user, validate_kind, validate_text, vault_owner,
    Decision,
};
use crate::commands::*;
use crate::error::DomainError;
use crate::events::*;
use crate::ids::{TenantRef, UserId};
use crate::model::{ItemSpec, User, UserSpec, VaultSpec};
use crate::state::State;
use crate::validate::*;

const MAX_LANGUAGE_CHARS: usize = 35;
const MAX_ADDRESS_CHARS: usize = 2048;
const COPY_SUFFIX: &str = " (copy)";

fn validate_user(
    state: &State,
    tenant: TenantRef,
    spec: &UserSpec,
    this: UserId,
) -> Result<(), DomainError> {
    validate_username("username", &spec.username)?;
    if let Some(other) = state.user_by_name(&spec.username) {
        if other != this {
            return Err(DomainError::conflict(
                "username",
                format!("user name {} is taken", spec.username),
            ));
        }
    }
    validate_text("account_name", &spec.account_name, MAX_NAME_CHARS)?;
    for (i, email) in spec.emails.iter().enumerate() {
        validate_email(&format!("emails[{i}]"), email)?;
    }
    validate_timezone("timezone", &spec.timezone)?;
    let language_ok = spec.language.len() <= MAX_LANGUAGE_CHARS
        && spec
            .language
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !language_ok {
        return Err(DomainError::invalid(
            "language",
            "must be a language tag such as en or pt-BR",
        ));
    }
    if let Some(policy) = spec.policy {
        policy_of_tenant(state, "policy_id", policy, tenant)?;
    }
    Ok(())
}

pub(super) fn create(state: &State, c: CreateUser) -> Decision {
    if state.user(c.user_id).is_some() {
        return Err(DomainError::already_exists("user", c.user_id));
    }
    live_owner(state, c.tenant)?;
    let mut spec = c.spec;
    if spec.policy.is_none() {
        spec.policy = state.default_policy(c.tenant);
    }
    validate_user(state, c.tenant, &spec, c.user_id)?;
    validate_password_hash(&c.password_hash)?;
    Ok(vec![UserCreated {
        user_id: c.user_id,
        tenant: c.tenant,
        spec,
        password_hash: c.password_hash,
    }
    .into()])
}

pub(super) fn update(state: &State, c: UpdateUser) -> Decision {
    let current = user(state, c.user_id)?;
    let mut spec = current.spec.clone();
    let p = c.patch;
    set(&mut spec.username, p.username);
    set(&mut spec.account_name, p.account_name);
    set(&mut spec.emails, p.emails);
    set(&mut spec.timezone, p.timezone);
    set(&mut spec.language, p.language);
    set(&mut spec.policy, p.policy);
    set(&mut spec.suspended, p.suspended);
    set(&mut spec.max_devices, p.max_devices);
    set(&mut spec.quota_bytes, p.quota_bytes);
    let mut events = Vec::new();
    if spec != current.spec {
        validate_user(state, current.tenant, &spec, current.id)?;
        events.push(
            UserUpdated {
                user_id: current.id,
                tenant: current.tenant,
                spec,
            }
            .into(),
        );
    }
    if let Some(password_hash) = p.password_hash {
        validate_password_hash(&password_hash)?;
        events.push(
            UserPasswordChanged {
                user_id: current.id,
                tenant: current.tenant,
                password_hash,
            }
            .into(),
        );
    }
    Ok(events)
}

pub(super) fn remove(state: &State, c: RemoveUser) -> Decision {
    let current = user(state, c.user_id)?;
    Ok(vec![UserRemoved {
        user_id: current.id,
        tenant: current.tenant,
    }
    .into()])
}

pub(super) fn transfer(state: &State, c: TransferUser) -> Decision {
    let current = user(state, c.user_id)?;
    live_owner(state, c.to)?;
    if current.tenant == c.to {
        return Err(DomainError::invalid(
            "tenant_id",
            "the user already belongs to this tenant",
        ));
    }
    let (online, offline): (Vec<_>, Vec<_>) =
        state.user_devices(current.id).partition(|d| d.online());
    Ok(vec![UserTransferred {
        user_id: current.id,
        from: current.tenant,
        to: c.to,
        policy: state.default_policy(c.to),
        online_devices: online.iter().map(|d| d.id).collect(),
        offline_devices: offline.iter().map(|d| d.id).collect(),
    }
    .into()])
}

pub(super) fn login(state: &State, c: RecordUserLogin, now: i64) -> Decision {
    if let Some(until) = state
        .user_login_failures(&c.username)
        .and_then(|f| f.locked_until)
    {
        if until > now {
            return Err(DomainError::LockedOut { until });
        }
    }
    let found = state
        .user_by_name(&c.username)
        .and_then(|id| state.user(id));
    if !c.succeeded {
        return Ok(vec![UserLoginFailed {
            tenant: found.map_or(TenantRef::Root, |u| u.tenant),
            username: c.username,
            user_id: found.map(|u| u.id),
            at: now,
        }
        .into()]);
    }
    let found = found.ok_or_else(|| DomainError::not_found("user", &c.username))?;
    check_not_suspended(state, found)?;
    Ok(vec![UserLoggedIn {
        user_id: found.id,
        tenant: found.tenant,
        at: now,
    }
    .into()])
}

/// A suspended user, or any user of a suspended tenant, cannot log in or bring devices.
pub(super) fn check_not_suspended(state: &State, user: &User) -> Result<(), DomainError> {
    if user.spec.suspended {
        return Err(DomainError::Suspended {
            kind: "user",
            id: user.id.to_string(),
        });
    }
    if let TenantRef::Tenant(id) = user.tenant {
        if state.tenant(id).is_some_and(|t| t.spec.suspended) {
            return Err(DomainError::Suspended {
                kind: "tenant",
                id: id.to_string(),
            });
        }
    }
    Ok(())
}

// --- protected items -------------------------------------------------------------------------

fn validate_item(state: &State, owner: &User, spec: &ItemSpec) -> Result<(), DomainError> {
    validate_name("name", &spec.name)?;
    validate_kind("engine", &spec.engine)?;
    for key in spec.settings.keys() {
        validate_name("settings", key)?;
    }
    if let Some(device) = spec.owner_device {
        if state.device(device).is_none_or(|d| d.user != owner.id) {
            return Err(DomainError::invalid(
                "owner_device_id",
                format!("no device {device} of this user"),
            ));
        }
    }
    Ok(())
}

fn item_taken(state: &State, id: crate::ids::ItemId) -> Result<(), DomainError> {
    match state.item_owner(id) {
        Some(_) => Err(DomainError::already_exists("protected_item", id)),
        None => Ok(()),
    }
}

pub(super) fn create_item(state: &State, c: CreateItem) -> Decision {
    let owner = user(state, c.user_id)?;
    item_taken(state, c.item_id)?;
    validate_item(state, owner, &c.spec)?;
    Ok(vec![ItemCreated {
        item_id: c.item_id,
        tenant: owner.tenant,
        user_id: owner.id,
        spec: c.spec,
    }
    .into()])
}

pub(super) fn update_item(state: &State, c: UpdateItem) -> Decision {
    let owner = item_owner(state, c.item_id)?;
    let current = &owner.items[&c.item_id].spec;
    let mut spec = current.clone();
    let p = c.patch;
    set(&mut spec.name, p.name);
    set(&mut spec.engine, p.engine);
    set(&mut spec.owner_device, p.owner_device);
    set(&mut spec.settings, p.settings);
    if &spec == current {
        return Ok(vec![]);
    }
    validate_item(state, owner, &spec)?;
    Ok(vec![ItemUpdated {
        item_id: c.item_id,
        tenant: owner.tenant,
        user_id: owner.id,
        spec,
    }
    .into()])
}

pub(super) fn remove_item(state: &State, c: RemoveItem) -> Decision {
    let owner = item_owner(state, c.item_id)?;
    if let Some(s) = state
        .user_schedules(owner.id)
        .find(|s| s.spec.item == c.item_id)
    {
        return Err(DomainError::conflict(
            "protected_item_id",
            format!("schedule {} uses this item", s.id),
        ));
    }
    Ok(vec![ItemRemoved {
        item_id: c.item_id,
        tenant: owner.tenant,
        user_id: owner.id,
    }
    .into()])
}

pub(super) fn duplicate_item(state: &State, c: DuplicateItem) -> Decision {
    let owner = item_owner(state, c.item_id)?;
    item_taken(state, c.new_item_id)?;
    let mut spec = owner.items[&c.item_id].spec.clone();
    spec.name.push_str(COPY_SUFFIX);
    validate_item(state, owner, &spec)?;
    Ok(vec![ItemDuplicated {
        item_id: c.new_item_id,
        source_id: c.item_id,
        tenant: owner.tenant,
        user_id: owner.id,
        spec,
    }
    .into()])
}

// --- storage vaults --------------------------------------------------------------------------

fn validate_address(field: &str, address: &str) -> Result<(), DomainError> {
    if address.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    validate_text(field, address, MAX_ADDRESS_CHARS)
}

fn validate_vault(spec: &VaultSpec) -> Result<(), DomainError> {
    validate_name("name", &spec.name)?;
    validate_kind("kind", &spec.kind)?;
    validate_address("address", &spec.address)?;
    validate_text("bucket", &spec.bucket, MAX_NAME_CHARS)
}

pub(super) fn create_vault(state: &State, c: CreateVault) -> Decision {
    let owner = user(state, c.user_id)?;
    if state.vault_owner(c.vault_id).is_some() {
        return Err(DomainError::already_exists("vault", c.vault_id));
    }
    validate_vault(&c.spec)?;
    Ok(vec![VaultCreated {
        vault_id: c.vault_id,
        tenant: owner.tenant,
        user_id: owner.id,
        spec: c.spec,
    }
    .into()])
}

pub(super) fn update_vault(state: &State, c: UpdateVault) -> Decision {
    let owner = vault_owner(state, c.vault_id)?;
    let current = &owner.vaults[&c.vault_id].spec;
    let mut spec = current.clone();
    let p = c.patch;
    set(&mut spec.name, p.name);
    set(&mut spec.kind, p.kind);
    set(&mut spec.address, p.address);
    set(&mut spec.bucket, p.bucket);
    set(&mut spec.quota_bytes, p.quota_bytes);
    if &spec == current {
        return Ok(vec![]);
    }
    validate_vault(&spec)?;
    Ok(vec![VaultUpdated {
        vault_id: c.vault_id,
        tenant: owner.tenant,
        user_id: owner.id,
        spec,
    }
    .into()])
}

pub(super) fn remove_vault(state: &State, c: RemoveVault) -> Decision {
    let owner = vault_owner(state, c.vault_id)?;
    if let Some(s) = state
        .user_schedules(owner.id)
        .find(|s| s.spec.vault == c.vault_id)
    {
        return Err(DomainError::conflict(
            "vault_id",
            format!("schedule {} uses this vault", s.id),
        ));
    }
    Ok(vec![VaultRemoved {
        vault_id: c.vault_id,
        tenant: owner.tenant,
        user_id: owner.id,
    }
    .into()])
}

pub(super) fn replace_vault_address(state: &State, c: ReplaceVaultAddress) -> Decision {
    if c.find.is_empty() {
        return Err(DomainError::invalid("find", "must not be empty"));
    }
    validate_text("replace", &c.replace, MAX_ADDRESS_CHARS)?;
    let mut events = Vec::new();
    for m in state.vault_address_matches(c.within, &c.find) {
        let new_address = m.address.replace(&c.find, &c.replace);
        if new_address == m.address {
            continue;
        }
        validate_address("replace", &new_address)?;
        events.push(
            VaultAddressReplaced {
                vault_id: m.vault_id,
                tenant: m.tenant,
                user_id: m.user_id,
                old_address: m.address,
                new_address,
            }
            .into(),
        );
    }
    Ok(events)
}
