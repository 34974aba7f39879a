//! The node's command writer: decides commands against the in-memory domain state and
//! appends the resulting events to the log, batching many commands into one durable commit.
//!
//! One task owns the [`State`]. It takes every queued command, decides each in turn (a
//! command sees the effects of the ones decided before it) and submits its appends to the
//! log at once, in decision order, so the log assigns positions in that order. It does not
//! wait for a round to be durable before deciding the next: rounds are pipelined, so while
//! the log syncs one group commit the next rounds are decided and queue up behind it, and one
//! `fdatasync` covers whatever arrived meanwhile. Answers go out in decision order and only
//! once everything the decision saw is durable: a 2xx is durable, and so is whatever a
//! refusal was based on.
//!
//! Must not know: HTTP, sled, read models. The state is handed in at start (from the
//! projections' caught-up copy) and is kept in step with the log by this task alone.

mod clock;

pub use clock::{Clock, ManualClock, SystemClock};

use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use domain::{decide, encode, Command, DomainError, Event, State};
use eventlog::{
    AppendError, AppendRequest, Appended, EventLog, ExpectedVersion, NewEvent, Position,
};
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

/// The most commands one round decides before submitting.
const MAX_ROUND: usize = 1024;

/// The most commands decided but not yet answered. Bounds what a slow disk lets pile up in
/// the pipeline; beyond it the request queue fills and pushes back on callers.
const MAX_IN_FLIGHT: usize = 4 * MAX_ROUND;

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
            last_position: log.head(),
            log,
            state,
            clock,
            queue,
            poisoned: false,
            next_round: 0,
            in_flight: VecDeque::new(),
            in_flight_commands: 0,
            versions: HashMap::new(),
            keys: HashMap::new(),
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
    /// Set by the first failed append: the state holds events the log does not, so nothing
    /// decided after it may be answered or submitted.
    poisoned: bool,
    next_round: u64,
    /// Rounds submitted to the log, oldest first; answered in this order.
    in_flight: VecDeque<Round>,
    in_flight_commands: usize,
    /// The last position answered: what a command that changed nothing answers with.
    last_position: Position,
    /// Streams with appends in flight: the version after the last one submitted, and the
    /// round that submitted it. The log's own `stream_version` is exact for every other
    /// stream, and for these once that round is answered (the log updates its index before
    /// it acknowledges).
    versions: HashMap<String, (u64, u64)>,
    /// Idempotency keys first used by a command in flight, which the log cannot know yet.
    keys: HashMap<String, KeyInFlight>,
}

/// An idempotency key whose first use is in flight.
struct KeyInFlight {
    /// The last round naming the key (its first use or a retry); the entry goes with it.
    last_round: u64,
    /// Where the first use landed, once its round is answered.
    position: Option<Position>,
}

type AppendFuture = Pin<Box<dyn Future<Output = Result<Vec<Appended>, AppendError>> + Send>>;

/// A submitted append: pending in the log, then its result.
enum Append {
    Pending(AppendFuture),
    Done(Result<Vec<Appended>, AppendError>),
}

impl Append {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Append::Pending(future) = self {
            match future.as_mut().poll(cx) {
                Poll::Ready(result) => *self = Append::Done(result),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(())
    }

    fn failed(&self) -> bool {
        matches!(self, Append::Done(Err(_)))
    }
}

/// What one command of a round comes to, answered once the round is durable.
enum Outcome {
    /// Decided, with events appended.
    Appended {
        append: Append,
        events: Vec<Event>,
        key: Option<String>,
    },
    /// Decided, and it changed nothing.
    Unchanged { key: Option<String> },
    /// A retry of a command in flight with the same idempotency key.
    Retry { key: String },
    /// Refused, or a replay of a key the log already holds.
    Answer(Result<Committed, WriteError>),
}

/// The commands decided together, in decision order.
struct Round {
    seq: u64,
    commands: Vec<(oneshot::Sender<Result<Committed, WriteError>>, Outcome)>,
    /// Streams this round appends to and keys it names, to retire from the in-flight maps.
    streams: Vec<String>,
    keys: Vec<String>,
}

impl Round {
    /// Ready once every append of the round has its result.
    fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut done = true;
        for (_, outcome) in &mut self.commands {
            if let Outcome::Appended { append, .. } = outcome {
                done &= append.poll(cx).is_ready();
            }
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// What the task loop woke up for.
enum Next {
    /// The oldest round in flight is durable (or failed).
    Answered,
    /// This many new requests were taken (0: every handle is gone).
    Requests(usize),
}

impl Task {
    async fn run(mut self) {
        let mut requests = Vec::with_capacity(MAX_ROUND);
        let mut open = true;
        while open || !self.in_flight.is_empty() {
            let room = MAX_IN_FLIGHT.saturating_sub(self.in_flight_commands);
            let next = poll_fn(|cx| {
                if let Some(oldest) = self.in_flight.front_mut() {
                    if oldest.poll_done(cx).is_ready() {
                        return Poll::Ready(Next::Answered);
                    }
                }
                if open && room > 0 {
                    if let Poll::Ready(n) =
                        self.queue
                            .poll_recv_many(cx, &mut requests, room.min(MAX_ROUND))
                    {
                        return Poll::Ready(Next::Requests(n));
                    }
                }
                Poll::Pending
            })
            .await;
            match next {
                Next::Answered => {
                    let round = self.in_flight.pop_front().expect("polled above");
                    self.answer_round(round);
                }
                Next::Requests(0) => open = false,
                Next::Requests(_) if self.poisoned => {
                    for request in requests.drain(..) {
                        answer(request.reply, Err(WriteError::Unavailable));
                    }
                }
                Next::Requests(_) => {
                    let round = self.round(&mut requests).await;
                    self.in_flight_commands += round.commands.len();
                    self.in_flight.push_back(round);
                }
            }
        }
    }

    /// Decides `requests` in order, submitting each command's appends as soon as it is
    /// decided (so the log sees them in decision order).
    async fn round(&mut self, requests: &mut Vec<Request>) -> Round {
        let now_us = self.clock.now_us();
        let seq = self.next_round;
        self.next_round += 1;
        let mut round = Round {
            seq,
            commands: Vec::with_capacity(requests.len()),
            streams: Vec::new(),
            keys: Vec::new(),
        };
        for Request {
            meta,
            command,
            reply,
        } in requests.drain(..)
        {
            if self.poisoned {
                // An append of this round failed on submission.
                round
                    .commands
                    .push((reply, Outcome::Answer(Err(WriteError::Unavailable))));
                continue;
            }
            let mut outcome = self.decide(&mut round, meta, command, now_us);
            if let Outcome::Appended { append, .. } = &mut outcome {
                // The first poll submits the append. A refusal before it reaches the log (too
                // large) comes back at once, and then nothing after it is submitted.
                if poll_fn(|cx| Poll::Ready(append.poll(cx))).await.is_ready() {
                    self.poisoned |= append.failed();
                }
            }
            round.commands.push((reply, outcome));
        }
        round
    }

    fn decide(
        &mut self,
        round: &mut Round,
        meta: CommandMeta,
        command: Command,
        now_us: i64,
    ) -> Outcome {
        if let Some(key) = &meta.idempotency_key {
            if let Some(first) = self.keys.get_mut(key) {
                // The first use is still in flight; answer the retry once it is durable.
                first.last_round = round.seq;
                round.keys.push(key.clone());
                return Outcome::Retry { key: key.clone() };
            }
            if let Some(first) = self.log.idempotent_result(key) {
                return Outcome::Answer(Ok(replayed(first.last)));
            }
        }
        if let Some(expected) = &meta.expected_version {
            let actual = self.version(&expected.stream);
            if actual != expected.version {
                return Outcome::Answer(Err(WriteError::VersionMismatch {
                    stream: expected.stream.clone(),
                    expected: expected.version,
                    actual,
                }));
            }
        }
        let events = match decide(&self.state, command, now_us.div_euclid(1_000_000)) {
            Ok(events) => events,
            Err(e) => return Outcome::Answer(Err(e.into())),
        };
        for event in &events {
            self.state.apply(event);
        }
        let key = meta.idempotency_key.clone();
        if let Some(key) = &key {
            self.keys.insert(
                key.clone(),
                KeyInFlight {
                    last_round: round.seq,
                    position: None,
                },
            );
            round.keys.push(key.clone());
        }
        if events.is_empty() {
            return Outcome::Unchanged { key };
        }
        let appends = self.appends_for(&events, &meta, now_us, round);
        let log = Arc::clone(&self.log);
        Outcome::Appended {
            append: Append::Pending(Box::pin(async move { log.append_many(appends).await })),
            events,
            key,
        }
    }

    /// A stream's version after every append submitted so far.
    fn version(&self, stream: &str) -> u64 {
        match self.versions.get(stream) {
            Some(&(version, _)) => version,
            None => self.log.stream_version(stream),
        }
    }

    /// Answers a round whose appends all have their results, and retires what it kept in
    /// flight. A failed append poisons the writer: that command gets the log's error, every
    /// other one of the round and of the rounds after it (decided against state the log may
    /// not have) is unavailable.
    fn answer_round(&mut self, round: Round) {
        self.in_flight_commands -= round.commands.len();
        let failed = round.commands.iter().any(|(_, outcome)| match outcome {
            Outcome::Appended { append, .. } => append.failed(),
            _ => false,
        });
        if failed {
            tracing::error!("a commit failed; the command writer stops until restart");
            self.poisoned = true;
            for (reply, outcome) in round.commands {
                let error = match outcome {
                    Outcome::Appended {
                        append: Append::Done(Err(e)),
                        ..
                    } => WriteError::Log(e),
                    _ => WriteError::Unavailable,
                };
                answer(reply, Err(error));
            }
            for later in self.in_flight.drain(..) {
                for (reply, _) in later.commands {
                    answer(reply, Err(WriteError::Unavailable));
                }
            }
            self.in_flight_commands = 0;
            self.versions.clear();
            self.keys.clear();
            return;
        }
        for (reply, outcome) in round.commands {
            let result = match outcome {
                Outcome::Appended {
                    append: Append::Done(Ok(appended)),
                    events,
                    key,
                } => {
                    let position = appended.last().map_or(self.last_position, |a| a.last);
                    self.last_position = self.last_position.max(position);
                    self.landed(key, position);
                    Ok(Committed {
                        position,
                        events,
                        replayed: false,
                    })
                }
                Outcome::Appended { .. } => unreachable!("the round is done and did not fail"),
                Outcome::Unchanged { key } => {
                    self.landed(key, self.last_position);
                    Ok(Committed {
                        position: self.last_position,
                        events: Vec::new(),
                        replayed: false,
                    })
                }
                Outcome::Retry { key } => {
                    let first = self.keys.get(&key).and_then(|k| k.position);
                    Ok(replayed(
                        first.expect("a first use is answered before its retries"),
                    ))
                }
                Outcome::Answer(result) => result,
            };
            answer(reply, result);
        }
        let seq = round.seq;
        for stream in round.streams {
            if self
                .versions
                .get(&stream)
                .is_some_and(|&(_, last)| last == seq)
            {
                self.versions.remove(&stream);
            }
        }
        for key in round.keys {
            if self.keys.get(&key).is_some_and(|k| k.last_round == seq) {
                self.keys.remove(&key);
            }
        }
    }

    fn landed(&mut self, key: Option<String>, position: Position) {
        if let Some(first) = key.and_then(|k| self.keys.get_mut(&k)) {
            first.position = Some(position);
        }
    }

    /// One append per stream the events touch, in order of first appearance; all of a
    /// command's appends commit together or not at all.
    fn appends_for(
        &mut self,
        events: &[Event],
        meta: &CommandMeta,
        now_us: i64,
        round: &mut Round,
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
                None => appends.push(AppendRequest {
                    expected: ExpectedVersion::Exact(self.version(&stream)),
                    stream,
                    events: vec![new],
                    idempotency_key: None,
                }),
            }
        }
        for append in &appends {
            let ExpectedVersion::Exact(before) = append.expected else {
                unreachable!("built as exact above");
            };
            let after = before + append.events.len() as u64;
            self.versions
                .insert(append.stream.clone(), (after, round.seq));
            round.streams.push(append.stream.clone());
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
