//! `bench scheduler`: a million schedules of a realistic mix (daily, hourly in office hours,
//! weekly, monthly, yearly, periodic, cron; a dozen time zones; random delays) loaded into the
//! scheduler's due index, which computes each one's first run; then the cost of one tick that
//! takes 1,000 due runs out of 10,000 and out of 1,000,000 schedules, which should not depend
//! much on the total.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use domain::ids::{ItemId, ScheduleId, TenantRef, UserId, VaultId};
use domain::model::{Frequency, Schedule, ScheduleSpec, TimeOfDay, TimeWindow, Trigger, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scheduler::{DelaySources, DueIndex, ScheduleInput};
use serde_json::json;

/// Runs taken by each measured tick.
const DUE_PER_TICK: usize = 1_000;
/// Ticks measured per index size; the median is reported.
const TICKS: usize = 7;

pub struct SchedulerResult {
    pub schedules: usize,
    pub load_secs: f64,
    pub first_fire_per_sec: f64,
    pub tick_us_10k: f64,
    pub tick_us_1m: f64,
    /// Growth of the process's resident memory while loading, per schedule.
    pub bytes_per_schedule: f64,
    /// The index's own tables per schedule (capacity accounting, no allocator overhead).
    pub index_bytes_per_schedule: f64,
}

impl SchedulerResult {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "name": "scheduler",
            "schedules": self.schedules,
            "load_secs": (self.load_secs * 1000.0).round() / 1000.0,
            "first_fire_per_sec": self.first_fire_per_sec.round(),
            "tick_us_10k": self.tick_us_10k.round(),
            "tick_us_1m": self.tick_us_1m.round(),
            "bytes_per_schedule": self.bytes_per_schedule.round(),
            "index_bytes_per_schedule": self.index_bytes_per_schedule.round(),
        })
    }
}

pub fn run(schedules: usize) -> anyhow::Result<SchedulerResult> {
    let start: DateTime<Utc> = "2026-05-04T10:17:30Z".parse().context("start instant")?;
    let zones = zones()?;

    eprintln!("scheduler: generating {schedules} schedules");
    let mut rng = StdRng::seed_from_u64(4);
    let all: Vec<(Schedule, Tz, DelaySources)> = (0..schedules)
        .map(|n| realistic(&mut rng, n, &zones))
        .collect();
    let inputs: Vec<ScheduleInput<'_>> = all
        .iter()
        .map(|(schedule, tz, delays)| ScheduleInput {
            schedule,
            time_zone: *tz,
            delays: *delays,
            handled_until: None,
        })
        .collect();

    eprintln!("scheduler: loading");
    let rss_before = crate::process::resident_bytes()?;
    let started = Instant::now();
    let index = DueIndex::load(&inputs, start);
    let load_secs = started.elapsed().as_secs_f64();
    let rss_after = crate::process::resident_bytes()?;
    anyhow::ensure!(index.len() == schedules, "every schedule is indexed");
    let index_bytes = index.table_bytes();
    drop(index);
    drop(inputs);

    eprintln!("scheduler: ticks among 10,000");
    let tick_us_10k = tick_cost(&all[..10_000.min(schedules)], start)?;
    eprintln!("scheduler: ticks among {schedules}");
    let tick_us_1m = tick_cost(&all, start)?;

    Ok(SchedulerResult {
        schedules,
        load_secs,
        first_fire_per_sec: schedules as f64 / load_secs,
        tick_us_10k,
        tick_us_1m,
        bytes_per_schedule: rss_after.saturating_sub(rss_before) as f64 / schedules as f64,
        index_bytes_per_schedule: index_bytes as f64 / schedules as f64,
    })
}

/// The median time of one `take_due` that takes exactly [`DUE_PER_TICK`] runs from an index
/// of `background` schedules plus the due ones. The background has already been handled up
/// to an hour past `start`, so only the due schedules (daily, one group per minute) fire in
/// the measured minutes.
fn tick_cost(
    background: &[(Schedule, Tz, DelaySources)],
    start: DateTime<Utc>,
) -> anyhow::Result<f64> {
    let handled = start + Duration::hours(1);
    let due: Vec<Schedule> = (0..TICKS * DUE_PER_TICK)
        .map(|n| {
            let minute = (n / DUE_PER_TICK) as i64 + 1;
            let at = start + Duration::minutes(minute);
            // Daily in UTC at `at`'s time of day: due `minute` minutes after the start.
            let seconds_past = (at.timestamp().rem_euclid(86_400)) as u32;
            schedule(
                (1 << 40) + n as u128,
                n as u128,
                vec![plain(Frequency::Daily { seconds_past })],
            )
        })
        .collect();
    let inputs: Vec<ScheduleInput<'_>> = background
        .iter()
        .map(|(schedule, tz, delays)| ScheduleInput {
            schedule,
            time_zone: *tz,
            delays: *delays,
            handled_until: Some(handled),
        })
        .chain(due.iter().map(|schedule| ScheduleInput {
            schedule,
            time_zone: chrono_tz::UTC,
            delays: DelaySources::default(),
            handled_until: None,
        }))
        .collect();
    let mut index = DueIndex::load(&inputs, start);
    let mut times = Vec::with_capacity(TICKS);
    for minute in 1..=TICKS as i64 {
        let now = start + Duration::minutes(minute);
        let started = Instant::now();
        let runs = index.take_due(now);
        times.push(started.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(
            runs.len() == DUE_PER_TICK,
            "tick at minute {minute} took {} runs, expected {DUE_PER_TICK}",
            runs.len()
        );
        std::hint::black_box(runs);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[TICKS / 2])
}

fn zones() -> anyhow::Result<Vec<Tz>> {
    [
        "UTC",
        "Europe/Berlin",
        "Europe/London",
        "America/New_York",
        "America/Chicago",
        "America/Los_Angeles",
        "America/Sao_Paulo",
        "Asia/Kolkata",
        "Asia/Tokyo",
        "Australia/Sydney",
        "Australia/Lord_Howe",
        "Pacific/Auckland",
    ]
    .into_iter()
    .map(|z| {
        z.parse::<Tz>()
            .map_err(|e| anyhow::anyhow!("time zone {z}: {e}"))
    })
    .collect()
}

/// One schedule of the mix: mostly one trigger, sometimes two; two schedules per user.
fn realistic(rng: &mut StdRng, n: usize, zones: &[Tz]) -> (Schedule, Tz, DelaySources) {
    let triggers = (0..if rng.gen_ratio(1, 10) { 2 } else { 1 })
        .map(|_| realistic_trigger(rng))
        .collect();
    let tz = zones[rng.gen_range(0..zones.len())];
    let delays = DelaySources {
        server: None,
        policy: rng.gen_ratio(1, 4).then_some(1800),
    };
    (schedule(n as u128, (n / 2) as u128, triggers), tz, delays)
}

fn realistic_trigger(rng: &mut StdRng) -> Trigger {
    let minute = |rng: &mut StdRng, within: u32| rng.gen_range(0..within / 60) * 60;
    let frequency = match rng.gen_range(0..100) {
        0..=34 => Frequency::Daily {
            seconds_past: minute(rng, 86_400),
        },
        35..=54 => Frequency::Hourly {
            seconds_past: minute(rng, 3600),
        },
        55..=69 => Frequency::Weekly {
            seconds_past: minute(rng, 604_800),
        },
        70..=79 => {
            let period_secs = [3600, 7200, 14_400, 86_400][rng.gen_range(0..4)];
            Frequency::Periodic {
                period_secs,
                offset_secs: rng.gen_range(0..period_secs),
            }
        }
        80..=89 => Frequency::Monthly {
            seconds_past: minute(rng, 31 * 86_400),
        },
        90..=94 => Frequency::Yearly {
            month: rng.gen_range(1..=12),
            day: rng.gen_range(1..=28),
            seconds_past: minute(rng, 86_400),
        },
        _ => Frequency::Cron {
            expr: [
                "0 30 2 * * *",
                "0 0 */4 * * *",
                "0 15 9-17 * * Mon-Fri",
                "0 0 22 * * Sun",
            ][rng.gen_range(0..4)]
            .to_owned(),
        },
    };
    let office_hours = matches!(frequency, Frequency::Hourly { .. }) && rng.gen_ratio(1, 2);
    Trigger {
        frequency,
        window: office_hours.then(|| TimeWindow {
            from: TimeOfDay::new(9, 0).expect("09:00"),
            to: TimeOfDay::new(17, 0).expect("17:00"),
        }),
        days: office_hours.then(|| {
            [
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ]
            .into_iter()
            .collect::<BTreeSet<_>>()
        }),
        random_delay_secs: rng.gen_ratio(1, 3).then(|| rng.gen_range(0..3600)),
    }
}

fn plain(frequency: Frequency) -> Trigger {
    Trigger {
        frequency,
        window: None,
        days: None,
        random_delay_secs: None,
    }
}

fn schedule(n: u128, user: u128, triggers: Vec<Trigger>) -> Schedule {
    const MS: u64 = 1_770_000_000_000;
    Schedule {
        id: ScheduleId::new(MS, n),
        tenant: TenantRef::Root,
        user: UserId::new(MS, user),
        spec: ScheduleSpec {
            name: String::new(),
            item: ItemId::new(MS, n),
            vault: VaultId::new(MS, n),
            skip_if_running: true,
            triggers,
        },
        created_at: 0,
    }
}
