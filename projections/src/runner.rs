//! The generic projection runner: tails the log into one in-memory model, publishes how far
//! it got, and snapshots the model together with that position.

use std::future::Future;
use std::ops::ControlFlow;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use eventlog::{Envelope, EventLog, LogError, Position, RecordedEvent, Subscription};
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::mpsc::{self, error::TryRecvError, error::TrySendError};
use tokio::sync::watch;

use crate::snapshot::{self, Loaded, SnapshotStore};
use crate::ProjectionError;

/// A read model built by folding events, in memory, snapshotted as a whole.
pub trait Projection: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Key of the model's snapshot.
    const NAME: &'static str;
    /// Bumped whenever the snapshot's shape or meaning changes; an older snapshot is then
    /// ignored and the model rebuilt from the log.
    const SCHEMA: u32;

    /// What [`Projection::apply`] needs of one record: its decoded payload and whatever of
    /// the envelope the model reads.
    type Event: Send + 'static;
    type Error: std::error::Error + Send + Sync + 'static;

    /// Decodes one record, borrowed from the log's storage. Runs outside the model's lock,
    /// mostly on the read-ahead thread: taking from the envelope only what `apply` reads keeps
    /// the applier (the busier side) from freeing memory another thread allocated.
    fn decode(envelope: &Envelope<&str>, payload: &[u8]) -> Result<Self::Event, Self::Error>;

    /// Folds one decoded event into the model.
    fn apply(&mut self, event: Self::Event) -> Result<(), Self::Error>;

    /// Called before a catch-up of `events` events that nothing reads until it ends: no
    /// [`ProjectionHandle`] exists, as at start-up and in [`rebuild`]. The model may put off
    /// work that only readers need (indexes) until [`Projection::end_catch_up`], and do it
    /// once for the whole run instead of once per event.
    fn begin_catch_up(&mut self, _events: u64) {}

    /// Finishes what [`Projection::begin_catch_up`] put off: afterwards the model answers
    /// every query as applying each event on its own would have. Called however the catch-up
    /// ended, a failure included.
    fn end_catch_up(&mut self) {}
}

/// How a [`Projector`] batches and snapshots.
#[derive(Debug, Clone, Copy)]
pub struct ProjectorConfig {
    /// Records read, decoded and applied per write-lock acquisition.
    pub batch_size: usize,
    /// Take a snapshot once the model is this many positions past the last one, when the
    /// projector has caught up with the head it saw (so a long catch-up takes one snapshot at
    /// its end instead of many ever-larger ones on the way), or once it is four times as many
    /// past under a load that never lets it catch up. The runner stops applying while it
    /// encodes a snapshot (readers carry on), so this trades restart time against pauses.
    pub snapshot_every: u64,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            batch_size: 1024,
            snapshot_every: 50_000,
        }
    }
}

/// How far a projector has applied the log, as published to waiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Every event up to and including this position is applied.
    pub applied: Position,
    /// The runner stopped (shutdown or a fatal error); `applied` will not move again.
    pub halted: bool,
}

/// The result of one [`Projector::catch_up`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaughtUp {
    /// Events applied by this call.
    pub applied: u64,
    /// The position the model reflects now.
    pub position: Position,
}

/// A snapshot that was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub position: Position,
    pub bytes: usize,
}

/// Progress of a [`rebuild`], reported after every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildProgress {
    /// The position applied so far.
    pub position: Position,
    /// The log head when the rebuild started; the rebuild stops there.
    pub target: Position,
    /// Events applied so far.
    pub events: u64,
}

/// The outcome of a [`rebuild`].
#[derive(Debug)]
pub struct Rebuilt<M> {
    pub model: M,
    pub position: Position,
    pub events: u64,
}

impl<M: Projection> Rebuilt<M> {
    /// Stores the rebuilt model as its projection's snapshot in `db` (the log's database), so
    /// the next [`Projector::open`] starts from it; returns the snapshot's size in bytes.
    pub fn save(&self, db: &sled::Db) -> Result<usize, ProjectionError> {
        SnapshotStore::open(db, M::NAME)?.save(M::SCHEMA, self.position, &self.model)
    }
}

struct Versioned<M> {
    position: Position,
    model: M,
}

struct Shared<M> {
    state: RwLock<Versioned<M>>,
    status: watch::Sender<Status>,
    store: SnapshotStore,
    /// The position of the last stored snapshot. Held across encode + insert so that two
    /// snapshots (periodic and on demand) cannot land out of order.
    last_snapshot: Mutex<Position>,
}

impl<M: Projection> Shared<M> {
    fn position(&self) -> Position {
        self.state
            .read()
            .expect("projection lock poisoned")
            .position
    }

    fn snapshot_blocking(&self) -> Result<Option<SnapshotInfo>, ProjectionError> {
        let mut last = self.last_snapshot.lock().expect("snapshot lock poisoned");
        // A read lock keeps readers going while the model is encoded; an applier waits.
        let (position, bytes) = {
            let state = self.state.read().expect("projection lock poisoned");
            if state.position == *last {
                return Ok(None);
            }
            let bytes = snapshot::encode(M::SCHEMA, &state.model)?;
            (state.position, bytes)
        };
        let bytes = self.store.put(position, bytes)?;
        *last = position;
        tracing::debug!(projection = M::NAME, position, bytes, "snapshot stored");
        Ok(Some(SnapshotInfo { position, bytes }))
    }
}

async fn snapshot_shared<M: Projection>(
    shared: &Arc<Shared<M>>,
) -> Result<Option<SnapshotInfo>, ProjectionError> {
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || shared.snapshot_blocking()).await?
}

/// Read access to a running projection; cheap to clone, shared by every API handler.
pub struct ProjectionHandle<M> {
    shared: Arc<Shared<M>>,
}

impl<M> Clone for ProjectionHandle<M> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M: Projection> ProjectionHandle<M> {
    /// A consistent view of the model. Hold it briefly: the applier waits for it.
    pub fn read(&self) -> ReadGuard<'_, M> {
        ReadGuard {
            guard: self.shared.state.read().expect("projection lock poisoned"),
        }
    }

    /// The position the model reflects.
    pub fn position(&self) -> Position {
        self.shared.position()
    }

    /// The published status; changes after every applied batch.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.shared.status.subscribe()
    }

    /// Resolves once every event up to `position` is applied (read your writes), or fails
    /// if the runner stopped short of it.
    pub async fn wait_for(&self, position: Position) -> Result<(), ProjectionError> {
        let mut rx = self.shared.status.subscribe();
        let status = *rx
            .wait_for(|s| s.applied >= position || s.halted)
            .await
            .expect("the status sender lives as long as the handle");
        if status.applied >= position {
            Ok(())
        } else {
            Err(ProjectionError::Halted {
                wanted: position,
                reached: status.applied,
            })
        }
    }

    /// Stores a snapshot of the current state now; `None` if the stored one is current.
    pub async fn snapshot(&self) -> Result<Option<SnapshotInfo>, ProjectionError> {
        snapshot_shared(&self.shared).await
    }
}

/// A read lock on a projection's model, with the position it reflects.
pub struct ReadGuard<'a, M> {
    guard: RwLockReadGuard<'a, Versioned<M>>,
}

impl<M> ReadGuard<'_, M> {
    pub fn position(&self) -> Position {
        self.guard.position
    }
}

impl<M> Deref for ReadGuard<'_, M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.guard.model
    }
}

/// Tails the log into one model. Start it from one place with [`Projector::run`], or drive it
/// step by step with [`Projector::catch_up`] in tests.
pub struct Projector<M> {
    log: Arc<dyn EventLog>,
    subscription: Subscription,
    shared: Arc<Shared<M>>,
    config: ProjectorConfig,
}

impl<M: Projection> Projector<M> {
    /// Loads the model's snapshot from `db` (the log's sled database; see [`SnapshotStore`])
    /// or starts empty, without reading the log yet. An unusable snapshot (other format,
    /// older schema, corrupt, ahead of the log) is logged and ignored: the model is rebuilt
    /// from position 0 and the next snapshot replaces it.
    pub fn open(
        log: Arc<dyn EventLog>,
        db: &sled::Db,
        config: ProjectorConfig,
    ) -> Result<Self, ProjectionError> {
        let store = SnapshotStore::open(db, M::NAME)?;
        let head = log.head();
        let (position, model) = match store.load::<M>(M::SCHEMA)? {
            Loaded::Missing => (0, M::default()),
            Loaded::Found { position, model } if position <= head => {
                tracing::info!(
                    projection = M::NAME,
                    position,
                    tail = head - position,
                    "loaded snapshot"
                );
                (position, model)
            }
            Loaded::Found { position, .. } => {
                tracing::warn!(
                    projection = M::NAME,
                    position,
                    head,
                    "snapshot is ahead of the log; rebuilding from the log"
                );
                (0, M::default())
            }
            Loaded::Unusable { reason } => {
                tracing::warn!(
                    projection = M::NAME,
                    %reason,
                    "snapshot unusable; rebuilding from the log"
                );
                (0, M::default())
            }
        };
        let (status, _) = watch::channel(Status {
            applied: position,
            halted: false,
        });
        Ok(Self {
            subscription: Subscription::new(Arc::clone(&log), position),
            log,
            shared: Arc::new(Shared {
                state: RwLock::new(Versioned { position, model }),
                status,
                store,
                // A rejected snapshot counts as current: the next due snapshot replaces it.
                last_snapshot: Mutex::new(position),
            }),
            config,
        })
    }

    pub fn handle(&self) -> ProjectionHandle<M> {
        ProjectionHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The position the model reflects.
    pub fn position(&self) -> Position {
        self.shared.position()
    }

    /// Applies everything up to the log head as of this call (run until idle), then takes a
    /// snapshot if [`ProjectorConfig::snapshot_every`] positions passed since the last one.
    ///
    /// Reading and decoding run one batch ahead on a blocking thread while this task applies,
    /// so a long catch-up (a start after many events, a rebuild) uses two cores.
    pub async fn catch_up(&mut self) -> Result<CaughtUp, ProjectionError> {
        let target = self.log.head();
        // Handles are the only other holders of `shared`, and none can be made while this
        // call borrows the projector.
        let unread = Arc::strong_count(&self.shared) == 1;
        let shared = Arc::clone(&self.shared);
        let applied = drain::<M>(
            Arc::clone(&self.log),
            &self.shared.state,
            unread,
            target,
            self.config.batch_size,
            |position, _| shared.status.send_modify(|s| s.applied = position),
        )
        .await
        .map_err(|e| self.halt(e))?;
        // The live tail continues from wherever the catch-up ended.
        self.subscription = Subscription::new(Arc::clone(&self.log), self.position());
        self.snapshot_if_due(true).await.map_err(|e| self.halt(e))?;
        Ok(CaughtUp {
            applied,
            position: self.position(),
        })
    }

    /// Stores a snapshot now; `None` if the stored one is current.
    pub async fn snapshot(&self) -> Result<Option<SnapshotInfo>, ProjectionError> {
        snapshot_shared(&self.shared).await
    }

    /// Catches up, then tails the log until `shutdown` resolves or an event cannot be decoded
    /// or applied (fatal: the error is logged with its position and returned). Takes a final
    /// snapshot on shutdown. Either way waiters are released: [`ProjectionHandle::wait_for`]
    /// fails for positions never reached.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), ProjectionError> {
        tokio::pin!(shutdown);
        let caught = tokio::select! {
            biased;
            () = &mut shutdown => None,
            caught = self.catch_up() => Some(caught),
        };
        let result = match caught {
            None => Ok(()),
            Some(Err(e)) => Err(e),
            Some(Ok(_)) => self.tail(&mut shutdown).await,
        };
        match result {
            Ok(()) => {
                let snapshot = self.snapshot().await;
                self.halt_quietly();
                snapshot.map(|_| ())
            }
            Err(e) => Err(self.halt(e)),
        }
    }

    async fn tail<F: Future<Output = ()>>(
        &mut self,
        shutdown: &mut Pin<&mut F>,
    ) -> Result<(), ProjectionError> {
        loop {
            // Cancelling `next_batch` is safe: it moves its position only once a read has
            // completed, and the apply that follows never awaits.
            let records = tokio::select! {
                biased;
                () = shutdown.as_mut() => return Ok(()),
                next = self.subscription.next_batch(self.config.batch_size) => match next {
                    Ok(records) => records,
                    Err(LogError::Closed) => return Ok(()),
                    Err(e) => return Err(e.into()),
                },
            };
            let after = self.position();
            let mut decoded = Vec::with_capacity(records.len());
            let failure = decode_records::<M>(after, &records, &mut decoded);
            apply_decoded(&self.shared.state, &mut decoded)?;
            let position = self.position();
            self.shared.status.send_modify(|s| s.applied = position);
            if let Some(e) = failure {
                return Err(e);
            }
            self.snapshot_if_due(position >= self.log.head()).await?;
        }
    }

    /// Snapshots once `snapshot_every` positions passed, when idle; under a load that never
    /// lets the projector go idle, once four times as many passed.
    async fn snapshot_if_due(&self, idle: bool) -> Result<(), ProjectionError> {
        let last = *self
            .shared
            .last_snapshot
            .lock()
            .expect("snapshot lock poisoned");
        let since = self.position().saturating_sub(last);
        let every = self.config.snapshot_every;
        if since >= every && (idle || since / 4 >= every) {
            self.snapshot().await?;
        }
        Ok(())
    }

    fn halt(&self, error: ProjectionError) -> ProjectionError {
        tracing::error!(
            projection = M::NAME,
            position = self.position(),
            error = %error,
            "projection runner stopped"
        );
        self.halt_quietly();
        error
    }

    fn halt_quietly(&self) {
        self.shared.status.send_modify(|s| s.halted = true);
    }
}

/// One decoded record, with what the runner needs to report on it.
struct DecodedEvent<E> {
    position: Position,
    type_code: u16,
    event: E,
}

/// Decoded events of one batch, in position order.
type Decoded<M> = Vec<DecodedEvent<<M as Projection>::Event>>;

/// Batches a reader thread may run ahead of the applier.
const READ_AHEAD: usize = 4;

/// The reader's share of each batch's decoding is counted in these steps.
const SHARE_STEPS: usize = 16;

/// One batch as the reader hands it over: the first part decoded, the rest still raw.
struct ReadBatch<M: Projection> {
    decoded: Decoded<M>,
    /// The position before `raw`.
    raw_after: Position,
    /// The rest of the batch's records as the log stores them, back to back: one copy into a
    /// buffer that is reused, where copying each record's fields out cost five allocations
    /// that the applier then freed.
    raw: Vec<u8>,
    /// A read or decode failure ending the batch (and the reader); `raw` is then empty.
    failure: Option<ProjectionError>,
}

/// A batch's buffers, handed back to the reader once applied.
type Spare<M> = (Decoded<M>, Vec<u8>);

/// Applies every event after the model's position up to `target`, one write-lock acquisition
/// per batch; `applied(position, events)` is called after every batch. Events before a
/// failure stay applied and the model's position says so. `unread`: nothing reads `state`
/// until this returns, so the whole run is one catch-up (see [`Projection::begin_catch_up`]).
///
/// A blocking thread reads ahead while this task applies. Decoding a payload costs about as
/// much as reading it, so the two sides share it: the reader decodes the first part of each
/// batch and this task the rest, and the split moves towards whichever side is waiting for
/// the other. On two cores this keeps both busy. Applied batches' buffers go back to the
/// reader for the next batches.
async fn drain<M: Projection>(
    log: Arc<dyn EventLog>,
    state: &RwLock<Versioned<M>>,
    unread: bool,
    target: Position,
    batch_size: usize,
    applied: impl FnMut(Position, u64),
) -> Result<u64, ProjectionError> {
    let after = state.read().expect("projection lock poisoned").position;
    if after >= target {
        return Ok(0);
    }
    if !unread {
        return drain_batches(log, state, (after, target), batch_size, applied).await;
    }
    let lock = || state.write().expect("projection lock poisoned");
    lock().model.begin_catch_up(target - after);
    let result = drain_batches(log, state, (after, target), batch_size, applied).await;
    lock().model.end_catch_up();
    result
}

/// [`drain`]'s batches.
async fn drain_batches<M: Projection>(
    log: Arc<dyn EventLog>,
    state: &RwLock<Versioned<M>>,
    (after, target): (Position, Position),
    batch_size: usize,
    mut applied: impl FnMut(Position, u64),
) -> Result<u64, ProjectionError> {
    let share = Arc::new(AtomicUsize::new(SHARE_STEPS / 2));
    let (tx, mut rx) = mpsc::channel::<ReadBatch<M>>(READ_AHEAD);
    let (spare_tx, spare_rx) = std::sync::mpsc::channel::<Spare<M>>();
    let reader = tokio::task::spawn_blocking({
        let share = Arc::clone(&share);
        move || {
            let mut after = after;
            while after < target {
                let quota =
                    batch_size * share.load(Ordering::Relaxed).min(SHARE_STEPS) / SHARE_STEPS;
                let spare = spare_rx.try_recv().unwrap_or_default();
                let (batch, next_after) =
                    read_batch::<M>(log.as_ref(), (after, target), batch_size, quota, spare);
                let stop = batch.failure.is_some();
                if batch.decoded.is_empty() && batch.raw.is_empty() && batch.failure.is_none() {
                    return;
                }
                let sent = match tx.try_send(batch) {
                    Ok(()) => Ok(()),
                    Err(TrySendError::Full(batch)) => {
                        // The applier is the slower side: decode more here.
                        bump(&share, 1);
                        tx.blocking_send(batch).map_err(drop)
                    }
                    Err(TrySendError::Closed(_)) => Err(()),
                };
                // A failed send means the applier stopped: nothing left to do.
                if sent.is_err() || stop {
                    return;
                }
                after = next_after;
            }
        }
    });
    let mut events = 0;
    let mut result = Ok(());
    loop {
        let batch = match rx.try_recv() {
            Ok(batch) => batch,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                // The reader is the slower side: decode more here.
                bump(&share, -1);
                match rx.recv().await {
                    Some(batch) => batch,
                    None => break,
                }
            }
        };
        let ReadBatch {
            mut decoded,
            raw_after,
            mut raw,
            failure,
        } = batch;
        let rest_failure = decode_stored::<M>(raw_after, &raw, &mut decoded);
        raw.clear();
        let outcome =
            apply_decoded(state, &mut decoded).and_then(|n| match failure.or(rest_failure) {
                Some(e) => Err(e),
                None => Ok(n),
            });
        // Fails only once the reader is done, which then needs no buffers.
        spare_tx.send((decoded, raw)).ok();
        let position = state.read().expect("projection lock poisoned").position;
        match outcome {
            Ok(n) => {
                events += n;
                applied(position, events);
            }
            Err(e) => {
                applied(position, events);
                result = Err(e);
                break;
            }
        }
    }
    // Stops the reader if the applier failed, then waits for it so no thread outlives the call.
    drop(rx);
    reader.await?;
    result.map(|()| events)
}

/// Reads up to `batch_size` records of `(after, target]` into the `spare` buffers, decoding
/// the first `quota` straight from the log's storage and copying the rest raw. Returns the
/// batch and the position of the last record read; a short batch means the log ended or the
/// batch carries a failure.
fn read_batch<M: Projection>(
    log: &dyn EventLog,
    (after, target): (Position, Position),
    batch_size: usize,
    quota: usize,
    (mut decoded, raw): Spare<M>,
) -> (ReadBatch<M>, Position) {
    decoded.reserve(batch_size);
    let mut batch = ReadBatch {
        decoded,
        raw_after: after,
        raw,
        failure: None,
    };
    let mut last = after;
    let until = target.min(after.saturating_add(u64::try_from(batch_size).unwrap_or(u64::MAX)));
    let scanned = log.scan(after, until, &mut |record| {
        let position = record.envelope.position;
        if !batch.raw.is_empty() || batch.decoded.len() >= quota {
            batch.raw.extend_from_slice(record.bytes);
        } else if let Err(e) =
            decode_one::<M>(last, &record.envelope, record.payload, &mut batch.decoded)
        {
            batch.failure = Some(e);
            return ControlFlow::Break(());
        } else {
            batch.raw_after = position;
        }
        last = position;
        ControlFlow::Continue(())
    });
    if let Err(e) = scanned {
        batch.failure = Some(e.into());
    }
    (batch, last)
}

/// Moves the reader's share of decoding by `by` steps, within `0..=SHARE_STEPS`.
fn bump(share: &AtomicUsize, by: isize) {
    share
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |current| {
            Some(current.saturating_add_signed(by).min(SHARE_STEPS))
        })
        .ok();
}

/// Decodes `records` (which follow position `after`) into `decoded` up to the first failure.
fn decode_records<M: Projection>(
    after: Position,
    records: &[RecordedEvent],
    decoded: &mut Decoded<M>,
) -> Option<ProjectionError> {
    let mut previous = after;
    for RecordedEvent { envelope, payload } in records {
        if let Err(e) = decode_one::<M>(previous, &envelope.borrowed(), payload, decoded) {
            return Some(e);
        }
        previous = envelope.position;
    }
    None
}

/// Decodes the records stored back to back in `raw` (which follow position `after`) into
/// `decoded` up to the first failure.
fn decode_stored<M: Projection>(
    after: Position,
    mut raw: &[u8],
    decoded: &mut Decoded<M>,
) -> Option<ProjectionError> {
    let mut previous = after;
    while !raw.is_empty() {
        let (record, len) = match eventlog::decode_record_ref(raw) {
            Ok(read) => read,
            Err(source) => {
                let position = previous + 1;
                return Some(LogError::Corrupt { position, source }.into());
            }
        };
        let envelope = &record.envelope;
        if let Err(e) = decode_one::<M>(previous, envelope, record.payload, decoded) {
            return Some(e);
        }
        previous = envelope.position;
        raw = &raw[len..];
    }
    None
}

/// Decodes one record that follows position `previous` into `decoded`.
fn decode_one<M: Projection>(
    previous: Position,
    envelope: &Envelope<&str>,
    payload: &[u8],
    decoded: &mut Decoded<M>,
) -> Result<(), ProjectionError> {
    if envelope.position <= previous {
        return Err(ProjectionError::OutOfOrder {
            after: previous,
            got: envelope.position,
        });
    }
    let event = M::decode(envelope, payload).map_err(|e| ProjectionError::Decode {
        position: envelope.position,
        type_code: envelope.type_code,
        source: Box::new(e),
    })?;
    decoded.push(DecodedEvent {
        position: envelope.position,
        type_code: envelope.type_code,
        event,
    });
    Ok(())
}

/// Applies a decoded batch under one write-lock acquisition, leaving `decoded` empty.
fn apply_decoded<M: Projection>(
    state: &RwLock<Versioned<M>>,
    decoded: &mut Decoded<M>,
) -> Result<u64, ProjectionError> {
    if decoded.is_empty() {
        return Ok(0);
    }
    let mut applied = 0;
    let mut state = state.write().expect("projection lock poisoned");
    for DecodedEvent {
        position,
        type_code,
        event,
    } in decoded.drain(..)
    {
        if let Err(e) = state.model.apply(event) {
            return Err(ProjectionError::Apply {
                position,
                type_code,
                source: Box::new(e),
            });
        }
        state.position = position;
        applied += 1;
    }
    Ok(applied)
}

/// Builds `M` from position 0 up to the log head as of the call, without touching any
/// snapshot; `progress` is called after every batch. Store the result with
/// [`SnapshotStore::save`] to make the next start begin from it.
pub async fn rebuild<M: Projection>(
    log: Arc<dyn EventLog>,
    batch_size: usize,
    mut progress: impl FnMut(RebuildProgress),
) -> Result<Rebuilt<M>, ProjectionError> {
    let target = log.head();
    let state = RwLock::new(Versioned {
        position: 0,
        model: M::default(),
    });
    let events = drain::<M>(log, &state, true, target, batch_size, |position, events| {
        progress(RebuildProgress {
            position,
            target,
            events,
        })
    })
    .await
    .inspect_err(|e| tracing::error!(projection = M::NAME, error = %e, "rebuild stopped"))?;
    let Versioned { position, model } = state.into_inner().expect("projection lock poisoned");
    Ok(Rebuilt {
        model,
        position,
        events,
    })
}

#[cfg(test)]
mod tests;
