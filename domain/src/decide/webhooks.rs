//! Webhook endpoints: http(s) URLs, known event types, headers that cannot clash with HTTP
//! framing or the signature, and secrets named by fingerprint with a bounded grace period.

use super::{live_owner, set, validate_text, Decision};
use crate::commands::*;
use crate::error::DomainError;
use crate::events::*;
use crate::ids::WebhookId;
use crate::model::{Webhook, WebhookSpec};
use crate::state::State;
use crate::validate::validate_name;

pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_CUSTOM_HEADERS: usize = 32;
pub const MAX_HEADER_VALUE_CHARS: usize = 4096;
/// A rotated-out secret signs for at most a week.
pub const MAX_SECRET_GRACE_SECS: u32 = 7 * 24 * 3600;
pub const MAX_DISABLE_REASON_CHARS: usize = 1024;

/// Headers the sender owns: HTTP framing and hop-by-hop headers (RFC 9110 §7.6.1, §8), and
/// the Standard Webhooks signature headers. Compared case-insensitively.
pub const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "expect",
    "host",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "webhook-id",
    "webhook-signature",
    "webhook-timestamp",
];

fn webhook(state: &State, id: WebhookId) -> Result<&Webhook, DomainError> {
    state
        .webhook(id)
        .ok_or_else(|| DomainError::not_found("webhook", id))
}

/// `http://` or `https://`, a non-empty host, no whitespace or control characters.
fn validate_url(url: &str) -> Result<(), DomainError> {
    let invalid = |reason: &str| Err(DomainError::invalid("url", reason));
    if url.chars().count() > MAX_URL_CHARS {
        return invalid("must be at most 2048 characters");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("must not contain whitespace or control characters");
    }
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return invalid("must be an http:// or https:// URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return invalid("must name a host");
    }
    Ok(())
}

/// RFC 9110 `token` characters.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn validate_spec(spec: &WebhookSpec) -> Result<(), DomainError> {
    validate_name("name", &spec.name)?;
    validate_url(&spec.url)?;
    for code in &spec.event_types {
        if Event::name_of(*code).is_none() {
            return Err(DomainError::invalid(
                "event_types",
                format!("unknown event type code {code}"),
            ));
        }
    }
    if spec.custom_headers.len() > MAX_CUSTOM_HEADERS {
        return Err(DomainError::invalid(
            "custom_headers",
            format!("at most {MAX_CUSTOM_HEADERS} headers"),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, value) in &spec.custom_headers {
        let field = format!("custom_headers.{name}");
        if !is_token(name) {
            return Err(DomainError::invalid(field, "is not a valid header name"));
        }
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(DomainError::invalid(
                field,
                "is set by the sender and cannot be overridden",
            ));
        }
        if !seen.insert(lower) {
            return Err(DomainError::invalid(
                field,
                "is given twice (header names ignore case)",
            ));
        }
        let visible = value
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
        if !visible || value.len() > MAX_HEADER_VALUE_CHARS {
            return Err(DomainError::invalid(
                field,
                "value must be at most 4096 visible ASCII characters",
            ));
        }
    }
    Ok(())
}

/// A fingerprint names a secret kept outside the log: 16 to 64 lowercase hex digits.
fn validate_fingerprint(fingerprint: &str) -> Result<(), DomainError> {
    let ok = (16..=64).contains(&fingerprint.len())
        && fingerprint
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        return Err(DomainError::invalid(
            "secret",
            "fingerprint must be 16 to 64 lowercase hex digits",
        ));
    }
    Ok(())
}

pub(super) fn create(state: &State, c: CreateWebhook) -> Decision {
    if state.webhook(c.webhook_id).is_some() {
        return Err(DomainError::already_exists("webhook", c.webhook_id));
    }
    live_owner(state, c.tenant)?;
    validate_spec(&c.spec)?;
    validate_fingerprint(&c.secret_fingerprint)?;
    Ok(vec![WebhookCreated {
        webhook_id: c.webhook_id,
        tenant: c.tenant,
        spec: c.spec,
        secret_fingerprint: c.secret_fingerprint,
    }
    .into()])
}

pub(super) fn update(state: &State, c: UpdateWebhook) -> Decision {
    let current = webhook(state, c.webhook_id)?;
    let mut spec = current.spec.clone();
    let p = c.patch;
    set(&mut spec.name, p.name);
    set(&mut spec.url, p.url);
    set(&mut spec.event_types, p.event_types);
    set(&mut spec.level, p.level);
    set(&mut spec.custom_headers, p.custom_headers);
    set(&mut spec.enabled, p.enabled);
    if spec == current.spec {
        return Ok(vec![]);
    }
    validate_spec(&spec)?;
    Ok(vec![WebhookUpdated {
        webhook_id: current.id,
        tenant: current.tenant,
        spec,
    }
    .into()])
}

pub(super) fn remove(state: &State, c: RemoveWebhook) -> Decision {
    let current = webhook(state, c.webhook_id)?;
    Ok(vec![WebhookRemoved {
        webhook_id: current.id,
        tenant: current.tenant,
    }
    .into()])
}

pub(super) fn rotate_secret(state: &State, c: RotateWebhookSecret, now: i64) -> Decision {
    let current = webhook(state, c.webhook_id)?;
    validate_fingerprint(&c.secret_fingerprint)?;
    if c.secret_fingerprint == current.secret
        || current
            .retiring
            .as_ref()
            .is_some_and(|r| r.fingerprint == c.secret_fingerprint)
    {
        return Err(DomainError::conflict(
            "secret",
            "the new secret must differ from the current and the retiring one",
        ));
    }
    if c.grace_secs > MAX_SECRET_GRACE_SECS {
        return Err(DomainError::invalid(
            "grace_secs",
            format!("must be at most {MAX_SECRET_GRACE_SECS}"),
        ));
    }
    Ok(vec![WebhookSecretRotated {
        webhook_id: current.id,
        tenant: current.tenant,
        secret_fingerprint: c.secret_fingerprint,
        previous_valid_until: now + i64::from(c.grace_secs),
    }
    .into()])
}

pub(super) fn disable(state: &State, c: DisableWebhook, now: i64) -> Decision {
    let current = webhook(state, c.webhook_id)?;
    validate_text("reason", &c.reason, MAX_DISABLE_REASON_CHARS)?;
    if !current.spec.enabled {
        return Ok(vec![]);
    }
    Ok(vec![WebhookDisabled {
        webhook_id: current.id,
        tenant: current.tenant,
        reason: c.reason,
        at: now,
    }
    .into()])
}
