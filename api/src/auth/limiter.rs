//! The per-source-address login limiter: in memory (a restart forgets it, which only helps a
//! legitimate user), alongside the per-account lockout the domain keeps in the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// An address is refused after this many times the per-account failure limit, so one user
/// behind a shared address cannot lock out the others by mistyping.
pub const ADDRESS_FACTOR: u32 = 4;

/// Entries kept at most; the oldest are dropped first when an attack sprays addresses.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first_at: i64,
    blocked_until: Option<i64>,
}

/// Failures per address within a window; `N` failures block the address for the window.
#[derive(Default)]
pub struct LoginLimiter {
    by_address: Mutex<HashMap<IpAddr, Failures>>,
}

impl LoginLimiter {
    /// Seconds until `addr` may try again, if it is blocked.
    pub fn blocked_for(&self, addr: IpAddr, now: i64) -> Option<u64> {
        let map = self.by_address.lock().expect("limiter lock poisoned");
        let until = map.get(&addr)?.blocked_until?;
        (until > now).then(|| u64::try_from(until - now).unwrap_or(1))
    }

    /// Counts a failed login from `addr`; `max_failures == 0` disables the limit.
    pub fn failed(&self, addr: IpAddr, now: i64, max_failures: u32, window_secs: u32) {
        if max_failures == 0 {
            return;
        }
        let window = i64::from(window_secs);
        let mut map = self.by_address.lock().expect("limiter lock poisoned");
        if map.len() >= MAX_TRACKED && !map.contains_key(&addr) {
            map.retain(|_, f| f.blocked_until.is_some_and(|u| u > now));
            if map.len() >= MAX_TRACKED {
                return;
            }
        }
        let entry = map.entry(addr).or_insert(Failures {
            count: 0,
            first_at: now,
            blocked_until: None,
        });
        if now - entry.first_at > window || entry.blocked_until.is_some_and(|u| u <= now) {
            *entry = Failures {
                count: 0,
                first_at: now,
                blocked_until: None,
            };
        }
        entry.count += 1;
        if entry.count >= max_failures.saturating_mul(ADDRESS_FACTOR) {
            entry.blocked_until = Some(now + window);
        }
    }

    /// A success from `addr` forgets its failures.
    pub fn succeeded(&self, addr: IpAddr) {
        self.by_address
            .lock()
            .expect("limiter lock poisoned")
            .remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_for_the_window() {
        let l = LoginLimiter::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 0..(2 * ADDRESS_FACTOR) {
            assert_eq!(l.blocked_for(a, 100), None, "{i}");
            l.failed(a, 100, 2, 60);
        }
        assert_eq!(l.blocked_for(a, 100), Some(60));
        assert_eq!(l.blocked_for(b, 100), None);
        assert_eq!(l.blocked_for(a, 160), None);
        l.failed(a, 161, 2, 60);
        assert_eq!(l.blocked_for(a, 161), None);
        l.failed(b, 100, 0, 60);
        assert_eq!(l.blocked_for(b, 100), None);
    }
}
