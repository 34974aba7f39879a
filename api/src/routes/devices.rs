//! `/devices`: registered devices, whether they are online, revoking them, and actions sent
//! over their live connection; and `/users/{id}/transfer`, which moves a user (with its
//! devices) to another tenant and re-points the devices that are online.

use actix_web::{delete, get, post, web, HttpRequest};
use chrono::{DateTime, Utc};
use domain::commands::{RemoveDevice, TransferUser};
use domain::model;
use domain::{DeviceId, Event, JobId, ScheduleId, TenantRef, UserId};
use projections::ReadModels;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::agent::DeviceCommand;
use crate::auth::Scope;
use crate::extract::{parse_id, Json, Query};
use crate::paging::{Page, PageRequest};
use crate::problem::ApiError;
use crate::reply::Reply;
use crate::state::AppState;
use crate::write::Write;

pub(super) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(list)
        .service(get_one)
        .service(remove)
        .service(action)
        .service(transfer);
}

#[derive(Serialize, ToSchema)]
pub struct Device {
    pub id: String,
    /// A tenant id, or `root`.
    pub tenant_id: String,
    pub user_id: String,
    pub friendly_name: String,
    pub platform: String,
    pub arch: String,
    pub os_version: String,
    pub client_version: String,
    pub timezone: String,
    /// Address of the latest connection.
    pub ip: Option<String>,
    pub registered_at: DateTime<Utc>,
    /// Start of the current online period; `null` while offline.
    pub connected_since: Option<DateTime<Utc>>,
    /// One or more live connections.
    pub online: bool,
    /// Live connections to this server right now.
    pub connections: usize,
}

pub(super) fn time(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

impl Device {
    fn from_model(d: &model::Device, state: &AppState) -> Device {
        Device {
            id: d.id.to_string(),
            tenant_id: d.tenant.to_string(),
            user_id: d.user.to_string(),
            friendly_name: d.spec.friendly_name.clone(),
            platform: d.spec.platform.clone(),
            arch: d.spec.arch.clone(),
            os_version: d.spec.os_version.clone(),
            client_version: d.spec.client_version.clone(),
            timezone: d.spec.timezone.clone(),
            ip: d.ip.clone(),
            registered_at: time(d.registered_at),
            connected_since: d.connected_since.map(time),
            online: d.online(),
            connections: state.devices.connections(d.id),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this user's devices (`usr_…`).
    pub user_id: Option<String>,
    /// Only devices that are (`true`) or are not (`false`) online.
    pub online: Option<bool>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn find<'m>(
    models: &'m ReadModels,
    scope: &Scope,
    id: DeviceId,
) -> Result<&'m model::Device, ApiError> {
    models
        .device(scope.read(), id)
        .ok_or_else(|| ApiError::NotFound(format!("device {id} not found")))
}

/// How many rows one scan step reads while filtering.
const SCAN_BATCH: usize = 512;

/// List devices, by id.
#[utoipa::path(
    tag = "devices",
    params(ListQuery),
    responses((status = 200, description = "A page of devices, by id.", body = Page<Device>)),
    security(("bearer" = []))
)]
#[get("/devices")]
async fn list(
    state: web::Data<AppState>,
    scope: Scope,
    Query(q): Query<ListQuery>,
) -> Result<Reply, ApiError> {
    let page = PageRequest::<DeviceId>::new(q.limit, q.cursor.as_deref())?;
    let user = q
        .user_id
        .as_deref()
        .map(|u| parse_id::<UserId>("user_id", u))
        .transpose()?;
    let keep = |d: &model::Device| {
        user.is_none_or(|u| d.user == u) && q.online.is_none_or(|o| d.online() == o)
    };
    let models = state.read_models.read();
    let rows: Vec<&model::Device> = match user {
        Some(u) => models
            .user_devices(scope.read(), u)
            .into_iter()
            .filter(|d| page.after.is_none_or(|a| d.id > a) && keep(d))
            .take(page.fetch())
            .collect(),
        None => {
            let mut rows = Vec::new();
            let mut after = page.after;
            while rows.len() < page.fetch() {
                let batch = models.devices(scope.read(), after.as_ref(), SCAN_BATCH);
                let Some(last) = batch.last() else { break };
                after = Some(last.id);
                rows.extend(batch.into_iter().filter(|d| keep(d)));
            }
            rows.truncate(page.fetch());
            rows
        }
    };
    Ok(Reply::ok(&page.page(
        rows,
        |d| d.id,
        |d| Device::from_model(d, &state),
    )))
}

/// Get a device.
#[utoipa::path(
    tag = "devices",
    params(("id" = String, Path, description = "`dev_…`")),
    responses((status = 200, description = "The device.", body = Device)),
    security(("bearer" = []))
)]
#[get("/devices/{id}")]
async fn get_one(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<DeviceId>("id", &id)?;
    let models = state.read_models.read();
    Ok(Reply::ok(&Device::from_model(
        find(&models, &scope, id)?,
        &state,
    )))
}

/// Revoke a device: its token stops working and its live connections are closed.
#[utoipa::path(
    tag = "devices",
    params(("id" = String, Path, description = "`dev_…`")),
    responses((status = 204, description = "Revoked.")),
    security(("bearer" = []))
)]
#[delete("/devices/{id}")]
async fn remove(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<DeviceId>("id", &id)?;
    find(&state.read_models.read(), &scope, id)?;
    Write::new(&state, &scope)
        .execute(RemoveDevice { device_id: id })
        .await?;
    state.devices.close_device(id, "device revoked");
    state.devices.forget(id);
    Ok(Reply::no_content())
}

/// An action for a device's agent.
///
/// Documented as the tagged enum it is, but read through [`ActionFields`]: serde reads an
/// internally tagged enum from a buffer, which lets a unit variant take any extra field and
/// loses the path of a variant's field in errors.
#[derive(Deserialize, ToSchema)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    deny_unknown_fields,
    try_from = "ActionFields"
)]
pub enum Action {
    /// Run a backup of one of the device user's schedules now, as a new job.
    RunBackup {
        schedule_id: String,
    },
    CancelJob {
        job_id: String,
    },
    /// Upgrade the agent to `version`.
    Upgrade {
        version: String,
    },
    /// Log in at `url` from now on.
    UpdateLoginUrl {
        url: String,
    },
    /// Close the live connection (the agent reconnects).
    DropConnection,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    RunBackup,
    CancelJob,
    Upgrade,
    UpdateLoginUrl,
    DropConnection,
}

/// Every field of every kind of [`Action`], each read (and named in errors) where it stands.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionFields {
    kind: ActionKind,
    schedule_id: Option<String>,
    job_id: Option<String>,
    version: Option<String>,
    url: Option<String>,
}

impl TryFrom<ActionFields> for Action {
    /// Worded as serde words it, so that the field is named in the 400.
    type Error = serde::de::value::Error;

    fn try_from(f: ActionFields) -> Result<Action, Self::Error> {
        use serde::de::Error;
        let given = [
            ("schedule_id", f.schedule_id.is_some()),
            ("job_id", f.job_id.is_some()),
            ("version", f.version.is_some()),
            ("url", f.url.is_some()),
        ];
        let takes: &'static [&'static str] = match f.kind {
            ActionKind::RunBackup => &["schedule_id"],
            ActionKind::CancelJob => &["job_id"],
            ActionKind::Upgrade => &["version"],
            ActionKind::UpdateLoginUrl => &["url"],
            ActionKind::DropConnection => &[],
        };
        if let Some((extra, _)) = given
            .iter()
            .find(|(name, present)| *present && !takes.contains(name))
        {
            return Err(Self::Error::unknown_field(extra, takes));
        }
        let required = |name: &'static str, value: Option<String>| {
            value.ok_or_else(|| Self::Error::missing_field(name))
        };
        Ok(match f.kind {
            ActionKind::RunBackup => Action::RunBackup {
                schedule_id: required("schedule_id", f.schedule_id)?,
            },
            ActionKind::CancelJob => Action::CancelJob {
                job_id: required("job_id", f.job_id)?,
            },
            ActionKind::Upgrade => Action::Upgrade {
                version: required("version", f.version)?,
            },
            ActionKind::UpdateLoginUrl => Action::UpdateLoginUrl {
                url: required("url", f.url)?,
            },
            ActionKind::DropConnection => Action::DropConnection,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct ActionAccepted {
    pub command_id: String,
    /// The job a `run_backup` will report as.
    pub job_id: Option<String>,
}

/// Send an action to a device. 202 once queued on its live connection; 409 if it is offline.
#[utoipa::path(
    tag = "devices",
    request_body = Action,
    params(("id" = String, Path, description = "`dev_…`")),
    responses((status = 202, description = "Sent.", body = ActionAccepted)),
    security(("bearer" = []))
)]
#[post("/devices/{id}/actions")]
async fn action(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    Json(body): Json<Action>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<DeviceId>("id", &id)?;
    let (command, job) = {
        let models = state.read_models.read();
        let device = find(&models, &scope, id)?;
        match body {
            Action::RunBackup { schedule_id } => {
                let schedule = parse_id::<ScheduleId>("schedule_id", &schedule_id)?;
                models
                    .schedule(scope.read(), schedule)
                    .filter(|s| s.user == device.user)
                    .ok_or_else(|| {
                        ApiError::invalid("schedule_id", "no such schedule of the device's user")
                    })?;
                let job = state.new_id(JobId::new);
                (DeviceCommand::run_backup(schedule, job), Some(job))
            }
            Action::CancelJob { job_id } => {
                let job = parse_id::<JobId>("job_id", &job_id)?;
                models
                    .job(scope.read(), job)
                    .filter(|j| j.device == Some(id))
                    .ok_or_else(|| ApiError::invalid("job_id", "no such job of this device"))?;
                (DeviceCommand::cancel_job(job), None)
            }
            Action::Upgrade { version } => (DeviceCommand::Upgrade { version }, None),
            Action::UpdateLoginUrl { url } => (DeviceCommand::UpdateLoginUrl { url }, None),
            Action::DropConnection => (DeviceCommand::DropConnection, None),
        }
    };
    let command_id = state.devices.send(id, command).map_err(offline)?;
    Ok(Reply::json(
        actix_web::http::StatusCode::ACCEPTED,
        &ActionAccepted {
            command_id: command_id.to_string(),
            job_id: job.map(|j| j.to_string()),
        },
    ))
}

pub(super) fn offline(e: scheduler::Offline) -> ApiError {
    ApiError::Conflict {
        detail: format!("{e}: it holds no live connection"),
        field: None,
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    /// The tenant to move the user to (`ten_…`, or `root`).
    pub tenant_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct Transferred {
    /// The user as it is now.
    pub user: TransferredUser,
    /// Devices sent `update_login_url` with the new tenant's address.
    pub signalled_devices: Vec<String>,
    /// Devices that were offline: re-point them by hand, or when they next connect.
    pub offline_devices: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TransferredUser {
    pub id: String,
    pub username: String,
    /// A tenant id, or `root`.
    pub tenant_id: String,
    pub policy_id: Option<String>,
    pub version: u64,
}

/// Move a user, with its devices, protected items, vaults and schedules, to another tenant
/// (root only). Every online device is told the new tenant's login address.
#[utoipa::path(
    tag = "users",
    request_body = Transfer,
    params(("id" = String, Path, description = "`usr_…`")),
    responses((status = 200, description = "Transferred.", body = Transferred)),
    security(("bearer" = []))
)]
#[post("/users/{id}/transfer")]
async fn transfer(
    state: web::Data<AppState>,
    scope: Scope,
    req: HttpRequest,
    id: web::Path<String>,
    Json(body): Json<Transfer>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<UserId>("id", &id)?;
    state
        .read_models
        .read()
        .user(scope.read(), id)
        .ok_or_else(|| ApiError::NotFound(format!("user {id} not found")))?;
    scope.require_root("transfer users")?;
    let to = TenantRef::parse(&body.tenant_id)
        .map_err(|e| ApiError::invalid("tenant_id", e.to_string()))?;
    let written = Write::new(&state, &scope)
        .execute(TransferUser { user_id: id, to })
        .await?;
    let (online, mut offline_devices) = written
        .events
        .iter()
        .find_map(|e| match e {
            Event::UserTransferred(e) => {
                Some((e.online_devices.clone(), e.offline_devices.clone()))
            }
            _ => None,
        })
        .unwrap_or_default();
    let (url, user) = {
        let models = state.read_models.read();
        let url = login_url(&models, &req, to);
        let user = models
            .user(scope.read(), id)
            .ok_or_else(|| ApiError::NotFound(format!("user {id} not found")))?;
        let user = TransferredUser {
            id: user.id.to_string(),
            username: user.spec.username.clone(),
            tenant_id: user.tenant.to_string(),
            policy_id: user.spec.policy.map(|p| p.to_string()),
            version: models.version(&user.id.to_string()),
        };
        (url, user)
    };
    let mut signalled_devices = Vec::new();
    for device in online {
        match state
            .devices
            .send(device, DeviceCommand::UpdateLoginUrl { url: url.clone() })
        {
            Ok(_) => signalled_devices.push(device),
            // Went offline between the transfer and the signal.
            Err(_) => offline_devices.push(device),
        }
    }
    offline_devices.sort_unstable();
    Ok(Reply::ok(&Transferred {
        user,
        signalled_devices: signalled_devices.iter().map(ToString::to_string).collect(),
        offline_devices: offline_devices.iter().map(ToString::to_string).collect(),
    }))
}

/// The address a tenant's agents log in at: `https://<its first host>/` if it has hosts,
/// else this server's own address (as the request reached it) with `?tenant=<slug>`.
fn login_url(models: &ReadModels, req: &HttpRequest, to: TenantRef) -> String {
    let tenant = to
        .tenant_id()
        .and_then(|t| models.tenant(projections::Scope::Root, t));
    if let Some(host) = tenant.and_then(|t| t.spec.hosts.first()) {
        return format!("https://{host}/");
    }
    let info = req.connection_info();
    let base = format!("{}://{}/", info.scheme(), info.host());
    match tenant {
        Some(t) => format!("{base}?tenant={}", t.spec.slug),
        None => base,
    }
}
