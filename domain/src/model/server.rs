use serde::{Deserialize, Serialize};

use crate::events::Event;

/// How many failed logins lock a username out, and for how long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginProtection {
    pub max_failures: u32,
    pub lockout_secs: u32,
}

/// The server-wide singleton. It exists from the first start, so unlike the other aggregates
/// it has real initial values rather than a creation event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSettings {
    /// Server-wide random delay; when set it overrides every policy and schedule.
    pub random_delay_secs: Option<u32>,
    pub session_ttl_secs: u32,
    pub login_protection: LoginProtection,
}

impl ServerSettings {
    pub fn initial() -> Self {
        ServerSettings {
            random_delay_secs: None,
            session_ttl_secs: 3600,
            login_protection: LoginProtection {
                max_failures: 5,
                lockout_secs: 900,
            },
        }
    }

    pub fn evolve(self, event: &Event) -> ServerSettings {
        match event {
            Event::ServerSettingsUpdated(e) => e.settings.clone(),
            _ => self,
        }
    }
}
