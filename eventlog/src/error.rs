//! Error types. Appends and reads fail differently: an append can be rejected (a conflict) or
//! fail to become durable; a read can find damaged data, which must name where it is.

use std::sync::Arc;

use crate::{ExpectedVersion, Position};

/// Why the bytes of one record cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("record truncated: needs {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("crc32c mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    #[error("unknown record format byte {0}")]
    UnknownFormat(u8),
    #[error("undecodable envelope: {0}")]
    Envelope(String),
    #[error("record of {size} bytes exceeds the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
}

/// A failed read (or scan) of the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The record that should hold `position` is damaged.
    #[error("corrupt record at position {position}: {source}")]
    Corrupt {
        position: Position,
        #[source]
        source: CodecError,
    },
    /// A record decoded fine but is not where the layout says it must be (or the chunk layout
    /// itself is broken): `position` is where the reader was.
    #[error("log layout broken at position {position}: {detail}")]
    Layout { position: Position, detail: String },
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The log was dropped while a subscriber waited on it.
    #[error("event log closed")]
    Closed,
}

/// A failed or rejected append. Nothing was written unless the variant says otherwise.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    #[error("stream {stream:?}: expected version {expected:?}, actual version {actual}")]
    Conflict {
        stream: String,
        expected: ExpectedVersion,
        actual: u64,
    },
    #[error("an append needs at least one event")]
    Empty,
    #[error("event of {size} bytes exceeds the {max}-byte record limit")]
    TooLarge { size: usize, max: usize },
    /// The group commit this append was part of failed to become durable. Its records may or
    /// may not be in the log after a restart; the log is poisoned meanwhile.
    #[error("durable write failed: {0}")]
    Io(#[source] Arc<std::io::Error>),
    /// An earlier group commit failed; the in-memory state can no longer be trusted to match
    /// the disk, so the log refuses appends until it is reopened.
    #[error("event log poisoned by an earlier write failure; reopen it")]
    Poisoned,
    /// The writer thread is gone (the log is shutting down).
    #[error("event log closed")]
    Closed,
}
