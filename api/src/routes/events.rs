//! `/events`: the audit log, read straight from the event log in position order.
//!
//! A tenant admin sees only its tenant's events, a root admin every event. Each request
//! reads at most [`MAX_SCANNED`] records, so a tenant admin paging through a log dominated
//! by other tenants gets short (even empty) pages with a `next_cursor` rather than one
//! request that reads the whole log; `next_cursor` is `null` only at the head.
//!
//! `data` is the event's own fields with every secret removed: password hashes, SMTP
//! passwords (even encrypted), token hashes, webhook secrets and their fingerprints, and
//! webhook custom headers (which often carry credentials).

use actix_web::{get, web};
use domain::events::EVENT_TYPES;
use eventlog::RecordedEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::Scope;
use crate::extract::Query;
use crate::paging::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::problem::ApiError;
use crate::reply::Reply;
use crate::state::AppState;

pub(super) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(list);
}

/// Log records read per request at most, matching or not.
pub const MAX_SCANNED: usize = 10_000;
const BATCH: usize = 1_000;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events after this log position (default 0: from the start). Pass the previous
    /// page's `next_cursor`.
    pub after: Option<u64>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Comma-separated type codes or names, e.g. `4100,user.updated`; default: every type.
    pub types: Option<String>,
}

/// One event as recorded.
#[derive(Serialize, ToSchema)]
pub struct AuditEvent {
    /// The event's position in the log; strictly increasing.
    pub position: u64,
    pub type_code: u16,
    /// Dotted name, e.g. `user.created`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// A tenant id, or `root`.
    pub tenant_id: String,
    /// Who caused it: an admin id, or the server.
    pub actor: String,
    /// The object the event is about.
    pub resource_id: String,
    /// The aggregate stream the event belongs to, and its version after the event.
    pub stream: String,
    pub stream_version: u64,
    /// RFC 3339, UTC, microseconds.
    pub recorded_at: String,
    /// Shared by the events of one command.
    pub correlation_id: String,
    /// The event's fields, secrets removed.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A page of events.
#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<AuditEvent>,
    /// Pass as `?after=` for the next page; `null` once the log's head was reached.
    pub next_cursor: Option<String>,
}

/// The audit log in position order, scoped to the caller.
#[utoipa::path(
    tag = "events",
    params(EventsQuery),
    responses((status = 200, description = "A page of events. It may hold fewer than `limit` events (even none) while `next_cursor` is set: each request reads a bounded stretch of the log.", body = EventPage)),
    security(("bearer" = []))
)]
#[get("/events")]
async fn list(
    state: web::Data<AppState>,
    scope: Scope,
    Query(q): Query<EventsQuery>,
) -> Result<Reply, ApiError> {
    let mut cursor = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be 1 to {MAX_LIMIT}"),
        ));
    }
    let limit = limit as usize;
    let types = q.types.as_deref().map(parse_types).transpose()?;
    let tenant = match scope.read() {
        projections::Scope::Root => None,
        projections::Scope::Tenant(id) => Some(id.to_string()),
    };
    let mut items = Vec::new();
    let mut scanned = 0;
    let mut at_head = false;
    'scan: while items.len() < limit && scanned < MAX_SCANNED {
        let want = BATCH.min(MAX_SCANNED - scanned);
        let batch = state
            .log
            .read_all(cursor, want)
            .await
            .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
        let short = batch.len() < want;
        for record in batch {
            cursor = record.envelope.position;
            scanned += 1;
            let e = &record.envelope;
            let visible = tenant.as_ref().is_none_or(|t| *t == e.tenant);
            let wanted = types.as_ref().is_none_or(|t| t.contains(&e.type_code));
            if visible && wanted {
                items.push(audit_event(record));
                if items.len() == limit {
                    break 'scan;
                }
            }
        }
        // Only a batch read to its end can show that nothing follows.
        if short {
            at_head = true;
            break;
        }
    }
    let next_cursor = (!at_head && cursor < state.log.head()).then(|| cursor.to_string());
    Ok(Reply::ok(&EventPage { items, next_cursor }))
}

/// `types=`: codes or dotted names, comma-separated.
fn parse_types(raw: &str) -> Result<Vec<u16>, ApiError> {
    raw.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            EVENT_TYPES
                .iter()
                .find(|(code, name)| *name == t || t.parse::<u16>().ok() == Some(*code))
                .map(|(code, _)| *code)
                .ok_or_else(|| ApiError::invalid("types", format!("unknown event type {t:?}")))
        })
        .collect()
}

fn audit_event(record: RecordedEvent) -> AuditEvent {
    let e = record.envelope;
    let decoded = domain::decode(e.type_code, e.schema_version, &record.payload);
    let (type_name, resource_id, data) = match decoded {
        Ok(event) => (
            event.type_name().to_owned(),
            event.resource_id().to_string(),
            data(&event),
        ),
        Err(err) => {
            // A record this build cannot read (written by a newer one): show the envelope,
            // never the raw payload.
            tracing::warn!(position = e.position, error = %err, "undecodable event in the audit log");
            (
                domain::Event::name_of(e.type_code)
                    .unwrap_or("unknown")
                    .to_owned(),
                e.stream.clone(),
                Value::Null,
            )
        }
    };
    AuditEvent {
        position: e.position,
        type_code: e.type_code,
        type_name,
        tenant_id: e.tenant,
        actor: e.actor,
        resource_id,
        stream: e.stream,
        stream_version: e.stream_version,
        recorded_at: rfc3339_micros(e.recorded_at_us),
        correlation_id: e.correlation_id,
        data,
    }
}

/// The event's own fields (the variant's struct, without the enum tag), secrets removed.
fn data(event: &domain::Event) -> Value {
    match serde_json::to_value(event) {
        Ok(Value::Object(map)) => {
            let mut inner = map.into_iter().next().map(|(_, v)| v).unwrap_or_default();
            redact(&mut inner);
            inner
        }
        _ => Value::Null,
    }
}

fn is_secret_key(key: &str) -> bool {
    [
        "password",
        "hash",
        "secret",
        "token",
        "fingerprint",
        "custom_headers",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// Removes every secret-named field, at any depth.
fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let kept: Map<String, Value> = std::mem::take(map)
                .into_iter()
                .filter(|(k, _)| !is_secret_key(k))
                .map(|(k, mut v)| {
                    redact(&mut v);
                    (k, v)
                })
                .collect();
            *map = kept;
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` from Unix microseconds (proleptic Gregorian, UTC).
fn rfc3339_micros(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_micros(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            rfc3339_micros(951_782_400_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(rfc3339_micros(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn secrets_are_removed_at_any_depth() {
        let mut v = serde_json::json!({
            "user_id": "usr_1",
            "password_hash": "$argon2id$…",
            "settings": {"host": "smtp", "password": "sealed"},
            "spec": {"url": "https://x", "custom_headers": {"authorization": "Bearer x"}},
            "secret_fingerprint": "ab",
            "list": [{"token_hash": "t", "ok": 1}],
        });
        redact(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "user_id": "usr_1",
                "settings": {"host": "smtp"},
                "spec": {"url": "https://x"},
                "list": [{"ok": 1}],
            })
        );
    }

    #[test]
    fn types_take_codes_and_names() {
        let (code, name) = EVENT_TYPES[0];
        assert_eq!(
            parse_types(&format!("{code}, {name}")).unwrap(),
            vec![code, code]
        );
        assert!(parse_types("no.such.type").is_err());
    }
}
