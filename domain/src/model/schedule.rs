use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::ids::{ItemId, ScheduleId, TenantRef, UserId, VaultId};

/// When a trigger fires. Codes 8010–8016 are the reference system's; cron is halley's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frequency {
    /// 8010: once, at a Unix time.
    Once { at: i64 },
    /// 8011: every day, `seconds_past` local midnight (< 86400).
    Daily { seconds_past: u32 },
    /// 8012: every hour, `seconds_past` the full hour (< 3600).
    Hourly { seconds_past: u32 },
    /// 8013: every week, `seconds_past` Sunday 00:00 local (< 604800).
    Weekly { seconds_past: u32 },
    /// 8014: every month, `seconds_past` 00:00 on the 1st (< 31 days).
    Monthly { seconds_past: u32 },
    /// 8015: every `period_secs` (> 0), phase `offset_secs` from the Unix epoch.
    Periodic { period_secs: u32, offset_secs: u32 },
    /// 8016: every year on `month`/`day`, `seconds_past` local midnight (< 86400).
    Yearly {
        month: u8,
        day: u8,
        seconds_past: u32,
    },
    /// A 6- or 7-field expression (with seconds) in the `cron` crate's syntax.
    Cron { expr: String },
}

impl Frequency {
    pub const ONCE: u16 = 8010;
    pub const DAILY: u16 = 8011;
    pub const HOURLY: u16 = 8012;
    pub const WEEKLY: u16 = 8013;
    pub const MONTHLY: u16 = 8014;
    pub const PERIODIC: u16 = 8015;
    pub const YEARLY: u16 = 8016;

    /// The reference system's frequency code; cron has none.
    pub fn code(&self) -> Option<u16> {
        match self {
            Frequency::Once { .. } => Some(Self::ONCE),
            Frequency::Daily { .. } => Some(Self::DAILY),
            Frequency::Hourly { .. } => Some(Self::HOURLY),
            Frequency::Weekly { .. } => Some(Self::WEEKLY),
            Frequency::Monthly { .. } => Some(Self::MONTHLY),
            Frequency::Periodic { .. } => Some(Self::PERIODIC),
            Frequency::Yearly { .. } => Some(Self::YEARLY),
            Frequency::Cron { .. } => None,
        }
    }
}

/// A local time of day with minute precision, written `HH:MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimeOfDay {
    minutes: u16,
}

impl TimeOfDay {
    /// `None` unless `hour < 24 && minute < 60`.
    pub fn new(hour: u8, minute: u8) -> Option<Self> {
        (hour < 24 && minute < 60).then(|| TimeOfDay {
            minutes: u16::from(hour) * 60 + u16::from(minute),
        })
    }

    /// Accepts exactly `HH:MM` (two digits each).
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 5 || b[2] != b':' {
            return None;
        }
        let two = |hi: u8, lo: u8| -> Option<u8> {
            (hi.is_ascii_digit() && lo.is_ascii_digit()).then(|| (hi - b'0') * 10 + (lo - b'0'))
        };
        Self::new(two(b[0], b[1])?, two(b[3], b[4])?)
    }

    pub fn minutes_since_midnight(self) -> u16 {
        self.minutes
    }

    pub fn hour(self) -> u8 {
        (self.minutes / 60) as u8
    }

    pub fn minute(self) -> u8 {
        (self.minutes % 60) as u8
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour(), self.minute())
    }
}

/// A half-open local time window `[from, to)`; it wraps midnight when `to < from` and covers
/// the whole day when `from == to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    pub from: TimeOfDay,
    pub to: TimeOfDay,
}

impl TimeWindow {
    pub fn contains(self, t: TimeOfDay) -> bool {
        match self.from.cmp(&self.to) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => self.from <= t && t < self.to,
            std::cmp::Ordering::Greater => t >= self.from || t < self.to,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// Accepts the API's lower-case three-letter names (`mon` … `sun`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }

    pub fn to_chrono(self) -> chrono::Weekday {
        match self {
            Weekday::Mon => chrono::Weekday::Mon,
            Weekday::Tue => chrono::Weekday::Tue,
            Weekday::Wed => chrono::Weekday::Wed,
            Weekday::Thu => chrono::Weekday::Thu,
            Weekday::Fri => chrono::Weekday::Fri,
            Weekday::Sat => chrono::Weekday::Sat,
            Weekday::Sun => chrono::Weekday::Sun,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub frequency: Frequency,
    pub window: Option<TimeWindow>,
    /// Local weekdays on which runs may fall; `None` means every day.
    pub days: Option<BTreeSet<Weekday>>,
    pub random_delay_secs: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    pub name: String,
    pub item: ItemId,
    pub vault: VaultId,
    pub skip_if_running: bool,
    pub triggers: Vec<Trigger>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: ScheduleId,
    pub tenant: TenantRef,
    pub user: UserId,
    pub spec: ScheduleSpec,
    /// Unix seconds; no run is due (or missed) before it.
    pub created_at: i64,
}

impl Schedule {
    pub fn evolve(state: Option<Schedule>, event: &Event) -> Option<Schedule> {
        match (state, event) {
            (None, Event::ScheduleCreated(e)) => Some(Schedule {
                id: e.schedule_id,
                tenant: e.tenant,
                user: e.user_id,
                spec: e.spec.clone(),
                created_at: e.at,
            }),
            (Some(s), Event::ScheduleUpdated(e)) => Some(Schedule {
                spec: e.spec.clone(),
                ..s
            }),
            (Some(s), Event::UserTransferred(e)) if e.user_id == s.user => {
                Some(Schedule { tenant: e.to, ..s })
            }
            (Some(_), Event::ScheduleRemoved(_)) => None,
            (state, _) => state,
        }
    }
}
