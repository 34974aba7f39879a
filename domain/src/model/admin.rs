use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::ids::{AdminId, PolicyId, TenantRef};

/// Admin abilities. Tenant-level settings pages need an `allow_*`; `prevent_*`/`deny_*` take
/// abilities away.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    pub allow_edit_webhooks: bool,
    pub allow_edit_email_options: bool,
    pub allow_edit_branding: bool,
    pub allow_upgrade_campaigns: bool,
    pub prevent_edit_server_settings: bool,
    pub prevent_change_password: bool,
    pub deny_view_server_info: bool,
    /// Policies this admin may assign to users; empty means any policy of the tenant.
    pub allowed_user_policies: Vec<PolicyId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSpec {
    /// Same charset as user names; unique within the admin's tenant only.
    pub username: String,
    pub permissions: Permissions,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admin {
    pub id: AdminId,
    pub tenant: TenantRef,
    pub spec: AdminSpec,
    pub password_hash: String,
}

impl Admin {
    pub fn evolve(state: Option<Admin>, event: &Event) -> Option<Admin> {
        match (state, event) {
            (None, Event::AdminCreated(e)) => Some(Admin {
                id: e.admin_id,
                tenant: e.tenant,
                spec: e.spec.clone(),
                password_hash: e.password_hash.clone(),
            }),
            (Some(a), Event::AdminUpdated(e)) => Some(Admin {
                spec: e.spec.clone(),
                ..a
            }),
            (Some(a), Event::AdminPasswordChanged(e)) => Some(Admin {
                password_hash: e.password_hash.clone(),
                ..a
            }),
            (Some(_), Event::AdminRemoved(_)) => None,
            (state, _) => state,
        }
    }
}
