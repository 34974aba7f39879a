//! The durable, ordered event log: the only source of truth in halley.
//!
//! The [`EventLog`] trait is what every other crate programs against; [`SledLog`] is the
//! embedded backend. A record is a frame (length + crc32c) around an [`Envelope`] and an opaque
//! payload; this crate never looks inside a payload, so it knows nothing about any particular
//! event. Subscribers (projections, fan-out) read from their own durable [`Checkpoints`].
//!
//! Must not know: HTTP, the domain's event types, wall-clock time (callers stamp events).

mod checkpoint;
mod codec;
mod error;
mod journal;
mod sled_log;
mod subscription;
pub mod verify;
mod worker;

pub use checkpoint::{Checkpoints, CHECKPOINT_KEY};
pub use codec::{
    decode_record, decode_record_ref, encode_record, FORMAT_BINCODE_2_0_1, FRAME_HEADER_LEN,
    MAX_RECORD_BYTES,
};
pub use error::{AppendError, CodecError, LogError};
pub use sled_log::{
    data_file, CommitStats, DbSync, Records, SledLog, SledLogOptions, CHUNK_MAX, LOG_TREE,
};
pub use subscription::Subscription;

use std::ops::ControlFlow;

use async_trait::async_trait;

/// A global log position. Positions start at 1 and are gapless; 0 means "before the first".
pub type Position = u64;

/// What the appender believes the stream's current version to be (optimistic concurrency).
/// A stream's version is the number of events in it; the first event has version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet (version 0).
    NoStream,
    /// The stream must be at exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    pub fn admits(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }
}

/// One event to append; the log fills in position, stream and stream version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Tenant id, or `root` for server-level events.
    pub tenant: String,
    /// Numeric event type code (DOMAIN.md table).
    pub type_code: u16,
    /// Version of the payload's schema for this type code.
    pub schema_version: u16,
    /// Unix time in microseconds, stamped by the caller's clock.
    pub recorded_at_us: i64,
    /// Who caused it (an admin id, `system`, a device id, …).
    pub actor: String,
    /// Ties together the events of one request or workflow.
    pub correlation_id: String,
    /// The encoded event body; opaque to the log.
    pub payload: Vec<u8>,
}

/// An append of one or more events to one stream, all-or-nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRequest {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    /// A retried append with the same key returns the first append's result and writes nothing.
    pub idempotency_key: Option<String>,
}

/// Where an append landed: positions `first..=last`, and the stream's version afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub first: Position,
    pub last: Position,
    pub stream_version: u64,
    /// True when this answer replays an earlier append with the same idempotency key.
    pub replayed: bool,
}

/// Metadata every record carries in front of its payload. `S` is `String` in a record read
/// out of the log, and `&str` in a [`RecordRef`] borrowed from the log's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<S = String> {
    pub position: Position,
    pub stream: S,
    pub stream_version: u64,
    pub tenant: S,
    pub type_code: u16,
    pub schema_version: u16,
    pub recorded_at_us: i64,
    pub actor: S,
    pub correlation_id: S,
    /// Set on every record of an append that carried an idempotency key, so the key table
    /// (with each append's first and last position) can be rebuilt from the log alone.
    pub idempotency_key: Option<S>,
}

impl Envelope {
    /// The envelope with borrowed strings, as a [`RecordRef`] carries it.
    pub fn borrowed(&self) -> Envelope<&str> {
        Envelope {
            position: self.position,
            stream: &self.stream,
            stream_version: self.stream_version,
            tenant: &self.tenant,
            type_code: self.type_code,
            schema_version: self.schema_version,
            recorded_at_us: self.recorded_at_us,
            actor: &self.actor,
            correlation_id: &self.correlation_id,
            idempotency_key: self.idempotency_key.as_deref(),
        }
    }
}

impl Envelope<&str> {
    /// The envelope with its strings copied out of the log's storage.
    pub fn owned(&self) -> Envelope {
        Envelope {
            position: self.position,
            stream: self.stream.to_owned(),
            stream_version: self.stream_version,
            tenant: self.tenant.to_owned(),
            type_code: self.type_code,
            schema_version: self.schema_version,
            recorded_at_us: self.recorded_at_us,
            actor: self.actor.to_owned(),
            correlation_id: self.correlation_id.to_owned(),
            idempotency_key: self.idempotency_key.map(str::to_owned),
        }
    }
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub envelope: Envelope,
    pub payload: Vec<u8>,
}

/// A record borrowed from the log's storage, as [`EventLog::scan`] hands it to its visitor.
/// Reading one allocates nothing: copying the envelope's strings and the payload out of every
/// record (five allocations, six with an idempotency key) was most of the allocator traffic
/// of a replay, whose reader allocated what its applier freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub envelope: Envelope<&'a str>,
    pub payload: &'a [u8],
    /// The whole record as stored, frame included: a copy decodes again with
    /// [`decode_record_ref`], so a consumer can put off decoding at the cost of one copy.
    pub bytes: &'a [u8],
}

impl RecordRef<'_> {
    /// The record copied out of the log's storage.
    pub fn owned(&self) -> RecordedEvent {
        RecordedEvent {
            envelope: self.envelope.owned(),
            payload: self.payload.to_vec(),
        }
    }
}

/// The event log every component writes to and reads from.
///
/// Appends return only once their records are durable (they survive `kill -9` and power
/// loss). Reads see only durable records.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends `req.events` to `req.stream` if `req.expected` admits the stream's version.
    async fn append(&self, req: AppendRequest) -> Result<Appended, AppendError>;

    /// Appends to several streams as one transaction: every request is admitted and written
    /// in one durable commit at contiguous positions, or none is. The first request's
    /// idempotency key (if any) keys the whole transaction; a replay answers with one
    /// [`Appended`] spanning the transaction's first..last positions.
    async fn append_many(&self, reqs: Vec<AppendRequest>) -> Result<Vec<Appended>, AppendError>;

    /// The first result of the append made with this idempotency key, marked `replayed`.
    fn idempotent_result(&self, key: &str) -> Option<Appended>;

    /// Reads up to `limit` events of one stream, starting at stream version `from_version`
    /// (1 = the first event).
    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError>;

    /// Reads up to `limit` events with positions strictly greater than `after`, in order.
    async fn read_all(&self, after: Position, limit: usize)
        -> Result<Vec<RecordedEvent>, LogError>;

    /// Hands the events with positions greater than `after` and up to `until` (capped at the
    /// head) to `visit` one at a time, in order, until `visit` breaks. Blocking: for long scans
    /// on a blocking thread. Each record is borrowed from the log's storage, checked (crc,
    /// position) but not copied: the visitor copies what it keeps.
    fn scan(
        &self,
        after: Position,
        until: Position,
        visit: &mut dyn FnMut(RecordRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), LogError>;

    /// The stream's current version (0 if it does not exist).
    fn stream_version(&self, stream: &str) -> u64;

    /// The last durable position (0 for an empty log).
    fn head(&self) -> Position;

    /// A receiver that changes whenever the head advances; the wake-up for subscribers.
    fn watch_head(&self) -> tokio::sync::watch::Receiver<Position>;
}
