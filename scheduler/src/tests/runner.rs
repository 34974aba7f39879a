//! The scheduler task on a real log, read models and writer, driven tick by tick with a
//! manual clock: nothing sleeps, and a "restart" reopens the same data directory.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use domain::commands::*;
use domain::ids::{DeviceId, ItemId, JobId, ScheduleId, TenantRef, UserId, VaultId};
use domain::model::{
    DeviceSpec, Frequency, ItemSpec, JobStatus, JobTotals, ScheduleSpec, Trigger, UserSpec,
    VaultSpec,
};
use domain::{Command, Event};
use eventlog::{EventLog, SledLog};
use projections::{ProjectionHandle, Projector, ProjectorConfig, ReadModels};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use writer::{Clock, CommandMeta, ManualClock, Writer};

use crate::{run_job_id, CommandId, Dispatcher, Offline, Scheduler, TickReport};

/// A device hub stand-in: who is online, and every `run_backup` sent.
#[derive(Default)]
struct FakeHub {
    online: Mutex<HashSet<DeviceId>>,
    sent: Mutex<Vec<(DeviceId, ScheduleId, JobId)>>,
}

impl FakeHub {
    fn set_online(&self, device: DeviceId, online: bool) {
        let mut set = self.online.lock().unwrap();
        if online {
            set.insert(device);
        } else {
            set.remove(&device);
        }
    }

    fn sent(&self) -> Vec<(DeviceId, ScheduleId, JobId)> {
        self.sent.lock().unwrap().clone()
    }
}

impl Dispatcher for FakeHub {
    fn run_backup(
        &self,
        device: DeviceId,
        schedule: ScheduleId,
        job: JobId,
    ) -> Result<CommandId, Offline> {
        if !self.is_online(device) {
            return Err(Offline { device });
        }
        self.sent.lock().unwrap().push((device, schedule, job));
        Ok(CommandId::new(format!("cmd_{job}")))
    }

    fn is_online(&self, device: DeviceId) -> bool {
        self.online.lock().unwrap().contains(&device)
    }
}

/// One server's worth of parts on a data directory.
struct Node {
    log: Arc<SledLog>,
    models: ProjectionHandle<ReadModels>,
    writer: Writer,
    writer_task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
    projector: JoinHandle<Result<(), projections::ProjectionError>>,
    scheduler: Scheduler,
}

struct World {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    hub: Arc<FakeHub>,
    node: Option<Node>,
    user: UserId,
    item: ItemId,
    vault: VaultId,
    device: DeviceId,
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn hourly(random_delay_secs: Option<u32>) -> Trigger {
    Trigger {
        frequency: Frequency::Hourly { seconds_past: 0 },
        window: None,
        days: None,
        random_delay_secs,
    }
}

impl World {
    /// A user in UTC with one device owning one item, and a vault; the clock at `now`.
    async fn new(now: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(utc(now).timestamp() * 1_000_000));
        let hub = Arc::new(FakeHub::default());
        let mut world = World {
            dir,
            clock,
            hub,
            node: None,
            user: UserId::new(1, 1),
            item: ItemId::new(1, 2),
            vault: VaultId::new(1, 3),
            device: DeviceId::new(1, 4),
        };
        world.start().await;
        world
            .exec(CreateUser {
                user_id: world.user,
                tenant: TenantRef::Root,
                spec: UserSpec {
                    username: "ada".into(),
                    account_name: "Ada".into(),
                    emails: vec![],
                    timezone: "UTC".into(),
                    language: "en".into(),
                    policy: None,
                    suspended: false,
                    max_devices: None,
                    quota_bytes: None,
                },
                password_hash: "h".into(),
            })
            .await;
        world
            .exec(RegisterDevice {
                device_id: world.device,
                user_id: world.user,
                spec: DeviceSpec {
                    friendly_name: "laptop".into(),
                    platform: "linux".into(),
                    arch: "x86_64".into(),
                    os_version: "6".into(),
                    client_version: "1.0".into(),
                    timezone: "UTC".into(),
                },
                token_hash: "t".into(),
            })
            .await;
        world
            .exec(CreateItem {
                item_id: world.item,
                user_id: world.user,
                spec: ItemSpec {
                    name: "Documents".into(),
                    engine: "files".into(),
                    owner_device: Some(world.device),
                    settings: BTreeMap::new(),
                },
            })
            .await;
        world
            .exec(CreateVault {
                vault_id: world.vault,
                user_id: world.user,
                spec: VaultSpec {
                    name: "Offsite".into(),
                    kind: "s3".into(),
                    address: "s3.test".into(),
                    bucket: "b".into(),
                    quota_bytes: None,
                },
            })
            .await;
        world
    }

    async fn start(&mut self) {
        let log = Arc::new(SledLog::open(self.dir.path()).unwrap());
        let dyn_log = Arc::clone(&log) as Arc<dyn EventLog>;
        let mut projector: Projector<ReadModels> =
            Projector::open(Arc::clone(&dyn_log), log.db(), ProjectorConfig::default()).unwrap();
        projector.catch_up().await.unwrap();
        let models = projector.handle();
        let state = models.read().state().clone();
        let clock = Arc::clone(&self.clock) as Arc<dyn Clock>;
        let (writer, writer_task) = Writer::start(Arc::clone(&dyn_log), state, clock);
        let (stop, stopped) = oneshot::channel::<()>();
        let projector = tokio::spawn(projector.run(async {
            stopped.await.ok();
        }));
        let scheduler = Scheduler::open(
            dyn_log,
            models.clone(),
            writer.clone(),
            Arc::clone(&self.hub) as Arc<dyn Dispatcher>,
            self.now(),
        )
        .await
        .unwrap();
        self.node = Some(Node {
            log,
            models,
            writer,
            writer_task,
            stop,
            projector,
            scheduler,
        });
    }

    /// Stops every part and reopens the directory, as a server restart would.
    async fn restart(&mut self) {
        let node = self.node.take().unwrap();
        drop(node.scheduler);
        drop(node.writer);
        node.writer_task.await.unwrap();
        node.stop.send(()).unwrap();
        node.projector.await.unwrap().unwrap();
        drop(node.models);
        node.log.db().flush().unwrap();
        drop(node.log);
        self.start().await;
    }

    fn node(&mut self) -> &mut Node {
        self.node.as_mut().unwrap()
    }

    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.clock.now_secs(), 0).unwrap()
    }

    async fn exec(&mut self, command: impl Into<Command>) -> Vec<Event> {
        let meta = CommandMeta {
            actor: "test".into(),
            correlation_id: "test".into(),
            idempotency_key: None,
            expected_version: None,
        };
        let node = self.node();
        let committed = node.writer.execute(meta, command.into()).await.unwrap();
        node.models.wait_for(committed.position).await.unwrap();
        committed.events
    }

    async fn schedule(&mut self, triggers: Vec<Trigger>, skip_if_running: bool) -> ScheduleId {
        let id = ScheduleId::new(1, 100 + u128::from(self.clock.now_secs() as u64));
        self.exec(CreateSchedule {
            schedule_id: id,
            user_id: self.user,
            spec: ScheduleSpec {
                name: "hourly".into(),
                item: self.item,
                vault: self.vault,
                skip_if_running,
                triggers,
            },
        })
        .await;
        id
    }

    /// Sets the clock to `at` and runs one tick there, waiting until its writes are visible.
    async fn tick(&mut self, at: &str) -> TickReport {
        let at = utc(at);
        self.clock.set_us(at.timestamp() * 1_000_000);
        let node = self.node();
        let report = node.scheduler.tick(at).await.unwrap();
        node.models.wait_for(node.log.head()).await.unwrap();
        report
    }

    /// Ticks at every wake-up the scheduler asks for up to `until`, then at `until`.
    async fn run_until(&mut self, until: &str) -> TickReport {
        let until = utc(until);
        let mut all = TickReport::default();
        loop {
            let wake = self.node().scheduler.next_wake();
            let at = match wake {
                Some(w) if w < until => w,
                _ => until,
            };
            let report = self.tick(&at.to_rfc3339()).await;
            all.dispatched.extend(report.dispatched);
            all.missed.extend(report.missed);
            all.skipped.extend(report.skipped);
            if at == until {
                return all;
            }
        }
    }

    async fn start_job(&mut self, job: JobId, schedule: ScheduleId, at: &str) {
        self.clock.set_us(utc(at).timestamp() * 1_000_000);
        self.exec(StartJob {
            job_id: job,
            device_id: self.device,
            item_id: Some(self.item),
            vault_id: Some(self.vault),
            schedule_id: Some(schedule),
            classification: 4001,
            started_at: utc(at).timestamp(),
        })
        .await;
    }

    async fn finish_job(&mut self, job: JobId, at: &str) {
        self.clock.set_us(utc(at).timestamp() * 1_000_000);
        self.exec(FinishJob {
            job_id: job,
            status: 5000,
            ended_at: utc(at).timestamp(),
            totals: JobTotals {
                total_bytes: 10,
                upload_bytes: 5,
                download_bytes: 0,
                total_files: 1,
                total_dirs: 1,
            },
        })
        .await;
    }

    fn job_status(&mut self, job: JobId) -> Option<JobStatus> {
        let guard = self.node().models.read();
        guard.state().job(job).map(|j| j.status)
    }

    fn dispatched_in_log(&mut self, schedule: ScheduleId, due: &str) -> Option<JobId> {
        let guard = self.node().models.read();
        guard.state().run_dispatched(schedule, utc(due).timestamp())
    }
}

fn ts(s: &str) -> i64 {
    utc(s).timestamp()
}

#[tokio::test]
async fn a_run_is_sent_to_the_online_owner_at_its_fire_time_once() {
    let mut w = World::new("2026-01-05T09:30:00Z").await;
    w.hub.set_online(w.device, true);
    let s = w.schedule(vec![hourly(None)], false).await;

    assert_eq!(w.tick("2026-01-05T09:59:59Z").await, TickReport::default());
    let report = w.tick("2026-01-05T10:00:00Z").await;
    let job = run_job_id(s, ts("2026-01-05T10:00:00Z"));
    assert_eq!(
        report.dispatched,
        vec![(s, ts("2026-01-05T10:00:00Z"), w.device, job)]
    );
    assert_eq!(w.hub.sent(), vec![(w.device, s, job)]);
    assert_eq!(w.dispatched_in_log(s, "2026-01-05T10:00:00Z"), Some(job));
    // The same instant again, and the device running the job: nothing more.
    assert_eq!(w.tick("2026-01-05T10:00:00Z").await, TickReport::default());
    w.start_job(job, s, "2026-01-05T10:00:30Z").await;
    w.finish_job(job, "2026-01-05T10:05:00Z").await;
    let report = w.run_until("2026-01-05T10:59:00Z").await;
    assert_eq!(report, TickReport::default());
    assert_eq!(w.job_status(job), Some(JobStatus::Success));
}

#[tokio::test]
async fn the_random_delay_moves_the_send_not_the_due_time() {
    let mut w = World::new("2026-01-05T09:30:00Z").await;
    w.hub.set_online(w.device, true);
    let s = w.schedule(vec![hourly(Some(1800))], false).await;
    let due = ts("2026-01-05T10:00:00Z");
    let delay = i64::from(crate::random_delay(
        w.user,
        s,
        utc("2026-01-05T10:00:00Z"),
        1800,
    ));
    let fire = DateTime::from_timestamp(due + delay, 0).unwrap();
    if delay > 0 {
        let before = DateTime::from_timestamp(due + delay - 1, 0).unwrap();
        assert!(w.tick(&before.to_rfc3339()).await.dispatched.is_empty());
    }
    let report = w.tick(&fire.to_rfc3339()).await;
    assert_eq!(report.dispatched.len(), 1);
    assert_eq!(report.dispatched[0].1, due);
}

#[tokio::test]
async fn an_offline_device_yields_a_missed_run_once_its_window_closes() {
    let mut w = World::new("2026-01-05T09:30:00Z").await;
    let s = w.schedule(vec![hourly(None)], false).await;

    assert_eq!(w.tick("2026-01-05T10:00:00Z").await, TickReport::default());
    assert!(w.hub.sent().is_empty());
    // The window is [due − 5 min, due + delay + 15 min].
    assert_eq!(w.tick("2026-01-05T10:14:59Z").await, TickReport::default());
    let report = w.tick("2026-01-05T10:15:00Z").await;
    assert_eq!(report.missed, vec![(s, ts("2026-01-05T10:00:00Z"))]);
    let job = run_job_id(s, ts("2026-01-05T10:00:00Z"));
    assert_eq!(w.job_status(job), Some(JobStatus::Missed));
    {
        let guard = w.node().models.read();
        let j = guard.state().job(job).unwrap();
        assert_eq!(j.started_at, ts("2026-01-05T10:00:00Z"));
        assert_eq!(j.ended_at, Some(ts("2026-01-05T10:00:00Z")));
    }
    // Never twice, also not after a restart.
    assert_eq!(w.tick("2026-01-05T10:30:00Z").await, TickReport::default());
    w.restart().await;
    assert_eq!(w.tick("2026-01-05T10:30:00Z").await, TickReport::default());
}

#[tokio::test]
async fn a_job_the_device_started_itself_within_the_window_covers_the_run() {
    let mut w = World::new("2026-01-05T09:30:00Z").await;
    let s = w.schedule(vec![hourly(None)], false).await;
    w.tick("2026-01-05T10:00:00Z").await;
    // Started 4 minutes before the due time, under its own id.
    w.start_job(JobId::new(9, 9), s, "2026-01-05T09:56:00Z")
        .await;
    let report = w.run_until("2026-01-05T10:30:00Z").await;
    assert!(report.missed.is_empty(), "{report:?}");
}

#[tokio::test]
async fn a_dispatched_run_the_device_never_starts_is_missed_under_its_job_id() {
    let mut w = World::new("2026-01-05T09:30:00Z").await;
    w.hub.set_online(w.device, true);
    let s = w.schedule(vec![hourly(None)], false).await;
    let report = w.tick("2026-01-05T10:00:00Z").await;
    let job = report.dispatched[0].3;
    let report = w.run_until("2026-01-05T10:15:00Z").await;
    assert_eq!(report.missed, vec![(s, ts("2026-01-05T10:00:00Z"))]);
    assert_eq!(w.job_status(job), Some(JobStatus::Missed));
}

#[tokio::test]
async fn a_run_due_while_the_previous_job_runs_is_skipped() {
    let mut w = World::new("2026-01-05T09:30:00Z").await;
    w.hub.set_online(w.device, true);
    let s = w.schedule(vec![hourly(None)], true).await;
    let report = w.tick("2026-01-05T10:00:00Z").await;
    let first = report.dispatched[0].3;
    w.start_job(first, s, "2026-01-05T10:00:10Z").await;
    // Still running an hour later.
    let report = w.run_until("2026-01-05T11:00:00Z").await;
    assert_eq!(report.skipped, vec![(s, ts("2026-01-05T11:00:00Z"))]);
    assert!(report.dispatched.is_empty());
    let skipped = run_job_id(s, ts("2026-01-05T11:00:00Z"));
    assert_eq!(w.job_status(skipped), Some(JobStatus::Skipped));
    // Once it finished, the next run is sent again; the skipped one is never missed.
    w.finish_job(first, "2026-01-05T11:30:00Z").await;
    let report = w.run_until("2026-01-05T12:00:00Z").await;
    assert_eq!(report.dispatched.len(), 1);
    assert!(report.missed.is_empty(), "{report:?}");
}

#[tokio::test]
async fn a_restart_neither_repeats_nor_loses_a_run() {
    let mut w = World::new("2026-01-05T09:30:00Z").await;
    w.hub.set_online(w.device, true);
    // Two schedules: one fires at 10:00 sharp, one waits out a delay of up to 50 minutes.
    let sharp = w.schedule(vec![hourly(None)], false).await;
    w.clock.advance_secs(1);
    let delayed = w.schedule(vec![hourly(Some(3000))], false).await;
    let due = utc("2026-01-05T10:00:00Z");
    let delay = i64::from(crate::random_delay(w.user, delayed, due, 3000));
    let report = w.tick("2026-01-05T10:00:00Z").await;
    let sent: Vec<ScheduleId> = report.dispatched.iter().map(|d| d.0).collect();
    assert!(sent.contains(&sharp));
    assert_eq!(sent.contains(&delayed), delay == 0);
    let due_ts = due.timestamp();
    w.start_job(run_job_id(sharp, due_ts), sharp, "2026-01-05T10:00:00Z")
        .await;

    // Restart in the middle: the sharp run was sent, the delayed one (if any delay) not yet.
    w.restart().await;
    let report = w.tick("2026-01-05T10:00:00Z").await;
    assert!(report.dispatched.iter().all(|d| d.0 != sharp), "{report:?}");
    let fire = DateTime::from_timestamp(due.timestamp() + delay, 0).unwrap();
    let mut report = w.run_until(&fire.to_rfc3339()).await;
    if delay == 0 {
        assert!(report.dispatched.is_empty(), "{report:?}");
    } else {
        assert_eq!(report.dispatched.len(), 1, "{report:?}");
        assert_eq!(report.dispatched[0].0, delayed);
        report.dispatched.clear();
    }
    let count =
        |sent: &[(DeviceId, ScheduleId, JobId)], s| sent.iter().filter(|x| x.1 == s).count();
    assert_eq!(count(&w.hub.sent(), sharp), 1);
    assert_eq!(count(&w.hub.sent(), delayed), 1);
    // The delayed run's job is reported too; after another restart the 11:00 runs go out
    // once each, and nothing was missed.
    w.start_job(run_job_id(delayed, due_ts), delayed, &fire.to_rfc3339())
        .await;
    w.restart().await;
    let report = w.run_until("2026-01-05T11:55:00Z").await;
    assert!(report.missed.iter().all(|m| m.1 != due_ts), "{report:?}");
    assert_eq!(count(&w.hub.sent(), sharp), 2);
    assert_eq!(count(&w.hub.sent(), delayed), 2);
}

#[tokio::test]
async fn after_downtime_missed_runs_are_recorded_and_no_stale_run_is_sent() {
    let mut w = World::new("2026-01-05T09:30:00Z").await;
    w.hub.set_online(w.device, true);
    let s = w.schedule(vec![hourly(None)], false).await;
    let report = w.tick("2026-01-05T10:00:00Z").await;
    let job = report.dispatched[0].3;
    w.start_job(job, s, "2026-01-05T10:00:05Z").await;

    // Down from 10:01 to 15:30.
    w.clock.set_us(ts("2026-01-05T15:30:00Z") * 1_000_000);
    w.restart().await;
    let report = w.tick("2026-01-05T15:30:00Z").await;
    assert!(report.dispatched.is_empty(), "{report:?}");
    let hours: Vec<i64> = (11..=15)
        .map(|h| ts(&format!("2026-01-05T{h}:00:00Z")))
        .collect();
    let mut missed: Vec<i64> = report.missed.iter().map(|m| m.1).collect();
    missed.sort_unstable();
    assert_eq!(missed, hours);
    // Back to normal at the next hour.
    let report = w.run_until("2026-01-05T16:00:00Z").await;
    assert_eq!(report.dispatched.len(), 1);
    assert!(report.missed.is_empty());
}

#[tokio::test]
async fn a_run_shortly_overdue_after_a_restart_is_still_sent() {
    let mut w = World::new("2026-01-05T09:30:00Z").await;
    w.hub.set_online(w.device, true);
    let s = w.schedule(vec![hourly(None)], false).await;
    w.clock.set_us(ts("2026-01-05T10:02:00Z") * 1_000_000);
    w.restart().await;
    let report = w.tick("2026-01-05T10:02:00Z").await;
    assert_eq!(
        report.dispatched,
        vec![(
            s,
            ts("2026-01-05T10:00:00Z"),
            w.device,
            run_job_id(s, ts("2026-01-05T10:00:00Z"))
        )]
    );
}

#[tokio::test]
async fn changes_to_a_schedule_reach_the_index() {
    let mut w = World::new("2026-01-05T09:30:00Z").await;
    w.hub.set_online(w.device, true);
    let s = w.schedule(vec![hourly(None)], false).await;
    w.tick("2026-01-05T09:31:00Z").await;
    w.exec(UpdateSchedule {
        schedule_id: s,
        patch: SchedulePatch {
            triggers: Some(vec![Trigger {
                frequency: Frequency::Hourly { seconds_past: 1800 },
                ..hourly(None)
            }]),
            ..SchedulePatch::default()
        },
    })
    .await;
    let report = w.run_until("2026-01-05T10:30:00Z").await;
    let dues: Vec<i64> = report.dispatched.iter().map(|d| d.1).collect();
    assert_eq!(dues, vec![ts("2026-01-05T10:30:00Z")]);
    w.exec(RemoveSchedule { schedule_id: s }).await;
    let report = w.run_until("2026-01-05T13:00:00Z").await;
    assert_eq!(report, TickReport::default());
    assert_eq!(w.node().scheduler.schedules(), 0);
}

#[test]
fn the_loop_can_run_on_a_multi_threaded_runtime() {
    fn is_send<T: Send>(_: &T) {}
    fn check(s: Scheduler, clock: Arc<dyn Clock>) {
        let (_requests, ticks) = tokio::sync::mpsc::channel(1);
        is_send(&s.run(clock, ticks, std::future::pending()));
    }
    let _ = check;
}
