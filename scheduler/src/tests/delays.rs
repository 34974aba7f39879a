//! The random delay: bounded, stable across processes, spread across runs and users.

use chrono::{DateTime, Duration, Utc};
use domain::ids::{ScheduleId, UserId};
use domain::model::Frequency;
use proptest::prelude::*;

use super::*;
use crate::{random_delay, DelaySources};

fn due() -> DateTime<Utc> {
    "2026-05-04T09:00:00Z".parse().unwrap()
}

#[test]
fn golden_values_pin_the_hash() {
    // These numbers are what every node, every restart and every release must compute; a
    // change here moves every user's runs. Checked against an independent SipHash-2-4
    // implementation over the same 40-byte message.
    let user = UserId::new(1_700_000_000_000, 1);
    let schedule = ScheduleId::new(1_700_000_000_000, 2);
    let delays: Vec<u32> = (0..4)
        .map(|h| random_delay(user, schedule, due() + Duration::hours(h), 18_000))
        .collect();
    assert_eq!(delays, GOLDEN);
    assert_eq!(random_delay(user, schedule, due(), 0), 0);
    // The cap applies even to a maximum that slipped past validation.
    assert!(random_delay(user, schedule, due(), u32::MAX) <= 18_000);
}

const GOLDEN: [u32; 4] = [1679, 4890, 6273, 10099];

#[test]
fn precedence_is_server_then_policy_then_trigger() {
    let t = Trigger {
        random_delay_secs: Some(300),
        ..trigger(Frequency::Hourly { seconds_past: 0 })
    };
    let sources = |server, policy| DelaySources { server, policy };
    assert_eq!(sources(None, None).max_for(&t), 300);
    assert_eq!(sources(None, Some(60)).max_for(&t), 60);
    assert_eq!(sources(Some(0), Some(60)).max_for(&t), 0);
    assert_eq!(sources(Some(90_000), None).max_for(&t), 18_000);
}

/// Pearson's chi-square over 20 equal buckets of the delays of 10,000 users (one schedule,
/// one due instant). With 19 degrees of freedom the statistic exceeds 43.82 with probability
/// 0.001 under uniformity.
#[test]
fn delays_are_uniform_across_users() {
    const USERS: u128 = 10_000;
    const BUCKETS: usize = 20;
    const CRITICAL_19_DF_P_0_001: f64 = 43.82;
    let max = 17_999; // 18,000 possible delays, 900 per bucket
    let schedule = ScheduleId::new(1_700_000_000_000, 7);
    for due in [
        due(),
        due() + Duration::seconds(1),
        due() + Duration::days(200),
    ] {
        let mut counts = [0u32; BUCKETS];
        for n in 0..USERS {
            let user = UserId::new(1_700_000_000_000 + n as u64, n * 7919);
            let delay = random_delay(user, schedule, due, max);
            counts[delay as usize * BUCKETS / (max as usize + 1)] += 1;
        }
        let expected = USERS as f64 / BUCKETS as f64;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (f64::from(c) - expected).powi(2) / expected)
            .sum();
        assert!(
            chi2 < CRITICAL_19_DF_P_0_001,
            "chi2 = {chi2:.2}, counts {counts:?}"
        );
    }
}

fn ids() -> impl Strategy<Value = (UserId, ScheduleId)> {
    (any::<u64>(), any::<u128>(), any::<u64>(), any::<u128>())
        .prop_map(|(a, b, c, d)| (UserId::new(a >> 16, b), ScheduleId::new(c >> 16, d)))
}

proptest! {
    #[test]
    fn delay_is_within_bounds_and_stable(
        (user, schedule) in ids(),
        due in 0i64..4_000_000_000,
        max in 0u32..=18_000,
    ) {
        let due = DateTime::from_timestamp(due, 0).unwrap();
        let d = random_delay(user, schedule, due, max);
        prop_assert!(d <= max);
        prop_assert_eq!(d, random_delay(user, schedule, due, max));
    }

    #[test]
    fn delay_differs_across_runs(
        (user, schedule) in ids(),
        start in 0i64..4_000_000_000,
    ) {
        // 24 hourly runs with 18,001 possible delays: all equal with probability ~1e-98.
        let start = DateTime::from_timestamp(start, 0).unwrap();
        let delays: std::collections::BTreeSet<u32> = (0..24)
            .map(|h| random_delay(user, schedule, start + Duration::hours(h), 18_000))
            .collect();
        prop_assert!(delays.len() > 1);
    }
}
