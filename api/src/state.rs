//! [`AppState`]: everything a handler may touch, and the small storage seam ([`KeyValue`])
//! the API keeps its own secrets in.

use std::sync::Arc;

use eventlog::{CommitStats, EventLog, Position};
use projections::{ProjectionHandle, ReadModels};
use writer::{Clock, Writer};

use crate::agent::DeviceHub;
use crate::auth::Auth;
use crate::idempotency::IdempotencyCache;
use crate::secrets::SecretBox;

/// A durable key-value tree the API keeps non-event data in (signing keys, refresh-token
/// families). The binary backs it with a tree of the log's database; the API does not know
/// which.
pub trait KeyValue: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Makes every earlier `put` durable.
    fn flush(&self) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key-value store: {0}")]
pub struct StoreError(pub String);

/// Tunables the binary reads from its configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Lifetime of an access token (the JWT).
    pub access_token_ttl_secs: u64,
    /// Largest request body accepted; larger ones get 413.
    pub body_limit_bytes: usize,
    /// argon2id cost for new password hashes (verification reads the cost from the hash).
    pub argon2: Argon2Params,
    /// How long a device may stay away before its running jobs are marked abandoned (7007).
    pub job_abandon_grace_secs: u64,
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            access_token_ttl_secs: 900,
            body_limit_bytes: 256 * 1024,
            argon2: Argon2Params {
                memory_kib: 19 * 1024,
                iterations: 2,
                parallelism: 1,
            },
            job_abandon_grace_secs: 600,
        }
    }
}

/// Everything a handler may touch. Cheap to clone; one copy per HTTP worker.
#[derive(Clone)]
pub struct AppState {
    pub log: Arc<dyn EventLog>,
    /// The read models every GET answers from, and how far they have applied the log.
    pub read_models: ProjectionHandle<ReadModels>,
    /// The log backend's group-commit counters, for `/metrics`. A function rather than the
    /// backend itself, so handlers cannot reach past the `EventLog` trait.
    pub commit_stats: Arc<dyn Fn() -> CommitStats + Send + Sync>,
    /// The log head when the server started: `/readyz` answers 200 once the read models have
    /// caught up to it, so a restarted node does not serve reads from a half-replayed state.
    pub startup_head: Position,
    /// Every write goes through the node's command writer.
    pub writer: Writer,
    pub clock: Arc<dyn Clock>,
    /// Passwords, tokens, login limits.
    pub auth: Arc<Auth>,
    /// Encrypts secrets (SMTP passwords) before they enter a command.
    pub secrets: Arc<SecretBox>,
    pub idempotency: Arc<IdempotencyCache>,
    pub config: Arc<ApiConfig>,
    /// Live device connections; the scheduler reaches them through the same hub.
    pub devices: Arc<DeviceHub>,
    /// Webhook endpoints' secrets, delivery log, retries and replays.
    pub webhooks: webhooks::Webhooks,
    /// The live event stream (`/events/stream`).
    pub stream: webhooks::StreamHub,
}

impl AppState {
    /// Unix seconds from the injected clock.
    pub fn now_secs(&self) -> i64 {
        self.clock.now_secs()
    }

    /// A fresh id for a new object: the clock's millisecond and 80 random bits, e.g.
    /// `state.new_id(TenantId::new)`.
    pub fn new_id<T>(&self, make: fn(u64, u128) -> T) -> T {
        use rand::RngCore;
        let ms = u64::try_from(self.clock.now_us().div_euclid(1000)).unwrap_or(0);
        let mut random = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut random);
        make(ms, u128::from_le_bytes(random))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::{KeyValue, StoreError};

    /// An in-memory [`KeyValue`] for unit tests.
    #[derive(Default)]
    pub(crate) struct MemoryStore(Mutex<HashMap<Vec<u8>, Vec<u8>>>);

    impl KeyValue for MemoryStore {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.0.lock().unwrap().get(key).cloned())
        }
        fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
            self.0.lock().unwrap().insert(key.to_vec(), value.to_vec());
            Ok(())
        }
        fn flush(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }
}
