//! When a trigger is due: the next due instant strictly after a given one, in the user's time
//! zone, for every frequency, with the window and weekday restrictions and the daylight-saving
//! rules of DOMAIN.md.
//!
//! Instants are whole Unix seconds inside; the public functions take and return
//! `DateTime<Utc>`. Hourly and periodic triggers count elapsed time; daily, weekly, monthly,
//! yearly and cron triggers name wall-clock readings, which [`crate::local::land`] turns into
//! instants (a reading in a gap keeps its distance from the gap's start, a repeated reading
//! fires at its first occurrence). Every answer is strictly later than the instant asked
//! about, so iterating never repeats or goes back, whatever the clock does.
//!
//! The window and weekday restrictions are checked against the wall-clock reading of the run
//! itself: a daily 02:30 run moved to 03:30 by a gap must fit the window at 03:30, and a run
//! at 01:00 from a 22:00–02:00 window counts as the next day's.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{
    DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc,
};
use chrono_tz::Tz;
use domain::model::{Frequency, TimeOfDay, TimeWindow, Trigger};
use thiserror::Error;

use crate::local::{self, Landing};

/// Why a trigger cannot be evaluated. Domain validation rejects these before they are stored;
/// the scheduler still refuses rather than guesses.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TriggerError {
    #[error("invalid cron expression `{expr}`: {reason}")]
    Cron { expr: String, reason: String },
    #[error("a periodic trigger needs a positive period")]
    ZeroPeriod,
    #[error("a schedule may have at most 65535 triggers, not {count}")]
    TooManyTriggers { count: usize },
}

/// How many local days a restricted trigger is searched without finding a run before it is
/// taken to never fire again, in years of days (a yearly run restricted to one weekday may
/// wait eleven years).
const HORIZON_YEARS: u32 = 30;

/// A trigger prepared for repeated evaluation: the cron expression parsed once, the weekday
/// set as a bit mask. Cheap to clone (a cron expression is shared).
#[derive(Clone, Debug)]
pub struct FireRule {
    kind: Kind,
    window: Option<TimeWindow>,
    /// Bit `n` allows the weekday `n` days from Monday.
    days: u8,
}

#[derive(Clone, Debug)]
// Narrow fields keep a rule at 24 bytes: the due index holds one per trigger.
enum Kind {
    Once {
        at: i64,
    },
    Hourly {
        seconds_past: u32,
    },
    Periodic {
        period: u32,
        offset: u32,
    },
    Daily {
        seconds_past: u32,
    },
    Weekly {
        seconds_past: u32,
    },
    Monthly {
        seconds_past: u32,
    },
    Yearly {
        month: u8,
        day: u8,
        seconds_past: u32,
    },
    Cron(Arc<cron::Schedule>),
}

const ALL_DAYS: u8 = 0x7f;

/// A half-open span of wall-clock readings, `[from, to)`.
type Span = (NaiveDateTime, NaiveDateTime);

impl FireRule {
    pub fn new(trigger: &Trigger) -> Result<Self, TriggerError> {
        Self::with_cron(trigger, parse_cron)
    }

    /// Like [`FireRule::new`], with cron expressions parsed (or looked up) by `cron`, so that
    /// many schedules can share one parsed expression.
    pub fn with_cron(
        trigger: &Trigger,
        cron: impl FnOnce(&str) -> Result<Arc<cron::Schedule>, TriggerError>,
    ) -> Result<Self, TriggerError> {
        let kind = match &trigger.frequency {
            Frequency::Once { at } => Kind::Once { at: *at },
            Frequency::Hourly { seconds_past } => Kind::Hourly {
                seconds_past: *seconds_past % 3600,
            },
            Frequency::Periodic {
                period_secs,
                offset_secs,
            } => {
                if *period_secs == 0 {
                    return Err(TriggerError::ZeroPeriod);
                }
                Kind::Periodic {
                    period: *period_secs,
                    offset: *offset_secs,
                }
            }
            Frequency::Daily { seconds_past } => Kind::Daily {
                seconds_past: *seconds_past % 86_400,
            },
            Frequency::Weekly { seconds_past } => Kind::Weekly {
                seconds_past: *seconds_past % (7 * 86_400),
            },
            Frequency::Monthly { seconds_past } => Kind::Monthly {
                seconds_past: *seconds_past % (31 * 86_400),
            },
            Frequency::Yearly {
                month,
                day,
                seconds_past,
            } => Kind::Yearly {
                month: (*month).clamp(1, 12),
                day: (*day).clamp(1, 31),
                seconds_past: *seconds_past % 86_400,
            },
            Frequency::Cron { expr } => Kind::Cron(cron(expr)?),
        };
        let days = match &trigger.days {
            None => ALL_DAYS,
            Some(set) => set.iter().fold(0, |mask, d| {
                mask | 1 << d.to_chrono().num_days_from_monday()
            }),
        };
        let window = trigger.window.filter(|w| w.from != w.to);
        Ok(FireRule { kind, window, days })
    }

    /// The next due instant strictly after `after`, or `None` if the trigger never fires again.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let t = self.next_secs(tz, after.timestamp())?;
        DateTime::from_timestamp(t, 0)
    }

    /// Whether a run at instant `t` satisfies the window and weekday restrictions.
    pub fn allows(&self, tz: Tz, t: DateTime<Utc>) -> bool {
        self.allows_secs(tz, t.timestamp())
    }

    pub(crate) fn next_secs(&self, tz: Tz, after: i64) -> Option<i64> {
        if self.window.is_none() && self.days == ALL_DAYS {
            return self.candidate(tz, after);
        }
        self.restricted(tz, after)
    }

    fn allows_secs(&self, tz: Tz, t: i64) -> bool {
        let Some(r) = local::reading(tz, t) else {
            return false;
        };
        self.day_allowed(r.date())
            && self.window.is_none_or(|w| {
                // Readings are whole seconds and window bounds whole minutes, so comparing at
                // minute precision keeps the window half-open.
                TimeOfDay::new(r.hour() as u8, r.minute() as u8).is_some_and(|tod| w.contains(tod))
            })
    }

    fn day_allowed(&self, date: NaiveDate) -> bool {
        self.days & (1 << date.weekday().num_days_from_monday()) != 0
    }

    /// The restricted search. The readings a run may have form at most two spans per allowed
    /// local date (`[from, to)`, or `[00:00, to)` and `[from, 24:00)` for a window wrapping
    /// midnight). Each span is bounded in real time by the first occurrence of its start and
    /// the last occurrence of its end, so runs in a repeated hour are not lost; candidates are
    /// drawn only inside spans and each is checked against its actual reading. Invariant: no
    /// allowed candidate lies in `(after, cursor]`.
    fn restricted(&self, tz: Tz, after: i64) -> Option<i64> {
        let mut day = local::reading(tz, after)?.date().pred_opt()?;
        let mut cursor = after;
        // Days searched, not days passed: jumps to a distant candidate cost nothing.
        for _ in 0..HORIZON_YEARS * 366 {
            let mut next_day = day.succ_opt()?;
            for (from, to) in self.spans(day)?.into_iter().flatten() {
                let end = local::latest(tz, to)?;
                if end <= cursor.saturating_add(1) {
                    continue;
                }
                let mut lo = cursor.max(local::earliest(tz, from)? - 1);
                loop {
                    let c = self.candidate(tz, lo)?;
                    if c >= end {
                        // Nothing fires in (lo, c): resume at c, skipping the days between.
                        cursor = cursor.max(c - 1);
                        let c_day = local::reading(tz, c)?.date().pred_opt()?;
                        next_day = next_day.max(c_day);
                        break;
                    }
                    if self.allows_secs(tz, c) {
                        return Some(c);
                    }
                    lo = c;
                    cursor = c;
                }
            }
            day = next_day;
        }
        None
    }

    /// The spans of readings on `day` in which a run may fall.
    fn spans(&self, day: NaiveDate) -> Option<[Option<Span>; 2]> {
        if !self.day_allowed(day) {
            return Some([None, None]);
        }
        let start = day.and_time(NaiveTime::MIN);
        let next = day.succ_opt()?.and_time(NaiveTime::MIN);
        let at =
            |t: TimeOfDay| start + chrono::Duration::minutes(i64::from(t.minutes_since_midnight()));
        Some(match self.window {
            None => [Some((start, next)), None],
            Some(w) if w.from < w.to => [Some((at(w.from), at(w.to))), None],
            Some(w) => [Some((start, at(w.to))), Some((at(w.from), next))],
        })
    }

    /// The trigger's own next due instant after `after`, ignoring restrictions.
    fn candidate(&self, tz: Tz, after: i64) -> Option<i64> {
        match self.kind {
            Kind::Once { at } => (at > after).then_some(at),
            Kind::Periodic { period, offset } => {
                let base = after.checked_add(1)?;
                Some(base + (i64::from(offset) - base).rem_euclid(i64::from(period)))
            }
            Kind::Hourly { seconds_past } => hourly(tz, after, i64::from(seconds_past)),
            _ => self.wall_clock(tz, after),
        }
    }

    /// The next wall-clock reading after `after` that lands strictly later than it.
    fn wall_clock(&self, tz: Tz, after: i64) -> Option<i64> {
        let mut n = scan_start(tz, after)?;
        loop {
            n = self.next_reading(n)?;
            match local::land(tz, n)? {
                Landing::Real(t) if t > after => return Some(t),
                Landing::Gap { at, resumes } if at > after => {
                    // A reading just after the gap lands up to the gap's length earlier than
                    // this one; the first of them that is still later than `after` wins.
                    let mut m = resumes - chrono::Duration::seconds(1);
                    while let Some(r) = self.next_reading(m) {
                        let t = local::land(tz, r)?.at();
                        if t >= at {
                            break;
                        }
                        if t > after {
                            return Some(t);
                        }
                        m = r;
                    }
                    return Some(at);
                }
                _ => {}
            }
        }
    }

    /// The trigger's next wall-clock reading strictly after reading `n`.
    fn next_reading(&self, n: NaiveDateTime) -> Option<NaiveDateTime> {
        let past = |day: NaiveDate, secs: i64| {
            day.and_time(NaiveTime::MIN)
                .checked_add_signed(chrono::Duration::seconds(secs))
        };
        let later = |c: NaiveDateTime, then: &dyn Fn() -> Option<NaiveDateTime>| {
            if c > n {
                Some(c)
            } else {
                then()
            }
        };
        let date = n.date();
        match &self.kind {
            Kind::Daily { seconds_past } => {
                let secs = i64::from(*seconds_past);
                let c = past(date, secs)?;
                later(c, &|| past(date.succ_opt()?, secs))
            }
            Kind::Weekly { seconds_past } => {
                let secs = i64::from(*seconds_past);
                let back = Days::new(u64::from(date.weekday().num_days_from_sunday()));
                let sunday = date.checked_sub_days(back)?;
                let c = past(sunday, secs)?;
                later(c, &|| past(sunday.checked_add_days(Days::new(7))?, secs))
            }
            Kind::Monthly { seconds_past } => {
                let secs = i64::from(*seconds_past);
                let first = date.with_day(1)?;
                let c = monthly(first, secs)?;
                later(c, &|| {
                    monthly(first.checked_add_months(Months::new(1))?, secs)
                })
            }
            Kind::Yearly {
                month,
                day,
                seconds_past,
            } => {
                let (month, day, secs) =
                    (u32::from(*month), u32::from(*day), i64::from(*seconds_past));
                let c = yearly(date.year(), month, day, secs)?;
                later(c, &|| yearly(date.year() + 1, month, day, secs))
            }
            Kind::Cron(schedule) => schedule.after(&n.and_utc()).next().map(|d| d.naive_utc()),
            Kind::Once { .. } | Kind::Hourly { .. } | Kind::Periodic { .. } => None,
        }
    }
}

pub(crate) fn parse_cron(expr: &str) -> Result<Arc<cron::Schedule>, TriggerError> {
    cron::Schedule::from_str(expr)
        .map(Arc::new)
        .map_err(|e| TriggerError::Cron {
            expr: expr.to_owned(),
            reason: e.to_string(),
        })
}

/// Hourly follows elapsed time: the next instant whose local minute and second equal
/// `seconds_past`. Within one offset that is one instant per real hour; where the offset
/// changes the search restarts at the change, so a repeated hour fires twice and a skipped
/// one not at all.
fn hourly(tz: Tz, after: i64, seconds_past: i64) -> Option<i64> {
    let mut cursor = after;
    // Two zone transitions never fall within one hour of each other; a few rounds suffice.
    for _ in 0..4 {
        let base = cursor.checked_add(1)?;
        let offset = local::offset_at(tz, base)?;
        let c = base + (seconds_past - (base + offset)).rem_euclid(3600);
        if local::offset_at(tz, c)? == offset {
            return Some(c);
        }
        cursor = local::first_change(tz, base, c, offset)? - 1;
    }
    None
}

/// `seconds_past` 00:00 on the 1st; past a short month's end, its last day at the same time.
fn monthly(first: NaiveDate, seconds_past: i64) -> Option<NaiveDateTime> {
    let last_day = first.checked_add_months(Months::new(1))?.pred_opt()?.day();
    let day = (seconds_past / 86_400).min(i64::from(last_day) - 1);
    first
        .and_time(NaiveTime::MIN)
        .checked_add_signed(chrono::Duration::seconds(
            day * 86_400 + seconds_past % 86_400,
        ))
}

/// A day the month lacks (29 February outside leap years) becomes the month's last day, as a
/// monthly trigger past a short month's end does.
fn yearly(year: i32, month: u32, day: u32, seconds_past: i64) -> Option<NaiveDateTime> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let last_day = first.checked_add_months(Months::new(1))?.pred_opt()?.day();
    first
        .with_day(day.min(last_day))?
        .and_time(NaiveTime::MIN)
        .checked_add_signed(chrono::Duration::seconds(seconds_past))
}

/// The reading after which a wall-clock search starts. Usually the reading at `after`; just
/// after a gap, readings in the gap land after `after` though they precede its reading, so
/// the search starts as far back as the gap is long.
fn scan_start(tz: Tz, after: i64) -> Option<NaiveDateTime> {
    let now = local::reading(tz, after)?;
    let offset = local::offset_at(tz, after)?;
    let before = local::offset_at(tz, after.checked_sub(2 * 86_400)?)?;
    if before < offset {
        let back = now - chrono::Duration::seconds(offset - before);
        if local::land(tz, back).is_some_and(|l| matches!(l, Landing::Gap { .. })) {
            return Some(back);
        }
    }
    Some(now)
}

/// The next due instant of `trigger` strictly after `after`, in time zone `tz`.
pub fn next_fire(
    trigger: &Trigger,
    tz: Tz,
    after: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, TriggerError> {
    Ok(FireRule::new(trigger)?.next_after(tz, after))
}

/// The due instants of `trigger` strictly after `from`, at most `count` of them, in order.
pub fn upcoming(
    trigger: &Trigger,
    tz: Tz,
    from: DateTime<Utc>,
    count: usize,
) -> Result<Upcoming, TriggerError> {
    Ok(Upcoming {
        rule: FireRule::new(trigger)?,
        tz,
        last: Some(from.timestamp()),
        left: count,
    })
}

/// Iterator returned by [`upcoming`].
#[derive(Clone, Debug)]
pub struct Upcoming {
    rule: FireRule,
    tz: Tz,
    last: Option<i64>,
    left: usize,
}

impl Iterator for Upcoming {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let t = self.rule.next_secs(self.tz, self.last?);
        self.last = t;
        DateTime::from_timestamp(t?, 0)
    }
}
