use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::ids::{TenantRef, WebhookId};

/// How much of an event a delivery carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WebhookLevel {
    /// The envelope fields and the event's `data`.
    Full,
    /// The envelope fields only (`data` omitted).
    None,
}

/// What an endpoint receives and where. Validated by `decide`; the secret is not part of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSpec {
    pub name: String,
    /// `http://` or `https://` only.
    pub url: String,
    /// Type codes the endpoint wants; empty means every type.
    pub event_types: BTreeSet<u16>,
    pub level: WebhookLevel,
    /// Extra request headers. A `BTreeMap` so the encoded event is deterministic.
    pub custom_headers: BTreeMap<String, String>,
    pub enabled: bool,
}

impl WebhookSpec {
    /// Whether an event of `type_code` is for this endpoint (ignoring tenant and `enabled`).
    pub fn wants(&self, type_code: u16) -> bool {
        self.event_types.is_empty() || self.event_types.contains(&type_code)
    }
}

/// A signing secret that is being replaced but still signs until `valid_until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiringSecret {
    pub fingerprint: String,
    /// Unix seconds.
    pub valid_until: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: WebhookId,
    pub tenant: TenantRef,
    pub spec: WebhookSpec,
    /// Fingerprint of the current signing secret; the secret itself never enters the log.
    pub secret: String,
    pub retiring: Option<RetiringSecret>,
    /// Why the endpoint was last disabled by the system (e.g. it answered 410).
    pub disabled_reason: Option<String>,
}

impl Webhook {
    /// Fingerprints of every secret that signs at `now` (Unix seconds): the current one, and
    /// the retiring one during its grace period.
    pub fn signing_secrets(&self, now: i64) -> Vec<&str> {
        let mut all = vec![self.secret.as_str()];
        if let Some(r) = &self.retiring {
            if now < r.valid_until {
                all.push(r.fingerprint.as_str());
            }
        }
        all
    }

    pub fn evolve(state: Option<Webhook>, event: &Event) -> Option<Webhook> {
        match (state, event) {
            (None, Event::WebhookCreated(e)) => Some(Webhook {
                id: e.webhook_id,
                tenant: e.tenant,
                spec: e.spec.clone(),
                secret: e.secret_fingerprint.clone(),
                retiring: None,
                disabled_reason: None,
            }),
            (Some(w), Event::WebhookUpdated(e)) => Some(Webhook {
                disabled_reason: if e.spec.enabled {
                    None
                } else {
                    w.disabled_reason.clone()
                },
                spec: e.spec.clone(),
                ..w
            }),
            (Some(w), Event::WebhookSecretRotated(e)) => Some(Webhook {
                retiring: Some(RetiringSecret {
                    fingerprint: w.secret.clone(),
                    valid_until: e.previous_valid_until,
                }),
                secret: e.secret_fingerprint.clone(),
                ..w
            }),
            (Some(mut w), Event::WebhookDisabled(e)) => {
                w.spec.enabled = false;
                w.disabled_reason = Some(e.reason.clone());
                Some(w)
            }
            (Some(_), Event::WebhookRemoved(_)) => None,
            (state, _) => state,
        }
    }
}
