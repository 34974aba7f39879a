//! `/agent`: what the backup agent on a device calls. Registration takes the user's
//! credentials and hands back a device token; everything else authenticates with that token
//! ([`DeviceAuth`]): the live WebSocket connection, and the HTTP fallback for job reports.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use domain::commands::{RecordUserLogin, RegisterDevice};
use domain::model::DeviceSpec;
use domain::{DeviceId, JobId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::agent::reports::{self, JobFinishReport, JobProgressReport, JobStartReport};
use crate::agent::{self, device_token_hash, new_device_token, DeviceAuth};
use crate::extract::{parse_id, Json};
use crate::problem::ApiError;
use crate::reply::Reply;
use crate::state::AppState;
use crate::write::Write;

pub(super) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(register)
        .service(connect)
        .service(start_job)
        .service(progress_job)
        .service(finish_job);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub username: String,
    pub password: String,
    pub device: NewDevice,
}

/// What the agent says about the machine it runs on.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    pub friendly_name: String,
    pub platform: String,
    pub arch: String,
    pub os_version: String,
    pub client_version: String,
    /// IANA time zone, or empty.
    #[serde(default)]
    pub timezone: String,
}

impl From<NewDevice> for DeviceSpec {
    fn from(d: NewDevice) -> DeviceSpec {
        DeviceSpec {
            friendly_name: d.friendly_name,
            platform: d.platform,
            arch: d.arch,
            os_version: d.os_version,
            client_version: d.client_version,
            timezone: d.timezone,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Registered {
    pub device_id: String,
    /// Shown once; send it as `Authorization: Bearer <device_token>`. Only its hash is kept.
    pub device_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct JobAccepted {
    pub job_id: String,
}

const BAD_CREDENTIALS: ApiError = ApiError::Unauthorized("invalid username or password");

/// Register a device with the user's credentials. Refused (409) once the user has
/// `max_devices` devices; 403 for a suspended user or tenant.
#[utoipa::path(
    tag = "agent",
    request_body = Registration,
    responses(
        (status = 201, description = "Registered.", body = Registered),
        (status = 429, description = "Too many failed logins for this user.", body = crate::Problem),
    )
)]
#[post("/agent/register")]
async fn register(
    state: web::Data<AppState>,
    Json(body): Json<Registration>,
) -> Result<Reply, ApiError> {
    domain::validate::validate_username("username", &body.username)?;
    let now = state.now_secs();
    let (user, hash) = {
        let models = state.read_models.read();
        let user = models.user_for_login(&body.username);
        (user.map(|u| u.id), user.map(|u| u.password_hash.clone()))
    };
    let verified = state.auth.passwords.verify(body.password, hash).await?;
    Write::as_actor(&state, format!("agent:{}", body.username))
        .execute(RecordUserLogin {
            username: body.username,
            succeeded: verified,
        })
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => BAD_CREDENTIALS,
            ApiError::LockedOut { until } => ApiError::TooManyRequests {
                retry_after_secs: u64::try_from(until - now).unwrap_or(1),
                detail: "too many failed logins for this user; try again later".to_owned(),
            },
            e => e,
        })?;
    let user = user.filter(|_| verified).ok_or(BAD_CREDENTIALS)?;
    let device_id = state.new_id(DeviceId::new);
    let device_token = new_device_token(device_id);
    Write::as_actor(&state, user.to_string())
        .execute(RegisterDevice {
            device_id,
            user_id: user,
            spec: body.device.into(),
            token_hash: device_token_hash(&device_token),
        })
        .await?;
    Ok(Reply::created(&Registered {
        device_id: device_id.to_string(),
        device_token,
    }))
}

/// The device's live connection (WebSocket upgrade). Frames are JSON text objects with a
/// `type`: device → server `hello`, `job_started`, `job_progress`, `job_finished`, `job_log`,
/// `command_result`; server → device `welcome`, `job_accepted {job_id}`, `command
/// {command_id, kind, …}`, `error {in_reply_to, problem}`.
#[utoipa::path(
    tag = "agent",
    responses((status = 101, description = "Switched to the WebSocket protocol.")),
    security(("bearer" = []))
)]
#[get("/agent/connect")]
async fn connect(
    state: web::Data<AppState>,
    device: DeviceAuth,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (response, session, stream) =
        actix_ws::handle(&req, payload).map_err(|e| ApiError::invalid("upgrade", e.to_string()))?;
    let ip = req.peer_addr().map(|a| a.ip().to_string());
    let attached = agent::connect(&state, device.device, ip).await?;
    actix_web::rt::spawn(agent::session::run(
        state,
        device.device,
        attached,
        session,
        stream,
    ));
    Ok(response)
}

/// Report a job start over HTTP (agents without a live connection).
#[utoipa::path(
    tag = "agent",
    request_body = JobStartReport,
    responses((status = 201, description = "Recorded.", body = JobAccepted)),
    security(("bearer" = []))
)]
#[post("/agent/jobs")]
async fn start_job(
    state: web::Data<AppState>,
    device: DeviceAuth,
    Json(body): Json<JobStartReport>,
) -> Result<Reply, ApiError> {
    let job = reports::start(&state, device.device, body).await?;
    Ok(Reply::created(&JobAccepted {
        job_id: job.to_string(),
    }))
}

/// Report a job's progress over HTTP.
#[utoipa::path(
    tag = "agent",
    request_body = JobProgressReport,
    params(("id" = String, Path, description = "`job_…`")),
    responses((status = 204, description = "Recorded.")),
    security(("bearer" = []))
)]
#[post("/agent/jobs/{id}/progress")]
async fn progress_job(
    state: web::Data<AppState>,
    device: DeviceAuth,
    id: web::Path<String>,
    Json(body): Json<JobProgressReport>,
) -> Result<Reply, ApiError> {
    let job = parse_id::<JobId>("id", &id)?;
    reports::progress(&state, device.device, job, body).await?;
    Ok(Reply::no_content())
}

/// Report the end of a job over HTTP.
#[utoipa::path(
    tag = "agent",
    request_body = JobFinishReport,
    params(("id" = String, Path, description = "`job_…`")),
    responses((status = 204, description = "Recorded.")),
    security(("bearer" = []))
)]
#[post("/agent/jobs/{id}/finish")]
async fn finish_job(
    state: web::Data<AppState>,
    device: DeviceAuth,
    id: web::Path<String>,
    Json(body): Json<JobFinishReport>,
) -> Result<Reply, ApiError> {
    let job = parse_id::<JobId>("id", &id)?;
    reports::finish(&state, device.device, job, body).await?;
    Ok(Reply::no_content())
}
