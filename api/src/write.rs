//! The write path every handler uses: run a domain command through the node's writer, then
//! wait until the read models have applied it, so the response and the caller's next read
//! see the change (read your writes).

use domain::{Command, Event};
use eventlog::Position;
use writer::{CommandMeta, ExpectedStream};

use crate::auth::Scope;
use crate::extract::IfMatch;
use crate::idempotency::Idempotent;
use crate::problem::ApiError;
use crate::state::AppState;

/// A command that took effect (or had already, for a retried idempotency key).
#[derive(Debug)]
pub struct Written {
    pub position: Position,
    /// The command's events. For a replayed idempotency key: the last event the first
    /// attempt appended, read back from the log, so a handler finds the id it created then.
    pub events: Vec<Event>,
}

/// A command about to be sent; see [`Write::new`].
pub struct Write<'a> {
    state: &'a AppState,
    meta: CommandMeta,
}

impl<'a> Write<'a> {
    /// A command on behalf of `scope`'s admin.
    pub fn new(state: &'a AppState, scope: &Scope) -> Write<'a> {
        Write::as_actor(state, scope.actor())
    }

    /// A command on behalf of someone without a scope (a login, the server itself).
    pub fn as_actor(state: &'a AppState, actor: String) -> Write<'a> {
        Write {
            state,
            meta: CommandMeta {
                actor,
                correlation_id: correlation_id(),
                idempotency_key: None,
                expected_version: None,
            },
        }
    }

    /// Makes a retry with the same `Idempotency-Key` a no-op in the log as well (this also
    /// holds after a restart, when the in-memory response cache is gone).
    pub fn idempotent(mut self, key: &Idempotent) -> Self {
        self.meta.idempotency_key = key.log_key();
        self
    }

    /// Applies `If-Match` to the aggregate stream `stream` (`ten_…`, `adm_…`, …).
    pub fn if_match(mut self, if_match: IfMatch, stream: impl ToString) -> Self {
        self.meta.expected_version = if_match.0.map(|version| ExpectedStream {
            stream: stream.to_string(),
            version,
        });
        self
    }

    pub async fn execute(self, command: impl Into<Command>) -> Result<Written, ApiError> {
        let Write { state, meta } = self;
        let committed = state.writer.execute(meta, command.into()).await?;
        state.read_models.wait_for(committed.position).await?;
        let events = if committed.replayed {
            read_back(state, committed.position).await?
        } else {
            committed.events
        };
        Ok(Written {
            position: committed.position,
            events,
        })
    }
}

async fn read_back(state: &AppState, position: Position) -> Result<Vec<Event>, ApiError> {
    let records = state
        .log
        .read_all(position.saturating_sub(1), 1)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
    records
        .into_iter()
        .map(|r| {
            domain::decode(r.envelope.type_code, r.envelope.schema_version, &r.payload)
                .map_err(ApiError::internal)
        })
        .collect()
}

fn correlation_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
