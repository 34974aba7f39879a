//! Properties of the schedule math over random triggers, zones and instants, including zones
//! with half-hour DST (Lord Howe), quarter-hour offsets (Chatham), transitions at midnight
//! (Havana, Santiago) and DST suspended for Ramadan (Casablanca).

use std::str::FromStr;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use domain::model::{Frequency, TimeOfDay, TimeWindow, Weekday};
use proptest::prelude::*;

use super::*;
use crate::FireRule;

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/St_Johns",
    "America/Havana",
    "America/Santiago",
    "America/Sao_Paulo",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Pacific/Auckland",
    "Asia/Kolkata",
    "Asia/Tehran",
    "Africa/Casablanca",
];

const CRONS: &[&str] = &[
    "0 30 2 * * *",
    "0 0/30 * * * *",
    "0 15 1,2,3 * * *",
    "0 0 9-17 * * Mon-Fri",
    "0 45 23 * * Sun",
    "0 0 0 1 * *",
    "30 10 2 * 3,10 *",
    "0 0 12 29 2 *",
];

fn zone() -> impl Strategy<Value = Tz> {
    proptest::sample::select(ZONES).prop_map(|z| Tz::from_str(z).unwrap())
}

/// 2015–2040, clear of the whole-day jumps of Samoa (2011) and Kiribati (1994).
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (1_420_070_400i64..2_208_988_800).prop_map(|t| DateTime::from_timestamp(t, 0).unwrap())
}

/// Every frequency; periods of at least ten minutes keep the brute-force checks affordable.
fn frequency() -> impl Strategy<Value = Frequency> {
    prop_oneof![
        (1_420_070_400i64..2_208_988_800).prop_map(|at| Frequency::Once { at }),
        (0u32..3600).prop_map(|seconds_past| Frequency::Hourly { seconds_past }),
        (600u32..200_000)
            .prop_flat_map(|p| (Just(p), 0..p))
            .prop_map(|(period_secs, offset_secs)| Frequency::Periodic {
                period_secs,
                offset_secs
            }),
        (0u32..86_400).prop_map(|seconds_past| Frequency::Daily { seconds_past }),
        (0u32..604_800).prop_map(|seconds_past| Frequency::Weekly { seconds_past }),
        (0u32..31 * 86_400).prop_map(|seconds_past| Frequency::Monthly { seconds_past }),
        (1u8..=12, 1u8..=31, 0u32..86_400).prop_map(|(month, day, seconds_past)| {
            let day =
                day.min([31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][usize::from(month) - 1]);
            Frequency::Yearly {
                month,
                day,
                seconds_past,
            }
        }),
        proptest::sample::select(CRONS).prop_map(|e| Frequency::Cron { expr: e.into() }),
    ]
}

fn restricted_trigger() -> impl Strategy<Value = Trigger> {
    let time =
        (0u8..24, prop_oneof![Just(0u8), 0u8..60]).prop_map(|(h, m)| TimeOfDay::new(h, m).unwrap());
    (
        frequency(),
        proptest::option::of((time.clone(), time).prop_map(|(from, to)| TimeWindow { from, to })),
        proptest::option::of(1u8..0x80),
    )
        .prop_map(|(frequency, window, days)| Trigger {
            frequency,
            window,
            days: days.map(|mask| {
                Weekday::ALL
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, d)| d)
                    .collect()
            }),
            random_delay_secs: None,
        })
}

proptest! {
    // Once triggers and windows that exclude a trigger's only time yield fewer than five runs
    // and are skipped by the comparison below.
    #![proptest_config(ProptestConfig { max_global_rejects: 100_000, ..ProptestConfig::with_cases(200) })]

    #[test]
    fn fires_strictly_increase_and_satisfy_the_restrictions(
        t in restricted_trigger(),
        tz in zone(),
        from in instant(),
    ) {
        let rule = FireRule::new(&t).unwrap();
        let mut last = from;
        for run in crate::upcoming(&t, tz, from, 12).unwrap() {
            prop_assert!(run > last, "{} not after {}", show(tz, run), show(tz, last));
            prop_assert!(rule.allows(tz, run), "{} outside the restrictions", show(tz, run));
            last = run;
        }
    }

    /// The restricted search skips ahead by spans of local time; it must find exactly the
    /// unrestricted runs that satisfy the restrictions, no more and no fewer.
    #[test]
    fn restricted_runs_are_the_allowed_unrestricted_runs(
        t in restricted_trigger(),
        tz in zone(),
        from in instant(),
    ) {
        let restricted: Vec<_> = crate::upcoming(&t, tz, from, 5).unwrap().collect();
        prop_assume!(restricted.len() == 5);
        let rule = FireRule::new(&t).unwrap();
        let free = Trigger { window: None, days: None, ..t.clone() };
        let until = restricted[4];
        let free_runs: Vec<_> = crate::upcoming(&free, tz, from, 20_000)
            .unwrap()
            .take_while(|r| *r <= until)
            .collect();
        prop_assume!(free_runs.len() < 20_000);
        let filtered: Vec<_> = free_runs.into_iter().filter(|r| rule.allows(tz, *r)).collect();
        prop_assert_eq!(
            restricted.iter().map(|r| show(tz, *r)).collect::<Vec<_>>(),
            filtered.iter().map(|r| show(tz, *r)).collect::<Vec<_>>()
        );
    }

    /// Daily follows the wall clock: one run on every local date, at the set time whenever
    /// that reading exists.
    #[test]
    fn daily_fires_once_on_every_local_date(
        seconds_past in 0u32..86_400,
        tz in zone(),
        from in instant(),
    ) {
        let t = trigger(Frequency::Daily { seconds_past });
        let runs: Vec<_> = crate::upcoming(&t, tz, from, 60).unwrap().collect();
        prop_assert_eq!(runs.len(), 60);
        for pair in runs.windows(2) {
            let (a, b) = (pair[0].with_timezone(&tz), pair[1].with_timezone(&tz));
            prop_assert_eq!(a.date_naive().succ_opt(), Some(b.date_naive()), "{} then {}", a, b);
        }
        for run in &runs {
            let local = run.with_timezone(&tz);
            let set = local.date_naive().and_hms_opt(0, 0, 0).unwrap()
                + chrono::Duration::seconds(i64::from(seconds_past));
            let exists = tz.from_local_datetime(&set).earliest().is_some();
            prop_assert!(!exists || local.naive_local() == set, "{} for {}", local, set);
        }
    }

    /// Hourly follows elapsed time: every run is at the set minute and second of local time.
    #[test]
    fn hourly_fires_at_its_local_minute_and_second(
        seconds_past in 0u32..3600,
        tz in zone(),
        from in instant(),
    ) {
        let t = trigger(Frequency::Hourly { seconds_past });
        for run in crate::upcoming(&t, tz, from, 30).unwrap() {
            let local = run.with_timezone(&tz);
            prop_assert_eq!(local.minute() * 60 + local.second(), seconds_past, "{}", local);
        }
    }
}
