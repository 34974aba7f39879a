use thiserror::Error;

#[derive(Debug, Error)]
pub enum WebhookError {
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("event log: {0}")]
    Log(#[from] eventlog::LogError),
    #[error("syncing the database: {0}")]
    Sync(#[from] std::io::Error),
    #[error("event payload: {0}")]
    Decode(#[from] domain::DecodeError),
    #[error("stored endpoint: {0}")]
    Record(#[from] serde_json::Error),
    #[error("stored delivery: {0}")]
    Delivery(#[from] bincode::error::DecodeError),
    #[error("a secret must be whsec_ followed by base64 of at least 24 bytes")]
    BadSecret,
    #[error("no secret stored for fingerprint {fingerprint}")]
    MissingSecret { fingerprint: String },
    #[error("webhook {id} not found")]
    UnknownWebhook { id: String },
    #[error("delivery {id} not found")]
    UnknownDelivery { id: String },
    #[error("the delivery recorder stopped")]
    RecorderGone,
    #[error("could not start the delivery recorder: {0}")]
    RecorderStart(String),
    #[error("a webhooks task failed: {0}")]
    Task(String),
    #[error("invalid retry schedule {value:?}: {reason}")]
    BadRetrySchedule { value: String, reason: String },
}
