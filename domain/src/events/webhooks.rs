//! Webhook endpoint events (4950–4954). None of them carries a signing secret: the secret
//! lives in the webhooks crate's own store, and events name it by fingerprint only.

use serde::{Deserialize, Serialize};

use crate::ids::{TenantRef, WebhookId};
use crate::model::WebhookSpec;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookCreated {
    pub webhook_id: WebhookId,
    pub tenant: TenantRef,
    pub spec: WebhookSpec,
    pub secret_fingerprint: String,
}

/// The whole new spec. Re-enabling clears the reason of an earlier automatic disable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookUpdated {
    pub webhook_id: WebhookId,
    pub tenant: TenantRef,
    pub spec: WebhookSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookRemoved {
    pub webhook_id: WebhookId,
    pub tenant: TenantRef,
}

/// A new signing secret; the previous one keeps signing until `previous_valid_until`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookSecretRotated {
    pub webhook_id: WebhookId,
    pub tenant: TenantRef,
    pub secret_fingerprint: String,
    pub previous_valid_until: i64,
}

/// The system turned the endpoint off (it answered 410 Gone, …), with why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookDisabled {
    pub webhook_id: WebhookId,
    pub tenant: TenantRef,
    pub reason: String,
    pub at: i64,
}
