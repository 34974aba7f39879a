//! The cases DOMAIN.md and issue 4 name, on known daylight-saving dates of 2026:
//! America/New_York springs forward on 8 March (02:00 → 03:00) and falls back on 1 November
//! (02:00 → 01:00); Europe/Berlin on 29 March (02:00 → 03:00) and 25 October (03:00 → 02:00).

use chrono::{Datelike, Duration, Timelike, Weekday as ChronoWeekday};
use chrono_tz::America::New_York;
use chrono_tz::Europe::Berlin;
use chrono_tz::Tz;
use domain::model::Frequency;

use super::*;
use crate::next_fire;

#[test]
fn hourly_office_hours_in_new_york_across_both_transitions() {
    let t = Trigger {
        window: window("09:00", "17:00"),
        days: days(&["mon", "tue", "wed", "thu", "fri"]),
        ..trigger(Frequency::Hourly { seconds_past: 0 })
    };
    assert_eq!(
        runs(&t, New_York, at(New_York, "2026-03-06 15:30"), 4),
        [
            "Fri 2026-03-06 16:00:00 -05:00",
            "Mon 2026-03-09 09:00:00 -04:00",
            "Mon 2026-03-09 10:00:00 -04:00",
            "Mon 2026-03-09 11:00:00 -04:00",
        ]
    );
    assert_eq!(
        runs(&t, New_York, at(New_York, "2026-10-30 15:30"), 3),
        [
            "Fri 2026-10-30 16:00:00 -04:00",
            "Mon 2026-11-02 09:00:00 -05:00",
            "Mon 2026-11-02 10:00:00 -05:00",
        ]
    );
    // The whole year: 09:00 … 16:00 on every weekday, nothing else.
    let year = runs_until(
        &t,
        New_York,
        at(New_York, "2025-12-31 23:59"),
        at(New_York, "2026-12-31 23:59"),
    );
    let weekdays = (0..365)
        .map(|d| chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + Duration::days(d))
        .filter(|d| !matches!(d.weekday(), ChronoWeekday::Sat | ChronoWeekday::Sun))
        .count();
    assert_eq!(year.len(), 8 * weekdays);
    for (i, run) in year.iter().enumerate() {
        let local = run.with_timezone(&New_York);
        assert_eq!(local.hour() as usize, 9 + i % 8, "{}", show(New_York, *run));
        assert_eq!((local.minute(), local.second()), (0, 0));
    }
}

#[test]
fn hourly_follows_elapsed_time() {
    let t = trigger(Frequency::Hourly {
        seconds_past: 30 * 60,
    });
    // Across the gap: once per real hour, so 02:30 does not exist and is not replaced.
    assert_eq!(
        runs(&t, New_York, at(New_York, "2026-03-08 00:00"), 3),
        [
            "Sun 2026-03-08 00:30:00 -05:00",
            "Sun 2026-03-08 01:30:00 -05:00",
            "Sun 2026-03-08 03:30:00 -04:00",
        ]
    );
    // The repeated hour fires twice.
    assert_eq!(
        runs(&t, New_York, at(New_York, "2026-11-01 00:00"), 4),
        [
            "Sun 2026-11-01 00:30:00 -04:00",
            "Sun 2026-11-01 01:30:00 -04:00",
            "Sun 2026-11-01 01:30:00 -05:00",
            "Sun 2026-11-01 02:30:00 -05:00",
        ]
    );
    // Local minutes, not UTC ones: India is 5:30 ahead.
    let kolkata: Tz = chrono_tz::Asia::Kolkata;
    assert_eq!(
        runs(
            &trigger(Frequency::Hourly { seconds_past: 0 }),
            kolkata,
            at(kolkata, "2026-01-01 10:10"),
            1
        ),
        ["Thu 2026-01-01 11:00:00 +05:30"]
    );
}

#[test]
fn daily_0230_in_berlin_on_both_transition_days() {
    let t = trigger(Frequency::Daily {
        seconds_past: 2 * 3600 + 30 * 60,
    });
    assert_eq!(
        runs(&t, Berlin, at(Berlin, "2026-03-27 12:00"), 3),
        [
            "Sat 2026-03-28 02:30:00 +01:00",
            "Sun 2026-03-29 03:30:00 +02:00",
            "Mon 2026-03-30 02:30:00 +02:00",
        ]
    );
    // Asked after the gap but before the shifted run, the shifted run is still ahead.
    assert_eq!(
        runs(&t, Berlin, at(Berlin, "2026-03-29 03:10"), 1),
        ["Sun 2026-03-29 03:30:00 +02:00"]
    );
    // The repeated hour: once, at the first occurrence.
    assert_eq!(
        runs(&t, Berlin, at(Berlin, "2026-10-24 12:00"), 2),
        [
            "Sun 2026-10-25 02:30:00 +02:00",
            "Mon 2026-10-26 02:30:00 +01:00",
        ]
    );
    // Asked during the second pass through 02:00–03:00, the day's run has already been.
    let second_pass = at(Berlin, "2026-10-25 02:40") + Duration::hours(1);
    assert_eq!(show(Berlin, second_pass), "Sun 2026-10-25 02:40:00 +01:00");
    assert_eq!(
        runs(&t, Berlin, second_pass, 1),
        ["Mon 2026-10-26 02:30:00 +01:00"]
    );
}

#[test]
fn wrapped_night_window_and_day_window_cover_every_hour_once() {
    let hourly = trigger(Frequency::Hourly { seconds_past: 0 });
    let day = Trigger {
        window: window("09:00", "17:00"),
        ..hourly.clone()
    };
    let night = Trigger {
        window: window("17:00", "09:00"),
        ..hourly.clone()
    };
    assert_eq!(
        runs(&night, Berlin, at(Berlin, "2026-05-04 07:30"), 3),
        [
            "Mon 2026-05-04 08:00:00 +02:00",
            "Mon 2026-05-04 17:00:00 +02:00",
            "Mon 2026-05-04 18:00:00 +02:00",
        ]
    );
    // Over a year in New York, both transitions included.
    let (from, until) = (
        at(New_York, "2026-01-01 00:00"),
        at(New_York, "2027-01-01 00:00"),
    );
    let mut both = runs_until(&day, New_York, from, until);
    let night_runs = runs_until(&night, New_York, from, until);
    assert!(night_runs.iter().all(|r| !both.contains(r)));
    both.extend(night_runs);
    both.sort();
    assert_eq!(both, runs_until(&hourly, New_York, from, until));
}

#[test]
fn weekday_restriction_on_a_wrapped_window_uses_the_date_of_the_run() {
    let t = Trigger {
        window: window("22:00", "02:00"),
        days: days(&["fri"]),
        ..trigger(Frequency::Hourly { seconds_past: 0 })
    };
    // Thursday night's 00:00 and 01:00 fall on Friday; Friday night's fall on Saturday.
    assert_eq!(
        runs(&t, Berlin, at(Berlin, "2026-05-06 12:00"), 5),
        [
            "Fri 2026-05-08 00:00:00 +02:00",
            "Fri 2026-05-08 01:00:00 +02:00",
            "Fri 2026-05-08 22:00:00 +02:00",
            "Fri 2026-05-08 23:00:00 +02:00",
            "Fri 2026-05-15 00:00:00 +02:00",
        ]
    );
}

#[test]
fn monthly_past_a_short_months_end_fires_on_its_last_day() {
    // Day 31 (30 days past the 1st) at 10:00.
    let t = trigger(Frequency::Monthly {
        seconds_past: 30 * 86_400 + 10 * 3600,
    });
    assert_eq!(
        runs(&t, Berlin, at(Berlin, "2026-01-01 00:00"), 5),
        [
            "Sat 2026-01-31 10:00:00 +01:00",
            "Sat 2026-02-28 10:00:00 +01:00",
            "Tue 2026-03-31 10:00:00 +02:00",
            "Thu 2026-04-30 10:00:00 +02:00",
            "Sun 2026-05-31 10:00:00 +02:00",
        ]
    );
    let day29 = trigger(Frequency::Monthly {
        seconds_past: 28 * 86_400,
    });
    assert_eq!(
        runs(&day29, Berlin, at(Berlin, "2028-02-01 00:00"), 1),
        ["Tue 2028-02-29 00:00:00 +01:00"]
    );
}

#[test]
fn periodic_counts_elapsed_time_from_its_offset() {
    // Every two hours, 30 minutes into the period: 00:30, 02:30, … UTC whatever the zone does.
    let t = trigger(Frequency::Periodic {
        period_secs: 7200,
        offset_secs: 1800,
    });
    assert_eq!(
        runs(&t, Berlin, at(Berlin, "2026-03-29 00:00"), 4),
        [
            "Sun 2026-03-29 01:30:00 +01:00",
            "Sun 2026-03-29 04:30:00 +02:00",
            "Sun 2026-03-29 06:30:00 +02:00",
            "Sun 2026-03-29 08:30:00 +02:00",
        ]
    );
    let after = "2026-03-29T00:30:00Z".parse().unwrap();
    assert_eq!(
        next_fire(&t, Berlin, after).unwrap(),
        Some("2026-03-29T02:30:00Z".parse().unwrap())
    );
}

#[test]
fn cron_follows_the_wall_clock_across_transitions() {
    let t = trigger(cron("0 0/30 * * * *"));
    // 02:00 and 02:30 do not exist: they land at 03:00 and 03:30, which are not repeated.
    assert_eq!(
        runs(&t, Berlin, at(Berlin, "2026-03-29 01:00"), 4),
        [
            "Sun 2026-03-29 01:30:00 +01:00",
            "Sun 2026-03-29 03:00:00 +02:00",
            "Sun 2026-03-29 03:30:00 +02:00",
            "Sun 2026-03-29 04:00:00 +02:00",
        ]
    );
    // 02:00 and 02:30 happen twice: each fires once, the first time.
    assert_eq!(
        runs(&t, Berlin, at(Berlin, "2026-10-25 01:45"), 4),
        [
            "Sun 2026-10-25 02:00:00 +02:00",
            "Sun 2026-10-25 02:30:00 +02:00",
            "Sun 2026-10-25 03:00:00 +01:00",
            "Sun 2026-10-25 03:30:00 +01:00",
        ]
    );
    let weekdays = trigger(cron("0 30 2 * * Mon-Fri"));
    assert_eq!(
        runs(&weekdays, New_York, at(New_York, "2026-03-06 12:00"), 2),
        [
            "Mon 2026-03-09 02:30:00 -04:00",
            "Tue 2026-03-10 02:30:00 -04:00",
        ]
    );
    let sunday = trigger(cron("0 30 2 * * Sun"));
    assert_eq!(
        runs(&sunday, New_York, at(New_York, "2026-03-01 12:00"), 2),
        [
            "Sun 2026-03-08 03:30:00 -04:00",
            "Sun 2026-03-15 02:30:00 -04:00",
        ]
    );
}

#[test]
fn a_gap_run_and_a_later_real_reading_fire_in_time_order() {
    // 02:45 (in the gap) lands at 03:45; 03:10 is real and earlier.
    let t = trigger(cron("0 45 2 * * *"));
    let u = trigger(cron("0 10 3 * * *"));
    let both = Trigger {
        ..trigger(cron("0 45,10 2,3 * * *"))
    };
    assert_eq!(
        runs(&t, Berlin, at(Berlin, "2026-03-29 01:00"), 1),
        ["Sun 2026-03-29 03:45:00 +02:00"]
    );
    assert_eq!(
        runs(&u, Berlin, at(Berlin, "2026-03-29 01:00"), 1),
        ["Sun 2026-03-29 03:10:00 +02:00"]
    );
    assert_eq!(
        runs(&both, Berlin, at(Berlin, "2026-03-29 01:00"), 4),
        [
            "Sun 2026-03-29 03:10:00 +02:00",
            "Sun 2026-03-29 03:45:00 +02:00",
            "Mon 2026-03-30 02:10:00 +02:00",
            "Mon 2026-03-30 02:45:00 +02:00",
        ]
    );
}

#[test]
fn weekly_yearly_and_once() {
    // Monday 09:00 is one day and nine hours after Sunday 00:00.
    let weekly = trigger(Frequency::Weekly {
        seconds_past: 86_400 + 9 * 3600,
    });
    assert_eq!(
        runs(&weekly, Berlin, at(Berlin, "2026-03-25 00:00"), 2),
        [
            "Mon 2026-03-30 09:00:00 +02:00",
            "Mon 2026-04-06 09:00:00 +02:00"
        ]
    );
    // A leap-day yearly trigger fires on 28 February in other years.
    let leap = trigger(Frequency::Yearly {
        month: 2,
        day: 29,
        seconds_past: 8 * 3600,
    });
    assert_eq!(
        runs(&leap, Berlin, at(Berlin, "2027-01-01 00:00"), 2),
        [
            "Sun 2027-02-28 08:00:00 +01:00",
            "Tue 2028-02-29 08:00:00 +01:00"
        ]
    );
    let once = trigger(Frequency::Once { at: 1_800_000_000 });
    let before = DateTime::from_timestamp(1_799_999_999, 0).unwrap();
    assert_eq!(
        next_fire(&once, Berlin, before).unwrap(),
        DateTime::from_timestamp(1_800_000_000, 0)
    );
    assert_eq!(
        next_fire(&once, Berlin, before + Duration::seconds(1)).unwrap(),
        None
    );
}

#[test]
fn restricted_runs_far_ahead_are_found() {
    let utc = chrono_tz::UTC;
    let july_4th_on_a_monday = Trigger {
        days: days(&["mon"]),
        ..trigger(Frequency::Yearly {
            month: 7,
            day: 4,
            seconds_past: 0,
        })
    };
    assert_eq!(
        runs(&july_4th_on_a_monday, utc, at(utc, "2023-01-01 00:00"), 3),
        [
            "Mon 2033-07-04 00:00:00 +00:00",
            "Mon 2039-07-04 00:00:00 +00:00",
            "Mon 2044-07-04 00:00:00 +00:00",
        ]
    );
    let once = Trigger {
        days: days(&["thu"]),
        ..trigger(Frequency::Once { at: 3_200_000_000 })
    };
    assert_eq!(
        runs(&once, utc, at(utc, "2026-01-01 00:00"), 2),
        ["Thu 2071-05-28 00:53:20 +00:00"]
    );
}

#[test]
fn restrictions_that_never_match_end_the_search() {
    // Noon never falls in a 13:00–14:00 window.
    let t = Trigger {
        window: window("13:00", "14:00"),
        ..trigger(cron("0 0 12 * * *"))
    };
    assert_eq!(
        next_fire(&t, Berlin, at(Berlin, "2026-01-01 00:00")).unwrap(),
        None
    );
}

#[test]
fn invalid_cron_is_an_error() {
    assert!(matches!(
        next_fire(
            &trigger(cron("61 * * * * *")),
            Berlin,
            at(Berlin, "2026-01-01 00:00")
        ),
        Err(crate::TriggerError::Cron { .. })
    ));
}
