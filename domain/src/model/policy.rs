use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::ids::{PolicyId, TenantRef};

/// How a policy treats one setting (codes as in the reference system).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettingMode {
    /// 0: leave the system default.
    SystemDefault,
    /// 1: the user may change it; on by default.
    OptionalOn,
    /// 2: the user may change it; off by default.
    OptionalOff,
    /// 3: always on.
    EnforcedOn,
    /// 4: always off.
    EnforcedOff,
}

impl SettingMode {
    pub fn code(self) -> u8 {
        match self {
            SettingMode::SystemDefault => 0,
            SettingMode::OptionalOn => 1,
            SettingMode::OptionalOff => 2,
            SettingMode::EnforcedOn => 3,
            SettingMode::EnforcedOff => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => SettingMode::SystemDefault,
            1 => SettingMode::OptionalOn,
            2 => SettingMode::OptionalOff,
            3 => SettingMode::EnforcedOn,
            4 => SettingMode::EnforcedOff,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySpec {
    pub name: String,
    pub description: String,
    /// At most one policy per tenant is the default for new users.
    pub is_default: bool,
    pub random_delay_secs: Option<u32>,
    /// Setting name → mode. A `BTreeMap` so the encoded event is byte-for-byte deterministic.
    pub settings: BTreeMap<String, SettingMode>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub id: PolicyId,
    pub tenant: TenantRef,
    pub spec: PolicySpec,
}

impl Policy {
    pub fn evolve(state: Option<Policy>, event: &Event) -> Option<Policy> {
        match (state, event) {
            (None, Event::PolicyCreated(e)) => Some(Policy {
                id: e.policy_id,
                tenant: e.tenant,
                spec: e.spec.clone(),
            }),
            (Some(p), Event::PolicyUpdated(e)) => Some(Policy {
                spec: e.spec.clone(),
                ..p
            }),
            (Some(_), Event::PolicyRemoved(_)) => None,
            (state, _) => state,
        }
    }
}
