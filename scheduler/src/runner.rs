//! The scheduler task: at each run's fire time it sends `run_backup` to the device owning the
//! protected item, records skipped runs (7006) and, once a run's window has closed without a
//! job, missed ones (7004).
//!
//! **What it remembers, and where.** Its only memory is the log: every run it handles leaves
//! an event there (`schedule.run_dispatched`, `job.missed`, `job.skipped`), and `decide`
//! refuses a second one for the same (schedule, due instant). It keeps no checkpoint of its
//! own: a checkpoint would be a second record of the same facts that could disagree with the
//! log after a crash. At start it rebuilds the due index from the read models' `State`,
//! beginning each schedule a lookback before its last handled run (a run due earlier may still
//! wait out its random delay) and dropping, as they come due again, the runs the log says
//! were handled. Then it tails the log for schedule, user, policy and server-setting changes.
//!
//! **Once, never silently lost.** A dispatch is recorded *before* the command is sent: a crash
//! in between loses the send, never duplicates it, and the run then shows up as missed once
//! its window closes, because every dispatched or unsent run is watched until then.
//!
//! **Catching up.** A run whose fire time lies more than [`LATE_SECS`] in the past, or that a
//! later run of the same schedule overtook within one tick, is not sent: after downtime the
//! scheduler records what was missed instead of starting a burst of stale backups.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::commands::{RecordMissedJob, RecordRunDispatched, RecordSkippedJob};
use domain::ids::{DeviceId, JobId, ScheduleId, UserId};
use domain::model::{JobStatus, Schedule};
use domain::{Command, Event, State};
use eventlog::{EventLog, LogError, Position, Subscription};
use projections::{ProjectionError, ProjectionHandle, ReadModels, Scope};
use siphasher::sip::SipHasher24;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use writer::{Clock, CommandMeta, WriteError, Writer};

use crate::dispatch::Dispatcher;
use crate::index::{DueIndex, DueRun, ScheduleInput};

/// A run is still worth starting this long after its fire time; later it is only watched for
/// a job the device may have started on its own, and recorded as missed otherwise.
pub const LATE_SECS: i64 = 300;
/// DOMAIN.md: a job started this long before a run's due time covers the run …
pub const MISS_BEFORE_SECS: i64 = 300;
/// … and so does one started up to this long after its fire time.
pub const MISS_AFTER_SECS: i64 = 900;
/// How far before a schedule's last handled run the index restarts: the longest random
/// delay plus the missed-run window, so a run still waiting to fire or to be judged at the
/// time of a crash is found again.
const LOOKBACK_SECS: i64 = domain::validate::MAX_RANDOM_DELAY_SECS as i64 + MISS_AFTER_SECS + 60;
/// The longest the production loop sleeps without looking at the clock again (it may jump).
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How long a write that failed for a transient reason waits before its retry.
const RETRY_SECS: i64 = 5;
/// Events read from the log per batch while following it.
const BATCH: usize = 1024;

#[derive(Debug, Error)]
pub enum SchedulerError {
    #[error("reading the event log: {0}")]
    Log(#[from] LogError),
    #[error("waiting for the read models: {0}")]
    Projection(#[from] ProjectionError),
    #[error("event at position {position} cannot be decoded: {source}")]
    Decode {
        position: Position,
        source: domain::DecodeError,
    },
}

/// Asks the running scheduler for a tick now; answered with what it did.
pub type TickRequest = oneshot::Sender<Result<TickReport, SchedulerError>>;

/// What one tick did, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// `run_backup` commands sent, as (schedule, due instant, device, job).
    pub dispatched: Vec<(ScheduleId, i64, DeviceId, JobId)>,
    /// Runs recorded as missed (7004), as (schedule, due instant).
    pub missed: Vec<(ScheduleId, i64)>,
    /// Runs recorded as skipped (7006), as (schedule, due instant).
    pub skipped: Vec<(ScheduleId, i64)>,
}

/// A run whose window is open: at `deadline` it is recorded as missed unless a job covers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Watch {
    deadline: i64,
    due: i64,
    schedule: ScheduleId,
    job: JobId,
}

/// What a tick decided for one run, carried out after the read lock is released.
enum Action {
    Dispatch {
        run: DueRun,
        device: DeviceId,
        job: JobId,
    },
    Skip {
        run: DueRun,
        job: JobId,
    },
    Miss(Watch),
}

/// The scheduler's state between ticks. Drive it with [`Scheduler::tick`] (tests) or
/// [`Scheduler::run`] (production, from `halley::start`).
pub struct Scheduler {
    log: Arc<dyn EventLog>,
    models: ProjectionHandle<ReadModels>,
    writer: Writer,
    dispatcher: Arc<dyn Dispatcher>,
    subscription: Subscription,
    index: DueIndex,
    watches: BinaryHeap<Reverse<Watch>>,
    /// The instant of the last `take_due`: every run due at or before it has been taken, so
    /// a changed schedule's runs restart after it.
    last_tick: i64,
}

impl Scheduler {
    /// Builds the due index from the read models as they stand at the log's current head,
    /// as of `now`. The first tick then takes every run that came due while the server was
    /// down.
    pub async fn open(
        log: Arc<dyn EventLog>,
        models: ProjectionHandle<ReadModels>,
        writer: Writer,
        dispatcher: Arc<dyn Dispatcher>,
        now: DateTime<Utc>,
    ) -> Result<Scheduler, SchedulerError> {
        models.wait_for(log.head()).await?;
        // A schedule whose triggers changed restarts from its last change, not from an old
        // run: the new triggers' runs before it were never due. The read models know only
        // that it changed (its stream has more than its creation); the log knows when.
        let changed: Vec<ScheduleId> = {
            let guard = models.read();
            guard
                .state()
                .schedules()
                .filter(|s| guard.version(&s.id.to_string()) > 1)
                .map(|s| s.id)
                .collect()
        };
        let mut changed_at = HashMap::with_capacity(changed.len());
        for id in changed {
            let mut from = 1;
            loop {
                let events = log.read_stream(&id.to_string(), from, BATCH).await?;
                let Some(last) = events.last() else { break };
                from = last.envelope.stream_version + 1;
                for e in &events {
                    changed_at.insert(id, e.envelope.recorded_at_us.div_euclid(1_000_000));
                }
            }
        }
        let guard = models.read();
        let state = guard.state();
        let inputs: Vec<ScheduleInput<'_>> = state
            .schedules()
            .filter_map(|s| {
                let resume = state
                    .last_run_due(s.id)
                    .map(|last| last - LOOKBACK_SECS)
                    .max(changed_at.get(&s.id).copied());
                ScheduleInput::from_state(state, s, resume.and_then(instant))
            })
            .collect();
        let index = DueIndex::load(&inputs, DateTime::UNIX_EPOCH);
        let subscription = Subscription::new(Arc::clone(&log), guard.position());
        drop(inputs);
        drop(guard);
        tracing::info!(schedules = index.len(), "scheduler loaded");
        Ok(Scheduler {
            log,
            models,
            writer,
            dispatcher,
            subscription,
            index,
            watches: BinaryHeap::new(),
            last_tick: now.timestamp(),
        })
    }

    /// Schedules in the due index.
    pub fn schedules(&self) -> usize {
        self.index.len()
    }

    /// When the next tick may have work: a run's due or fire time, or a window closing.
    pub fn next_wake(&mut self) -> Option<DateTime<Utc>> {
        let watch = self
            .watches
            .peek()
            .and_then(|Reverse(w)| instant(w.deadline));
        match (self.index.next_wake(), watch) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One step at `now`: follows the log up to its head, then sends, skips and records
    /// every run whose time has come. Returns once all of it is written, so a test can call
    /// it with a manual clock and look at the log straight after.
    #[tracing::instrument(name = "scheduler.tick", skip(self), fields(now = %now))]
    pub async fn tick(&mut self, now: DateTime<Utc>) -> Result<TickReport, SchedulerError> {
        self.follow_log().await?;
        let now_secs = now.timestamp();
        let runs = self.index.take_due(now);
        self.last_tick = self.last_tick.max(now_secs);
        let actions = self.decide(runs, now_secs);
        let mut report = TickReport::default();
        for action in actions {
            self.act(action, now_secs, &mut report).await;
        }
        Ok(report)
    }

    /// Ticks whenever the clock reaches the next wake-up or the log moves, and whenever
    /// asked through `ticks` (each request is answered with what that tick did, so a test
    /// with a manual clock can move it and tick without sleeping), until `shutdown`.
    pub async fn run(
        mut self,
        clock: Arc<dyn Clock>,
        mut ticks: mpsc::Receiver<TickRequest>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut head = self.log.watch_head();
        let mut reply: Option<TickRequest> = None;
        loop {
            let now = instant(clock.now_secs()).unwrap_or(DateTime::UNIX_EPOCH);
            head.borrow_and_update();
            let result = self.tick(now).await;
            match (reply.take(), result) {
                (Some(reply), result) => {
                    if reply.send(result).is_err() {
                        tracing::debug!("tick requester went away");
                    }
                }
                (None, Ok(_)) => {}
                (None, Err(error)) => tracing::error!(%error, "scheduler tick failed"),
            }
            let sleep = self
                .next_wake()
                .and_then(|wake| (wake - now).to_std().ok())
                .map_or(MAX_SLEEP, |d| d.min(MAX_SLEEP));
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                request = ticks.recv(), if !ticks.is_closed() => reply = request,
                changed = head.changed() => if changed.is_err() { break },
                () = tokio::time::sleep(sleep) => {}
            }
        }
        tracing::info!("scheduler stopped");
    }

    /// Applies every log event since the last tick that can move a run, after the read
    /// models have applied it too, so the index is rebuilt from what they now say.
    async fn follow_log(&mut self) -> Result<(), SchedulerError> {
        let mut schedules: HashSet<ScheduleId> = HashSet::new();
        let mut users: HashSet<UserId> = HashSet::new();
        let mut everything = false;
        let mut sweep = false;
        loop {
            let batch = self.subscription.try_next_batch(BATCH).await?;
            if batch.is_empty() {
                break;
            }
            for record in &batch {
                let e = &record.envelope;
                if !moves_runs(e.type_code) {
                    continue;
                }
                let event = domain::decode(e.type_code, e.schema_version, &record.payload)
                    .map_err(|source| SchedulerError::Decode {
                        position: e.position,
                        source,
                    })?;
                match event {
                    Event::ScheduleCreated(e) => {
                        schedules.insert(e.schedule_id);
                    }
                    Event::ScheduleUpdated(e) => {
                        schedules.insert(e.schedule_id);
                    }
                    Event::ScheduleRemoved(e) => {
                        schedules.insert(e.schedule_id);
                    }
                    Event::UserUpdated(e) => {
                        users.insert(e.user_id);
                    }
                    Event::UserTransferred(e) => {
                        users.insert(e.user_id);
                    }
                    // Their schedules go with them, without events of their own.
                    Event::UserRemoved(_) | Event::TenantRemoved(_) => sweep = true,
                    _ => everything = true,
                }
            }
        }
        if schedules.is_empty() && users.is_empty() && !everything && !sweep {
            return Ok(());
        }
        self.models.wait_for(self.subscription.position()).await?;
        let guard = self.models.read();
        let state = guard.state();
        let after = instant(self.last_tick).unwrap_or(DateTime::UNIX_EPOCH);
        if everything {
            // Server-wide and policy delays: rare admin changes, so every schedule is
            // re-read rather than working out whose delay moved.
            schedules.extend(state.schedules().map(|s| s.id));
        }
        for user in users {
            schedules.extend(state.user_schedules(user).map(|s| s.id));
        }
        if sweep {
            schedules.extend(self.index.ids());
        }
        for id in schedules {
            match state.schedule(id) {
                Some(schedule) => refresh(&mut self.index, state, schedule, after),
                None => {
                    self.index.remove(id);
                }
            }
        }
        Ok(())
    }

    /// Decides what to do with each run taken and each window that closed, under one read
    /// lock; the writes happen after it is released.
    fn decide(&mut self, runs: Vec<DueRun>, now: i64) -> Vec<Action> {
        let guard = self.models.read();
        let state = guard.state();
        let mut actions = Vec::new();
        // The newest run of each schedule in this tick; older ones it overtook are not sent.
        let mut newest: HashMap<ScheduleId, i64> = HashMap::new();
        for run in &runs {
            let due = run.due.timestamp();
            let entry = newest.entry(run.schedule).or_insert(due);
            *entry = (*entry).max(due);
        }
        for run in runs {
            let due = run.due.timestamp();
            if state.run_recorded(run.schedule, due) {
                continue;
            }
            let Some(schedule) = state.schedule(run.schedule) else {
                continue;
            };
            let deadline = run.fire.timestamp() + MISS_AFTER_SECS;
            if let Some(job) = state.run_dispatched(run.schedule, due) {
                // Sent before a restart: only its outcome is still open.
                self.watches.push(Reverse(Watch {
                    deadline,
                    due,
                    schedule: run.schedule,
                    job,
                }));
                continue;
            }
            let job = run_job_id(run.schedule, due);
            let watch = Watch {
                deadline,
                due,
                schedule: run.schedule,
                job,
            };
            let stale = now > run.fire.timestamp() + LATE_SECS || newest[&run.schedule] != due;
            if stale {
                self.watches.push(Reverse(watch));
                continue;
            }
            if schedule.spec.skip_if_running
                && state.running_jobs_of_schedule(schedule.id).next().is_some()
            {
                actions.push(Action::Skip { run, job });
                continue;
            }
            match device_for(self.dispatcher.as_ref(), state, schedule) {
                Some(device) => actions.push(Action::Dispatch { run, device, job }),
                None => {
                    tracing::info!(schedule = %schedule.id, due, "device offline; run watched");
                    self.watches.push(Reverse(watch));
                }
            }
        }
        while let Some(&Reverse(w)) = self.watches.peek() {
            if w.deadline > now {
                break;
            }
            self.watches.pop();
            let Some(schedule) = state.schedule(w.schedule) else {
                continue;
            };
            if state.run_recorded(w.schedule, w.due) || covered(&guard, schedule, w) {
                continue;
            }
            actions.push(Action::Miss(w));
        }
        actions
    }

    fn watch(&mut self, watch: Watch) {
        self.watches.push(Reverse(watch));
    }

    async fn act(&mut self, action: Action, now: i64, report: &mut TickReport) {
        match action {
            Action::Dispatch { run, device, job } => {
                let due = run.due.timestamp();
                let command = RecordRunDispatched {
                    job_id: job,
                    schedule_id: run.schedule,
                    device_id: device,
                    due_at: due,
                };
                // Recorded first: a crash before the send loses the send (the run is then
                // missed), never repeats it.
                match self.write(run.schedule, due, command.into()).await {
                    Ok(()) => match self.dispatcher.run_backup(device, run.schedule, job) {
                        Ok(command) => {
                            tracing::info!(schedule = %run.schedule, due, %device, %job, %command, "run dispatched");
                            report.dispatched.push((run.schedule, due, device, job));
                        }
                        Err(offline) => {
                            tracing::warn!(schedule = %run.schedule, due, %offline, "run not sent")
                        }
                    },
                    Err(error) => {
                        tracing::warn!(schedule = %run.schedule, due, %error, "dispatch not recorded")
                    }
                }
                self.watch(Watch {
                    deadline: run.fire.timestamp() + MISS_AFTER_SECS,
                    due,
                    schedule: run.schedule,
                    job,
                });
            }
            Action::Skip { run, job } => {
                let due = run.due.timestamp();
                let command = RecordSkippedJob {
                    job_id: job,
                    schedule_id: run.schedule,
                    due_at: due,
                };
                match self.write(run.schedule, due, command.into()).await {
                    Ok(()) => report.skipped.push((run.schedule, due)),
                    Err(error) => {
                        tracing::warn!(schedule = %run.schedule, due, %error, "skip not recorded")
                    }
                }
            }
            Action::Miss(w) => {
                let command = RecordMissedJob {
                    job_id: w.job,
                    schedule_id: w.schedule,
                    due_at: w.due,
                };
                match self.write(w.schedule, w.due, command.into()).await {
                    Ok(()) => report.missed.push((w.schedule, w.due)),
                    Err(WriteError::Domain(error)) => {
                        // Recorded already, schedule gone, or the job id taken by a job
                        // its device started late: nothing left to record.
                        tracing::debug!(schedule = %w.schedule, due = w.due, %error, "missed run not recorded")
                    }
                    Err(error) => {
                        tracing::warn!(schedule = %w.schedule, due = w.due, %error, "missed run not recorded; retrying");
                        self.watch(Watch {
                            deadline: now + RETRY_SECS,
                            ..w
                        });
                    }
                }
            }
        }
    }

    async fn write(
        &self,
        schedule: ScheduleId,
        due: i64,
        command: Command,
    ) -> Result<(), WriteError> {
        let meta = CommandMeta {
            actor: "scheduler".to_owned(),
            correlation_id: format!("{schedule}@{due}"),
            idempotency_key: None,
            expected_version: None,
        };
        self.writer.execute(meta, command).await.map(|_| ())
    }
}

/// The device that owns the protected item, if it is online; for an item without an
/// owner, the user's first online device.
fn device_for(dispatcher: &dyn Dispatcher, state: &State, schedule: &Schedule) -> Option<DeviceId> {
    let owner = state
        .user(schedule.user)
        .and_then(|u| u.items.get(&schedule.spec.item))
        .and_then(|item| item.spec.owner_device);
    match owner {
        Some(device) => dispatcher.is_online(device).then_some(device),
        None => {
            let mut devices: Vec<DeviceId> =
                state.user_devices(schedule.user).map(|d| d.id).collect();
            devices.sort_unstable();
            devices.into_iter().find(|d| dispatcher.is_online(*d))
        }
    }
}

/// Re-reads one schedule into the index, with runs due after `after`.
fn refresh(index: &mut DueIndex, state: &State, schedule: &Schedule, after: DateTime<Utc>) {
    let Some(input) = ScheduleInput::from_state(state, schedule, None) else {
        index.remove(schedule.id);
        return;
    };
    if let Err(error) = index.upsert(&input, after) {
        tracing::warn!(schedule = %schedule.id, %error, "schedule left out of the scheduler");
        index.remove(schedule.id);
    }
}

/// Whether a job for the run's (user, item, vault) started within its window (DOMAIN.md,
/// missed jobs). Missed and skipped records are not jobs that started.
fn covered(models: &ReadModels, schedule: &Schedule, w: Watch) -> bool {
    let scope = match schedule.tenant {
        domain::ids::TenantRef::Root => Scope::Root,
        domain::ids::TenantRef::Tenant(id) => Scope::Tenant(id),
    };
    models
        .jobs_started_between(scope, w.due - MISS_BEFORE_SECS, w.deadline + 1)
        .any(|job| {
            job.user == schedule.user
                && job.item == Some(schedule.spec.item)
                && job.vault == Some(schedule.spec.vault)
                && !matches!(job.status, JobStatus::Missed | JobStatus::Skipped)
        })
}

/// Event types that can move a schedule's runs: its own events, its owner's (time zone,
/// removal) and the random delay's sources (policies, server settings, tenant removal).
fn moves_runs(type_code: u16) -> bool {
    matches!(
        type_code,
        4930..=4932 | 4101 | 4102 | 4902 | 4501 | 4600..=4602 | 4900
    )
}

/// The job id of the run of `schedule` due at `due`: the same on every node and after every
/// restart, so the dispatch, the job the device reports and a missed record share it.
pub fn run_job_id(schedule: ScheduleId, due: i64) -> JobId {
    let mut message = [0u8; 24];
    message[..16].copy_from_slice(&schedule.ulid().to_bytes());
    message[16..].copy_from_slice(&due.to_be_bytes());
    let hash = |k0, k1| SipHasher24::new_with_keys(k0, k1).hash(&message);
    // ("halley-j", "ob-id-00") and a second pair; 80 random bits of a ULID.
    let high = hash(0x6861_6c6c_6579_2d6a, 0x6f62_2d69_642d_3030);
    let low = hash(0x6861_6c6c_6579_2d6a, 0x6f62_2d69_642d_3031);
    let random = (u128::from(high) << 16) | u128::from(low & 0xffff);
    JobId::new(u64::try_from(due.max(0)).unwrap_or(0) * 1000, random)
}

fn instant(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0)
}
