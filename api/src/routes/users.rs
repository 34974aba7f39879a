//! `/users`: the accounts devices back up for, with their policy and limits.
//!
//! A tenant admin restricted by `allowed_user_policies` may give users only those policies:
//! naming another one is a 403, and so is creating a user without a policy when the
//! tenant's default policy (which the user would get) is outside the list.

use std::collections::BTreeMap;

use actix_web::{delete, get, patch, post, web};
use domain::commands::{CreateUser, RemoveUser, UpdateUser, UserPatch};
use domain::model::{self, UserSpec};
use domain::resolution::{EffectivePolicy as ResolvedPolicy, EffectiveSetting};
use domain::{Event, PolicyId, UserId};
use projections::ReadModels;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::owners::{contains_ignore_case, list_scope, owner_for_create, search_term};
use super::policies::SettingMode;
use crate::auth::Scope;
use crate::extract::{parse_id, IfMatch, Json, Query};
use crate::idempotency::IdempotencyKey;
use crate::paging::{Page, PageRequest};
use crate::problem::ApiError;
use crate::reply::Reply;
use crate::state::AppState;
use crate::write::Write;

pub(super) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(list)
        .service(create)
        .service(get_one)
        .service(update)
        .service(remove);
}

/// One setting as the user sees it under its policy.
#[derive(Serialize, ToSchema)]
pub struct UserSetting {
    pub mode: SettingMode,
    /// Enforced by the policy: the user cannot change it.
    pub read_only: bool,
}

/// The policy a user is held to, read-only: change it through `/policies/{id}`.
#[derive(Serialize, ToSchema)]
pub struct EffectivePolicy {
    pub policy_id: String,
    pub name: String,
    pub random_delay_secs: Option<u32>,
    pub settings: BTreeMap<String, UserSetting>,
}

impl From<ResolvedPolicy> for EffectivePolicy {
    fn from(p: ResolvedPolicy) -> EffectivePolicy {
        let setting = |s: EffectiveSetting| UserSetting {
            mode: match s {
                EffectiveSetting::SystemDefault => SettingMode::SystemDefault,
                EffectiveSetting::Optional { default_on: true } => SettingMode::OptionalOn,
                EffectiveSetting::Optional { default_on: false } => SettingMode::OptionalOff,
                EffectiveSetting::Enforced { on: true } => SettingMode::EnforcedOn,
                EffectiveSetting::Enforced { on: false } => SettingMode::EnforcedOff,
            },
            read_only: s.is_locked(),
        };
        EffectivePolicy {
            policy_id: p.policy_id.to_string(),
            name: p.name,
            random_delay_secs: p.random_delay_secs,
            settings: p
                .settings
                .into_iter()
                .map(|(k, s)| (k, setting(s)))
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct User {
    pub id: String,
    /// A tenant id, or `root`.
    pub tenant_id: String,
    pub username: String,
    pub account_name: String,
    pub emails: Vec<String>,
    /// IANA time zone; the user's schedules run in it.
    pub timezone: String,
    pub language: String,
    pub policy_id: Option<String>,
    pub suspended: bool,
    /// `null`: no limit.
    pub max_devices: Option<u32>,
    /// `null`: no limit.
    pub quota_bytes: Option<u64>,
    /// The settings of the user's policy, which the user cannot change; `null` without one.
    pub effective_policy: Option<EffectivePolicy>,
    /// Pass as `If-Match` to PATCH only this version. The user's protected items and vaults
    /// share it.
    pub version: u64,
}

impl User {
    fn from_model(u: &model::User, models: &ReadModels) -> User {
        let id = u.id.to_string();
        User {
            version: models.version(&id),
            effective_policy: models
                .effective_policy(projections::Scope::Root, u.id)
                .map(Into::into),
            id,
            tenant_id: u.tenant.to_string(),
            username: u.spec.username.clone(),
            account_name: u.spec.account_name.clone(),
            emails: u.spec.emails.clone(),
            timezone: u.spec.timezone.clone(),
            language: u.spec.language.clone(),
            policy_id: u.spec.policy.map(|p| p.to_string()),
            suspended: u.spec.suspended,
            max_devices: u.spec.max_devices,
            quota_bytes: u.spec.quota_bytes,
        }
    }
}

fn default_timezone() -> String {
    "UTC".to_owned()
}

fn default_language() -> String {
    "en".to_owned()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// `[a-zA-Z0-9_.@-]`, 1–255; unique server-wide.
    pub username: String,
    /// At least 8 characters. Write-only.
    pub password: String,
    #[serde(default)]
    pub account_name: String,
    #[serde(default)]
    pub emails: Vec<String>,
    /// IANA time zone (default `UTC`).
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Language tag (default `en`).
    #[serde(default = "default_language")]
    pub language: String,
    /// `pol_…` of the user's tenant; default: the tenant's default policy, if any.
    #[serde(default)]
    pub policy_id: Option<String>,
    #[serde(default)]
    pub suspended: bool,
    #[serde(default)]
    pub max_devices: Option<u32>,
    #[serde(default)]
    pub quota_bytes: Option<u64>,
    /// `ten_…` or `root` (root admins only); default: the caller's tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// Fields left out are unchanged; `null` clears `policy_id`, `max_devices`, `quota_bytes`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    pub username: Option<String>,
    /// Write-only.
    pub password: Option<String>,
    pub account_name: Option<String>,
    pub emails: Option<Vec<String>>,
    pub timezone: Option<String>,
    pub language: Option<String>,
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<String>)]
    pub policy_id: Option<Option<String>>,
    pub suspended: Option<bool>,
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<u32>)]
    pub max_devices: Option<Option<u32>>,
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<u64>)]
    pub quota_bytes: Option<Option<u64>>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only users whose username, account name or an email contains this (ASCII case
    /// ignored).
    pub q: Option<String>,
    /// Root admins only: just this tenant's users.
    pub tenant_id: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

pub(super) fn find<'m>(
    models: &'m ReadModels,
    scope: &Scope,
    id: UserId,
) -> Result<&'m model::User, ApiError> {
    models
        .user(scope.read(), id)
        .ok_or_else(|| ApiError::NotFound(format!("user {id} not found")))
}

/// A policy named in a body: another tenant's is a 404 (as in a path), one outside a
/// restricted admin's list a 403.
fn check_policy(
    models: &ReadModels,
    scope: &Scope,
    policy: Option<PolicyId>,
) -> Result<(), ApiError> {
    let Some(id) = policy else {
        return Ok(());
    };
    if models.policy(scope.read(), id).is_none() {
        return Err(ApiError::NotFound(format!("policy {id} not found")));
    }
    let allowed = &scope.permissions().allowed_user_policies;
    if scope.is_root() || allowed.is_empty() || allowed.contains(&id) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "policy {id} is not among this admin's allowed_user_policies"
        )))
    }
}

fn parse_policy(raw: Option<&str>) -> Result<Option<PolicyId>, ApiError> {
    raw.map(|p| parse_id::<PolicyId>("policy_id", p))
        .transpose()
}

/// Whether a user matches a `?q=` term.
pub(super) fn user_matches(u: &model::User, term: &str) -> bool {
    contains_ignore_case(&u.spec.username, term)
        || contains_ignore_case(&u.spec.account_name, term)
        || u.spec.emails.iter().any(|e| contains_ignore_case(e, term))
}

/// List users, by id; `?q=` filters by username, account name or email.
#[utoipa::path(
    tag = "users",
    params(ListQuery),
    responses((status = 200, description = "A page of users, by id.", body = Page<User>)),
    security(("bearer" = []))
)]
#[get("/users")]
async fn list(
    state: web::Data<AppState>,
    scope: Scope,
    Query(q): Query<ListQuery>,
) -> Result<Reply, ApiError> {
    let page = PageRequest::<UserId>::new(q.limit, q.cursor.as_deref())?;
    let term = q.q.as_deref().map(|t| search_term("q", t)).transpose()?;
    let read = list_scope(&scope, q.tenant_id.as_deref())?;
    let models = state.read_models.read();
    let rows = match (read, term) {
        (None, _) => Vec::new(),
        (Some(read), None) => models.users(read, page.after.as_ref(), page.fetch()),
        // The search index narrows to candidates in id order; the predicate decides each.
        (Some(read), Some(term)) => models
            .user_candidates(read, &term, page.after)
            .filter(|u| user_matches(u, &term))
            .take(page.fetch())
            .collect(),
    };
    Ok(Reply::ok(&page.page(
        rows,
        |u| u.id,
        |u| User::from_model(u, &models),
    )))
}

/// Create a user. The password is hashed (argon2id) and never returned.
#[utoipa::path(
    tag = "users",
    request_body = NewUser,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the same key and body return the first answer.")),
    responses((status = 201, description = "Created.", body = User)),
    security(("bearer" = []))
)]
#[post("/users")]
async fn create(
    state: web::Data<AppState>,
    scope: Scope,
    key: IdempotencyKey,
    Json(body): Json<NewUser>,
) -> Result<Reply, ApiError> {
    let tenant = owner_for_create(&state, &scope, body.tenant_id.as_deref())?;
    let policy = parse_policy(body.policy_id.as_deref())?;
    {
        let models = state.read_models.read();
        check_policy(&models, &scope, policy)?;
        if policy.is_none() {
            // The user would get the tenant's default policy.
            let default = models
                .default_policy(projections::Scope::Root, tenant)
                .map(|p| p.id);
            check_policy(&models, &scope, default)?;
        }
    }
    domain::validate::validate_username("username", &body.username)?;
    domain::validate::validate_password(&body.password)?;
    let spec = UserSpec {
        username: body.username,
        account_name: body.account_name,
        emails: body.emails,
        timezone: body.timezone,
        language: body.language,
        policy,
        suspended: body.suspended,
        max_devices: body.max_devices,
        quota_bytes: body.quota_bytes,
    };
    let password = body.password;
    let (state, scope) = (&state, &scope);
    key.run(&state.idempotency, scope, move |key| async move {
        let password_hash = state.auth.passwords.hash(password).await?;
        let user_id = state.new_id(UserId::new);
        let written = Write::new(state, scope)
            .idempotent(&key)
            .execute(CreateUser {
                user_id,
                tenant,
                spec,
                password_hash,
            })
            .await?;
        let id = written
            .events
            .iter()
            .find_map(|e| match e {
                Event::UserCreated(e) => Some(e.user_id),
                _ => None,
            })
            .unwrap_or(user_id);
        let models = state.read_models.read();
        Ok(Reply::created(&User::from_model(
            find(&models, scope, id)?,
            &models,
        )))
    })
    .await
}

/// Get a user, with the policy it is held to.
#[utoipa::path(
    tag = "users",
    params(("id" = String, Path, description = "`usr_…`")),
    responses((status = 200, description = "The user.", body = User)),
    security(("bearer" = []))
)]
#[get("/users/{id}")]
async fn get_one(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<UserId>("id", &id)?;
    let models = state.read_models.read();
    Ok(Reply::ok(&User::from_model(
        find(&models, &scope, id)?,
        &models,
    )))
}

/// Change a user; a `password` is hashed and never returned.
#[utoipa::path(
    tag = "users",
    request_body = UserChanges,
    params(
        ("id" = String, Path, description = "`usr_…`"),
        ("If-Match" = Option<String>, Header, description = "The `version` the change is based on; 409 if the user (or one of its items or vaults) changed since."),
    ),
    responses((status = 200, description = "The changed user.", body = User)),
    security(("bearer" = []))
)]
#[patch("/users/{id}")]
async fn update(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    if_match: IfMatch,
    Json(body): Json<UserChanges>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<UserId>("id", &id)?;
    let policy = body
        .policy_id
        .map(|p| parse_policy(p.as_deref()))
        .transpose()?;
    {
        let models = state.read_models.read();
        find(&models, &scope, id)?;
        if let Some(policy) = policy {
            check_policy(&models, &scope, policy)?;
        }
    }
    if let Some(username) = &body.username {
        domain::validate::validate_username("username", username)?;
    }
    let password_hash = match body.password {
        None => None,
        Some(password) => {
            domain::validate::validate_password(&password)?;
            Some(state.auth.passwords.hash(password).await?)
        }
    };
    Write::new(&state, &scope)
        .if_match(if_match, id)
        .execute(UpdateUser {
            user_id: id,
            patch: UserPatch {
                username: body.username,
                account_name: body.account_name,
                emails: body.emails,
                timezone: body.timezone,
                language: body.language,
                policy,
                suspended: body.suspended,
                max_devices: body.max_devices,
                quota_bytes: body.quota_bytes,
                password_hash,
            },
        })
        .await?;
    let models = state.read_models.read();
    Ok(Reply::ok(&User::from_model(
        find(&models, &scope, id)?,
        &models,
    )))
}

/// Remove a user with its protected items, vaults, schedules and devices.
#[utoipa::path(
    tag = "users",
    params(("id" = String, Path, description = "`usr_…`")),
    responses((status = 204, description = "Removed.")),
    security(("bearer" = []))
)]
#[delete("/users/{id}")]
async fn remove(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<UserId>("id", &id)?;
    find(&state.read_models.read(), &scope, id)?;
    Write::new(&state, &scope)
        .execute(RemoveUser { user_id: id })
        .await?;
    Ok(Reply::no_content())
}
