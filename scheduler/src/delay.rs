//! The random delay of a run (DOMAIN.md, "halley's decision"): `H(user, schedule, due) mod
//! (max + 1)` seconds with H SipHash-2-4 under fixed keys, so every node and every restart
//! computes the same delay, runs of one schedule spread differently, and users spread
//! uniformly. Which `max` applies is domain's precedence rule
//! ([`domain::resolution::effective_random_delay`]).

use chrono::{DateTime, Utc};
use domain::ids::{ScheduleId, UserId};
use domain::model::Trigger;
use domain::resolution::{effective_policy, effective_random_delay};
use domain::state::State;
use domain::validate::MAX_RANDOM_DELAY_SECS;
use siphasher::sip::SipHasher24;

/// Fixed forever: changing them moves every future run of every schedule. ("halley-r",
/// "andom-d1" in ASCII.)
const KEY0: u64 = 0x6861_6c6c_6579_2d72;
const KEY1: u64 = 0x616e_646f_6d2d_6431;

/// The delay in seconds, in `[0, max_secs]` (`max_secs` capped at 18000), of the run of
/// `schedule` (owned by `user`) due at `due`.
pub fn random_delay(user: UserId, schedule: ScheduleId, due: DateTime<Utc>, max_secs: u32) -> u32 {
    delay_secs(user, schedule, due.timestamp(), max_secs)
}

pub(crate) fn delay_secs(user: UserId, schedule: ScheduleId, due: i64, max_secs: u32) -> u32 {
    let max = max_secs.min(MAX_RANDOM_DELAY_SECS);
    if max == 0 {
        return 0;
    }
    // The hashed message is fixed too: user ULID, schedule ULID (16 bytes each, big-endian as
    // ULIDs print) and the due instant in Unix seconds (8 bytes, big-endian).
    let mut message = [0u8; 40];
    message[..16].copy_from_slice(&user.ulid().to_bytes());
    message[16..32].copy_from_slice(&schedule.ulid().to_bytes());
    message[32..].copy_from_slice(&due.to_be_bytes());
    let hash = SipHasher24::new_with_keys(KEY0, KEY1).hash(&message);
    (hash % (u64::from(max) + 1)) as u32
}

/// The levels above a schedule that may set its random delay. The server-wide value
/// overrides the policy's, which overrides each trigger's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DelaySources {
    pub server: Option<u32>,
    pub policy: Option<u32>,
}

impl DelaySources {
    /// The server setting and the policy of `user`, as they stand in `state`.
    pub fn of(state: &State, user: UserId) -> Self {
        DelaySources {
            server: state.server_settings().random_delay_secs,
            policy: effective_policy(state, user).and_then(|p| p.random_delay_secs),
        }
    }

    /// The maximum delay for runs of `trigger`.
    pub fn max_for(self, trigger: &Trigger) -> u32 {
        effective_random_delay(self.server, self.policy, trigger.random_delay_secs)
    }
}
