//! The delivery tree's layout. Everything lives in the consumer tree `sub/webhooks`, next to
//! the checkpoint, so the subscriber commits endpoints, bodies, routed events and its
//! position in one sled batch:
//!
//! - `w` + webhook id → the endpoint as of the checkpoint (JSON `domain::model::Webhook`)
//! - `b` + position + seq → the body template (`crate::render`) of an event (seq 0) or a test
//!   delivery
//! - `q` + position + seq → an open event: its type code and the endpoints it was routed to
//!   ([`open_row`]); removed with the outcome of its last unsettled delivery
//! - `d` + webhook id + position + seq → [`DeliveryRecord`] (bincode, kept small: written on
//!   every attempt's outcome). A delivery of an open event without a record, or with a
//!   pending one, still needs an attempt; that is all a restart has to find.

use std::fmt;
use std::str::FromStr;

use domain::ids::WebhookId;
use eventlog::Position;
use serde::{Deserialize, Serialize};

use crate::error::WebhookError;

/// Attempts kept per delivery in its log; older ones are summarised by `attempt_count`.
pub const KEPT_ATTEMPTS: usize = 20;

/// A delivery: one event (or test) for one endpoint. Its id is the `webhook-id` header,
/// stable across retries, manual retries and replays: `msg_<position>_<seq>_<webhook id>`
/// (seq is 0 for log events, a fresh number for test deliveries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryId {
    pub webhook: WebhookId,
    pub position: Position,
    pub seq: u64,
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "msg_{}_{}_{}", self.position, self.seq, self.webhook)
    }
}

impl FromStr for DeliveryId {
    type Err = WebhookError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || WebhookError::UnknownDelivery { id: s.to_owned() };
        let mut parts = s.strip_prefix("msg_").ok_or_else(bad)?.splitn(3, '_');
        let position = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let seq = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let webhook = parts
            .next()
            .and_then(|w| WebhookId::parse(w).ok())
            .ok_or_else(bad)?;
        Ok(DeliveryId {
            webhook,
            position,
            seq,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or a retry.
    Pending,
    Delivered,
    /// Every scheduled retry failed, or the endpoint answered 410.
    Failed,
    /// The endpoint was disabled or removed before the delivery succeeded.
    Cancelled,
}

/// One HTTP attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Unix microseconds when the request was sent.
    pub at_us: i64,
    /// The response status, if a response came.
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// Why it failed (non-2xx, timeout, connection error), if it did.
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub webhook_id: WebhookId,
    pub position: Position,
    pub seq: u64,
    pub type_code: u16,
    pub status: DeliveryStatus,
    pub created_at_us: i64,
    /// When the next attempt is due (meaningful while pending).
    pub next_attempt_at_us: i64,
    /// Every attempt ever made, including before manual retries and replays.
    pub attempt_count: u32,
    /// Failures since the delivery was (re)queued: picks the next retry delay.
    pub failures_in_series: u32,
    /// The latest attempts, oldest first, at most [`KEPT_ATTEMPTS`].
    pub attempts: Vec<Attempt>,
    pub last_error: Option<String>,
}

impl DeliveryRecord {
    pub fn id(&self) -> DeliveryId {
        DeliveryId {
            webhook: self.webhook_id,
            position: self.position,
            seq: self.seq,
        }
    }

    pub(crate) fn new(id: DeliveryId, type_code: u16, now_us: i64) -> DeliveryRecord {
        DeliveryRecord {
            webhook_id: id.webhook,
            position: id.position,
            seq: id.seq,
            type_code,
            status: DeliveryStatus::Pending,
            created_at_us: now_us,
            next_attempt_at_us: now_us,
            attempt_count: 0,
            failures_in_series: 0,
            attempts: Vec::new(),
            last_error: None,
        }
    }

    pub(crate) fn requeue(&mut self, now_us: i64) {
        self.status = DeliveryStatus::Pending;
        self.next_attempt_at_us = now_us;
        self.failures_in_series = 0;
    }

    pub(crate) fn record(&mut self, attempt: Attempt) {
        self.attempt_count += 1;
        self.last_error.clone_from(&attempt.error);
        if self.attempts.len() == KEPT_ATTEMPTS {
            self.attempts.remove(0);
        }
        self.attempts.push(attempt);
    }
}

pub(crate) const ENDPOINT: u8 = b'w';
pub(crate) const BODY: u8 = b'b';
pub(crate) const DELIVERY: u8 = b'd';
pub(crate) const OPEN: u8 = b'q';

pub(crate) fn endpoint_key(id: WebhookId) -> Vec<u8> {
    let mut key = vec![ENDPOINT];
    key.extend_from_slice(id.to_string().as_bytes());
    key
}

pub(crate) fn body_key(position: Position, seq: u64) -> [u8; 17] {
    event_key(BODY, position, seq)
}

pub(crate) fn open_key(position: Position, seq: u64) -> [u8; 17] {
    event_key(OPEN, position, seq)
}

fn event_key(kind: u8, position: Position, seq: u64) -> [u8; 17] {
    let mut key = [kind; 17];
    key[1..9].copy_from_slice(&position.to_be_bytes());
    key[9..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// Position and seq of an `open_key`.
pub(crate) fn parse_open_key(key: &[u8]) -> Option<(Position, u64)> {
    if key.len() != 17 || key[0] != OPEN {
        return None;
    }
    Some((
        u64::from_be_bytes(key[1..9].try_into().ok()?),
        u64::from_be_bytes(key[9..].try_into().ok()?),
    ))
}

/// An open event's row: its type code (2 bytes, big-endian), then each endpoint's id.
pub(crate) fn open_row(type_code: u16, webhooks: &[WebhookId]) -> Vec<u8> {
    let mut row = type_code.to_be_bytes().to_vec();
    for webhook in webhooks {
        row.extend_from_slice(webhook.to_string().as_bytes());
    }
    row
}

pub(crate) fn parse_open_row(row: &[u8]) -> Option<(u16, Vec<WebhookId>)> {
    let type_code = u16::from_be_bytes(row.get(..2)?.try_into().ok()?);
    let webhooks = row[2..]
        .chunks(WEBHOOK_ID_LEN)
        .map(|id| WebhookId::parse(std::str::from_utf8(id).ok()?).ok())
        .collect::<Option<Vec<_>>>()?;
    Some((type_code, webhooks))
}

/// A webhook id's text length (`whk_` + 26).
const WEBHOOK_ID_LEN: usize = 30;

/// `kind` + webhook id, the prefix of one endpoint's deliveries.
pub(crate) fn endpoint_prefix(kind: u8, webhook: WebhookId) -> Vec<u8> {
    let mut key = vec![kind];
    key.extend_from_slice(webhook.to_string().as_bytes());
    key
}

pub(crate) fn delivery_key(kind: u8, id: DeliveryId) -> Vec<u8> {
    let mut key = endpoint_prefix(kind, id.webhook);
    key.extend_from_slice(&id.position.to_be_bytes());
    key.extend_from_slice(&id.seq.to_be_bytes());
    key
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialise to JSON")
}

pub(crate) fn load_body(
    tree: &sled::Tree,
    position: Position,
    seq: u64,
) -> Result<Option<String>, WebhookError> {
    match tree.get(body_key(position, seq))? {
        None => Ok(None),
        Some(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
    }
}

pub(crate) fn encode_record(record: &DeliveryRecord) -> Vec<u8> {
    bincode::serde::encode_to_vec(record, bincode::config::standard())
        .expect("delivery records always encode")
}

pub(crate) fn decode_record(bytes: &[u8]) -> Result<DeliveryRecord, WebhookError> {
    let (record, _) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())?;
    Ok(record)
}

pub(crate) fn load_record(
    tree: &sled::Tree,
    id: DeliveryId,
) -> Result<Option<DeliveryRecord>, WebhookError> {
    match tree.get(delivery_key(DELIVERY, id))? {
        None => Ok(None),
        Some(bytes) => decode_record(&bytes).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_and_keys_round_trip() {
        let id = DeliveryId {
            webhook: WebhookId::new(1_700_000_000_000, 5),
            position: 42,
            seq: 7,
        };
        assert_eq!(id.to_string().parse::<DeliveryId>().unwrap(), id);
        assert_eq!(parse_open_key(&open_key(42, 7)), Some((42, 7)));
        assert_eq!(parse_open_key(&body_key(42, 7)), None);
        let other = WebhookId::new(1_700_000_000_001, 9);
        let row = open_row(4600, &[id.webhook, other]);
        assert_eq!(parse_open_row(&row), Some((4600, vec![id.webhook, other])));
        assert!("msg_x_0_whk_1".parse::<DeliveryId>().is_err());
        assert!("evt_1_0_whk_1".parse::<DeliveryId>().is_err());
    }
}
