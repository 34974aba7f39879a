//! Webhook endpoint commands. Secrets are generated and stored outside the domain; commands
//! carry only the fingerprint that names the secret.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{TenantRef, WebhookId};
use crate::model::{WebhookLevel, WebhookSpec};

#[derive(Clone, Debug, PartialEq)]
pub struct CreateWebhook {
    pub webhook_id: WebhookId,
    pub tenant: TenantRef,
    pub spec: WebhookSpec,
    pub secret_fingerprint: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct WebhookPatch {
    pub name: Option<String>,
    pub url: Option<String>,
    pub event_types: Option<BTreeSet<u16>>,
    pub level: Option<WebhookLevel>,
    pub custom_headers: Option<BTreeMap<String, String>>,
    pub enabled: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UpdateWebhook {
    pub webhook_id: WebhookId,
    pub patch: WebhookPatch,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RemoveWebhook {
    pub webhook_id: WebhookId,
}

/// Replaces the signing secret; the old one keeps signing for `grace_secs`.
#[derive(Clone, Debug, PartialEq)]
pub struct RotateWebhookSecret {
    pub webhook_id: WebhookId,
    pub secret_fingerprint: String,
    pub grace_secs: u32,
}

/// Turns an endpoint off on the system's behalf. Disabling a disabled endpoint changes
/// nothing, so a dispatcher may send it more than once.
#[derive(Clone, Debug, PartialEq)]
pub struct DisableWebhook {
    pub webhook_id: WebhookId,
    pub reason: String,
}
