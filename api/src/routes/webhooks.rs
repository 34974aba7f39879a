//! `/webhooks`: signed event delivery endpoints, per tenant or (root) at the top level, with
//! their delivery log, manual retry, replay and a test event.
//!
//! Endpoints are read from the delivery service (`state.webhooks`), which applies the log's
//! webhook events itself; a write waits for it to reach the written position before answering.
//! Another tenant's endpoint is 404; a tenant admin without `allow_edit_webhooks` gets 403 on
//! every route (endpoints carry URLs, headers and delivery logs). Secrets are generated and
//! stored by the delivery service; the log only names them by fingerprint, and the secret
//! itself is shown once, on create and on rotate.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::StatusCode;
use actix_web::{delete, get, patch, post, web};
use domain::commands::{
    CreateWebhook, RemoveWebhook, RotateWebhookSecret, UpdateWebhook, WebhookPatch,
};
use domain::model::{self, WebhookLevel, WebhookSpec};
use domain::{Event, TenantId, TenantRef, WebhookId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use webhooks::{DeliveryId, DeliveryRecord, DeliveryStatus, WebhookError};

use super::PageQuery;
use crate::auth::Scope;
use crate::extract::{parse_id, IfMatch, Json, Query};
use crate::idempotency::IdempotencyKey;
use crate::paging::{Page, PageRequest};
use crate::problem::ApiError;
use crate::reply::Reply;
use crate::state::AppState;
use crate::write::Write;

/// How long a rotated-out secret keeps signing unless the request says otherwise.
const DEFAULT_GRACE_SECS: u32 = 24 * 3600;

pub(super) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(list)
        .service(create)
        .service(get_one)
        .service(update)
        .service(remove)
        .service(rotate_secret)
        .service(deliveries)
        .service(retry)
        .service(replay)
        .service(send_test);
}

#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The envelope and the event's `data`.
    Full,
    /// The envelope only.
    None,
}

impl From<Level> for WebhookLevel {
    fn from(l: Level) -> WebhookLevel {
        match l {
            Level::Full => WebhookLevel::Full,
            Level::None => WebhookLevel::None,
        }
    }
}

impl From<WebhookLevel> for Level {
    fn from(l: WebhookLevel) -> Level {
        match l {
            WebhookLevel::Full => Level::Full,
            WebhookLevel::None => Level::None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    /// The owning tenant; absent for a top-level endpoint (every tenant's events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    pub name: String,
    pub url: String,
    /// Type codes delivered; empty means every type.
    pub event_types: Vec<u16>,
    pub level: Level,
    pub custom_headers: BTreeMap<String, String>,
    pub enabled: bool,
    /// Why the system disabled the endpoint (e.g. it answered 410).
    pub disabled_reason: Option<String>,
    /// While a rotated-out secret still signs: until when (Unix seconds).
    pub previous_secret_valid_until: Option<i64>,
    /// Pass as `If-Match` to PATCH only this version.
    pub version: u64,
    /// `whsec_…`: only in the answers to create and rotate-secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl Webhook {
    fn from_model(w: &model::Webhook, state: &AppState) -> Webhook {
        let now = state.now_secs();
        Webhook {
            version: state.read_models.read().version(&w.id.to_string()),
            id: w.id.to_string(),
            tenant_id: match w.tenant {
                TenantRef::Root => None,
                TenantRef::Tenant(t) => Some(t.to_string()),
            },
            name: w.spec.name.clone(),
            url: w.spec.url.clone(),
            event_types: w.spec.event_types.iter().copied().collect(),
            level: w.spec.level.into(),
            custom_headers: w.spec.custom_headers.clone(),
            enabled: w.spec.enabled,
            disabled_reason: w.disabled_reason.clone(),
            previous_secret_valid_until: w
                .retiring
                .as_ref()
                .map(|r| r.valid_until)
                .filter(|until| *until > now),
            secret: None,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// The tenant whose events the endpoint gets (root: any; a tenant admin: its own);
    /// absent: the caller's tenant, or for root the top level (every tenant's events).
    pub tenant_id: Option<String>,
    pub name: String,
    /// `http://` or `https://`.
    pub url: String,
    /// Type codes to deliver; empty or absent: every type.
    #[serde(default)]
    pub event_types: BTreeSet<u16>,
    #[serde(default = "full")]
    pub level: Level,
    /// Extra request headers; ones that clash with HTTP or the signature are refused.
    #[serde(default)]
    pub custom_headers: BTreeMap<String, String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn full() -> Level {
    Level::Full
}

fn yes() -> bool {
    true
}

/// Fields left out are unchanged.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookChanges {
    pub name: Option<String>,
    pub url: Option<String>,
    pub event_types: Option<BTreeSet<u16>>,
    pub level: Option<Level>,
    pub custom_headers: Option<BTreeMap<String, String>>,
    pub enabled: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// Seconds the old secret keeps signing beside the new one (default 86400, at most a
    /// week). Deliveries meanwhile carry both signatures.
    pub grace_secs: Option<u32>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// Queue every matching event after this log position again.
    pub after: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ReplayQueued {
    pub queued: u64,
    /// The last position replayed; later events arrive as usual.
    pub up_to: u64,
}

#[derive(Serialize, ToSchema)]
pub struct TestQueued {
    /// The `webhook-id` the test delivery is sent with.
    pub delivery_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct Attempt {
    /// Unix microseconds when the request was sent.
    pub at_us: i64,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Delivered,
    Failed,
    Cancelled,
}

#[derive(Serialize, ToSchema)]
pub struct Delivery {
    /// The `webhook-id` header: stable across retries and replays.
    pub id: String,
    pub webhook_id: String,
    pub position: u64,
    pub type_code: u16,
    pub status: Status,
    pub created_at_us: i64,
    /// When the next attempt is due, while pending.
    pub next_attempt_at_us: i64,
    pub attempt_count: u32,
    /// The latest attempts, oldest first.
    pub attempts: Vec<Attempt>,
    pub last_error: Option<String>,
}

impl From<DeliveryRecord> for Delivery {
    fn from(r: DeliveryRecord) -> Delivery {
        Delivery {
            id: r.id().to_string(),
            webhook_id: r.webhook_id.to_string(),
            position: r.position,
            type_code: r.type_code,
            status: match r.status {
                DeliveryStatus::Pending => Status::Pending,
                DeliveryStatus::Delivered => Status::Delivered,
                DeliveryStatus::Failed => Status::Failed,
                DeliveryStatus::Cancelled => Status::Cancelled,
            },
            created_at_us: r.created_at_us,
            next_attempt_at_us: r.next_attempt_at_us,
            attempt_count: r.attempt_count,
            attempts: r
                .attempts
                .into_iter()
                .map(|a| Attempt {
                    at_us: a.at_us,
                    status_code: a.status_code,
                    latency_ms: a.latency_ms,
                    error: a.error,
                })
                .collect(),
            last_error: r.last_error,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// List this tenant's endpoints instead (root: any tenant's instead of the top-level ones).
    pub tenant_id: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn require_edit(scope: &Scope) -> Result<(), ApiError> {
    if scope.is_root() || scope.permissions().allow_edit_webhooks {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "managing webhooks needs allow_edit_webhooks".into(),
        ))
    }
}

fn service_error(e: WebhookError) -> ApiError {
    match e {
        WebhookError::UnknownWebhook { id } => {
            ApiError::NotFound(format!("webhook {id} not found"))
        }
        WebhookError::UnknownDelivery { id } => {
            ApiError::NotFound(format!("delivery {id} not found"))
        }
        WebhookError::Storage(_) | WebhookError::Log(_) | WebhookError::RecorderGone => {
            ApiError::Unavailable(Box::new(e))
        }
        other => ApiError::Internal(Box::new(other)),
    }
}

/// The endpoint if the caller may see it: another tenant's is 404, like a missing one.
fn find(state: &AppState, scope: &Scope, id: WebhookId) -> Result<model::Webhook, ApiError> {
    state
        .webhooks
        .webhook(id)
        .filter(|w| scope.is_root() || w.tenant == scope.owner())
        .ok_or_else(|| ApiError::NotFound(format!("webhook {id} not found")))
}

/// Where a new endpoint belongs: the caller's tenant or top level, or the tenant named by
/// `tenant_id` if the caller can see it (another tenant's is 404, like a missing one).
fn owner_for(
    state: &AppState,
    scope: &Scope,
    tenant_id: Option<&str>,
) -> Result<TenantRef, ApiError> {
    let Some(raw) = tenant_id else {
        return Ok(scope.owner());
    };
    let tenant = parse_id::<TenantId>("tenant_id", raw)?;
    let visible = state
        .read_models
        .read()
        .tenant(scope.read(), tenant)
        .is_some();
    if !visible {
        return Err(ApiError::NotFound(format!("tenant {tenant} not found")));
    }
    Ok(TenantRef::Tenant(tenant))
}

/// List endpoints: the caller's own (root: the top-level ones), or those of the tenant
/// named by `?tenant_id=` (root: any; a tenant admin: only its own).
#[utoipa::path(
    tag = "webhooks",
    params(ListQuery),
    responses((status = 200, description = "A page of endpoints, by id.", body = Page<Webhook>)),
    security(("bearer" = []))
)]
#[get("/webhooks")]
async fn list(
    state: web::Data<AppState>,
    scope: Scope,
    Query(q): Query<ListQuery>,
) -> Result<Reply, ApiError> {
    require_edit(&scope)?;
    // A tenant the caller cannot see has no endpoints it may list.
    let owner = match owner_for(&state, &scope, q.tenant_id.as_deref()) {
        Err(ApiError::NotFound(_)) => None,
        other => Some(other?),
    };
    let page = PageRequest::<WebhookId>::new(q.limit, q.cursor.as_deref())?;
    let rows: Vec<model::Webhook> = owner
        .map(|owner| state.webhooks.webhooks_of(owner))
        .unwrap_or_default()
        .into_iter()
        .filter(|w| page.after.is_none_or(|after| w.id > after))
        .take(page.fetch())
        .collect();
    Ok(Reply::ok(&page.page(
        rows,
        |w| w.id,
        |w| Webhook::from_model(&w, &state),
    )))
}

/// Create an endpoint. The answer carries its signing `secret`, shown only here (and on
/// rotate-secret).
#[utoipa::path(
    tag = "webhooks",
    request_body = NewWebhook,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the same key and body return the first answer.")),
    responses((status = 201, description = "Created, with its secret.", body = Webhook)),
    security(("bearer" = []))
)]
#[post("/webhooks")]
async fn create(
    state: web::Data<AppState>,
    scope: Scope,
    key: IdempotencyKey,
    Json(body): Json<NewWebhook>,
) -> Result<Reply, ApiError> {
    require_edit(&scope)?;
    let tenant = owner_for(&state, &scope, body.tenant_id.as_deref())?;
    let (state, scope) = (&state, &scope);
    key.run(&state.idempotency, scope, move |key| async move {
        // The secret is stored before the command names it, so no event ever points at a
        // secret that is not there.
        let (secret, fingerprint) = state.webhooks.new_secret().await.map_err(service_error)?;
        let webhook_id = state.new_id(WebhookId::new);
        let written = Write::new(state, scope)
            .idempotent(&key)
            .execute(CreateWebhook {
                webhook_id,
                tenant,
                spec: WebhookSpec {
                    name: body.name,
                    url: body.url,
                    event_types: body.event_types,
                    level: body.level.into(),
                    custom_headers: body.custom_headers,
                    enabled: body.enabled,
                },
                secret_fingerprint: fingerprint,
            })
            .await?;
        // A replayed key created its endpoint the first time, with that attempt's secret,
        // which was shown then and cannot be shown again.
        let id = written
            .events
            .iter()
            .find_map(|e| match e {
                Event::WebhookCreated(e) => Some(e.webhook_id),
                _ => None,
            })
            .unwrap_or(webhook_id);
        state.webhooks.wait_for(written.position).await;
        let mut dto = Webhook::from_model(&find(state, scope, id)?, state);
        if id == webhook_id {
            dto.secret = Some(secret.expose().to_owned());
        }
        Ok(Reply::created(&dto))
    })
    .await
}

/// Get an endpoint (without its secret).
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "`whk_…`")),
    responses((status = 200, description = "The endpoint.", body = Webhook)),
    security(("bearer" = []))
)]
#[get("/webhooks/{id}")]
async fn get_one(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<WebhookId>("id", &id)?;
    let webhook = find(&state, &scope, id)?;
    require_edit(&scope)?;
    Ok(Reply::ok(&Webhook::from_model(&webhook, &state)))
}

/// Change an endpoint's settings; `enabled: true` also clears a system `disabled_reason`.
#[utoipa::path(
    tag = "webhooks",
    request_body = WebhookChanges,
    params(
        ("id" = String, Path, description = "`whk_…`"),
        ("If-Match" = Option<String>, Header, description = "The `version` the change is based on; 409 if the endpoint changed since."),
    ),
    responses((status = 200, description = "The changed endpoint.", body = Webhook)),
    security(("bearer" = []))
)]
#[patch("/webhooks/{id}")]
async fn update(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    if_match: IfMatch,
    Json(body): Json<WebhookChanges>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<WebhookId>("id", &id)?;
    find(&state, &scope, id)?;
    require_edit(&scope)?;
    let written = Write::new(&state, &scope)
        .if_match(if_match, id)
        .execute(UpdateWebhook {
            webhook_id: id,
            patch: WebhookPatch {
                name: body.name,
                url: body.url,
                event_types: body.event_types,
                level: body.level.map(Into::into),
                custom_headers: body.custom_headers,
                enabled: body.enabled,
            },
        })
        .await?;
    state.webhooks.wait_for(written.position).await;
    Ok(Reply::ok(&Webhook::from_model(
        &find(&state, &scope, id)?,
        &state,
    )))
}

/// Remove an endpoint; its pending deliveries are cancelled.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "`whk_…`")),
    responses((status = 204, description = "Removed.")),
    security(("bearer" = []))
)]
#[delete("/webhooks/{id}")]
async fn remove(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<WebhookId>("id", &id)?;
    find(&state, &scope, id)?;
    require_edit(&scope)?;
    let written = Write::new(&state, &scope)
        .execute(RemoveWebhook { webhook_id: id })
        .await?;
    state.webhooks.wait_for(written.position).await;
    Ok(Reply::no_content())
}

/// Replace the signing secret. The old one keeps signing beside the new one for
/// `grace_secs` (both signatures are sent), so receivers can switch without losing events.
/// `{}` takes the default grace period.
#[utoipa::path(
    tag = "webhooks",
    request_body = RotateSecret,
    params(("id" = String, Path, description = "`whk_…`")),
    responses((status = 200, description = "The endpoint with its new secret.", body = Webhook)),
    security(("bearer" = []))
)]
#[post("/webhooks/{id}/rotate-secret")]
async fn rotate_secret(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    Json(body): Json<RotateSecret>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<WebhookId>("id", &id)?;
    find(&state, &scope, id)?;
    require_edit(&scope)?;
    let (secret, fingerprint) = state.webhooks.new_secret().await.map_err(service_error)?;
    let written = Write::new(&state, &scope)
        .execute(RotateWebhookSecret {
            webhook_id: id,
            secret_fingerprint: fingerprint,
            grace_secs: body.grace_secs.unwrap_or(DEFAULT_GRACE_SECS),
        })
        .await?;
    state.webhooks.wait_for(written.position).await;
    let mut dto = Webhook::from_model(&find(&state, &scope, id)?, &state);
    dto.secret = Some(secret.expose().to_owned());
    Ok(Reply::ok(&dto))
}

/// The endpoint's delivery log, oldest first: status, attempts, status codes, latency and
/// the last error.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "`whk_…`"), PageQuery),
    responses((status = 200, description = "A page of deliveries.", body = Page<Delivery>)),
    security(("bearer" = []))
)]
#[get("/webhooks/{id}/deliveries")]
async fn deliveries(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<WebhookId>("id", &id)?;
    find(&state, &scope, id)?;
    require_edit(&scope)?;
    let page = PageRequest::<DeliveryId>::new(q.limit, q.cursor.as_deref())?;
    let rows = state
        .webhooks
        .deliveries(id, page.after, page.fetch())
        .map_err(service_error)?;
    Ok(Reply::ok(&page.page(
        rows,
        DeliveryRecord::id,
        Delivery::from,
    )))
}

/// Send one delivery again now, whatever its state.
#[utoipa::path(
    tag = "webhooks",
    params(
        ("id" = String, Path, description = "`whk_…`"),
        ("delivery_id" = String, Path, description = "`msg_…`"),
    ),
    responses((status = 202, description = "Queued.", body = Delivery)),
    security(("bearer" = []))
)]
#[post("/webhooks/{id}/deliveries/{delivery_id}/retry")]
async fn retry(
    state: web::Data<AppState>,
    scope: Scope,
    path: web::Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let (id, delivery) = path.into_inner();
    let id = parse_id::<WebhookId>("id", &id)?;
    find(&state, &scope, id)?;
    require_edit(&scope)?;
    let delivery = delivery
        .parse::<DeliveryId>()
        .map_err(|_| ApiError::invalid("delivery_id", "is not a delivery id (msg_…)"))?;
    if delivery.webhook != id {
        return Err(ApiError::NotFound(format!("delivery {delivery} not found")));
    }
    let record = state.webhooks.retry(delivery).map_err(service_error)?;
    Ok(Reply::json(StatusCode::ACCEPTED, &Delivery::from(record)))
}

/// Queue every event after `after` that the endpoint wants under its current settings
/// again, with the same delivery ids as the first time.
#[utoipa::path(
    tag = "webhooks",
    request_body = Replay,
    params(("id" = String, Path, description = "`whk_…`")),
    responses((status = 202, description = "Queued.", body = ReplayQueued)),
    security(("bearer" = []))
)]
#[post("/webhooks/{id}/replay")]
async fn replay(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    Json(body): Json<Replay>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<WebhookId>("id", &id)?;
    find(&state, &scope, id)?;
    require_edit(&scope)?;
    let summary = state
        .webhooks
        .replay(id, body.after)
        .await
        .map_err(service_error)?;
    Ok(Reply::json(
        StatusCode::ACCEPTED,
        &ReplayQueued {
            queued: summary.queued,
            up_to: summary.up_to,
        },
    ))
}

/// Send a `webhook.test` (4955) event to the endpoint.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "`whk_…`")),
    responses((status = 202, description = "Queued.", body = TestQueued)),
    security(("bearer" = []))
)]
#[post("/webhooks/{id}/test")]
async fn send_test(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<WebhookId>("id", &id)?;
    find(&state, &scope, id)?;
    require_edit(&scope)?;
    let delivery = state
        .webhooks
        .send_test(id, &scope.actor())
        .map_err(service_error)?;
    Ok(Reply::json(
        StatusCode::ACCEPTED,
        &TestQueued {
            delivery_id: delivery.to_string(),
        },
    ))
}
