//! Policy resolution: what a user's policy enforces, and which random delay applies to a
//! schedule's runs.

use std::collections::BTreeMap;

use crate::ids::{PolicyId, ScheduleId, UserId};
use crate::model::{Policy, SettingMode};
use crate::state::State;
use crate::validate::MAX_RANDOM_DELAY_SECS;

/// How one setting looks to a user under a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EffectiveSetting {
    /// The policy leaves it to the system default.
    SystemDefault,
    /// The user may change it; this is where it starts.
    Optional { default_on: bool },
    /// Fixed by the policy; read-only for the user.
    Enforced { on: bool },
}

impl EffectiveSetting {
    pub fn from_mode(mode: SettingMode) -> Self {
        match mode {
            SettingMode::SystemDefault => EffectiveSetting::SystemDefault,
            SettingMode::OptionalOn => EffectiveSetting::Optional { default_on: true },
            SettingMode::OptionalOff => EffectiveSetting::Optional { default_on: false },
            SettingMode::EnforcedOn => EffectiveSetting::Enforced { on: true },
            SettingMode::EnforcedOff => EffectiveSetting::Enforced { on: false },
        }
    }

    pub fn is_locked(self) -> bool {
        matches!(self, EffectiveSetting::Enforced { .. })
    }
}

/// The read-only copy of a policy a user is held to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectivePolicy {
    pub policy_id: PolicyId,
    pub name: String,
    pub random_delay_secs: Option<u32>,
    pub settings: BTreeMap<String, EffectiveSetting>,
}

impl EffectivePolicy {
    pub fn of(policy: &Policy) -> Self {
        EffectivePolicy {
            policy_id: policy.id,
            name: policy.spec.name.clone(),
            random_delay_secs: policy.spec.random_delay_secs,
            settings: policy
                .spec
                .settings
                .iter()
                .map(|(k, m)| (k.clone(), EffectiveSetting::from_mode(*m)))
                .collect(),
        }
    }
}

/// The effective policy of a user; `None` for an unknown user or a user without a policy.
pub fn effective_policy(state: &State, user: UserId) -> Option<EffectivePolicy> {
    let policy = state.user(user)?.spec.policy?;
    state.policy(policy).map(EffectivePolicy::of)
}

/// Random delay precedence: the server-wide value if set (it overrides every user and policy
/// setting), else the user's policy's if set, else the schedule trigger's own; none is 0.
/// Capped at [`MAX_RANDOM_DELAY_SECS`] whatever the source.
pub fn effective_random_delay(
    server: Option<u32>,
    policy: Option<u32>,
    schedule: Option<u32>,
) -> u32 {
    server
        .or(policy)
        .or(schedule)
        .unwrap_or(0)
        .min(MAX_RANDOM_DELAY_SECS)
}

/// The random delay of one trigger of a schedule, resolved against the server settings and
/// the schedule owner's policy. `None` for an unknown schedule or trigger index.
pub fn schedule_random_delay(state: &State, schedule: ScheduleId, trigger: usize) -> Option<u32> {
    let s = state.schedule(schedule)?;
    let own = s.spec.triggers.get(trigger)?.random_delay_secs;
    let policy = effective_policy(state, s.user).and_then(|p| p.random_delay_secs);
    Some(effective_random_delay(
        state.server_settings().random_delay_secs,
        policy,
        own,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_overrides_policy_overrides_schedule() {
        assert_eq!(effective_random_delay(Some(10), Some(20), Some(30)), 10);
        assert_eq!(effective_random_delay(Some(0), Some(20), Some(30)), 0);
        assert_eq!(effective_random_delay(None, Some(20), Some(30)), 20);
        assert_eq!(effective_random_delay(None, None, Some(30)), 30);
        assert_eq!(effective_random_delay(None, None, None), 0);
        assert_eq!(effective_random_delay(None, None, Some(99_999)), 18_000);
    }

    #[test]
    fn setting_modes() {
        use EffectiveSetting as E;
        assert_eq!(E::from_mode(SettingMode::SystemDefault), E::SystemDefault);
        assert_eq!(
            E::from_mode(SettingMode::OptionalOn),
            E::Optional { default_on: true }
        );
        assert_eq!(
            E::from_mode(SettingMode::OptionalOff),
            E::Optional { default_on: false }
        );
        assert_eq!(
            E::from_mode(SettingMode::EnforcedOn),
            E::Enforced { on: true }
        );
        assert_eq!(
            E::from_mode(SettingMode::EnforcedOff),
            E::Enforced { on: false }
        );
        assert!(E::Enforced { on: false }.is_locked());
        assert!(!E::Optional { default_on: true }.is_locked());
        for code in 0..5 {
            assert_eq!(
                SettingMode::from_code(code).map(SettingMode::code),
                Some(code)
            );
        }
        assert_eq!(SettingMode::from_code(5), None);
    }
}
