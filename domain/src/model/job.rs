use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::ids::{DeviceId, ItemId, JobId, ScheduleId, TenantRef, UserId, VaultId};

macro_rules! coded_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "u16", into = "u16")]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub fn code(self) -> u16 {
                match self {
                    $($name::$variant => $code,)*
                }
            }

            pub fn from_code(code: u16) -> Option<Self> {
                match code {
                    $($code => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl From<$name> for u16 {
            fn from(value: $name) -> u16 {
                value.code()
            }
        }

        impl TryFrom<u16> for $name {
            type Error = String;
            fn try_from(code: u16) -> Result<Self, String> {
                Self::from_code(code)
                    .ok_or_else(|| format!("unknown {} code {code}", stringify!($name)))
            }
        }
    };
}

coded_enum!(
    /// Job status codes: 5xxx finished OK, 6xxx running, 7xxx finished unsuccessfully.
    JobStatus {
        Success = 5000,
        Running = 6001,
        RunningRevived = 6002,
        WaitingToRetry = 6003,
        NotYetStarted = 6004,
        Timeout = 7000,
        Warning = 7001,
        Error = 7002,
        QuotaExceeded = 7003,
        Missed = 7004,
        Cancelled = 7005,
        Skipped = 7006,
        Abandoned = 7007,
    }
);

impl JobStatus {
    pub fn is_running(self) -> bool {
        (6000..7000).contains(&self.code())
    }

    pub fn is_finished(self) -> bool {
        !self.is_running()
    }

    /// Statuses a device may report when it finishes a job. Missed, skipped and abandoned are
    /// recorded by the server through their own events.
    pub fn is_reportable_end(self) -> bool {
        self.is_finished()
            && !matches!(
                self,
                JobStatus::Missed | JobStatus::Skipped | JobStatus::Abandoned
            )
    }
}

coded_enum!(
    /// What kind of work a job does.
    Classification {
        Unknown = 4000,
        Backup = 4001,
        Restore = 4002,
        RetentionPass = 4003,
        Unlock = 4004,
        DeleteSnapshot = 4005,
        Remeasure = 4006,
        SoftwareUpdate = 4007,
        Import = 4008,
        Reindex = 4009,
        DeepVerify = 4010,
        Uninstall = 4011,
    }
);

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgress {
    pub bytes_done: u64,
    pub items_done: u64,
    pub items_total: u64,
}

/// Final counters a device reports when a job ends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTotals {
    pub total_bytes: u64,
    pub upload_bytes: u64,
    pub download_bytes: u64,
    pub total_files: u64,
    pub total_dirs: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub tenant: TenantRef,
    pub user: UserId,
    /// `None` for runs the server recorded without a device (missed, skipped).
    pub device: Option<DeviceId>,
    pub item: Option<ItemId>,
    pub vault: Option<VaultId>,
    pub schedule: Option<ScheduleId>,
    pub classification: Classification,
    pub status: JobStatus,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds; `None` while running.
    pub ended_at: Option<i64>,
    pub totals: JobTotals,
    pub client_version: String,
    pub progress: JobProgress,
    /// Number of log lines received; the lines themselves live in the events and read models.
    pub log_lines: u64,
}

impl Job {
    /// The job a job's first event creates (started, missed or skipped); `None` for any other
    /// event.
    pub fn create(event: &Event) -> Option<Job> {
        match event {
            Event::JobStarted(e) => Some(Job {
                id: e.job_id,
                tenant: e.tenant,
                user: e.user_id,
                device: Some(e.device_id),
                item: e.item_id,
                vault: e.vault_id,
                schedule: e.schedule_id,
                classification: e.classification,
                status: JobStatus::Running,
                started_at: e.started_at,
                ended_at: None,
                totals: JobTotals::default(),
                client_version: e.client_version.clone(),
                progress: JobProgress::default(),
                log_lines: 0,
            }),
            Event::JobMissed(e) => Some(Job::recorded(
                e.job_id,
                e.tenant,
                e.user_id,
                e.schedule_id,
                e.item_id,
                e.vault_id,
                e.due_at,
                JobStatus::Missed,
            )),
            Event::JobSkipped(e) => Some(Job::recorded(
                e.job_id,
                e.tenant,
                e.user_id,
                e.schedule_id,
                e.item_id,
                e.vault_id,
                e.due_at,
                JobStatus::Skipped,
            )),
            _ => None,
        }
    }

    /// Applies a later event to the job where it is. A job is never removed, and an event
    /// that does not fit (a second start) changes nothing.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::JobProgressed(e) => self.progress = e.progress.clone(),
            Event::JobLogged(e) => self.log_lines += e.lines.len() as u64,
            Event::JobCompleted(e) => {
                self.status = e.status;
                self.ended_at = Some(e.ended_at);
                self.totals = e.totals.clone();
            }
            Event::JobAbandoned(e) => {
                self.status = JobStatus::Abandoned;
                self.ended_at = Some(e.at);
            }
            Event::JobRevived(_) => {
                self.status = JobStatus::RunningRevived;
                self.ended_at = None;
            }
            _ => {}
        }
    }

    /// A run the server records on its own: it started and ended at its due time.
    #[allow(clippy::too_many_arguments)]
    fn recorded(
        id: JobId,
        tenant: TenantRef,
        user: UserId,
        schedule: ScheduleId,
        item: ItemId,
        vault: VaultId,
        due_at: i64,
        status: JobStatus,
    ) -> Job {
        Job {
            id,
            tenant,
            user,
            device: None,
            item: Some(item),
            vault: Some(vault),
            schedule: Some(schedule),
            classification: Classification::Backup,
            status,
            started_at: due_at,
            ended_at: Some(due_at),
            totals: JobTotals::default(),
            client_version: String::new(),
            progress: JobProgress::default(),
            log_lines: 0,
        }
    }
}
