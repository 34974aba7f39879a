//! Jobs: started by a device, progressed, finished; abandoned and revived; missed and skipped
//! runs recorded by the scheduler.

use super::{device, job, schedule, Decision};
use crate::commands::*;
use crate::error::DomainError;
use crate::events::*;
use crate::model::{Classification, Job, JobStatus, Schedule};
use crate::state::State;

/// How far a device's clock may run ahead of ours before its timestamps are refused.
const MAX_CLOCK_SKEW_SECS: i64 = 86_400;
const MAX_LOG_LINES: usize = 10_000;
const MAX_LOG_LINE_CHARS: usize = 64 * 1024;

fn transition(job: &Job, action: &'static str) -> DomainError {
    DomainError::InvalidTransition {
        kind: "job",
        id: job.id.to_string(),
        action,
        current: format!("{:?} ({})", job.status, job.status.code()),
    }
}

fn check_time(field: &str, at: i64, now: i64) -> Result<(), DomainError> {
    if at < 0 || at > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(DomainError::invalid(
            field,
            "must not be before 1970 or more than a day ahead",
        ));
    }
    Ok(())
}

pub(super) fn start(state: &State, c: StartJob, now: i64) -> Decision {
    if state.job(c.job_id).is_some() {
        return Err(DomainError::already_exists("job", c.job_id));
    }
    let dev = device(state, c.device_id)?;
    let classification = Classification::from_code(c.classification).ok_or_else(|| {
        DomainError::invalid(
            "classification",
            format!("unknown classification code {}", c.classification),
        )
    })?;
    check_time("started_at", c.started_at, now)?;
    let owner = state
        .user(dev.user)
        .ok_or_else(|| DomainError::not_found("user", dev.user))?;
    if let Some(item) = c.item_id {
        if !owner.items.contains_key(&item) {
            return Err(DomainError::invalid(
                "protected_item_id",
                format!("no protected item {item} of the device's user"),
            ));
        }
    }
    if let Some(vault) = c.vault_id {
        if !owner.vaults.contains_key(&vault) {
            return Err(DomainError::invalid(
                "vault_id",
                format!("no vault {vault} of the device's user"),
            ));
        }
    }
    // A job run for a schedule backs up the schedule's item to its vault unless the device
    // says otherwise, so the scheduler's missed-run check sees it cover the run.
    let (mut item_id, mut vault_id) = (c.item_id, c.vault_id);
    if let Some(id) = c.schedule_id {
        match state.schedule(id) {
            Some(s) if s.user == owner.id => {
                item_id = item_id.or(Some(s.spec.item));
                vault_id = vault_id.or(Some(s.spec.vault));
            }
            _ => {
                return Err(DomainError::invalid(
                    "schedule_id",
                    format!("no schedule {id} of the device's user"),
                ))
            }
        }
    }
    Ok(vec![JobStarted {
        job_id: c.job_id,
        tenant: dev.tenant,
        user_id: dev.user,
        device_id: dev.id,
        item_id,
        vault_id,
        schedule_id: c.schedule_id,
        classification,
        started_at: c.started_at,
        client_version: dev.spec.client_version.clone(),
    }
    .into()])
}

/// A device reporting on an abandoned job has come back: the job is revived before the report
/// is recorded. A finished job takes no more reports.
fn reopen(job: &Job, action: &'static str, now: i64) -> Result<Vec<Event>, DomainError> {
    match job.status {
        JobStatus::Abandoned => Ok(vec![JobRevived {
            job_id: job.id,
            tenant: job.tenant,
            user_id: job.user,
            at: now,
        }
        .into()]),
        s if s.is_running() => Ok(vec![]),
        _ => Err(transition(job, action)),
    }
}

pub(super) fn progress(state: &State, c: ReportJobProgress, now: i64) -> Decision {
    let current = job(state, c.job_id)?;
    let mut events = reopen(current, "report progress on", now)?;
    let p = &c.progress;
    if p.items_total > 0 && p.items_done > p.items_total {
        return Err(DomainError::invalid(
            "items_done",
            "must not exceed items_total",
        ));
    }
    events.push(
        JobProgressed {
            job_id: current.id,
            tenant: current.tenant,
            user_id: current.user,
            progress: c.progress,
        }
        .into(),
    );
    Ok(events)
}

pub(super) fn log(state: &State, c: AppendJobLog) -> Decision {
    let current = job(state, c.job_id)?;
    if c.lines.is_empty() || c.lines.len() > MAX_LOG_LINES {
        return Err(DomainError::invalid(
            "lines",
            format!("must hold 1 to {MAX_LOG_LINES} lines"),
        ));
    }
    if let Some(i) = c
        .lines
        .iter()
        .position(|l| l.text.len() > MAX_LOG_LINE_CHARS)
    {
        return Err(DomainError::invalid(
            format!("lines[{i}].text"),
            format!("must be at most {MAX_LOG_LINE_CHARS} bytes"),
        ));
    }
    Ok(vec![JobLogged {
        job_id: current.id,
        tenant: current.tenant,
        user_id: current.user,
        lines: c.lines,
    }
    .into()])
}

pub(super) fn finish(state: &State, c: FinishJob, now: i64) -> Decision {
    let status = JobStatus::from_code(c.status).ok_or_else(|| {
        DomainError::invalid("status", format!("unknown status code {}", c.status))
    })?;
    if !status.is_reportable_end() {
        return Err(DomainError::invalid(
            "status",
            format!(
                "{} is not a status a device reports at the end of a job",
                c.status
            ),
        ));
    }
    let current = job(state, c.job_id)?;
    let mut events = reopen(current, "finish", now)?;
    check_time("ended_at", c.ended_at, now)?;
    if c.ended_at < current.started_at {
        return Err(DomainError::invalid(
            "ended_at",
            "must not be before the job started",
        ));
    }
    events.push(
        JobCompleted {
            job_id: current.id,
            tenant: current.tenant,
            user_id: current.user,
            status,
            ended_at: c.ended_at,
            totals: c.totals,
        }
        .into(),
    );
    Ok(events)
}

pub(super) fn abandon(state: &State, c: AbandonJob, now: i64) -> Decision {
    let current = job(state, c.job_id)?;
    if !current.status.is_running() {
        return Err(transition(current, "abandon"));
    }
    Ok(vec![JobAbandoned {
        job_id: current.id,
        tenant: current.tenant,
        user_id: current.user,
        at: now.max(current.started_at),
    }
    .into()])
}

pub(super) fn revive(state: &State, c: ReviveJob, now: i64) -> Decision {
    let current = job(state, c.job_id)?;
    if current.status != JobStatus::Abandoned {
        return Err(transition(current, "revive"));
    }
    Ok(vec![JobRevived {
        job_id: current.id,
        tenant: current.tenant,
        user_id: current.user,
        at: now,
    }
    .into()])
}

/// Shared checks of a run the scheduler records on its own: a new job id, a live schedule,
/// a due time not before the schedule existed, and not recorded before.
fn recordable_run(
    state: &State,
    job_id: crate::ids::JobId,
    schedule_id: crate::ids::ScheduleId,
    due_at: i64,
) -> Result<&Schedule, DomainError> {
    if state.job(job_id).is_some() {
        return Err(DomainError::already_exists("job", job_id));
    }
    let s = schedule(state, schedule_id)?;
    if due_at < s.created_at {
        return Err(DomainError::invalid(
            "due_at",
            "is before the schedule was created",
        ));
    }
    if state.run_recorded(schedule_id, due_at) {
        return Err(DomainError::conflict(
            "due_at",
            format!("the run of {schedule_id} due at {due_at} is already recorded"),
        ));
    }
    Ok(s)
}

pub(super) fn missed(state: &State, c: RecordMissedJob) -> Decision {
    let s = recordable_run(state, c.job_id, c.schedule_id, c.due_at)?;
    Ok(vec![JobMissed {
        job_id: c.job_id,
        tenant: s.tenant,
        user_id: s.user,
        schedule_id: s.id,
        item_id: s.spec.item,
        vault_id: s.spec.vault,
        due_at: c.due_at,
    }
    .into()])
}

pub(super) fn skipped(state: &State, c: RecordSkippedJob) -> Decision {
    let s = recordable_run(state, c.job_id, c.schedule_id, c.due_at)?;
    if !s.spec.skip_if_running {
        return Err(DomainError::conflict(
            "schedule_id",
            "the schedule does not skip runs while a job is running",
        ));
    }
    if state.running_jobs_of_schedule(s.id).next().is_none() {
        return Err(DomainError::conflict(
            "schedule_id",
            "no job of this schedule is running",
        ));
    }
    Ok(vec![JobSkipped {
        job_id: c.job_id,
        tenant: s.tenant,
        user_id: s.user,
        schedule_id: s.id,
        item_id: s.spec.item,
        vault_id: s.spec.vault,
        due_at: c.due_at,
    }
    .into()])
}

/// A run may be dispatched once, and not after it was recorded as missed or skipped. The job
/// id is the one the device will report the job under, so it must not exist yet.
pub(super) fn dispatched(state: &State, c: RecordRunDispatched, now: i64) -> Decision {
    let s = recordable_run(state, c.job_id, c.schedule_id, c.due_at)?;
    if state.run_dispatched(s.id, c.due_at).is_some() {
        return Err(DomainError::conflict(
            "due_at",
            format!(
                "the run of {} due at {} was already dispatched",
                s.id, c.due_at
            ),
        ));
    }
    let dev = device(state, c.device_id)?;
    if dev.user != s.user {
        return Err(DomainError::invalid(
            "device_id",
            format!("device {} does not belong to the schedule's user", dev.id),
        ));
    }
    Ok(vec![RunDispatched {
        job_id: c.job_id,
        tenant: s.tenant,
        user_id: s.user,
        schedule_id: s.id,
        device_id: dev.id,
        due_at: c.due_at,
        at: now,
    }
    .into()])
}
