//! Protected items: what a user's devices back up. They live in the user's stream, so an
//! item's `version` is its user's, and `If-Match` on an item guards the whole user.

use std::collections::BTreeMap;

use actix_web::{delete, get, patch, post, web};
use domain::commands::{CreateItem, DuplicateItem, ItemPatch, RemoveItem, UpdateItem};
use domain::model::{self, ItemSpec};
use domain::{DeviceId, Event, ItemId, UserId};
use projections::ReadModels;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::user_owned::{self, UserOwned};
use super::users;
use super::PageQuery;
use crate::auth::Scope;
use crate::extract::{parse_id, IfMatch, Json, Query};
use crate::idempotency::IdempotencyKey;
use crate::paging::Page;
use crate::problem::ApiError;
use crate::reply::Reply;
use crate::state::AppState;

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

impl UserOwned for ProtectedItem {
    type Id = ItemId;
    type Model = model::ProtectedItem;
    const NAME: &'static str = "protected item";
    const NEW_ID: fn(u64, u128) -> ItemId = ItemId::new;

    fn lookup(
        models: &ReadModels,
        scope: projections::Scope,
        id: ItemId,
    ) -> Option<(&model::User, &model::ProtectedItem)> {
        models.item(scope, id)
    }

    fn of(user: &model::User) -> &BTreeMap<ItemId, model::ProtectedItem> {
        &user.items
    }

    fn from_model(
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

    fn created(event: &Event) -> Option<ItemId> {
        match event {
            Event::ItemCreated(e) => Some(e.item_id),
            Event::ItemDuplicated(e) => Some(e.item_id),
            _ => None,
        }
    }
}

fn parse_device(raw: Option<&str>) -> Result<Option<DeviceId>, ApiError> {
    raw.map(|d| parse_id::<DeviceId>("owner_device_id", d))
        .transpose()
}

/// List a user's protected items, by id.
#[utoipa::path(
    tag = "protected items",
    params(("id" = String, Path, description = "`usr_…`"), PageQuery),
    responses((status = 200, description = "A page of the user's protected items.", body = Page<ProtectedItem>)),
    security(("bearer" = []))
)]
#[get("/users/{id}/protected-items")]
async fn list(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<UserId>("id", &id)?;
    user_owned::list::<ProtectedItem>(&state, &scope, id, q)
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
    user_owned::create::<ProtectedItem, _>(&state, &scope, key, |item_id| CreateItem {
        item_id,
        user_id,
        spec,
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
    user_owned::reply(&state, &scope, id, Reply::ok::<ProtectedItem>)
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
    user_owned::update::<ProtectedItem, _>(&state, &scope, id, if_match, || {
        Ok(UpdateItem {
            item_id: id,
            patch: ItemPatch {
                name: body.name,
                engine: body.engine,
                owner_device: body
                    .owner_device_id
                    .map(|d| parse_device(d.as_deref()))
                    .transpose()?,
                settings: body.settings,
            },
        })
    })
    .await
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
    user_owned::remove::<ProtectedItem>(&state, &scope, id, RemoveItem { item_id: id }).await
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
    user_owned::find::<ProtectedItem>(&state.read_models.read(), &scope, item_id)?;
    user_owned::create::<ProtectedItem, _>(&state, &scope, key, |new_item_id| DuplicateItem {
        item_id,
        new_item_id,
    })
    .await
}
