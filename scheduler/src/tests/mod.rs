//! Schedule math on explicit instants: no test reads the clock or sleeps.

mod cases;
mod delays;
mod index;
mod properties;
mod runner;

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use domain::ids::{ItemId, ScheduleId, TenantRef, UserId, VaultId};
use domain::model::{Frequency, Schedule, ScheduleSpec, TimeOfDay, TimeWindow, Trigger, Weekday};

use crate::upcoming;

/// An instant from local wall time in `tz`, e.g. `at(Berlin, "2026-03-29 02:30")`; the
/// earlier one in a repeated hour.
fn at(tz: Tz, local: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S"))
        .expect("a local time like 2026-03-29 02:30");
    tz.from_local_datetime(&naive)
        .earliest()
        .expect("a reading that exists")
        .with_timezone(&Utc)
}

fn trigger(frequency: Frequency) -> Trigger {
    Trigger {
        frequency,
        window: None,
        days: None,
        random_delay_secs: None,
    }
}

fn window(from: &str, to: &str) -> Option<TimeWindow> {
    Some(TimeWindow {
        from: TimeOfDay::parse(from).unwrap(),
        to: TimeOfDay::parse(to).unwrap(),
    })
}

fn days(names: &[&str]) -> Option<BTreeSet<Weekday>> {
    Some(names.iter().map(|d| Weekday::parse(d).unwrap()).collect())
}

fn cron(expr: &str) -> Frequency {
    Frequency::Cron { expr: expr.into() }
}

/// A run rendered as its local reading and offset, e.g. `Sun 2026-03-29 03:30:00 +02:00`.
fn show(tz: Tz, t: DateTime<Utc>) -> String {
    t.with_timezone(&tz)
        .format("%a %Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// The first `count` runs strictly after `from`, rendered with [`show`].
fn runs(t: &Trigger, tz: Tz, from: DateTime<Utc>, count: usize) -> Vec<String> {
    upcoming(t, tz, from, count)
        .unwrap()
        .map(|r| show(tz, r))
        .collect()
}

/// Every run strictly after `from` and not after `until`.
fn runs_until(
    t: &Trigger,
    tz: Tz,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    upcoming(t, tz, from, usize::MAX)
        .unwrap()
        .take_while(|r| *r <= until)
        .collect()
}

fn schedule(n: u128, triggers: Vec<Trigger>) -> Schedule {
    Schedule {
        id: ScheduleId::new(1_700_000_000_000, n),
        tenant: TenantRef::Root,
        user: UserId::new(1_700_000_000_000, n + 1_000_000),
        spec: ScheduleSpec {
            name: format!("schedule {n}"),
            item: ItemId::new(1_700_000_000_000, n),
            vault: VaultId::new(1_700_000_000_000, n),
            skip_if_running: true,
            triggers,
        },
        created_at: 0,
    }
}
