use std::collections::BTreeMap;

use fixtures::history::{HistoryConfig, JobHistory};

use super::*;

const END: i64 = 1_769_904_000;

fn history(seed: u64) -> (ReadModels, Vec<domain::Event>) {
    let events: Vec<domain::Event> = JobHistory::new(HistoryConfig {
        seed,
        tenants: 3,
        users_per_tenant: 4,
        devices_per_user: 2,
        jobs: 1_500,
        days: 12,
        end: END,
    })
    .collect();
    let mut models = ReadModels::default();
    for event in &events {
        models.apply_event(event);
    }
    (models, events)
}

fn expected_days(models: &ReadModels) -> BTreeMap<(String, i64), DayStats> {
    let mut expected: BTreeMap<(String, i64), DayStats> = BTreeMap::new();
    for job in models.state.jobs() {
        let stats = expected
            .entry((job.tenant.to_string(), day_of(job.started_at)))
            .or_default();
        stats.add(&super::super::search::JobFacts::of(job), 1);
    }
    expected
}

fn all_days(models: &ReadModels) -> BTreeMap<(String, i64), DayStats> {
    models
        .job_stats(Scope::Root, i64::MIN, i64::MAX)
        .into_iter()
        .map(|d| ((d.tenant.to_string(), d.day), d.stats.clone()))
        .collect()
}

/// Abandoned and revived jobs, missed and skipped runs, transferred and removed users.
#[test]
fn day_stats_follow_mixed_histories() {
    for seed in [1, 0x5eed, 0xdead_beef] {
        let mut models = ReadModels::default();
        for event in crate::testkit::World::new(seed).events(3_000) {
            models.apply_event(&event);
        }
        assert_eq!(all_days(&models), expected_days(&models), "seed {seed}");
    }
}

#[test]
fn day_stats_equal_a_count_over_every_job() {
    let (models, _) = history(1);
    let mut expected: BTreeMap<(String, i64), DayStats> = BTreeMap::new();
    for job in models.state.jobs() {
        let stats = expected
            .entry((job.tenant.to_string(), day_of(job.started_at)))
            .or_default();
        stats.add(&super::super::search::JobFacts::of(job), 1);
    }
    let got: BTreeMap<(String, i64), DayStats> = models
        .job_stats(Scope::Root, i64::MIN, i64::MAX)
        .into_iter()
        .map(|d| ((d.tenant.to_string(), d.day), d.stats.clone()))
        .collect();
    assert_eq!(got, expected);
    let running: u64 = got
        .values()
        .map(|s| s.status_count(JobStatus::Running))
        .sum();
    assert!(running > 0, "some jobs still run at the end of the history");
    let errors: u64 = got.values().map(|s| s.status_count(JobStatus::Error)).sum();
    assert!(errors > 0);
    let total: u64 = got.values().map(|s| s.jobs).sum();
    assert_eq!(total as usize, models.state.jobs().count());
}

#[test]
fn day_stats_are_scoped_and_ranged() {
    let (models, _) = history(2);
    let tenant = models.state.tenants().next().expect("a tenant").id;
    let scope = Scope::Tenant(tenant);
    let (from, to) = (END - 3 * 86_400, END);
    let days = models.job_stats(scope, from, to);
    assert!(!days.is_empty());
    for d in &days {
        assert_eq!(d.tenant, TenantRef::Tenant(tenant));
        assert!(d.day >= day_of(from) && d.day < day_of(to));
    }
    let jobs: u64 = days.iter().map(|d| d.stats.jobs).sum();
    let expected = models
        .state
        .jobs()
        .filter(|j| j.tenant == TenantRef::Tenant(tenant))
        .filter(|j| day_of(j.started_at) >= day_of(from) && day_of(j.started_at) < day_of(to))
        .count();
    assert_eq!(jobs as usize, expected);
    let mut merged = DayStats::default();
    days.iter().for_each(|d| merged.merge(d.stats));
    assert_eq!(merged.jobs, jobs);
    assert!(models.job_stats(scope, to, from).is_empty());
}

#[test]
fn activity_equals_a_scan_of_the_users_jobs() {
    let (models, _) = history(3);
    let now = END - 86_400 / 2;
    for user in models.state.users() {
        let scope = match user.tenant {
            TenantRef::Tenant(id) => Scope::Tenant(id),
            TenantRef::Root => Scope::Root,
        };
        let activity = models.user_activity(scope, user.id, now).expect("visible");
        let mut jobs: Vec<&Job> = models.state.jobs().filter(|j| j.user == user.id).collect();
        jobs.sort_by_key(|j| (j.started_at, j.id));
        assert_eq!(activity.last_job.map(|j| j.id), jobs.last().map(|j| j.id));
        assert_eq!(
            activity.last_success.map(|j| j.id),
            jobs.iter()
                .rev()
                .find(|j| j.status == JobStatus::Success)
                .map(|j| j.id)
        );
        for (i, slot) in activity.days.iter().enumerate() {
            assert_eq!(slot.day, day_of(now) - i as i64);
            let worst = jobs
                .iter()
                .filter(|j| day_of(j.started_at) == slot.day)
                .map(|j| j.status)
                .max_by_key(|s| severity(*s));
            assert_eq!(slot.worst.map(severity), worst.map(severity), "day {i}");
        }
        let other = models
            .state
            .tenants()
            .find(|t| TenantRef::Tenant(t.id) != user.tenant)
            .expect("another tenant");
        assert!(models
            .user_activity(Scope::Tenant(other.id), user.id, now)
            .is_none());
    }
    let device = models.state.devices().next().expect("a device");
    let activity = models
        .device_activity(Scope::Root, device.id, END)
        .expect("visible");
    let last = models
        .state
        .jobs()
        .filter(|j| j.device == Some(device.id))
        .max_by_key(|j| (j.started_at, j.id))
        .map(|j| j.id);
    assert_eq!(activity.last_job.map(|j| j.id), last);
}

#[test]
fn a_finishing_job_moves_from_running_to_its_status() {
    let (mut models, events) = history(4);
    let running = models
        .state
        .jobs()
        .find(|j| j.status == JobStatus::Running)
        .expect("a running job")
        .clone();
    let day = |m: &ReadModels| {
        m.job_stats(Scope::Root, running.started_at, running.started_at + 1)
            .into_iter()
            .find(|d| d.tenant == running.tenant)
            .expect("its day")
            .stats
            .clone()
    };
    let before = day(&models);
    models.apply_event(&domain::Event::JobCompleted(domain::events::JobCompleted {
        job_id: running.id,
        tenant: running.tenant,
        user_id: running.user,
        status: JobStatus::Error,
        ended_at: END,
        totals: domain::model::JobTotals {
            upload_bytes: 1_000,
            ..Default::default()
        },
    }));
    let after = day(&models);
    assert_eq!(after.jobs, before.jobs);
    assert_eq!(
        after.status_count(JobStatus::Running) + 1,
        before.status_count(JobStatus::Running)
    );
    assert_eq!(
        after.status_count(JobStatus::Error),
        before.status_count(JobStatus::Error) + 1
    );
    assert_eq!(after.upload_bytes, before.upload_bytes + 1_000);
    assert!(!events.is_empty());
}
