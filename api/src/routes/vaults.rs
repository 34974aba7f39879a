//! Storage vaults: where a user's backups go. Like protected items they live in the user's
//! stream (`version` is the user's). `replace-address` rewrites the address of every vault
//! in the caller's scope that contains a string, in one command, or just lists them.

use std::collections::BTreeMap;

use actix_web::{delete, get, patch, post, web};
use domain::commands::{CreateVault, RemoveVault, ReplaceVaultAddress, UpdateVault, VaultPatch};
use domain::model::{self, VaultSpec};
use domain::{Event, UserId, VaultId};
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
use crate::write::Write;

pub(super) fn routes(cfg: &mut ServiceConfig<'_>) {
    // Before `/vaults/{id}` routes, so `replace-address` is never taken for an id.
    cfg.service(replace_address)
        .service(list)
        .service(create)
        .service(get_one)
        .service(update)
        .service(remove);
}

#[derive(Serialize, ToSchema)]
pub struct Vault {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// Storage kind, e.g. `s3`, `local`.
    pub kind: String,
    /// Address or host of the storage.
    pub address: String,
    pub bucket: String,
    /// `null`: no limit.
    pub quota_bytes: Option<u64>,
    /// The owning user's version: pass as `If-Match` to PATCH only this version.
    pub version: u64,
}

impl UserOwned for Vault {
    type Id = VaultId;
    type Model = model::Vault;
    const NAME: &'static str = "vault";
    const NEW_ID: fn(u64, u128) -> VaultId = VaultId::new;

    fn lookup(
        models: &ReadModels,
        scope: projections::Scope,
        id: VaultId,
    ) -> Option<(&model::User, &model::Vault)> {
        models.vault(scope, id)
    }

    fn of(user: &model::User) -> &BTreeMap<VaultId, model::Vault> {
        &user.vaults
    }

    fn from_model(user: &model::User, vault: &model::Vault, models: &ReadModels) -> Vault {
        let user_id = user.id.to_string();
        Vault {
            version: models.version(&user_id),
            id: vault.id.to_string(),
            user_id,
            name: vault.spec.name.clone(),
            kind: vault.spec.kind.clone(),
            address: vault.spec.address.clone(),
            bucket: vault.spec.bucket.clone(),
            quota_bytes: vault.spec.quota_bytes,
        }
    }

    fn created(event: &Event) -> Option<VaultId> {
        match event {
            Event::VaultCreated(e) => Some(e.vault_id),
            _ => None,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVault {
    pub name: String,
    /// `[a-z0-9_-]`, 1–64 characters.
    pub kind: String,
    pub address: String,
    #[serde(default)]
    pub bucket: String,
    #[serde(default)]
    pub quota_bytes: Option<u64>,
}

/// Fields left out are unchanged; `quota_bytes: null` removes the limit.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VaultChanges {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub address: Option<String>,
    pub bucket: Option<String>,
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<u64>)]
    pub quota_bytes: Option<Option<u64>>,
}

/// Find vaults whose address contains `find`, and (unless `dry_run`) replace it by `replace`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressReplacement {
    /// Matched as a substring, case-sensitive; not empty.
    pub find: String,
    /// Required unless `dry_run`.
    #[serde(default)]
    pub replace: Option<String>,
    /// List the matches without changing anything.
    #[serde(default)]
    pub dry_run: bool,
}

/// One vault the replacement matched.
#[derive(Serialize, ToSchema)]
pub struct AddressMatch {
    pub vault_id: String,
    pub user_id: String,
    /// The address before the call.
    pub address: String,
    /// The address after the call (in a dry run: what it would become); `null` in a dry run
    /// without `replace`.
    pub new_address: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AddressMatches {
    pub matches: Vec<AddressMatch>,
}

/// List a user's vaults, by id.
#[utoipa::path(
    tag = "vaults",
    params(("id" = String, Path, description = "`usr_…`"), PageQuery),
    responses((status = 200, description = "A page of the user's vaults.", body = Page<Vault>)),
    security(("bearer" = []))
)]
#[get("/users/{id}/vaults")]
async fn list(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<UserId>("id", &id)?;
    user_owned::list::<Vault>(&state, &scope, id, q)
}

/// Create a vault for a user.
#[utoipa::path(
    tag = "vaults",
    request_body = NewVault,
    params(
        ("id" = String, Path, description = "`usr_…`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the same key and body return the first answer."),
    ),
    responses((status = 201, description = "Created.", body = Vault)),
    security(("bearer" = []))
)]
#[post("/users/{id}/vaults")]
async fn create(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    key: IdempotencyKey,
    Json(body): Json<NewVault>,
) -> Result<Reply, ApiError> {
    let user_id = parse_id::<UserId>("id", &id)?;
    users::find(&state.read_models.read(), &scope, user_id)?;
    let spec = VaultSpec {
        name: body.name,
        kind: body.kind,
        address: body.address,
        bucket: body.bucket,
        quota_bytes: body.quota_bytes,
    };
    user_owned::create::<Vault, _>(&state, &scope, key, |vault_id| CreateVault {
        vault_id,
        user_id,
        spec,
    })
    .await
}

/// Get a vault.
#[utoipa::path(
    tag = "vaults",
    params(("id" = String, Path, description = "`vlt_…`")),
    responses((status = 200, description = "The vault.", body = Vault)),
    security(("bearer" = []))
)]
#[get("/vaults/{id}")]
async fn get_one(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<VaultId>("id", &id)?;
    user_owned::reply(&state, &scope, id, Reply::ok::<Vault>)
}

/// Change a vault.
#[utoipa::path(
    tag = "vaults",
    request_body = VaultChanges,
    params(
        ("id" = String, Path, description = "`vlt_…`"),
        ("If-Match" = Option<String>, Header, description = "The owning user's `version` the change is based on; 409 if the user changed since."),
    ),
    responses((status = 200, description = "The changed vault.", body = Vault)),
    security(("bearer" = []))
)]
#[patch("/vaults/{id}")]
async fn update(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    if_match: IfMatch,
    Json(body): Json<VaultChanges>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<VaultId>("id", &id)?;
    user_owned::update::<Vault, _>(&state, &scope, id, if_match, || {
        Ok(UpdateVault {
            vault_id: id,
            patch: VaultPatch {
                name: body.name,
                kind: body.kind,
                address: body.address,
                bucket: body.bucket,
                quota_bytes: body.quota_bytes,
            },
        })
    })
    .await
}

/// Remove a vault. Refused (409) while a schedule uses it.
#[utoipa::path(
    tag = "vaults",
    params(("id" = String, Path, description = "`vlt_…`")),
    responses((status = 204, description = "Removed.")),
    security(("bearer" = []))
)]
#[delete("/vaults/{id}")]
async fn remove(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<VaultId>("id", &id)?;
    user_owned::remove::<Vault>(&state, &scope, id, RemoveVault { vault_id: id }).await
}

/// Replace part of the address of every vault in the caller's scope whose address contains
/// `find` (a tenant admin: its tenant's; a root admin: every tenant's). A dry run lists the
/// matches and changes nothing; a real run changes them all in one atomic command.
#[utoipa::path(
    tag = "vaults",
    request_body = AddressReplacement,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the same key and body return the first answer.")),
    responses((status = 200, description = "The vaults matched (and, unless a dry run, changed).", body = AddressMatches)),
    security(("bearer" = []))
)]
#[post("/vaults/replace-address")]
async fn replace_address(
    state: web::Data<AppState>,
    scope: Scope,
    key: IdempotencyKey,
    Json(body): Json<AddressReplacement>,
) -> Result<Reply, ApiError> {
    if body.find.is_empty() {
        return Err(ApiError::invalid("find", "must not be empty"));
    }
    let within = match scope.read() {
        projections::Scope::Root => None,
        projections::Scope::Tenant(_) => Some(scope.owner()),
    };
    if body.dry_run {
        let models = state.read_models.read();
        let mut matches: Vec<AddressMatch> = models
            .state()
            .vault_address_matches(within, &body.find)
            .into_iter()
            .map(|m| AddressMatch {
                vault_id: m.vault_id.to_string(),
                user_id: m.user_id.to_string(),
                new_address: body
                    .replace
                    .as_ref()
                    .map(|r| m.address.replace(&body.find, r)),
                address: m.address,
            })
            .collect();
        matches.sort_by(|a, b| a.vault_id.cmp(&b.vault_id));
        return Ok(Reply::ok(&AddressMatches { matches }));
    }
    let Some(replace) = body.replace else {
        return Err(ApiError::invalid(
            "replace",
            "is required unless dry_run is true",
        ));
    };
    let find = body.find;
    let (state, scope) = (&state, &scope);
    key.run(&state.idempotency, scope, move |key| async move {
        let written = Write::new(state, scope)
            .idempotent(&key)
            .execute(ReplaceVaultAddress {
                within,
                find,
                replace,
            })
            .await?;
        let matches = written
            .events
            .iter()
            .filter_map(|e| match e {
                Event::VaultAddressReplaced(e) => Some(AddressMatch {
                    vault_id: e.vault_id.to_string(),
                    user_id: e.user_id.to_string(),
                    address: e.old_address.clone(),
                    new_address: Some(e.new_address.clone()),
                }),
                _ => None,
            })
            .collect();
        Ok(Reply::ok(&AddressMatches { matches }))
    })
    .await
}
