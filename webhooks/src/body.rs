//! The JSON a receiver gets: `{id, type, type_code, timestamp, tenant_id, actor, resource_id,
//! position, data}` (API.md "Webhook delivery"). A body is rendered once per event as a
//! template without `id`, and the message id is spliced in per delivery, so fanning one event
//! out to many endpoints serialises it once.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat};
use domain::model::WebhookLevel;
use domain::Event;
use eventlog::Envelope;
use serde_json::{json, Map, Value};

/// Type code of the test delivery (`POST …/webhooks/{id}/test`); never stored in the log.
pub const TEST_TYPE_CODE: u16 = 4955;
pub const TEST_TYPE_NAME: &str = "webhook.test";

/// RFC 3339 in UTC with microseconds, from the envelope's Unix microseconds.
pub fn timestamp(recorded_at_us: i64) -> String {
    DateTime::from_timestamp_micros(recorded_at_us)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An event read from the log as a body template (level `full`, no `id`).
pub fn render(envelope: &Envelope, event: &Event) -> String {
    let header = json!({
        "type": event.type_name(),
        "type_code": event.type_code(),
        "timestamp": timestamp(envelope.recorded_at_us),
        "tenant_id": envelope.tenant,
        "actor": envelope.actor,
        "resource_id": event.resource_id().to_string(),
        "position": envelope.position,
    });
    template(header, data(event))
}

/// The body of a test delivery to `webhook`.
pub fn render_test(
    webhook: &domain::model::Webhook,
    position: u64,
    at_us: i64,
    actor: &str,
) -> String {
    let header = json!({
        "type": TEST_TYPE_NAME,
        "type_code": TEST_TYPE_CODE,
        "timestamp": timestamp(at_us),
        "tenant_id": webhook.tenant.to_string(),
        "actor": actor,
        "resource_id": webhook.id.to_string(),
        "position": position,
    });
    let data =
        json!({ "message": "a test delivery from halley", "webhook_name": webhook.spec.name });
    template(header, data)
}

fn template(mut header: Value, data: Value) -> String {
    header
        .as_object_mut()
        .expect("the header is an object")
        .insert("data".into(), data);
    header.to_string()
}

/// The template for an endpoint's level: as is for `full`, without `data` for `none`.
pub fn at_level(template: &str, level: WebhookLevel) -> Cow<'_, str> {
    match level {
        WebhookLevel::Full => Cow::Borrowed(template),
        WebhookLevel::None => {
            let mut value: Value =
                serde_json::from_str(template).expect("templates are JSON objects");
            if let Some(map) = value.as_object_mut() {
                map.remove("data");
            }
            Cow::Owned(value.to_string())
        }
    }
}

/// A complete body: `template` with `"id"` first.
pub fn with_id(template: &str, id: &str) -> String {
    let rest = template.strip_prefix('{').unwrap_or(template);
    let mut body = String::with_capacity(template.len() + id.len() + 8);
    body.push_str("{\"id\":");
    if id.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        // Nothing to escape (delivery ids never need it): the quoted text as is.
        body.push('"');
        body.push_str(id);
        body.push('"');
    } else {
        body.push_str(&Value::String(id.to_owned()).to_string());
    }
    if rest != "}" {
        body.push(',');
    }
    body.push_str(rest);
    body
}

/// The event's own fields, with anything secret removed: password hashes, SMTP passwords,
/// device token hashes and secret fingerprints never leave the server.
fn data(event: &Event) -> Value {
    let tagged = serde_json::to_value(event).expect("events serialise to JSON");
    let mut inner = match tagged {
        Value::Object(map) => map.into_iter().next().map(|(_, v)| v).unwrap_or_default(),
        other => other,
    };
    redact(&mut inner);
    inner
}

fn is_secret_key(key: &str) -> bool {
    ["password", "hash", "secret", "token"]
        .iter()
        .any(|word| key.contains(word))
}

fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let keep: Map<String, Value> = std::mem::take(map)
                .into_iter()
                .filter(|(k, _)| !is_secret_key(k))
                .map(|(k, mut v)| {
                    redact(&mut v);
                    (k, v)
                })
                .collect();
            *map = keep;
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::events::{TenantEmailUpdated, UserCreated};
    use domain::ids::{TenantRef, UserId};
    use domain::model::{EmailMode, EmailSettings, UserSpec};

    fn envelope(position: u64) -> Envelope {
        Envelope {
            position,
            stream: "usr_x".into(),
            stream_version: 1,
            tenant: "root".into(),
            type_code: 4100,
            schema_version: 1,
            recorded_at_us: 1_700_000_000_123_456,
            actor: "adm_1".into(),
            correlation_id: "c".into(),
            idempotency_key: None,
        }
    }

    #[test]
    fn renders_the_envelope_and_redacts_secrets() {
        let user_id = UserId::new(1_700_000_000_000, 3);
        let event = Event::UserCreated(UserCreated {
            user_id,
            tenant: TenantRef::Root,
            spec: UserSpec {
                username: "alice".into(),
                account_name: "Alice".into(),
                emails: vec!["a@x.test".into()],
                timezone: "UTC".into(),
                language: "en".into(),
                policy: None,
                suspended: false,
                max_devices: None,
                quota_bytes: None,
            },
            password_hash: "$argon2id$secret".into(),
        });
        let t = render(&envelope(7), &event);
        let full: Value = serde_json::from_str(&with_id(&t, "msg_1")).unwrap();
        assert_eq!(full["id"], "msg_1");
        let quoted: Value = serde_json::from_str(&with_id(&t, "a\"b\\c\n")).unwrap();
        assert_eq!(quoted["id"], "a\"b\\c\n");
        assert_eq!(with_id("{}", "m"), r#"{"id":"m"}"#);
        assert_eq!(full["type"], "user.created");
        assert_eq!(full["type_code"], 4100);
        assert_eq!(full["timestamp"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(full["tenant_id"], "root");
        assert_eq!(full["actor"], "adm_1");
        assert_eq!(full["resource_id"], user_id.to_string());
        assert_eq!(full["position"], 7);
        assert_eq!(full["data"]["spec"]["username"], "alice");
        assert!(!t.contains("argon2"), "{t}");
        let none = at_level(&t, WebhookLevel::None);
        let none: Value = serde_json::from_str(&with_id(&none, "msg_1")).unwrap();
        assert!(none.get("data").is_none());
        assert_eq!(none["position"], 7);

        let smtp = Event::TenantEmailUpdated(TenantEmailUpdated {
            tenant: TenantRef::Root,
            settings: EmailSettings {
                mode: EmailMode::Smtp,
                from_address: "a@x.test".into(),
                from_name: "A".into(),
                host: "smtp.x.test".into(),
                port: 25,
                username: "u".into(),
                password: Some("hunter2".into()),
                allow_invalid_cert: false,
            },
        });
        let t = render(&envelope(8), &smtp);
        assert!(!t.contains("hunter2"));
        assert!(t.contains("smtp.x.test"));
    }
}
