//! `/jobs`: job history with simple filters, one job, its log, and the two things an admin
//! can do to a running job: cancel it (a command to its device) or mark it abandoned. The
//! list is a job search (`ReadModels::search_jobs`, as `POST /jobs/search`) by start time,
//! its parameters and `q` one filter, so the search planner picks the index.

use actix_web::{get, post, web};
use chrono::{DateTime, Utc};
use domain::commands::AbandonJob;
use domain::filter::{Case, Filter, IntOp, JobField, Needle, Rule, StrOp, Test};
use domain::model::{self, JobStatus};
use domain::{DeviceId, Event, JobId, UserId};
use projections::query::{Cursor, Direction, JobQuery, JobSort, SortKey};
use projections::ReadModels;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::devices::{offline, time};
use super::job_search::{page_limit, query_error, text_filter};
use crate::agent::reports::Severity;
use crate::agent::DeviceCommand;
use crate::auth::Scope;
use crate::extract::{parse_id, Query};
use crate::paging::Page;
use crate::problem::ApiError;
use crate::reply::Reply;
use crate::state::AppState;
use crate::write::Write;

pub(super) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(list)
        .service(get_one)
        .service(log)
        .service(cancel)
        .service(abandon);
}

#[derive(Serialize, ToSchema)]
pub struct Job {
    pub id: String,
    /// A tenant id, or `root`.
    pub tenant_id: String,
    pub user_id: String,
    /// `null` for runs the server recorded without a device (missed, skipped).
    pub device_id: Option<String>,
    pub protected_item_id: Option<String>,
    pub vault_id: Option<String>,
    pub schedule_id: Option<String>,
    /// Classification code (4001 Backup, …).
    pub classification: u16,
    /// Status code: 5xxx finished OK, 6xxx running, 7xxx finished unsuccessfully.
    pub status: u16,
    pub running: bool,
    pub started_at: DateTime<Utc>,
    /// `null` while running.
    pub ended_at: Option<DateTime<Utc>>,
    pub total_bytes: u64,
    pub upload_bytes: u64,
    pub download_bytes: u64,
    pub total_files: u64,
    pub total_dirs: u64,
    pub client_version: String,
    pub progress: Progress,
    pub log_lines: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Progress {
    pub bytes_done: u64,
    pub items_done: u64,
    pub items_total: u64,
}

impl From<&model::Job> for Job {
    fn from(j: &model::Job) -> Job {
        Job {
            id: j.id.to_string(),
            tenant_id: j.tenant.to_string(),
            user_id: j.user.to_string(),
            device_id: j.device.map(|d| d.to_string()),
            protected_item_id: j.item.map(|i| i.to_string()),
            vault_id: j.vault.map(|v| v.to_string()),
            schedule_id: j.schedule.map(|s| s.to_string()),
            classification: j.classification.code(),
            status: j.status.code(),
            running: j.status.is_running(),
            started_at: time(j.started_at),
            ended_at: j.ended_at.map(time),
            total_bytes: j.totals.total_bytes,
            upload_bytes: j.totals.upload_bytes,
            download_bytes: j.totals.download_bytes,
            total_files: j.totals.total_files,
            total_dirs: j.totals.total_dirs,
            client_version: j.client_version.clone(),
            progress: Progress {
                bytes_done: j.progress.bytes_done,
                items_done: j.progress.items_done,
                items_total: j.progress.items_total,
            },
            log_lines: j.log_lines,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs with this status code (e.g. 7007).
    pub status: Option<u16>,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    /// Only jobs that started at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only jobs that started before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// A query filter in its text form (DOMAIN.md "Query filters"), e.g.
    /// `status = 7002 and time_since_end <= 86400 and not (username ~ "test")`; a syntax
    /// error is a 400 naming `q` and the byte offset.
    pub q: Option<String>,
}

fn find<'m>(models: &'m ReadModels, scope: &Scope, id: JobId) -> Result<&'m model::Job, ApiError> {
    models
        .job(scope.read(), id)
        .ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))
}

/// List jobs by start time (oldest first), filtered.
#[utoipa::path(
    tag = "jobs",
    params(ListQuery),
    responses((status = 200, description = "A page of jobs, by start time.", body = Page<Job>)),
    security(("bearer" = []))
)]
#[get("/jobs")]
async fn list(
    state: web::Data<AppState>,
    scope: Scope,
    Query(q): Query<ListQuery>,
) -> Result<Reply, ApiError> {
    let limit = page_limit(q.limit)?;
    let cursor = q
        .cursor
        .as_deref()
        .map(Cursor::decode)
        .transpose()
        .map_err(query_error)?;
    let filter = list_filter(&q)?;
    let models = state.read_models.read();
    let page = models
        .search_jobs(
            scope.read(),
            &JobQuery {
                filter: &filter,
                sort: JobSort {
                    key: SortKey::StartTime,
                    direction: Direction::Asc,
                },
                limit,
                cursor: cursor.as_ref(),
                now: state.now_secs(),
            },
        )
        .map_err(query_error)?;
    Ok(Reply::ok(&Page {
        items: page.jobs.into_iter().map(Job::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

/// The list's parameters and `q` as one filter: all of them must hold.
fn list_filter(q: &ListQuery) -> Result<Filter<JobField>, ApiError> {
    let mut all = Vec::new();
    if let Some(code) = q.status {
        JobStatus::from_code(code)
            .ok_or_else(|| ApiError::invalid("status", format!("unknown status code {code}")))?;
        all.push(rule(JobField::Status, Test::Int(IntOp::Eq, code.into())));
    }
    if let Some(user) = q.user_id.as_deref() {
        let user = parse_id::<UserId>("user_id", user)?;
        all.push(rule(JobField::UserId, id_is(user)));
    }
    if let Some(device) = q.device_id.as_deref() {
        let device = parse_id::<DeviceId>("device_id", device)?;
        all.push(rule(JobField::DeviceId, id_is(device)));
    }
    if let Some(from) = q.from {
        all.push(rule(
            JobField::StartTime,
            Test::Int(IntOp::Gte, from.timestamp()),
        ));
    }
    if let Some(to) = q.to {
        all.push(rule(
            JobField::StartTime,
            Test::Int(IntOp::Lt, to.timestamp()),
        ));
    }
    all.extend(text_filter(q.q.as_deref())?);
    Ok(Filter::And(all))
}

fn rule(field: JobField, test: Test) -> Filter<JobField> {
    Filter::Rule(Rule::new(field, test).expect("each list parameter's test fits its field"))
}

/// Equal to `id` as the job's field prints it (ids print canonically).
fn id_is(id: impl ToString) -> Test {
    Test::Str(StrOp::Eq, Case::Sensitive, Needle::new(id.to_string()))
}

/// Get a job.
#[utoipa::path(
    tag = "jobs",
    params(("id" = String, Path, description = "`job_…`")),
    responses((status = 200, description = "The job.", body = Job)),
    security(("bearer" = []))
)]
#[get("/jobs/{id}")]
async fn get_one(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<JobId>("id", &id)?;
    let models = state.read_models.read();
    Ok(Reply::ok(&Job::from(find(&models, &scope, id)?)))
}

#[derive(Serialize, ToSchema)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub severity: Severity,
    pub text: String,
}

#[derive(Serialize, ToSchema)]
pub struct JobLog {
    /// In the order the device sent them.
    pub lines: Vec<LogLine>,
}

/// Largest number of events of one job read back for its log.
const MAX_JOB_EVENTS: usize = 100_000;

/// A job's log lines, as its device reported them.
#[utoipa::path(
    tag = "jobs",
    params(("id" = String, Path, description = "`job_…`")),
    responses((status = 200, description = "The log.", body = JobLog)),
    security(("bearer" = []))
)]
#[get("/jobs/{id}/log")]
async fn log(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<JobId>("id", &id)?;
    find(&state.read_models.read(), &scope, id)?;
    // The lines live only in the job's events: read its stream back.
    let records = state
        .log
        .read_stream(&id.to_string(), 1, MAX_JOB_EVENTS)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
    let mut lines = Vec::new();
    for r in records {
        let event = domain::decode(r.envelope.type_code, r.envelope.schema_version, &r.payload)
            .map_err(ApiError::internal)?;
        if let Event::JobLogged(e) = event {
            lines.extend(e.lines.into_iter().map(|l| LogLine {
                at: time(l.at),
                severity: l.severity.into(),
                text: l.text,
            }));
        }
    }
    Ok(Reply::ok(&JobLog { lines }))
}

#[derive(Serialize, ToSchema)]
pub struct CancelSent {
    pub command_id: String,
}

/// Ask the job's device to cancel it. 202 once sent; 409 if the job is not running or its
/// device is offline. The job ends when the device reports it (7005 Cancelled).
#[utoipa::path(
    tag = "jobs",
    params(("id" = String, Path, description = "`job_…`")),
    responses((status = 202, description = "Sent to the device.", body = CancelSent)),
    security(("bearer" = []))
)]
#[post("/jobs/{id}/cancel")]
async fn cancel(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<JobId>("id", &id)?;
    let device = {
        let models = state.read_models.read();
        let job = find(&models, &scope, id)?;
        match job.device {
            Some(device) if job.status.is_running() => device,
            _ => {
                return Err(ApiError::Conflict {
                    detail: format!("job {id} is not running on a device"),
                    field: None,
                })
            }
        }
    };
    let command_id = state
        .devices
        .send(device, DeviceCommand::cancel_job(id))
        .map_err(offline)?;
    Ok(Reply::json(
        actix_web::http::StatusCode::ACCEPTED,
        &CancelSent {
            command_id: command_id.to_string(),
        },
    ))
}

/// Mark a running job abandoned (7007) now. Its device reporting on it later revives it.
#[utoipa::path(
    tag = "jobs",
    params(("id" = String, Path, description = "`job_…`")),
    responses((status = 200, description = "The abandoned job.", body = Job)),
    security(("bearer" = []))
)]
#[post("/jobs/{id}/abandon")]
async fn abandon(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<JobId>("id", &id)?;
    find(&state.read_models.read(), &scope, id)?;
    Write::new(&state, &scope)
        .execute(AbandonJob { job_id: id })
        .await?;
    let models = state.read_models.read();
    Ok(Reply::ok(&Job::from(find(&models, &scope, id)?)))
}
