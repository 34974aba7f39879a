//! `/policies`: named sets of setting modes and a random delay that users are held to.
//!
//! Decision (restricted admins): a tenant admin whose `allowed_user_policies` is not empty
//! may read every policy of its tenant, but may change or remove only the policies in that
//! list, and may not create new ones (it could not assign them). Root admins and tenant
//! admins without the restriction manage every policy they can see.

use std::collections::BTreeMap;

use actix_web::{delete, get, patch, post, web};
use domain::commands::{CreatePolicy, PolicyPatch, RemovePolicy, UpdatePolicy};
use domain::model::{self, PolicySpec};
use domain::{Event, PolicyId};
use projections::ReadModels;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::owners::{list_scope, owner_for_create};
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

/// How a policy treats one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettingMode {
    /// Leave the system default.
    SystemDefault,
    /// The user may change it; on by default.
    OptionalOn,
    /// The user may change it; off by default.
    OptionalOff,
    /// Always on; read-only for the user.
    EnforcedOn,
    /// Always off; read-only for the user.
    EnforcedOff,
}

impl From<model::SettingMode> for SettingMode {
    fn from(m: model::SettingMode) -> SettingMode {
        match m {
            model::SettingMode::SystemDefault => SettingMode::SystemDefault,
            model::SettingMode::OptionalOn => SettingMode::OptionalOn,
            model::SettingMode::OptionalOff => SettingMode::OptionalOff,
            model::SettingMode::EnforcedOn => SettingMode::EnforcedOn,
            model::SettingMode::EnforcedOff => SettingMode::EnforcedOff,
        }
    }
}

impl From<SettingMode> for model::SettingMode {
    fn from(m: SettingMode) -> model::SettingMode {
        match m {
            SettingMode::SystemDefault => model::SettingMode::SystemDefault,
            SettingMode::OptionalOn => model::SettingMode::OptionalOn,
            SettingMode::OptionalOff => model::SettingMode::OptionalOff,
            SettingMode::EnforcedOn => model::SettingMode::EnforcedOn,
            SettingMode::EnforcedOff => model::SettingMode::EnforcedOff,
        }
    }
}

fn settings_into_model(
    settings: BTreeMap<String, SettingMode>,
) -> BTreeMap<String, model::SettingMode> {
    settings.into_iter().map(|(k, m)| (k, m.into())).collect()
}

#[derive(Serialize, ToSchema)]
pub struct Policy {
    pub id: String,
    /// A tenant id, or `root`.
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    /// New users of the tenant get the default policy.
    pub is_default: bool,
    /// Overrides the schedules' own random delay (the server-wide one still wins).
    pub random_delay_secs: Option<u32>,
    /// Setting name → mode.
    pub settings: BTreeMap<String, SettingMode>,
    /// Pass as `If-Match` to PATCH only this version.
    pub version: u64,
}

impl Policy {
    fn from_model(p: &model::Policy, models: &ReadModels) -> Policy {
        let id = p.id.to_string();
        Policy {
            version: models.version(&id),
            id,
            tenant_id: p.tenant.to_string(),
            name: p.spec.name.clone(),
            description: p.spec.description.clone(),
            is_default: p.spec.is_default,
            random_delay_secs: p.spec.random_delay_secs,
            settings: p
                .spec
                .settings
                .iter()
                .map(|(k, m)| (k.clone(), (*m).into()))
                .collect(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPolicy {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub is_default: bool,
    /// 0 to 18000 seconds.
    #[serde(default)]
    #[schema(maximum = 18000)]
    pub random_delay_secs: Option<u32>,
    #[serde(default)]
    pub settings: BTreeMap<String, SettingMode>,
    /// `ten_…` or `root` (root admins only); default: the caller's tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// Fields left out are unchanged; `random_delay_secs: null` removes the delay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_default: Option<bool>,
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<u32>, maximum = 18000)]
    pub random_delay_secs: Option<Option<u32>>,
    pub settings: Option<BTreeMap<String, SettingMode>>,
}

impl From<PolicyChanges> for PolicyPatch {
    fn from(c: PolicyChanges) -> PolicyPatch {
        PolicyPatch {
            name: c.name,
            description: c.description,
            is_default: c.is_default,
            random_delay_secs: c.random_delay_secs,
            settings: c.settings.map(settings_into_model),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Root admins only: just this tenant's policies.
    pub tenant_id: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn find<'m>(
    models: &'m ReadModels,
    scope: &Scope,
    id: PolicyId,
) -> Result<&'m model::Policy, ApiError> {
    models
        .policy(scope.read(), id)
        .ok_or_else(|| ApiError::NotFound(format!("policy {id} not found")))
}

/// 403 for a tenant admin restricted to other policies (see the module docs).
fn check_restriction(scope: &Scope, policy: Option<PolicyId>) -> Result<(), ApiError> {
    let allowed = &scope.permissions().allowed_user_policies;
    if scope.is_root() || allowed.is_empty() {
        return Ok(());
    }
    match policy {
        Some(id) if allowed.contains(&id) => Ok(()),
        Some(id) => Err(ApiError::Forbidden(format!(
            "policy {id} is not among this admin's allowed_user_policies"
        ))),
        None => Err(ApiError::Forbidden(
            "an admin restricted by allowed_user_policies cannot create policies".to_owned(),
        )),
    }
}

/// List policies: a root admin sees every tenant's (or one tenant's with `?tenant_id=`), a
/// tenant admin its tenant's.
#[utoipa::path(
    tag = "policies",
    params(ListQuery),
    responses((status = 200, description = "A page of policies, by id.", body = Page<Policy>)),
    security(("bearer" = []))
)]
#[get("/policies")]
async fn list(
    state: web::Data<AppState>,
    scope: Scope,
    Query(q): Query<ListQuery>,
) -> Result<Reply, ApiError> {
    let page = PageRequest::<PolicyId>::new(q.limit, q.cursor.as_deref())?;
    let read = list_scope(&scope, q.tenant_id.as_deref())?;
    let models = state.read_models.read();
    let rows = match read {
        Some(read) => models.policies(read, page.after.as_ref(), page.fetch()),
        None => Vec::new(),
    };
    Ok(Reply::ok(&page.page(
        rows,
        |p| p.id,
        |p| Policy::from_model(p, &models),
    )))
}

/// Create a policy.
#[utoipa::path(
    tag = "policies",
    request_body = NewPolicy,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the same key and body return the first answer.")),
    responses((status = 201, description = "Created.", body = Policy)),
    security(("bearer" = []))
)]
#[post("/policies")]
async fn create(
    state: web::Data<AppState>,
    scope: Scope,
    key: IdempotencyKey,
    Json(body): Json<NewPolicy>,
) -> Result<Reply, ApiError> {
    let tenant = owner_for_create(&state, &scope, body.tenant_id.as_deref())?;
    check_restriction(&scope, None)?;
    let spec = PolicySpec {
        name: body.name,
        description: body.description,
        is_default: body.is_default,
        random_delay_secs: body.random_delay_secs,
        settings: settings_into_model(body.settings),
    };
    let (state, scope) = (&state, &scope);
    key.run(&state.idempotency, scope, move |key| async move {
        let policy_id = state.new_id(PolicyId::new);
        let written = Write::new(state, scope)
            .idempotent(&key)
            .execute(CreatePolicy {
                policy_id,
                tenant,
                spec,
            })
            .await?;
        let id = written
            .events
            .iter()
            .find_map(|e| match e {
                Event::PolicyCreated(e) => Some(e.policy_id),
                _ => None,
            })
            .unwrap_or(policy_id);
        let models = state.read_models.read();
        Ok(Reply::created(&Policy::from_model(
            find(&models, scope, id)?,
            &models,
        )))
    })
    .await
}

/// Get a policy.
#[utoipa::path(
    tag = "policies",
    params(("id" = String, Path, description = "`pol_…`")),
    responses((status = 200, description = "The policy.", body = Policy)),
    security(("bearer" = []))
)]
#[get("/policies/{id}")]
async fn get_one(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<PolicyId>("id", &id)?;
    let models = state.read_models.read();
    Ok(Reply::ok(&Policy::from_model(
        find(&models, &scope, id)?,
        &models,
    )))
}

/// Change a policy; users holding it see the change at once.
#[utoipa::path(
    tag = "policies",
    request_body = PolicyChanges,
    params(
        ("id" = String, Path, description = "`pol_…`"),
        ("If-Match" = Option<String>, Header, description = "The `version` the change is based on; 409 if the policy changed since."),
    ),
    responses((status = 200, description = "The changed policy.", body = Policy)),
    security(("bearer" = []))
)]
#[patch("/policies/{id}")]
async fn update(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    if_match: IfMatch,
    Json(body): Json<PolicyChanges>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<PolicyId>("id", &id)?;
    find(&state.read_models.read(), &scope, id)?;
    check_restriction(&scope, Some(id))?;
    Write::new(&state, &scope)
        .if_match(if_match, id)
        .execute(UpdatePolicy {
            policy_id: id,
            patch: body.into(),
        })
        .await?;
    let models = state.read_models.read();
    Ok(Reply::ok(&Policy::from_model(
        find(&models, &scope, id)?,
        &models,
    )))
}

/// Remove a policy. Refused (409) while users have it.
#[utoipa::path(
    tag = "policies",
    params(("id" = String, Path, description = "`pol_…`")),
    responses((status = 204, description = "Removed.")),
    security(("bearer" = []))
)]
#[delete("/policies/{id}")]
async fn remove(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<PolicyId>("id", &id)?;
    find(&state.read_models.read(), &scope, id)?;
    check_restriction(&scope, Some(id))?;
    Write::new(&state, &scope)
        .execute(RemovePolicy { policy_id: id })
        .await?;
    Ok(Reply::no_content())
}
