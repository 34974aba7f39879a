//! Job reports from agents, the same over the live connection and over HTTP: the request
//! shapes, and their conversion into domain commands on behalf of the reporting device.

use chrono::{DateTime, Utc};
use domain::commands::{AppendJobLog, FinishJob, ReportJobProgress, StartJob};
use domain::events::{LogLine, LogSeverity};
use domain::model::{JobProgress, JobTotals};
use domain::{DeviceId, Event, ItemId, JobId, ScheduleId, VaultId};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::extract::parse_id;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::write::Write;

/// `job_started`: a device began a job. `job_id` is the one a `run_backup` command carried;
/// leave it out for a job the device started on its own and the server assigns one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobStartReport {
    pub job_id: Option<String>,
    pub schedule_id: Option<String>,
    pub protected_item_id: Option<String>,
    pub vault_id: Option<String>,
    /// Classification code, 4000–4011 (default 4001 Backup).
    pub classification: Option<u16>,
    /// RFC 3339.
    pub started_at: DateTime<Utc>,
}

/// `job_progress`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobProgressReport {
    #[serde(default)]
    pub bytes_done: u64,
    #[serde(default)]
    pub items_done: u64,
    #[serde(default)]
    pub items_total: u64,
}

/// `job_finished`: the end of a job, with its status code (5000, 7000–7003, 7005) and sizes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobFinishReport {
    pub status: u16,
    /// RFC 3339.
    pub ended_at: DateTime<Utc>,
    #[serde(default)]
    pub total_bytes: u64,
    #[serde(default)]
    pub upload_bytes: u64,
    #[serde(default)]
    pub download_bytes: u64,
    #[serde(default)]
    pub total_files: u64,
    #[serde(default)]
    pub total_dirs: u64,
}

/// `job_log`: lines of a job's log.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobLogReport {
    pub lines: Vec<LogLineReport>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogLineReport {
    /// RFC 3339.
    pub at: DateTime<Utc>,
    /// `debug`, `info`, `warning` or `error` (default `info`).
    #[serde(default)]
    pub severity: Severity,
    pub text: String,
}

#[derive(Debug, Default, Clone, Copy, Deserialize, serde::Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Debug,
    #[default]
    Info,
    Warning,
    Error,
}

impl From<Severity> for LogSeverity {
    fn from(s: Severity) -> LogSeverity {
        match s {
            Severity::Debug => LogSeverity::Debug,
            Severity::Info => LogSeverity::Info,
            Severity::Warning => LogSeverity::Warning,
            Severity::Error => LogSeverity::Error,
        }
    }
}

impl From<LogSeverity> for Severity {
    fn from(s: LogSeverity) -> Severity {
        match s {
            LogSeverity::Debug => Severity::Debug,
            LogSeverity::Info => Severity::Info,
            LogSeverity::Warning => Severity::Warning,
            LogSeverity::Error => Severity::Error,
        }
    }
}

/// The classification a start report without one gets: a backup.
const BACKUP: u16 = 4001;

/// Records a job start for `device`; returns the job's id.
pub async fn start(
    state: &AppState,
    device: DeviceId,
    report: JobStartReport,
) -> Result<JobId, ApiError> {
    let job_id = match &report.job_id {
        Some(raw) => parse_id::<JobId>("job_id", raw)?,
        None => state.new_id(JobId::new),
    };
    let schedule_id = report
        .schedule_id
        .as_deref()
        .map(|s| parse_id::<ScheduleId>("schedule_id", s))
        .transpose()?;
    let item_id = report
        .protected_item_id
        .as_deref()
        .map(|s| parse_id::<ItemId>("protected_item_id", s))
        .transpose()?;
    let vault_id = report
        .vault_id
        .as_deref()
        .map(|s| parse_id::<VaultId>("vault_id", s))
        .transpose()?;
    let written = Write::as_actor(state, device.to_string())
        .execute(StartJob {
            job_id,
            device_id: device,
            item_id,
            vault_id,
            schedule_id,
            classification: report.classification.unwrap_or(BACKUP),
            started_at: report.started_at.timestamp(),
        })
        .await?;
    Ok(written
        .events
        .iter()
        .find_map(|e| match e {
            Event::JobStarted(e) => Some(e.job_id),
            _ => None,
        })
        .unwrap_or(job_id))
}

/// 404 unless `job` exists and was reported by `device`: a device reports only its own jobs.
fn own_job(state: &AppState, device: DeviceId, job: JobId) -> Result<(), ApiError> {
    let models = state.read_models.read();
    models
        .job(projections::Scope::Root, job)
        .filter(|j| j.device == Some(device))
        .map(|_| ())
        .ok_or_else(|| ApiError::NotFound(format!("job {job} not found")))
}

pub async fn progress(
    state: &AppState,
    device: DeviceId,
    job: JobId,
    report: JobProgressReport,
) -> Result<(), ApiError> {
    own_job(state, device, job)?;
    Write::as_actor(state, device.to_string())
        .execute(ReportJobProgress {
            job_id: job,
            progress: JobProgress {
                bytes_done: report.bytes_done,
                items_done: report.items_done,
                items_total: report.items_total,
            },
        })
        .await?;
    Ok(())
}

pub async fn finish(
    state: &AppState,
    device: DeviceId,
    job: JobId,
    report: JobFinishReport,
) -> Result<(), ApiError> {
    own_job(state, device, job)?;
    Write::as_actor(state, device.to_string())
        .execute(FinishJob {
            job_id: job,
            status: report.status,
            ended_at: report.ended_at.timestamp(),
            totals: JobTotals {
                total_bytes: report.total_bytes,
                upload_bytes: report.upload_bytes,
                download_bytes: report.download_bytes,
                total_files: report.total_files,
                total_dirs: report.total_dirs,
            },
        })
        .await?;
    Ok(())
}

pub async fn log(
    state: &AppState,
    device: DeviceId,
    job: JobId,
    report: JobLogReport,
) -> Result<(), ApiError> {
    own_job(state, device, job)?;
    Write::as_actor(state, device.to_string())
        .execute(AppendJobLog {
            job_id: job,
            lines: report
                .lines
                .into_iter()
                .map(|l| LogLine {
                    at: l.at.timestamp(),
                    severity: l.severity.into(),
                    text: l.text,
                })
                .collect(),
        })
        .await?;
    Ok(())
}
