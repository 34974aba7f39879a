//! `/tenants` (root only): the pattern the other resource modules follow.
//!
//! - DTOs: a response struct built from the domain type plus the stream `version`; request
//!   structs with `deny_unknown_fields`, converted explicitly into domain commands.
//! - Reads: `state.read_models.read()` with `scope.read()`, so another tenant's object is
//!   `None` → 404 before any role check; then `scope.require_root(..)` → 403.
//! - Writes: [`Write`] (idempotency key, `If-Match`), then answer from the read models,
//!   which already include the write.

use actix_web::{delete, get, patch, post, web};
use domain::commands::{CreateTenant, RemoveTenant, TenantPatch, UpdateTenant};
use domain::model::{self, TenantSpec};
use domain::{Event, TenantId};
use projections::ReadModels;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::PageQuery;
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

#[derive(Serialize, ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub hosts: Vec<String>,
    pub suspended: bool,
    /// Pass as `If-Match` to PATCH only this version.
    pub version: u64,
}

impl Tenant {
    fn from_model(t: &model::Tenant, models: &ReadModels) -> Tenant {
        let id = t.id.to_string();
        Tenant {
            version: models.version(&id),
            id,
            name: t.spec.name.clone(),
            slug: t.spec.slug.clone(),
            hosts: t.spec.hosts.clone(),
            suspended: t.spec.suspended,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub name: String,
    /// `[a-z0-9-]`, unique; selects the tenant at login.
    pub slug: String,
    /// Host names that select the tenant at login.
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub suspended: bool,
}

impl From<NewTenant> for TenantSpec {
    fn from(t: NewTenant) -> TenantSpec {
        TenantSpec {
            name: t.name,
            slug: t.slug,
            hosts: t.hosts,
            suspended: t.suspended,
        }
    }
}

/// Fields left out are unchanged.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantChanges {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub hosts: Option<Vec<String>>,
    pub suspended: Option<bool>,
}

impl From<TenantChanges> for TenantPatch {
    fn from(c: TenantChanges) -> TenantPatch {
        TenantPatch {
            name: c.name,
            slug: c.slug,
            hosts: c.hosts,
            suspended: c.suspended,
        }
    }
}

/// Looks a tenant up in the caller's scope: another tenant's is 404, like a missing one.
fn find<'m>(
    models: &'m ReadModels,
    scope: &Scope,
    id: TenantId,
) -> Result<&'m model::Tenant, ApiError> {
    models
        .tenant(scope.read(), id)
        .ok_or_else(|| ApiError::NotFound(format!("tenant {id} not found")))
}

/// List tenants.
#[utoipa::path(
    tag = "tenants",
    params(PageQuery),
    responses((status = 200, description = "A page of tenants, by id.", body = Page<Tenant>)),
    security(("bearer" = []))
)]
#[get("/tenants")]
async fn list(
    state: web::Data<AppState>,
    scope: Scope,
    Query(q): Query<PageQuery>,
) -> Result<Reply, ApiError> {
    scope.require_root("list tenants")?;
    let page = PageRequest::<TenantId>::new(q.limit, q.cursor.as_deref())?;
    let models = state.read_models.read();
    let rows = models.tenants(scope.read(), page.after.as_ref(), page.fetch());
    Ok(Reply::ok(&page.page(
        rows,
        |t| t.id,
        |t| Tenant::from_model(t, &models),
    )))
}

/// Create a tenant.
#[utoipa::path(
    tag = "tenants",
    request_body = NewTenant,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the same key and body return the first answer.")),
    responses((status = 201, description = "Created.", body = Tenant)),
    security(("bearer" = []))
)]
#[post("/tenants")]
async fn create(
    state: web::Data<AppState>,
    scope: Scope,
    key: IdempotencyKey,
    Json(body): Json<NewTenant>,
) -> Result<Reply, ApiError> {
    scope.require_root("create tenants")?;
    let (state, scope) = (&state, &scope);
    key.run(&state.idempotency, scope, move |key| async move {
        let tenant_id = state.new_id(TenantId::new);
        let written = Write::new(state, scope)
            .idempotent(&key)
            .execute(CreateTenant {
                tenant_id,
                spec: body.into(),
            })
            .await?;
        // A replayed key created its tenant the first time, under that attempt's id.
        let id = written
            .events
            .iter()
            .find_map(|e| match e {
                Event::TenantCreated(e) => Some(e.tenant_id),
                _ => None,
            })
            .unwrap_or(tenant_id);
        let models = state.read_models.read();
        Ok(Reply::created(&Tenant::from_model(
            find(&models, scope, id)?,
            &models,
        )))
    })
    .await
}

/// Get a tenant.
#[utoipa::path(
    tag = "tenants",
    params(("id" = String, Path, description = "`ten_…`")),
    responses((status = 200, description = "The tenant.", body = Tenant)),
    security(("bearer" = []))
)]
#[get("/tenants/{id}")]
async fn get_one(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<TenantId>("id", &id)?;
    let models = state.read_models.read();
    let tenant = find(&models, &scope, id)?;
    scope.require_root("read tenants")?;
    Ok(Reply::ok(&Tenant::from_model(tenant, &models)))
}

/// Change a tenant's name, slug, hosts or suspension.
#[utoipa::path(
    tag = "tenants",
    request_body = TenantChanges,
    params(
        ("id" = String, Path, description = "`ten_…`"),
        ("If-Match" = Option<String>, Header, description = "The `version` the change is based on; 409 if the tenant changed since."),
    ),
    responses((status = 200, description = "The changed tenant.", body = Tenant)),
    security(("bearer" = []))
)]
#[patch("/tenants/{id}")]
async fn update(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    if_match: IfMatch,
    Json(body): Json<TenantChanges>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<TenantId>("id", &id)?;
    find(&state.read_models.read(), &scope, id)?;
    scope.require_root("change tenants")?;
    Write::new(&state, &scope)
        .if_match(if_match, id)
        .execute(UpdateTenant {
            tenant_id: id,
            patch: body.into(),
        })
        .await?;
    let models = state.read_models.read();
    Ok(Reply::ok(&Tenant::from_model(
        find(&models, &scope, id)?,
        &models,
    )))
}

/// Remove a tenant with its admins and policies. Refused (409) while it has users.
#[utoipa::path(
    tag = "tenants",
    params(("id" = String, Path, description = "`ten_…`")),
    responses((status = 204, description = "Removed.")),
    security(("bearer" = []))
)]
#[delete("/tenants/{id}")]
async fn remove(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<TenantId>("id", &id)?;
    find(&state.read_models.read(), &scope, id)?;
    scope.require_root("remove tenants")?;
    Write::new(&state, &scope)
        .execute(RemoveTenant { tenant_id: id })
        .await?;
    Ok(Reply::no_content())
}
