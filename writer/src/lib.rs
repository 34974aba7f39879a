//! The node's command writer: decides commands against the in-memory domain state and
//! appends the resulting events to the log, batching many commands into one durable commit.
//!
//! One task owns the [`State`]. It takes every queued command, decides each in turn (a
//! command sees the effects of the ones decided before it), submits their appends to the log
//! in decision order and waits until all are durable before it answers and takes the next
//! round. So decisions are serialised, a 2xx is durable, and under load one `fdatasync` covers
//! a whole round of commands (group commit at the command level, on top of the log's own).
//!
//! Must not know: HTTP, sled, read models. The state is handed in at start (from the
//! projections' caught-up copy) and is kept in step with the log by this task alone.

mod clock;

pub use clock::{Clock, ManualClock, SystemClock};

use std::collections::HashMap;
use std::sync::Arc;

use domain::{decide, encode, Command, DomainError, Event, State};
use eventlog::{AppendError, AppendRequest, EventLog, ExpectedVersion, NewEvent, Position};
use tokio::sync::{mpsc, oneshot};

/// Who asked, and how to recognise a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandMeta {
    /// An admin id, a device id, `system`, …
    pub actor: String,
    pub correlation_id: String,
    /// A retried command with the same key (already scoped by the caller, e.g. per tenant)
    /// returns the first result and changes nothing.
    pub idempotency_key: Option<String>,
    /// Optimistic concurrency (HTTP `If-Match`): the command is decided only if this stream
    /// is at exactly this version when its turn comes.
    pub expected_version: Option<ExpectedStream>,
}

/// A stream version the caller read and expects to still be current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedStream {
    pub stream: String,
    pub version: u64,
}

/// A command that took effect (or had already taken effect, when `replayed`).
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// The last position written by the command (or the log head when it changed nothing);
    /// wait for the projections to reach it before reading.
    pub position: Position,
    /// The events the command produced; empty for a no-op or a replay.
    pub events: Vec<Event>,
    /// True when the idempotency key had been used before.
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("event log: {0}")]
    Log(#[from] AppendError),
    /// The stream named by [`CommandMeta::expected_version`] moved on since the caller read it.
    #[error("{stream} is at version {actual}, not {expected}")]
    VersionMismatch {
        stream: String,
        expected: u64,
        actual: u64,
    },
    /// The writer stopped, or a failed commit left its state out of step with the log; the
    /// node must be restarted to reload it.
    #[error("the command writer is unavailable")]
    Unavailable,
}

struct Request {
    meta: CommandMeta,
    command: Command,
    reply: oneshot::Sender<Result<Committed, WriteError>>,
}

/// A handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    requests: mpsc::Sender<Request>,
}

/// The most commands one round decides before committing.
const MAX_ROUND: usize = 1024;

impl Writer {
    /// Starts the writer task on the current tokio runtime. `state` must reflect exactly the
    /// log's current head. The task ends (and releases the log) once every handle is dropped
    /// and the queued commands are answered; await the join handle to know when.
    pub fn start(
        log: Arc<dyn EventLog>,
        state: State,
        clock: Arc<dyn Clock>,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let (requests, queue) = mpsc::channel(4 * MAX_ROUND);
        let task = Task {
            log,
            state,
            clock,
            queue,
            poisoned: false,
        };
        (Writer { requests }, tokio::spawn(task.run()))
    }

    /// Decides `command`, appends its events durably, and answers with where they landed.
    pub async fn execute(
        &self,
        meta: CommandMeta,
        command: Command,
    ) -> Result<Committed, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request {
                meta,
                command,
                reply,
            })
            .await
            .map_err(|_| WriteError::Unavailable)?;
        answer.await.map_err(|_| WriteError::Unavailable)?
    }
}

struct Task {
    log: Arc<dyn EventLog>,
    state: State,
    clock: Arc<dyn Clock>,
    queue: mpsc::Receiver<Request>,
    poisoned: bool,
}

/// A decided command waiting for its append.
struct Decided {
    reply: oneshot::Sender<Result<Committed, WriteError>>,
    events: Vec<Event>,
    appends: Vec<AppendRequest>,
    /// A retry of the command at this index of the same round.
    retry_of: Option<usize>,
}

impl Task {
    async fn run(mut self) {
        let mut round = Vec::with_capacity(MAX_ROUND);
        while self.queue.recv_many(&mut round, MAX_ROUND).await > 0 {
            if self.poisoned {
                for request in round.drain(..) {
                    answer(request.reply, Err(WriteError::Unavailable));
                }
                continue;
            }
            self.round(round.drain(..)).await;
        }
    }

    async fn round(&mut self, requests: impl Iterator<Item = Request>) {
        let now_us = self.clock.now_us();
        let head = self.log.head();
        // Versions of streams this round already appends to; others come from the log, which
        // is exact because the previous round is durable before this one starts.
        let mut versions: HashMap<String, u64> = HashMap::new();
        let mut keys_in_round: HashMap<String, usize> = HashMap::new();
        let mut decided: Vec<Decided> = Vec::new();
        for Request {
            meta,
            command,
            reply,
        } in requests
        {
            if let Some(key) = &meta.idempotency_key {
                if let Some(first) = self.log.idempotent_result(key) {
                    answer(reply, Ok(replayed(first.last)));
                    continue;
                }
                if let Some(&first) = keys_in_round.get(key) {
                    // The first use is in this very round; answer the retry once it is durable.
                    decided.push(Decided {
                        reply,
                        events: Vec::new(),
                        appends: Vec::new(),
                        retry_of: Some(first),
                    });
                    continue;
                }
            }
            if let Some(expected) = &meta.expected_version {
                // The version as of this point of the round: the log's, plus what commands
                // decided earlier in the round append to the stream.
                let actual = versions
                    .get(&expected.stream)
                    .copied()
                    .unwrap_or_else(|| self.log.stream_version(&expected.stream));
                if actual != expected.version {
                    answer(
                        reply,
                        Err(WriteError::VersionMismatch {
                            stream: expected.stream.clone(),
                            expected: expected.version,
                            actual,
                        }),
                    );
                    continue;
                }
            }
            let events = match decide(&self.state, command, now_us.div_euclid(1_000_000)) {
                Ok(events) => events,
                Err(e) => {
                    answer(reply, Err(e.into()));
                    continue;
                }
            };
            for event in &events {
                self.state.apply(event);
            }
            let appends = self.appends_for(&events, &meta, now_us, &mut versions);
            if let Some(key) = meta.idempotency_key {
                keys_in_round.insert(key, decided.len());
            }
            decided.push(Decided {
                reply,
                events,
                appends,
                retry_of: None,
            });
        }

        // Submitting in decision order matters: the log assigns positions in the order its
        // appends arrive, and `join_all` polls (and so submits) its futures in order.
        let results = futures_join_all(
            decided
                .iter_mut()
                .map(|d| std::mem::take(&mut d.appends))
                .map(|appends| {
                    let log = Arc::clone(&self.log);
                    async move {
                        if appends.is_empty() {
                            Ok(Vec::new())
                        } else {
                            log.append_many(appends).await
                        }
                    }
                }),
        )
        .await;

        if results.iter().any(|r| r.is_err()) {
            // Our state already holds every event of this round; some are not in the log.
            // Refuse further commands rather than decide against state the log does not have.
            tracing::error!("a commit failed; the command writer stops until restart");
            self.poisoned = true;
            for (d, result) in decided.into_iter().zip(results) {
                let error = match result {
                    Err(e) => WriteError::Log(e),
                    Ok(_) => WriteError::Unavailable,
                };
                answer(d.reply, Err(error));
            }
            return;
        }
        // A command that changed nothing answers with the head it was decided against.
        let positions: Vec<Position> = results
            .iter()
            .map(|r| {
                r.as_ref()
                    .ok()
                    .and_then(|appended| appended.last())
                    .map_or(head, |a| a.last)
            })
            .collect();
        for (i, d) in decided.into_iter().enumerate() {
            let outcome = match d.retry_of {
                Some(first) => replayed(positions[first]),
                None => Committed {
                    position: positions[i],
                    events: d.events,
                    replayed: false,
                },
            };
            answer(d.reply, Ok(outcome));
        }
    }

    /// One append per stream the events touch, in order of first appearance; all of a
    /// command's appends commit together or not at all.
    fn appends_for(
        &self,
        events: &[Event],
        meta: &CommandMeta,
        now_us: i64,
        versions: &mut HashMap<String, u64>,
    ) -> Vec<AppendRequest> {
        let mut appends: Vec<AppendRequest> = Vec::new();
        for event in events {
            let stream = event.stream();
            let encoded = encode(event);
            let new = NewEvent {
                tenant: event.tenant().to_string(),
                type_code: encoded.type_code,
                schema_version: encoded.schema_version,
                recorded_at_us: now_us,
                actor: meta.actor.clone(),
                correlation_id: meta.correlation_id.clone(),
                payload: encoded.payload,
            };
            match appends.iter_mut().find(|a| a.stream == stream) {
                Some(append) => append.events.push(new),
                None => {
                    let version = *versions
                        .entry(stream.clone())
                        .or_insert_with(|| self.log.stream_version(&stream));
                    appends.push(AppendRequest {
                        stream,
                        expected: ExpectedVersion::Exact(version),
                        events: vec![new],
                        idempotency_key: None,
                    });
                }
            }
        }
        for append in &appends {
            *versions.get_mut(&append.stream).expect("inserted above") +=
                append.events.len() as u64;
        }
        if let Some(first) = appends.first_mut() {
            first.idempotency_key = meta.idempotency_key.clone();
        }
        appends
    }
}

fn replayed(position: Position) -> Committed {
    Committed {
        position,
        events: Vec::new(),
        replayed: true,
    }
}

fn answer(
    reply: oneshot::Sender<Result<Committed, WriteError>>,
    outcome: Result<Committed, WriteError>,
) {
    if reply.send(outcome).is_err() {
        // The caller went away (a dropped HTTP request); the command still took effect.
        tracing::debug!("command answered after its caller left");
    }
}

/// Polls every future in order on each wake-up, so the first poll of each happens in order.
async fn futures_join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    let mut pending: Vec<_> = futures.map(|f| Some(Box::pin(f))).collect();
    let mut out: Vec<Option<T>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, fut) in out.iter_mut().zip(pending.iter_mut()) {
            if let Some(f) = fut {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *slot = Some(v);
                        *fut = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter()
        .map(|v| v.expect("every future finished"))
        .collect()
}
