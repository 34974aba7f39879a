use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::ids::TenantId;

/// What an admin sets on a tenant; created and replaced whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSpec {
    pub name: String,
    /// Lower-case `[a-z0-9-]`, unique server-wide; selects the tenant at login.
    pub slug: String,
    /// Host names that select this tenant at login.
    pub hosts: Vec<String>,
    pub suspended: bool,
}

/// How a tenant (or the top level) sends email.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmailMode {
    /// Use the top level's settings. Not allowed for the top level itself.
    Inherit,
    Disabled,
    Smtp,
    SmtpTls,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailSettings {
    pub mode: EmailMode,
    pub from_address: String,
    pub from_name: String,
    pub host: String,
    pub port: u16,
    pub username: String,
    /// Write-only in the API; kept here because the mailer needs it to log in.
    pub password: Option<String>,
    pub allow_invalid_cert: bool,
}

impl EmailSettings {
    /// A tenant's settings before anyone sets them: inherit the top level.
    pub fn inherit() -> Self {
        Self::with_mode(EmailMode::Inherit)
    }

    /// The top level's settings before anyone sets them: no mail.
    pub fn disabled() -> Self {
        Self::with_mode(EmailMode::Disabled)
    }

    fn with_mode(mode: EmailMode) -> Self {
        EmailSettings {
            mode,
            from_address: String::new(),
            from_name: String::new(),
            host: String::new(),
            port: 0,
            username: String::new(),
            password: None,
            allow_invalid_cert: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub spec: TenantSpec,
    pub email: EmailSettings,
}

impl Tenant {
    pub fn evolve(state: Option<Tenant>, event: &Event) -> Option<Tenant> {
        match (state, event) {
            (None, Event::TenantCreated(e)) => Some(Tenant {
                id: e.tenant_id,
                spec: e.spec.clone(),
                email: EmailSettings::inherit(),
            }),
            (Some(t), Event::TenantUpdated(e)) => Some(Tenant {
                spec: e.spec.clone(),
                ..t
            }),
            (Some(t), Event::TenantEmailUpdated(e)) => Some(Tenant {
                email: e.settings.clone(),
                ..t
            }),
            (Some(_), Event::TenantRemoved(_)) => None,
            (state, _) => state,
        }
    }
}
