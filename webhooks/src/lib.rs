//! Webhooks: Standard Webhooks signing, durable at-least-once delivery with retries and a
//! delivery log, and the live event-stream hub, both fed by tailing the log.
//!
//! [`Webhooks`] is a durable subscriber: it reads the log from its own checkpoint and turns
//! each (event, endpoint) match into a delivery recorded in the same sled batch as the
//! checkpoint, then a dispatcher sends them with per-endpoint queues, bounded concurrency,
//! timeouts and retries. Endpoint settings come from the domain's webhook events; signing
//! secrets are kept here ([`SecretStore`]) and never enter the log. [`StreamHub`] serves the
//! WebSocket stream's events: catch-up from the log, then live, with a bounded buffer per
//! client.
//!
//! Must not know: HTTP routes, authentication, SMTP. Time comes from an injected
//! `writer::Clock`, never from the system directly.

mod body;
mod config;
mod error;
mod metrics;
mod secret;
mod service;
mod sign;
mod store;
mod stream;

pub use body::{at_level, render, render_test, timestamp, with_id, TEST_TYPE_CODE, TEST_TYPE_NAME};
pub use config::{parse_retry_schedule, DeliveryConfig, DEFAULT_RETRY_SCHEDULE};
pub use error::WebhookError;
pub use metrics::{Metrics, MetricsSnapshot};
pub use secret::{Secret, SecretStore, MIN_SECRET_BYTES, SECRET_BYTES, SECRET_PREFIX};
pub use service::{ReplaySummary, Webhooks, CONSUMER};
pub use sign::{sign, signature_header};
pub use store::{Attempt, DeliveryId, DeliveryRecord, DeliveryStatus, KEPT_ATTEMPTS};
pub use stream::{
    CloseReason, Frame, StreamClient, StreamConfig, StreamHub, StreamRequest, HELLO_TYPE_CODE,
};
