use eventlog::{LogError, Position};

/// Why a projector stopped or a snapshot could not be taken.
///
/// Every variant is fatal for the runner: a read model that skipped an event would answer
/// queries with state that never existed, so the runner stops instead and the error surfaces
/// to whoever started it (and to anyone waiting in `wait_for`).
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("reading the event log failed")]
    Log(#[from] LogError),
    #[error("event at position {position} (type code {type_code}) cannot be decoded: {source}")]
    Decode {
        position: Position,
        type_code: u16,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("event at position {position} (type code {type_code}) cannot be applied: {source}")]
    Apply {
        position: Position,
        type_code: u16,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the log returned position {got} after position {after}; positions must increase")]
    OutOfOrder { after: Position, got: Position },
    #[error("encoding the snapshot failed: {0}")]
    SnapshotEncode(String),
    #[error("reading or storing the snapshot failed")]
    Sled(#[from] sled::Error),
    #[error("the projector stopped before reaching position {wanted} (it reached {reached})")]
    Halted { wanted: Position, reached: Position },
    #[error("a projection task panicked or was cancelled")]
    TaskFailed(#[from] tokio::task::JoinError),
}
