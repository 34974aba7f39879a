//! Tenants, their email settings, server settings and admins.

use super::{live_owner, policy_of_tenant, set, validate_text, Decision};
use crate::commands::*;
use crate::error::DomainError;
use crate::events::*;
use crate::ids::{TenantId, TenantRef};
use crate::model::{AdminSpec, EmailMode, EmailSettings, TenantSpec};
use crate::state::State;
use crate::validate::*;

const MAX_SESSION_TTL_SECS: u32 = 30 * 86_400;
const MAX_LOCKOUT_SECS: u32 = 7 * 86_400;

fn validate_tenant(state: &State, spec: &TenantSpec, this: TenantId) -> Result<(), DomainError> {
    validate_name("name", &spec.name)?;
    validate_slug(&spec.slug)?;
    if let Some(other) = state.tenant_by_slug(&spec.slug) {
        if other != this {
            return Err(DomainError::conflict(
                "slug",
                format!("slug {} is taken", spec.slug),
            ));
        }
    }
    for (i, host) in spec.hosts.iter().enumerate() {
        let field = format!("hosts[{i}]");
        validate_host(&field, host)?;
        if spec.hosts[..i].contains(host) {
            return Err(DomainError::invalid(field, "is listed twice"));
        }
        let taken = state
            .tenants()
            .any(|t| t.id != this && t.spec.hosts.contains(host));
        if taken {
            return Err(DomainError::conflict(
                field,
                format!("host {host} selects another tenant"),
            ));
        }
    }
    Ok(())
}

pub(super) fn create(state: &State, c: CreateTenant) -> Decision {
    if state.tenant(c.tenant_id).is_some() || state.tenant_removed(c.tenant_id) {
        return Err(DomainError::already_exists("tenant", c.tenant_id));
    }
    validate_tenant(state, &c.spec, c.tenant_id)?;
    Ok(vec![TenantCreated {
        tenant_id: c.tenant_id,
        spec: c.spec,
    }
    .into()])
}

pub(super) fn update(state: &State, c: UpdateTenant) -> Decision {
    live_owner(state, c.tenant_id.into())?;
    let current = state.tenant(c.tenant_id).map(|t| &t.spec);
    let mut spec = current.cloned().expect("live_owner checked the tenant");
    let p = c.patch;
    set(&mut spec.name, p.name);
    set(&mut spec.slug, p.slug);
    set(&mut spec.hosts, p.hosts);
    set(&mut spec.suspended, p.suspended);
    if Some(&spec) == current {
        return Ok(vec![]);
    }
    validate_tenant(state, &spec, c.tenant_id)?;
    Ok(vec![TenantUpdated {
        tenant_id: c.tenant_id,
        spec,
    }
    .into()])
}

pub(super) fn remove(state: &State, c: RemoveTenant) -> Decision {
    live_owner(state, c.tenant_id.into())?;
    let owner = TenantRef::Tenant(c.tenant_id);
    let users = state.users().filter(|u| u.tenant == owner).count();
    if users > 0 {
        return Err(DomainError::conflict(
            "tenant_id",
            format!("tenant still has {users} users; remove or transfer them first"),
        ));
    }
    Ok(vec![TenantRemoved {
        tenant_id: c.tenant_id,
    }
    .into()])
}

pub(super) fn set_email(state: &State, c: SetEmailSettings) -> Decision {
    live_owner(state, c.tenant)?;
    let current = match c.tenant {
        TenantRef::Root => state.root_email(),
        TenantRef::Tenant(id) => &state.tenant(id).expect("live_owner checked").email,
    };
    let mut settings = c.settings;
    settings.password = match settings.password {
        None => current.password.clone(),
        Some(p) if p.is_empty() => None,
        Some(p) => Some(p),
    };
    validate_email_settings(c.tenant, &settings)?;
    if &settings == current {
        return Ok(vec![]);
    }
    Ok(vec![TenantEmailUpdated {
        tenant: c.tenant,
        settings,
    }
    .into()])
}

fn validate_email_settings(tenant: TenantRef, s: &EmailSettings) -> Result<(), DomainError> {
    match s.mode {
        EmailMode::Inherit if tenant == TenantRef::Root => Err(DomainError::invalid(
            "mode",
            "the top level has nothing to inherit from",
        )),
        EmailMode::Inherit | EmailMode::Disabled => Ok(()),
        EmailMode::Smtp | EmailMode::SmtpTls => {
            if s.host.is_empty() || s.host.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(DomainError::invalid(
                    "host",
                    "must be a host name or address",
                ));
            }
            if s.port == 0 {
                return Err(DomainError::invalid("port", "must be 1 to 65535"));
            }
            validate_email("from_address", &s.from_address)?;
            validate_text("from_name", &s.from_name, MAX_NAME_CHARS)?;
            validate_text("username", &s.username, MAX_NAME_CHARS)
        }
    }
}

pub(super) fn update_server(state: &State, c: UpdateServerSettings) -> Decision {
    let current = state.server_settings();
    let mut settings = current.clone();
    let p = c.patch;
    set(&mut settings.random_delay_secs, p.random_delay_secs);
    set(&mut settings.session_ttl_secs, p.session_ttl_secs);
    set(&mut settings.login_protection, p.login_protection);
    validate_random_delay("random_delay_secs", settings.random_delay_secs)?;
    if !(60..=MAX_SESSION_TTL_SECS).contains(&settings.session_ttl_secs) {
        return Err(DomainError::invalid(
            "session_ttl_secs",
            format!("must be 60 to {MAX_SESSION_TTL_SECS}"),
        ));
    }
    let lockout = settings.login_protection.lockout_secs;
    if settings.login_protection.max_failures > 0 && !(1..=MAX_LOCKOUT_SECS).contains(&lockout) {
        return Err(DomainError::invalid(
            "login_protection.lockout_secs",
            format!("must be 1 to {MAX_LOCKOUT_SECS}"),
        ));
    }
    if &settings == current {
        return Ok(vec![]);
    }
    Ok(vec![ServerSettingsUpdated { settings }.into()])
}

pub(super) fn server_started(c: RecordServerStarted, now: i64) -> Decision {
    validate_name("version", &c.version)?;
    Ok(vec![ServerStarted {
        version: c.version,
        at: now,
    }
    .into()])
}

fn validate_admin(
    state: &State,
    tenant: TenantRef,
    spec: &AdminSpec,
    this: crate::ids::AdminId,
) -> Result<(), DomainError> {
    validate_username("username", &spec.username)?;
    if let Some(other) = state.admin_by_name(tenant, &spec.username) {
        if other != this {
            return Err(DomainError::conflict(
                "username",
                format!("admin {} exists in this tenant", spec.username),
            ));
        }
    }
    for (i, policy) in spec.permissions.allowed_user_policies.iter().enumerate() {
        let field = format!("permissions.allowed_user_policies[{i}]");
        policy_of_tenant(state, &field, *policy, tenant)?;
    }
    Ok(())
}

pub(super) fn create_admin(state: &State, c: CreateAdmin) -> Decision {
    if state.admin(c.admin_id).is_some() {
        return Err(DomainError::already_exists("admin", c.admin_id));
    }
    live_owner(state, c.tenant)?;
    validate_admin(state, c.tenant, &c.spec, c.admin_id)?;
    validate_password_hash(&c.password_hash)?;
    Ok(vec![AdminCreated {
        admin_id: c.admin_id,
        tenant: c.tenant,
        spec: c.spec,
        password_hash: c.password_hash,
    }
    .into()])
}

pub(super) fn update_admin(state: &State, c: UpdateAdmin) -> Decision {
    let admin = state
        .admin(c.admin_id)
        .ok_or_else(|| DomainError::not_found("admin", c.admin_id))?;
    let mut spec = admin.spec.clone();
    let p = c.patch;
    set(&mut spec.username, p.username);
    set(&mut spec.permissions, p.permissions);
    let mut events = Vec::new();
    if spec != admin.spec {
        validate_admin(state, admin.tenant, &spec, admin.id)?;
        events.push(
            AdminUpdated {
                admin_id: admin.id,
                tenant: admin.tenant,
                spec,
            }
            .into(),
        );
    }
    if let Some(password_hash) = p.password_hash {
        validate_password_hash(&password_hash)?;
        events.push(
            AdminPasswordChanged {
                admin_id: admin.id,
                tenant: admin.tenant,
                password_hash,
            }
            .into(),
        );
    }
    Ok(events)
}

pub(super) fn remove_admin(state: &State, c: RemoveAdmin) -> Decision {
    let admin = state
        .admin(c.admin_id)
        .ok_or_else(|| DomainError::not_found("admin", c.admin_id))?;
    let root_admins = state
        .admins()
        .filter(|a| a.tenant == TenantRef::Root)
        .count();
    if admin.tenant == TenantRef::Root && root_admins == 1 {
        return Err(DomainError::conflict(
            "admin_id",
            "the last root admin cannot be removed",
        ));
    }
    Ok(vec![AdminRemoved {
        admin_id: admin.id,
        tenant: admin.tenant,
    }
    .into()])
}

pub(super) fn admin_login(state: &State, c: RecordAdminLogin, now: i64) -> Decision {
    if let Some(until) = state
        .admin_login_failures(c.tenant, &c.username)
        .and_then(|f| f.locked_until)
    {
        if until > now {
            return Err(DomainError::LockedOut { until });
        }
    }
    let admin_id = state.admin_by_name(c.tenant, &c.username);
    if !c.succeeded {
        return Ok(vec![AdminLoginFailed {
            tenant: c.tenant,
            username: c.username,
            admin_id,
            at: now,
        }
        .into()]);
    }
    let admin_id = admin_id.ok_or_else(|| DomainError::not_found("admin", &c.username))?;
    if let TenantRef::Tenant(id) = c.tenant {
        if state.tenant(id).is_some_and(|t| t.spec.suspended) {
            return Err(DomainError::Suspended {
                kind: "tenant",
                id: id.to_string(),
            });
        }
    }
    Ok(vec![AdminLoggedIn {
        admin_id,
        tenant: c.tenant,
        at: now,
    }
    .into()])
}
