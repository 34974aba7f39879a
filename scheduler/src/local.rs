//! Moving between instants (Unix seconds) and wall-clock readings in a time zone, with the
//! daylight-saving decisions of DOMAIN.md made in one place.

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone};
use chrono_tz::{GapInfo, Tz};

/// The naive reading of `t` as if the zone were UTC; `None` only far outside any real date.
pub(crate) fn naive_utc(t: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp(t, 0).map(|d| d.naive_utc())
}

/// Seconds of a naive reading counted as if it were UTC.
pub(crate) fn naive_secs(n: NaiveDateTime) -> i64 {
    n.and_utc().timestamp()
}

/// The zone's offset from UTC in seconds at instant `t`.
pub(crate) fn offset_at(tz: Tz, t: i64) -> Option<i64> {
    let utc = naive_utc(t)?;
    Some(i64::from(
        tz.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
    ))
}

/// The wall-clock reading at instant `t`.
pub(crate) fn reading(tz: Tz, t: i64) -> Option<NaiveDateTime> {
    naive_utc(t.checked_add(offset_at(tz, t)?)?)
}

/// Where a wall-clock due time lands in real time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Landing {
    /// The reading exists; in a repeated hour this is its first occurrence.
    Real(i64),
    /// The reading fell into a gap: it fires as far after the gap's start as it was written
    /// after the gap's first reading (the offset before the gap still applies). `resumes` is
    /// the first reading after the gap, needed because a real reading there can land earlier.
    Gap { at: i64, resumes: NaiveDateTime },
}

impl Landing {
    pub(crate) fn at(self) -> i64 {
        match self {
            Landing::Real(t) | Landing::Gap { at: t, .. } => t,
        }
    }
}

/// The wall-clock rule of DOMAIN.md for daily, weekly, monthly, yearly and cron triggers.
pub(crate) fn land(tz: Tz, n: NaiveDateTime) -> Option<Landing> {
    let secs = naive_secs(n);
    let instant = |o: &<Tz as TimeZone>::Offset| secs - i64::from(o.fix().local_minus_utc());
    match tz.offset_from_local_datetime(&n) {
        LocalResult::Single(o) => Some(Landing::Real(instant(&o))),
        LocalResult::Ambiguous(a, b) => Some(Landing::Real(instant(&a).min(instant(&b)))),
        LocalResult::None => {
            let gap = GapInfo::new(&n, &tz)?;
            let end = gap.end?;
            match gap.begin {
                Some((_, before)) => Some(Landing::Gap {
                    at: instant(&before),
                    resumes: end.naive_local(),
                }),
                None => Some(Landing::Real(end.timestamp())),
            }
        }
    }
}

/// The first occurrence of reading `n`, or the gap's end for a reading in a gap. With
/// [`latest`] it bounds a span of readings: every instant whose reading lies in `[a, b)` lies
/// in `[earliest(a), latest(b))`, whatever the clock does in between.
pub(crate) fn earliest(tz: Tz, n: NaiveDateTime) -> Option<i64> {
    bound(tz, n, i64::min)
}

/// The last occurrence of reading `n`, or the gap's end for a reading in a gap.
pub(crate) fn latest(tz: Tz, n: NaiveDateTime) -> Option<i64> {
    bound(tz, n, i64::max)
}

fn bound(tz: Tz, n: NaiveDateTime, pick: fn(i64, i64) -> i64) -> Option<i64> {
    let secs = naive_secs(n);
    let instant = |o: &<Tz as TimeZone>::Offset| secs - i64::from(o.fix().local_minus_utc());
    match tz.offset_from_local_datetime(&n) {
        LocalResult::Single(o) => Some(instant(&o)),
        LocalResult::Ambiguous(a, b) => Some(pick(instant(&a), instant(&b))),
        LocalResult::None => Some(GapInfo::new(&n, &tz)?.end?.timestamp()),
    }
}

/// The first instant in `(lo, hi]` whose offset differs from `offset`, which holds at `lo`
/// and not at `hi`. Offsets are constant between transitions, so bisection finds it.
pub(crate) fn first_change(tz: Tz, mut lo: i64, mut hi: i64, offset: i64) -> Option<i64> {
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_at(tz, mid)? == offset {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, m: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, mi: u32) -> i64 {
        naive_secs(at(y, m, d, h, mi))
    }

    #[test]
    fn landing_in_a_gap_keeps_the_distance_from_the_gap_start() {
        let berlin = chrono_tz::Europe::Berlin;
        // 2026-03-29 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        assert_eq!(
            land(berlin, at(2026, 3, 29, 2, 30)),
            Some(Landing::Gap {
                at: utc(2026, 3, 29, 1, 30),
                resumes: at(2026, 3, 29, 3, 0),
            })
        );
        assert_eq!(
            earliest(berlin, at(2026, 3, 29, 2, 30)),
            Some(utc(2026, 3, 29, 1, 0))
        );
        assert_eq!(
            latest(berlin, at(2026, 3, 29, 2, 30)),
            Some(utc(2026, 3, 29, 1, 0))
        );
    }

    #[test]
    fn landing_in_a_fold_takes_the_first_occurrence() {
        let berlin = chrono_tz::Europe::Berlin;
        // 2026-10-25 03:00 CEST falls back to 02:00 CET (01:00 UTC).
        let n = at(2026, 10, 25, 2, 30);
        assert_eq!(
            land(berlin, n),
            Some(Landing::Real(utc(2026, 10, 25, 0, 30)))
        );
        assert_eq!(earliest(berlin, n), Some(utc(2026, 10, 25, 0, 30)));
        assert_eq!(latest(berlin, n), Some(utc(2026, 10, 25, 1, 30)));
    }

    #[test]
    fn first_change_finds_the_transition() {
        let berlin = chrono_tz::Europe::Berlin;
        let t = utc(2026, 3, 29, 1, 0);
        assert_eq!(first_change(berlin, t - 5000, t + 7, 3600), Some(t));
    }
}
