//! Time as a dependency: production reads the system clock, tests move a manual one.

use std::sync::atomic::{AtomicI64, Ordering};

/// A source of "now" in Unix microseconds.
pub trait Clock: Send + Sync + 'static {
    fn now_us(&self) -> i64;

    /// Whole Unix seconds, the unit `domain::decide` takes.
    fn now_secs(&self) -> i64 {
        self.now_us().div_euclid(1_000_000)
    }
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> i64 {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the system clock is after 1970");
        i64::try_from(since_epoch.as_micros()).expect("before year 294,000")
    }
}

/// A clock that moves only when told to, for tests of anything time-based.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_us: AtomicI64,
}

impl ManualClock {
    pub fn new(now_us: i64) -> Self {
        ManualClock {
            now_us: AtomicI64::new(now_us),
        }
    }

    pub fn set_us(&self, now_us: i64) {
        self.now_us.store(now_us, Ordering::SeqCst);
    }

    pub fn advance_secs(&self, secs: i64) {
        self.now_us.fetch_add(secs * 1_000_000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> i64 {
        self.now_us.load(Ordering::SeqCst)
    }
}
