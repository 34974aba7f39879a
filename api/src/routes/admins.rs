//! `/admins`: root and tenant admins with their permissions.
//!
//! Decision (delegation): a root admin may grant anything. A tenant admin manages only its
//! own tenant's admins, and only within its own abilities: it cannot grant an `allow_*` it
//! lacks, cannot lift a `prevent_*`/`deny_*` it is held to, and, when its own
//! `allowed_user_policies` is restricted, can only grant a subset of it. The same rule
//! applies to the admin being changed or removed, so a tenant admin cannot take over (by
//! resetting the password of) an admin more capable than itself. An admin with
//! `prevent_change_password` cannot change its own password.

use actix_web::{delete, get, patch, post, web};
use domain::commands::{AdminPatch, CreateAdmin, RemoveAdmin, UpdateAdmin};
use domain::model::{self, AdminSpec};
use domain::{AdminId, Event, PolicyId, TenantRef};
use projections::ReadModels;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

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

/// Admin abilities. Tenant-level settings need an `allow_*`; `prevent_*`/`deny_*` take
/// abilities away. Omitted fields are false (empty for the list).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Permissions {
    pub allow_edit_webhooks: bool,
    pub allow_edit_email_options: bool,
    pub allow_edit_branding: bool,
    pub allow_upgrade_campaigns: bool,
    pub prevent_edit_server_settings: bool,
    pub prevent_change_password: bool,
    pub deny_view_server_info: bool,
    /// Policies (`pol_…`) this admin may assign to users; empty means any of the tenant's.
    pub allowed_user_policies: Vec<String>,
}

impl From<&model::Permissions> for Permissions {
    fn from(p: &model::Permissions) -> Permissions {
        Permissions {
            allow_edit_webhooks: p.allow_edit_webhooks,
            allow_edit_email_options: p.allow_edit_email_options,
            allow_edit_branding: p.allow_edit_branding,
            allow_upgrade_campaigns: p.allow_upgrade_campaigns,
            prevent_edit_server_settings: p.prevent_edit_server_settings,
            prevent_change_password: p.prevent_change_password,
            deny_view_server_info: p.deny_view_server_info,
            allowed_user_policies: p
                .allowed_user_policies
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }
}

impl Permissions {
    fn into_model(self, field: &str) -> Result<model::Permissions, ApiError> {
        let allowed_user_policies = self
            .allowed_user_policies
            .iter()
            .enumerate()
            .map(|(i, p)| parse_id::<PolicyId>(&format!("{field}.allowed_user_policies[{i}]"), p))
            .collect::<Result<_, _>>()?;
        Ok(model::Permissions {
            allow_edit_webhooks: self.allow_edit_webhooks,
            allow_edit_email_options: self.allow_edit_email_options,
            allow_edit_branding: self.allow_edit_branding,
            allow_upgrade_campaigns: self.allow_upgrade_campaigns,
            prevent_edit_server_settings: self.prevent_edit_server_settings,
            prevent_change_password: self.prevent_change_password,
            deny_view_server_info: self.deny_view_server_info,
            allowed_user_policies,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct Admin {
    pub id: String,
    pub username: String,
    /// A tenant id, or `root`.
    pub tenant_id: String,
    pub permissions: Permissions,
    /// Pass as `If-Match` to PATCH only this version. Logins count as changes.
    pub version: u64,
}

impl Admin {
    fn from_model(a: &model::Admin, models: &ReadModels) -> Admin {
        let id = a.id.to_string();
        Admin {
            version: models.version(&id),
            id,
            username: a.spec.username.clone(),
            tenant_id: a.tenant.to_string(),
            permissions: Permissions::from(&a.spec.permissions),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdmin {
    /// `[a-zA-Z0-9_.@-]`, 1–255; unique within the tenant.
    pub username: String,
    /// At least 8 characters. Write-only.
    pub password: String,
    /// `ten_…` or `root` (root admins only); default: the caller's tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub permissions: Permissions,
}

/// Fields left out are unchanged.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminChanges {
    pub username: Option<String>,
    /// Write-only.
    pub password: Option<String>,
    pub permissions: Option<Permissions>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Root admins only: just this tenant's admins.
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
    id: AdminId,
) -> Result<&'m model::Admin, ApiError> {
    models
        .admin(scope.read(), id)
        .ok_or_else(|| ApiError::NotFound(format!("admin {id} not found")))
}

/// 403 unless a tenant admin's own abilities cover `wanted` (see the module docs).
fn check_delegation(scope: &Scope, wanted: &model::Permissions) -> Result<(), ApiError> {
    if scope.is_root() {
        return Ok(());
    }
    let mine = scope.permissions();
    let mut missing = Vec::new();
    let allows = [
        (
            "allow_edit_webhooks",
            mine.allow_edit_webhooks,
            wanted.allow_edit_webhooks,
        ),
        (
            "allow_edit_email_options",
            mine.allow_edit_email_options,
            wanted.allow_edit_email_options,
        ),
        (
            "allow_edit_branding",
            mine.allow_edit_branding,
            wanted.allow_edit_branding,
        ),
        (
            "allow_upgrade_campaigns",
            mine.allow_upgrade_campaigns,
            wanted.allow_upgrade_campaigns,
        ),
    ];
    missing.extend(allows.iter().filter(|(_, m, w)| *w && !m).map(|(n, ..)| *n));
    let prevents = [
        (
            "prevent_edit_server_settings",
            mine.prevent_edit_server_settings,
            wanted.prevent_edit_server_settings,
        ),
        (
            "prevent_change_password",
            mine.prevent_change_password,
            wanted.prevent_change_password,
        ),
        (
            "deny_view_server_info",
            mine.deny_view_server_info,
            wanted.deny_view_server_info,
        ),
    ];
    missing.extend(
        prevents
            .iter()
            .filter(|(_, m, w)| *m && !w)
            .map(|(n, ..)| *n),
    );
    let policies_ok = mine.allowed_user_policies.is_empty()
        || (!wanted.allowed_user_policies.is_empty()
            && wanted
                .allowed_user_policies
                .iter()
                .all(|p| mine.allowed_user_policies.contains(p)));
    if !policies_ok {
        missing.push("allowed_user_policies");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "a tenant admin cannot grant or manage abilities beyond its own: {}",
            missing.join(", ")
        )))
    }
}

/// List admins: a root admin sees every admin (or one tenant's with `?tenant_id=`), a
/// tenant admin its tenant's.
#[utoipa::path(
    tag = "admins",
    params(ListQuery),
    responses((status = 200, description = "A page of admins, by id.", body = Page<Admin>)),
    security(("bearer" = []))
)]
#[get("/admins")]
async fn list(
    state: web::Data<AppState>,
    scope: Scope,
    Query(q): Query<ListQuery>,
) -> Result<Reply, ApiError> {
    let page = PageRequest::<AdminId>::new(q.limit, q.cursor.as_deref())?;
    let read = match q.tenant_id.as_deref() {
        None => Some(scope.read()),
        Some(raw) => {
            let tenant = parse_id::<domain::TenantId>("tenant_id", raw)?;
            // A tenant admin naming another tenant sees nothing, as if it were empty.
            (scope.is_root() || scope.owner() == TenantRef::Tenant(tenant))
                .then_some(projections::Scope::Tenant(tenant))
        }
    };
    let models = state.read_models.read();
    let rows = match read {
        Some(read) => models.admins(read, page.after.as_ref(), page.fetch()),
        None => Vec::new(),
    };
    Ok(Reply::ok(&page.page(
        rows,
        |a| a.id,
        |a| Admin::from_model(a, &models),
    )))
}

/// Create an admin.
#[utoipa::path(
    tag = "admins",
    request_body = NewAdmin,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the same key and body return the first answer.")),
    responses((status = 201, description = "Created.", body = Admin)),
    security(("bearer" = []))
)]
#[post("/admins")]
async fn create(
    state: web::Data<AppState>,
    scope: Scope,
    key: IdempotencyKey,
    Json(body): Json<NewAdmin>,
) -> Result<Reply, ApiError> {
    let tenant = match body.tenant_id.as_deref() {
        None => scope.owner(),
        Some(raw) => {
            let tenant =
                TenantRef::parse(raw).map_err(|e| ApiError::invalid("tenant_id", e.to_string()))?;
            let visible = match tenant {
                TenantRef::Root => scope.is_root(),
                TenantRef::Tenant(id) => {
                    state.read_models.read().tenant(scope.read(), id).is_some()
                }
            };
            if !visible {
                return Err(ApiError::NotFound(format!("tenant {raw} not found")));
            }
            tenant
        }
    };
    let permissions = body.permissions.into_model("permissions")?;
    check_delegation(&scope, &permissions)?;
    domain::validate::validate_username("username", &body.username)?;
    domain::validate::validate_password(&body.password)?;
    let (state, scope) = (&state, &scope);
    let username = body.username;
    let password = body.password;
    key.run(&state.idempotency, scope, move |key| async move {
        let password_hash = state.auth.passwords.hash(password).await?;
        let admin_id = state.new_id(AdminId::new);
        let written = Write::new(state, scope)
            .idempotent(&key)
            .execute(CreateAdmin {
                admin_id,
                tenant,
                spec: AdminSpec {
                    username,
                    permissions,
                },
                password_hash,
            })
            .await?;
        let id = written
            .events
            .iter()
            .find_map(|e| match e {
                Event::AdminCreated(e) => Some(e.admin_id),
                _ => None,
            })
            .unwrap_or(admin_id);
        let models = state.read_models.read();
        Ok(Reply::created(&Admin::from_model(
            find(&models, scope, id)?,
            &models,
        )))
    })
    .await
}

/// Get an admin.
#[utoipa::path(
    tag = "admins",
    params(("id" = String, Path, description = "`adm_…`")),
    responses((status = 200, description = "The admin.", body = Admin)),
    security(("bearer" = []))
)]
#[get("/admins/{id}")]
async fn get_one(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<AdminId>("id", &id)?;
    let models = state.read_models.read();
    Ok(Reply::ok(&Admin::from_model(
        find(&models, &scope, id)?,
        &models,
    )))
}

/// Change an admin's name, password or permissions.
#[utoipa::path(
    tag = "admins",
    request_body = AdminChanges,
    params(
        ("id" = String, Path, description = "`adm_…`"),
        ("If-Match" = Option<String>, Header, description = "The `version` the change is based on; 409 if the admin changed since."),
    ),
    responses((status = 200, description = "The changed admin.", body = Admin)),
    security(("bearer" = []))
)]
#[patch("/admins/{id}")]
async fn update(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    if_match: IfMatch,
    Json(body): Json<AdminChanges>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<AdminId>("id", &id)?;
    let current = find(&state.read_models.read(), &scope, id)?
        .spec
        .permissions
        .clone();
    check_delegation(&scope, &current)?;
    let permissions = body
        .permissions
        .map(|p| p.into_model("permissions"))
        .transpose()?;
    if let Some(p) = &permissions {
        check_delegation(&scope, p)?;
    }
    if let Some(username) = &body.username {
        domain::validate::validate_username("username", username)?;
    }
    let password_hash = match body.password {
        None => None,
        Some(password) => {
            if id == scope.admin() && scope.permissions().prevent_change_password {
                return Err(ApiError::Forbidden(
                    "this admin may not change its own password".into(),
                ));
            }
            domain::validate::validate_password(&password)?;
            Some(state.auth.passwords.hash(password).await?)
        }
    };
    Write::new(&state, &scope)
        .if_match(if_match, id)
        .execute(UpdateAdmin {
            admin_id: id,
            patch: AdminPatch {
                username: body.username,
                permissions,
                password_hash,
            },
        })
        .await?;
    let models = state.read_models.read();
    Ok(Reply::ok(&Admin::from_model(
        find(&models, &scope, id)?,
        &models,
    )))
}

/// Remove an admin. The last root admin cannot be removed (409).
#[utoipa::path(
    tag = "admins",
    params(("id" = String, Path, description = "`adm_…`")),
    responses((status = 204, description = "Removed.")),
    security(("bearer" = []))
)]
#[delete("/admins/{id}")]
async fn remove(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<AdminId>("id", &id)?;
    let current = find(&state.read_models.read(), &scope, id)?
        .spec
        .permissions
        .clone();
    check_delegation(&scope, &current)?;
    Write::new(&state, &scope)
        .execute(RemoveAdmin { admin_id: id })
        .await?;
    Ok(Reply::no_content())
}
