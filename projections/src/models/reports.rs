//! Report read models: per tenant and UTC day (of a job's start), job counts by status and
//! classification and bytes moved; per user and per device, the worst status of each day.
//! Kept by the same hook as the search indexes, so a job that finishes moves from "running"
//! to its final status in every count.

use std::collections::BTreeMap;
use std::hash::Hash;

use domain::ids::{DeviceId, TenantRef, UserId};
use domain::model::{Classification, Job, JobStatus};
use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use super::keys::JobKeys;
use super::search::JobFacts;
use super::{ReadModels, Scope};

const STATUSES: usize = JobStatus::ALL.len();
const CLASSIFICATIONS: usize = Classification::ALL.len();

/// Days in an activity summary, today included.
pub const ACTIVITY_DAYS: usize = 10;

/// The UTC day a Unix time falls on, as days since 1970-01-01.
pub fn day_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(86_400)
}

fn status_index(status: JobStatus) -> usize {
    JobStatus::ALL
        .iter()
        .position(|s| *s == status)
        .unwrap_or(0)
}

/// How bad a status is, for "worst status of the day": success < running < skipped <
/// cancelled < warning < missed < timeout < quota exceeded < abandoned < error.
pub fn severity(status: JobStatus) -> u8 {
    match status {
        JobStatus::Success => 0,
        JobStatus::Running
        | JobStatus::RunningRevived
        | JobStatus::WaitingToRetry
        | JobStatus::NotYetStarted => 1,
        JobStatus::Skipped => 2,
        JobStatus::Cancelled => 3,
        JobStatus::Warning => 4,
        JobStatus::Missed => 5,
        JobStatus::Timeout => 6,
        JobStatus::QuotaExceeded => 7,
        JobStatus::Abandoned => 8,
        JobStatus::Error => 9,
    }
}

/// One tenant's jobs that started on one UTC day.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayStats {
    pub jobs: u64,
    pub upload_bytes: u64,
    pub download_bytes: u64,
    statuses: [u64; STATUSES],
    classifications: [u64; CLASSIFICATIONS],
}

impl DayStats {
    pub fn status_count(&self, status: JobStatus) -> u64 {
        self.statuses[status_index(status)]
    }

    pub fn classification_count(&self, classification: Classification) -> u64 {
        Classification::ALL
            .iter()
            .position(|c| *c == classification)
            .map_or(0, |i| self.classifications[i])
    }

    /// Statuses with at least one job, in code order.
    pub fn by_status(&self) -> impl Iterator<Item = (JobStatus, u64)> + '_ {
        JobStatus::ALL
            .iter()
            .zip(self.statuses)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (*s, n))
    }

    /// Classifications with at least one job, in code order.
    pub fn by_classification(&self) -> impl Iterator<Item = (Classification, u64)> + '_ {
        Classification::ALL
            .iter()
            .zip(self.classifications)
            .filter(|(_, n)| *n > 0)
            .map(|(c, n)| (*c, n))
    }

    /// Adds `other` into `self` (to group days or tenants together).
    pub fn merge(&mut self, other: &DayStats) {
        self.jobs += other.jobs;
        self.upload_bytes += other.upload_bytes;
        self.download_bytes += other.download_bytes;
        for (a, b) in self.statuses.iter_mut().zip(other.statuses) {
            *a += b;
        }
        for (a, b) in self.classifications.iter_mut().zip(other.classifications) {
            *a += b;
        }
    }

    fn add(&mut self, f: &JobFacts, sign: i64) {
        let apply = |n: &mut u64, by: u64| {
            *n = if sign > 0 {
                n.saturating_add(by)
            } else {
                n.saturating_sub(by)
            }
        };
        apply(&mut self.jobs, 1);
        apply(&mut self.upload_bytes, f.upload);
        apply(&mut self.download_bytes, f.download);
        apply(&mut self.statuses[status_index(f.status)], 1);
        if let Some(i) = Classification::ALL
            .iter()
            .position(|c| *c == f.classification)
        {
            apply(&mut self.classifications[i], 1);
        }
    }
}

/// Jobs per status of one subject (user or device) on one day.
type StatusCounts = [u32; STATUSES];

/// By subject, owning tenant (a transferred user's old jobs stay with the old tenant) and
/// day, in one flat map: filing a job costs one lookup per subject, not one per level. The
/// tenants a subject has jobs under are those whose job indexes list it.
type Days<K> = HashMap<(K, TenantRef, i64), StatusCounts>;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Reports {
    days: HashMap<TenantRef, BTreeMap<i64, DayStats>>,
    user_days: Days<UserId>,
    device_days: Days<DeviceId>,
}

fn count<K: Eq + Hash + Copy>(days: &mut Days<K>, key: K, f: &JobFacts, add: bool) {
    let slot = (key, f.tenant, day_of(f.start));
    let counts = days.entry(slot).or_insert([0; STATUSES]);
    let n = &mut counts[status_index(f.status)];
    *n = if add { *n + 1 } else { n.saturating_sub(1) };
    if counts.iter().all(|n| *n == 0) {
        days.remove(&slot);
    }
}

impl Reports {
    pub(crate) fn refile(&mut self, before: Option<&JobFacts>, after: Option<&JobFacts>) {
        if let (Some(b), Some(a)) = (before, after) {
            if self.update(b, a) {
                return;
            }
        }
        for (facts, add) in [(before, false), (after, true)] {
            let Some(f) = facts else { continue };
            let per_day = self.days.entry(f.tenant).or_default();
            let day = per_day.entry(day_of(f.start)).or_default();
            day.add(f, if add { 1 } else { -1 });
            if day.jobs == 0 {
                per_day.remove(&day_of(f.start));
                if per_day.is_empty() {
                    self.days.remove(&f.tenant);
                }
            }
            count(&mut self.user_days, f.user, f, add);
            if let Some(device) = f.device {
                count(&mut self.device_days, device, f, add);
            }
        }
    }

    /// Re-counts a job that stays on the same tenant, day, user and device (a job finishing,
    /// abandoned or revived) in place: one lookup per count instead of taking the job out and
    /// filing it again. The result is what that would give. `false`, having changed nothing,
    /// when the job is not a same-place update or its counts are not where they should be.
    fn update(&mut self, b: &JobFacts, a: &JobFacts) -> bool {
        let day = day_of(a.start);
        if (b.tenant, day_of(b.start), b.user, b.device) != (a.tenant, day, a.user, a.device) {
            return false;
        }
        let stats = self.days.get_mut(&a.tenant).and_then(|d| d.get_mut(&day));
        let user = self.user_days.get_mut(&(a.user, a.tenant, day));
        let device = match a.device {
            Some(device) => self.device_days.get_mut(&(device, a.tenant, day)).map(Some),
            None => Some(None),
        };
        let (Some(stats), Some(user), Some(device)) = (stats, user, device) else {
            return false;
        };
        stats.add(b, -1);
        if stats.jobs == 0 {
            // Taking the job out would have dropped the emptied day.
            *stats = DayStats::default();
        }
        stats.add(a, 1);
        for counts in std::iter::once(user).chain(device) {
            let n = &mut counts[status_index(b.status)];
            *n = n.saturating_sub(1);
            counts[status_index(a.status)] += 1;
        }
        true
    }
}

/// A tenant's statistics for one UTC day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantDay<'a> {
    pub tenant: TenantRef,
    /// Days since 1970-01-01 (UTC); the day starts at `day * 86400`.
    pub day: i64,
    pub stats: &'a DayStats,
}

/// The worst status among the jobs that started on one day, `None` for a day without jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayWorst {
    pub day: i64,
    pub worst: Option<JobStatus>,
}

/// A user's or device's recent history.
#[derive(Clone, Debug, PartialEq)]
pub struct Activity<'a> {
    /// The job that started last.
    pub last_job: Option<&'a Job>,
    /// The successful job that started last.
    pub last_success: Option<&'a Job>,
    /// Today (the day of `now`) first, then the days before it.
    pub days: [DayWorst; ACTIVITY_DAYS],
}

/// `tenants`: those `key` has jobs under that the caller's scope sees.
fn worst<K: Eq + Hash + Copy>(
    days: &Days<K>,
    key: K,
    tenants: impl Iterator<Item = TenantRef>,
    today: i64,
) -> [DayWorst; ACTIVITY_DAYS] {
    let mut out = [DayWorst {
        day: 0,
        worst: None,
    }; ACTIVITY_DAYS];
    for (i, slot) in out.iter_mut().enumerate() {
        slot.day = today - i as i64;
    }
    for tenant in tenants {
        for slot in out.iter_mut() {
            let Some(counts) = days.get(&(key, tenant, slot.day)) else {
                continue;
            };
            for (status, n) in JobStatus::ALL.iter().zip(counts) {
                if *n > 0 && slot.worst.is_none_or(|w| severity(*status) > severity(w)) {
                    slot.worst = Some(*status);
                }
            }
        }
    }
    out
}

impl ReadModels {
    /// Day statistics of the tenants visible in `scope` for the days starting in
    /// `[from, to)` (Unix seconds), by tenant then day.
    pub fn job_stats(&self, scope: Scope, from: i64, to: i64) -> Vec<TenantDay<'_>> {
        let (first, last) = (day_of(from), day_of(to.saturating_sub(1)));
        let mut tenants: Vec<&TenantRef> = self
            .reports
            .days
            .keys()
            .filter(|t| scope.admits(**t))
            .collect();
        tenants.sort_unstable_by_key(|t| t.to_string());
        let mut out = Vec::new();
        if from >= to {
            return out;
        }
        for tenant in tenants {
            for (day, stats) in self.reports.days[tenant].range(first..=last) {
                out.push(TenantDay {
                    tenant: *tenant,
                    day: *day,
                    stats,
                });
            }
        }
        out
    }

    /// A user's last job, last success and worst status of each of the last
    /// [`ACTIVITY_DAYS`] days up to `now`, counting only jobs of tenants `scope` sees.
    pub fn user_activity(&self, scope: Scope, user: UserId, now: i64) -> Option<Activity<'_>> {
        self.user(scope, user)?;
        let lists = self.job_indexes.user_lists(scope, user);
        Some(self.activity(lists, &self.reports.user_days, user, now))
    }

    /// The same for a device.
    pub fn device_activity(
        &self,
        scope: Scope,
        device: DeviceId,
        now: i64,
    ) -> Option<Activity<'_>> {
        self.device(scope, device)?;
        let lists = self.job_indexes.device_lists(scope, device);
        Some(self.activity(lists, &self.reports.device_days, device, now))
    }

    fn activity<K: Eq + Hash + Copy>(
        &self,
        lists: Vec<(TenantRef, &JobKeys)>,
        days: &Days<K>,
        key: K,
        now: i64,
    ) -> Activity<'_> {
        let latest = |success: bool| {
            lists
                .iter()
                .filter_map(|(_, list)| {
                    list.iter()
                        .rev()
                        .filter_map(|(_, id)| self.state.job(*id))
                        .find(|job| !success || job.status == JobStatus::Success)
                })
                .max_by_key(|job| (job.started_at, job.id))
        };
        Activity {
            last_job: latest(false),
            last_success: latest(true),
            days: worst(days, key, lists.iter().map(|(t, _)| *t), day_of(now)),
        }
    }
}

#[cfg(test)]
mod tests;
