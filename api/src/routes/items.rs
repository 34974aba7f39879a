//! Protected items: what a user's devices back up. They live in the user's stream, so an
//! item's `version` is its user's, and `If-Match` on an item guards the whole user.

use std::collections::BTreeMap;

use actix_web::{delete, get, patch, post, web};
use domain::commands::{CreateItem, DuplicateItem, ItemPatch, RemoveItem, UpdateItem};
use domain::model::{self, ItemSpec};
use domain::{DeviceId, Event, ItemId, UserId};
use projections::ReadModels;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::users;
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
        .service(remove)
        .service(duplicate);
}

#[derive(Serialize, ToSchema)]
pub struct ProtectedItem {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// Backup engine, e.g. `files`, `mysql`.
    pub engine: String,
    /// The device (`dev_…`) of the item's user that backs it up, if one is chosen.
    pub owner_device_id: Option<String>,
    /// Engine-specific options.
    pub settings: BTreeMap<String, String>,
    /// The owning user's version: pass as `If-Match` to PATCH only this version.
    pub version: u64,
}

impl ProtectedItem {
    pub(super) fn from_model(
        user: &model::User,
        item: &model::ProtectedItem,
        models: &ReadModels,
    ) -> ProtectedItem {
        let user_id = user.id.to_string();
        ProtectedItem {
            version: models.version(&user_id),
            id: item.id.to_string(),
            user_id,
            name: item.spec.name.clone(),
            engine: item.spec.engine.clone(),
            owner_device_id: item.spec.owner_device.map(|d| d.to_string()),
            settings: item.spec.settings.clone(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    pub name: String,
    /// `[a-z0-9_-]`, 1–64 characters.
    pub engine: String,
    /// A device (`dev_…`) of the same user.
    #[serde(default)]
    pub owner_device_id: Option<String>,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

/// Fields left out are unchanged; `owner_device_id: null` clears the device.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemChanges {
    pub name: Option<String>,
    pub engine: Option<String>,
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<String>)]
    pub owner_device_id: Option<Option<String>>,
    pub settings: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn find<'m>(
    models: &'m ReadModels,
    scope: &Scope,
    id: ItemId,
) -> Result<(&'m model::User, &'m model::ProtectedItem), ApiError> {
    models
        .item(scope.read(), id)
        .ok_or_else(|| ApiError::NotFound(format!("protected item {id} not found")))
}

fn parse_device(raw: Option<&str>) -> Result<Option<DeviceId>, ApiError> {
    raw.map(|d| parse_id::<DeviceId>("owner_device_id", d))
        .transpose()
}

/// Answers with the item `id` as the read models have it now.
fn reply_with(
    state: &AppState,
    scope: &Scope,
    id: ItemId,
    ok: fn(&ProtectedItem) -> Reply,
) -> Result<Reply, ApiError> {
    let models = state.read_models.read();
    let (user, item) = find(&models, scope, id)?;
    Ok(ok(&ProtectedItem::from_model(user, item, &models)))
}

/// The created item's id: from the events, which for a replayed key are the first attempt's.
fn created_id(events: &[Event], fallback: ItemId) -> ItemId {
    events
        .iter()
        .find_map(|e| match e {
            Event::ItemCreated(e) => Some(e.item_id),
            Event::ItemDuplicated(e) => Some(e.item_id),
            _ => None,
        })
        .unwrap_or(fallback)
}

/// List a user's protected items, by id.
#[utoipa::path(
    tag = "protected items",
    params(("id" = String, Path, description = "`usr_…`"), ListQuery),
    responses((status = 200, description = "A page of the user's protected items.", body = Page<ProtectedItem>)),
    security(("bearer" = []))
)]
#[get("/users/{id}/protected-items")]
async fn list(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<UserId>("id", &id)?;
    let page = PageRequest::<ItemId>::new(q.limit, q.cursor.as_deref())?;
    let models = state.read_models.read();
    let user = users::find(&models, &scope, id)?;
    let from = page
        .after
        .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
    let rows: Vec<&model::ProtectedItem> = user
        .items
        .range((from, std::ops::Bound::Unbounded))
        .map(|(_, item)| item)
        .take(page.fetch())
        .collect();
    Ok(Reply::ok(&page.page(
        rows,
        |i| i.id,
        |i| ProtectedItem::from_model(user, i, &models),
    )))
}

/// Create a protected item for a user.
#[utoipa::path(
    tag = "protected items",
    request_body = NewItem,
    params(
        ("id" = String, Path, description = "`usr_…`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the same key and body return the first answer."),
    ),
    responses((status = 201, description = "Created.", body = ProtectedItem)),
    security(("bearer" = []))
)]
#[post("/users/{id}/protected-items")]
async fn create(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    key: IdempotencyKey,
    Json(body): Json<NewItem>,
) -> Result<Reply, ApiError> {
    let user_id = parse_id::<UserId>("id", &id)?;
    users::find(&state.read_models.read(), &scope, user_id)?;
    let spec = ItemSpec {
        name: body.name,
        engine: body.engine,
        owner_device: parse_device(body.owner_device_id.as_deref())?,
        settings: body.settings,
    };
    let (state, scope) = (&state, &scope);
    key.run(&state.idempotency, scope, move |key| async move {
        let item_id = state.new_id(ItemId::new);
        let written = Write::new(state, scope)
            .idempotent(&key)
            .execute(CreateItem {
                item_id,
                user_id,
                spec,
            })
            .await?;
        reply_with(
            state,
            scope,
            created_id(&written.events, item_id),
            Reply::created::<ProtectedItem>,
        )
    })
    .await
}

/// Get a protected item.
#[utoipa::path(
    tag = "protected items",
    params(("id" = String, Path, description = "`itm_…`")),
    responses((status = 200, description = "The protected item.", body = ProtectedItem)),
    security(("bearer" = []))
)]
#[get("/protected-items/{id}")]
async fn get_one(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<ItemId>("id", &id)?;
    reply_with(&state, &scope, id, Reply::ok::<ProtectedItem>)
}

/// Change a protected item.
#[utoipa::path(
    tag = "protected items",
    request_body = ItemChanges,
    params(
        ("id" = String, Path, description = "`itm_…`"),
        ("If-Match" = Option<String>, Header, description = "The owning user's `version` the change is based on; 409 if the user changed since."),
    ),
    responses((status = 200, description = "The changed protected item.", body = ProtectedItem)),
    security(("bearer" = []))
)]
#[patch("/protected-items/{id}")]
async fn update(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    if_match: IfMatch,
    Json(body): Json<ItemChanges>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<ItemId>("id", &id)?;
    let user_id = find(&state.read_models.read(), &scope, id)?.0.id;
    let owner_device = body
        .owner_device_id
        .map(|d| parse_device(d.as_deref()))
        .transpose()?;
    Write::new(&state, &scope)
        .if_match(if_match, user_id)
        .execute(UpdateItem {
            item_id: id,
            patch: ItemPatch {
                name: body.name,
                engine: body.engine,
                owner_device,
                settings: body.settings,
            },
        })
        .await?;
    reply_with(&state, &scope, id, Reply::ok::<ProtectedItem>)
}

/// Remove a protected item. Refused (409) while a schedule uses it.
#[utoipa::path(
    tag = "protected items",
    params(("id" = String, Path, description = "`itm_…`")),
    responses((status = 204, description = "Removed.")),
    security(("bearer" = []))
)]
#[delete("/protected-items/{id}")]
async fn remove(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<ItemId>("id", &id)?;
    find(&state.read_models.read(), &scope, id)?;
    Write::new(&state, &scope)
        .execute(RemoveItem { item_id: id })
        .await?;
    Ok(Reply::no_content())
}

/// Copy a protected item for the same user: a new id, the name with " (copy)" appended.
#[utoipa::path(
    tag = "protected items",
    params(
        ("id" = String, Path, description = "`itm_…` to copy"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the same key returns the first copy."),
    ),
    responses((status = 201, description = "The copy.", body = ProtectedItem)),
    security(("bearer" = []))
)]
#[post("/protected-items/{id}/duplicate")]
async fn duplicate(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    key: IdempotencyKey,
) -> Result<Reply, ApiError> {
    let item_id = parse_id::<ItemId>("id", &id)?;
    find(&state.read_models.read(), &scope, item_id)?;
    let (state, scope) = (&state, &scope);
    key.run(&state.idempotency, scope, move |key| async move {
        let new_item_id = state.new_id(ItemId::new);
        let written = Write::new(state, scope)
            .idempotent(&key)
            .execute(DuplicateItem {
                item_id,
                new_item_id,
            })
            .await?;
        reply_with(
            state,
            scope,
            created_id(&written.events, new_item_id),
            Reply::created::<ProtectedItem>,
        )
    })
    .await
}
