//! Job search by query filter (`POST /jobs/search`, `POST /jobs/count`, and the text form
//! behind `GET /jobs?q=`), job statistics by day, status or classification
//! (`GET /stats/jobs`), and a user's recent activity (`GET /users/{id}/activity`).
//!
//! The filter is parsed and validated here, so a bad one is a 400 naming the JSON path of
//! the offending node (`filter.and[2].op`) or, for the text form, the byte offset in `q`.
//! Execution belongs to the read models (`ReadModels::search_jobs`), which see only the
//! caller's tenant: another tenant's jobs match nothing and its users are 404.

use std::collections::BTreeMap;

use actix_web::{get, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use domain::filter::{Filter, JobField};
use domain::model::{self, JobStatus};
use domain::UserId;
use projections::query::{Cursor, JobQuery, JobSort, QueryError};
use projections::{ReadModels, Scope as ReadScope};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::jobs::Job;
use super::users::find as find_user;
use crate::auth::Scope;
use crate::extract::{parse_id, Json, Query};
use crate::paging::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::problem::ApiError;
use crate::reply::Reply;
use crate::state::AppState;

pub(super) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(search)
        .service(count)
        .service(stats)
        .service(user_activity);
}

/// A job as search answers it: the job and its owner's username.
#[derive(Serialize, ToSchema)]
pub struct FoundJob {
    #[serde(flatten)]
    pub job: Job,
    /// `null` if the user has been removed since.
    pub username: Option<String>,
}

impl FoundJob {
    fn new(models: &ReadModels, scope: ReadScope, job: &model::Job) -> FoundJob {
        FoundJob {
            job: Job::from(job),
            username: models
                .user(scope, job.user)
                .map(|u| u.spec.username.clone()),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The filter in its JSON form (DOMAIN.md "Query filters"), e.g.
    /// `{"and": [{"field": "status", "op": "int_eq", "value": 7002}]}`. Absent or `null`
    /// matches every job.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// `start_time` or `end_time`, then `:asc` or `:desc` (default `start_time:desc`). Ties
    /// are broken by job id; by end time, running jobs sort after finished ones.
    pub sort: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page of the same search (same sort).
    pub cursor: Option<String>,
    /// Unix seconds that `time_since_start` and `time_since_end` are measured to (default:
    /// the server's clock). Pass the first page's value on later pages for a stable result.
    pub now: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    /// As in a search; absent or `null` counts every job.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// Unix seconds for `time_since_*` (default: the server's clock).
    pub now: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<FoundJob>,
    /// Pass as `cursor` for the next page; `null` on the last page. Jobs arriving meanwhile
    /// never shift a page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct JobCount {
    pub count: u64,
}

/// The JSON form of a filter; absent or `null` is the empty `and`, true of every job.
fn json_filter(value: Option<&serde_json::Value>) -> Result<Filter<JobField>, ApiError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(Filter::And(Vec::new())),
        Some(v) => Filter::from_json(v).map_err(|e| ApiError::invalid(e.path, e.kind.to_string())),
    }
}

/// The text form of `GET /jobs?q=`; a parse error is a 400 naming `q` and the byte offset.
pub(super) fn text_filter(q: Option<&str>) -> Result<Option<Filter<JobField>>, ApiError> {
    q.map(|q| {
        Filter::parse_text(q)
            .map_err(|e| ApiError::invalid("q", format!("at byte {}: {}", e.offset, e.kind)))
    })
    .transpose()
}

/// A page size: 1 to 1000, 50 if left out.
pub(super) fn page_limit(limit: Option<u32>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be 1 to {MAX_LIMIT}"),
        ));
    }
    Ok(limit as usize)
}

pub(super) fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::BadSort(_) => ApiError::invalid("sort", e.to_string()),
        QueryError::BadCursor | QueryError::CursorSortMismatch { .. } => {
            ApiError::invalid("cursor", e.to_string())
        }
    }
}

/// Search jobs with a query filter, a page at a time.
#[utoipa::path(
    tag = "jobs",
    request_body = SearchRequest,
    responses((status = 200, description = "A page of matching jobs.", body = JobPage)),
    security(("bearer" = []))
)]
#[post("/jobs/search")]
async fn search(
    state: web::Data<AppState>,
    scope: Scope,
    Json(body): Json<SearchRequest>,
) -> Result<Reply, ApiError> {
    let filter = json_filter(body.filter.as_ref())?;
    let sort: JobSort = match body.sort.as_deref() {
        Some(s) => s.parse().map_err(query_error)?,
        None => JobSort::default(),
    };
    let limit = page_limit(body.limit)?;
    let cursor = body
        .cursor
        .as_deref()
        .map(Cursor::decode)
        .transpose()
        .map_err(query_error)?;
    let now = body.now.unwrap_or_else(|| state.now_secs());
    let models = state.read_models.read();
    let page = models
        .search_jobs(
            scope.read(),
            &JobQuery {
                filter: &filter,
                sort,
                limit,
                cursor: cursor.as_ref(),
                now,
            },
        )
        .map_err(query_error)?;
    Ok(Reply::ok(&JobPage {
        items: page
            .jobs
            .iter()
            .map(|j| FoundJob::new(&models, scope.read(), j))
            .collect(),
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

/// Count the jobs a query filter matches.
#[utoipa::path(
    tag = "jobs",
    request_body = CountRequest,
    responses((status = 200, description = "How many jobs match.", body = JobCount)),
    security(("bearer" = []))
)]
#[post("/jobs/count")]
async fn count(
    state: web::Data<AppState>,
    scope: Scope,
    Json(body): Json<CountRequest>,
) -> Result<Reply, ApiError> {
    let filter = json_filter(body.filter.as_ref())?;
    let now = body.now.unwrap_or_else(|| state.now_secs());
    let n = state
        .read_models
        .read()
        .count_jobs(scope.read(), &filter, now);
    Ok(Reply::ok(&JobCount { count: n as u64 }))
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// One group per UTC day a job started on, oldest first, with bytes moved.
    #[default]
    Day,
    /// One group per status code, in code order.
    Status,
    /// One group per classification code, in code order.
    Classification,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Count the jobs that started on UTC days from the day of this instant (RFC 3339);
    /// default: all history.
    pub from: Option<DateTime<Utc>>,
    /// Up to the day before this instant's day boundary (RFC 3339, exclusive: a day counts
    /// if it starts before `to`); default: all history.
    pub to: Option<DateTime<Utc>>,
    /// `day` (default), `status` or `classification`.
    pub group_by: Option<GroupBy>,
}

#[derive(Serialize, ToSchema)]
pub struct StatsGroup {
    /// `YYYY-MM-DD` for days; the status or classification code as text otherwise.
    pub key: String,
    pub jobs: u64,
    /// Bytes uploaded by the group's jobs; per day only (`null` for other groupings).
    pub upload_bytes: Option<u64>,
    /// Bytes downloaded; per day only.
    pub download_bytes: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct StatsTotals {
    pub jobs: u64,
    pub upload_bytes: u64,
    pub download_bytes: u64,
}

#[derive(Serialize, ToSchema)]
pub struct JobStats {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub group_by: GroupBy,
    /// Every group together (all the caller's tenants).
    pub totals: StatsTotals,
    /// Groups with at least one job.
    pub groups: Vec<StatsGroup>,
}

fn date(day: i64) -> String {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(day)))
        .map_or_else(|| day.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

/// Job counts and bytes moved for the jobs that started in a range of UTC days, in the
/// caller's tenants, grouped by day, status or classification. A job counts under its
/// current status: a running job moves to its final status when it ends.
#[utoipa::path(
    tag = "jobs",
    params(StatsQuery),
    responses((status = 200, description = "The statistics.", body = JobStats)),
    security(("bearer" = []))
)]
#[get("/stats/jobs")]
async fn stats(
    state: web::Data<AppState>,
    scope: Scope,
    Query(q): Query<StatsQuery>,
) -> Result<Reply, ApiError> {
    if let (Some(from), Some(to)) = (q.from, q.to) {
        if from > to {
            return Err(ApiError::invalid("to", "must not be before `from`"));
        }
    }
    let group_by = q.group_by.unwrap_or_default();
    let from = q.from.map_or(i64::MIN, |t| t.timestamp());
    let to = q.to.map_or(i64::MAX, |t| t.timestamp());
    let models = state.read_models.read();
    let mut merged = projections::DayStats::default();
    // Root sees every tenant: their days are added together.
    let mut days: BTreeMap<i64, projections::DayStats> = BTreeMap::new();
    for td in models.job_stats(scope.read(), from, to) {
        merged.merge(td.stats);
        days.entry(td.day).or_default().merge(td.stats);
    }
    let groups = match group_by {
        GroupBy::Day => days
            .iter()
            .map(|(day, s)| StatsGroup {
                key: date(*day),
                jobs: s.jobs,
                upload_bytes: Some(s.upload_bytes),
                download_bytes: Some(s.download_bytes),
            })
            .collect(),
        GroupBy::Status => merged
            .by_status()
            .map(|(status, n)| count_group(status.code(), n))
            .collect(),
        GroupBy::Classification => merged
            .by_classification()
            .map(|(c, n)| count_group(c.code(), n))
            .collect(),
    };
    Ok(Reply::ok(&JobStats {
        from: q.from,
        to: q.to,
        group_by,
        totals: StatsTotals {
            jobs: merged.jobs,
            upload_bytes: merged.upload_bytes,
            download_bytes: merged.download_bytes,
        },
        groups,
    }))
}

fn count_group(code: u16, jobs: u64) -> StatsGroup {
    StatsGroup {
        key: code.to_string(),
        jobs,
        upload_bytes: None,
        download_bytes: None,
    }
}

#[derive(Serialize, ToSchema)]
pub struct DayActivity {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// The worst status among the jobs that started that day; `null` for a day without jobs.
    pub worst_status: Option<u16>,
}

#[derive(Serialize, ToSchema)]
pub struct UserActivity {
    pub user_id: String,
    /// The job that started last.
    pub last_job: Option<FoundJob>,
    /// The successful (5000) job that started last.
    pub last_success: Option<FoundJob>,
    /// The last 10 UTC days, today first.
    pub days: Vec<DayActivity>,
}

/// A user's last job, last success, and the worst status of each of the last 10 days (for
/// "worst", error > abandoned > quota exceeded > timeout > missed > warning > cancelled >
/// skipped > running > success).
#[utoipa::path(
    tag = "users",
    params(("id" = String, Path, description = "`usr_…`")),
    responses((status = 200, description = "The activity.", body = UserActivity)),
    security(("bearer" = []))
)]
#[get("/users/{id}/activity")]
async fn user_activity(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<UserId>("id", &id)?;
    let now = state.now_secs();
    let models = state.read_models.read();
    find_user(&models, &scope, id)?;
    let activity = models
        .user_activity(scope.read(), id, now)
        .ok_or_else(|| ApiError::NotFound(format!("user {id} not found")))?;
    let found = |j: Option<&model::Job>| j.map(|j| FoundJob::new(&models, scope.read(), j));
    Ok(Reply::ok(&UserActivity {
        user_id: id.to_string(),
        last_job: found(activity.last_job),
        last_success: found(activity.last_success),
        days: activity
            .days
            .iter()
            .map(|d| DayActivity {
                date: date(d.day),
                worst_status: d.worst.map(JobStatus::code),
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_days_since_the_epoch() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(20_419), "2025-11-27");
    }

    #[test]
    fn text_errors_name_q_and_the_offset() {
        let Err(ApiError::Invalid(errors)) = text_filter(Some("status = ")) else {
            panic!("expected a 400");
        };
        assert_eq!(errors[0].field, "q");
        assert!(errors[0].message.starts_with("at byte 9"), "{errors:?}");
    }

    #[test]
    fn json_errors_name_the_path() {
        let bad = serde_json::json!({"and": [{"field": "status", "op": "str_eq", "value": "x"}]});
        let Err(ApiError::Invalid(errors)) = json_filter(Some(&bad)) else {
            panic!("expected a 400");
        };
        assert!(errors[0].field.starts_with("filter.and[0]"), "{errors:?}");
        assert!(matches!(json_filter(None), Ok(Filter::And(c)) if c.is_empty()));
    }
}
