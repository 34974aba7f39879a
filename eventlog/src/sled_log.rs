//! The embedded backend: records packed into small chunks in one sled tree, one writer thread
//! doing group commits, and in-memory indexes rebuilt from the log at open.
//!
//! # Storage layout
//!
//! Everything lives in the tree [`LOG_TREE`]. The records of one apply (see "Applying to sled"
//! below) are concatenated, and the byte stream is cut into chunks of at most [`CHUNK_MAX`]
//! bytes, keyed `[first position: u64 BE][part: u32 BE]`. A part-0 chunk starts at a record boundary and
//! holds whole records; a record bigger than a chunk gets chunks of its own, parts 0, 1, 2, …
//! under its position. So a part-0 chunk plus its continuation parts (a *group*) always holds
//! whole records, the records' positions follow from the key, and reading from position P is:
//! find the last key ≤ `[P][u32::MAX]`, go back to part 0 of that position, parse forward.
//!
//! Why chunks: sled 0.34.7 stores a node larger than ~128 KiB as a separate blob file it never
//! fsyncs, and splits leaves at more than 16 entries, so values ≤ 4 KiB keep every node inline
//! in the data file we fsync. And why not one key per event: a sled insert costs ~12 µs of
//! CPU, so one key per chunk of up to 4 KiB of records is what keeps sled's share small.
//!
//! # Durability
//!
//! A group commit writes its encoded records to the [commit journal](crate::journal) and
//! `fdatasync`s it; that is the whole commit. Then the records go into the in-memory *tail*,
//! the indexes are updated, the new head is published and the callers are answered. sled is
//! not on this path: the journal holds every record sled may not have made durable yet (not
//! applied yet, or applied but not persisted) and is replayed into sled at open. A failure
//! anywhere in the commit poisons the log: nothing in the batch is acknowledged and later
//! appends are refused until reopen, because the in-memory indexes can no longer be trusted to
//! match the disk.
//!
//! The commit is a two-stage pipeline. The writer thread gathers a batch, checks and encodes
//! it and writes it to the journal; the `eventlog-sync` thread `fdatasync`s it, publishes it
//! and answers, while the writer already prepares the next batch against the published index
//! plus what the batch in flight will publish. A hand-over waits until the sync thread is done
//! with the batch before, so batches publish in order and at most one is in flight; one
//! written while an earlier one failed is refused, never published past the gap. With the
//! writer alone on the CPU-bound part, overlapping it with the `fdatasync` was worth about a
//! quarter more appends per second at 64 writers. A lone request with nobody else waiting and
//! the sync thread idle is synced on the writer thread instead, sparing a lone caller two
//! thread wake-ups.
//!
//! # Applying to sled
//!
//! The tail is applied to sled by the `eventlog-apply` thread once it holds [`APPLY_BYTES`],
//! as one atomic `apply_batch` (sled recovers a batch all or nothing). Why not per commit:
//! every `apply_batch` seals and writes sled's I/O buffer on sled's I/O pool, so applying each
//! group commit cost a data-file write and thread wake-ups per commit, and CPU is what bounds
//! the append rate. Before a journal file is reused (rotation) and on close, the writer applies
//! whatever is left and checkpoints sled, so the tail never outlives the journal file holding
//! it; if the apply thread falls [`TAIL_MAX_BYTES`] behind, the writer applies before its next
//! commit.
//!
//! # Reads
//!
//! Readers see sled up to the tail's start and the tail after it: under the tail's lock they
//! note how far sled goes and copy the tail records they need, then read sled. Records only
//! ever move from the tail into sled, so that is consistent without holding the lock during
//! the sled read.
//!
//! # Indexes
//!
//! Stream → positions, idempotency key → first result, and the head are derived state: they
//! are rebuilt by one scan at open and updated by the writer after each durable commit. The
//! idempotency key is stored in the envelope of every record of a keyed append, so the key
//! table (including the append's extent) comes back from the log alone.

use std::collections::HashMap;
use std::fs::File;
use std::ops::{ControlFlow, Range};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use async_trait::async_trait;
use tokio::sync::{oneshot, watch};

use crate::codec::{self, decode_record, decode_record_ref, frame_len, frames, MAX_RECORD_BYTES};
use crate::error::{AppendError, LogError};
use crate::journal::{Journal, JournalSync, Tail, GROUP_HEADER_LEN};
use crate::worker::Worker;
use crate::{AppendRequest, Appended, Envelope, EventLog, Position, RecordRef, RecordedEvent};

/// The sled tree holding the log's chunks. Other trees in the same [`sled::Db`] belong to
/// subscribers (see [`crate::Checkpoints`]).
pub const LOG_TREE: &str = "log";

/// The largest sled value the log writes (see the module docs for why).
pub const CHUNK_MAX: usize = 4096;

/// The most records [`SledLog::read_all`] reserves room for before reading.
const READ_RESERVE_MAX: usize = 1 << 16;

/// A group commit stops taking requests once their payloads add up to this.
const BATCH_BYTES: usize = 8 << 20;

/// The tail is applied to sled once it holds this many bytes of records (see the module docs).
pub const APPLY_BYTES: usize = 256 << 10;

/// The writer applies the tail itself before a commit if it holds this much: the apply thread
/// is not keeping up.
const TAIL_MAX_BYTES: usize = 16 << 20;

/// How a [`SledLog`] is opened.
#[derive(Debug, Clone)]
pub struct SledLogOptions {
    /// The most append requests one group commit takes from the queue. Bounds the latency a
    /// request can add to the others in its batch.
    pub max_batch_requests: usize,
    /// sled's page cache size in bytes; `None` keeps sled's default.
    pub cache_capacity: Option<u64>,
    /// Bytes of group commits one journal file takes before the journal checkpoints sled and
    /// turns to its other file: the disk the journal takes is about twice this.
    pub journal_capacity: u64,
}

impl Default for SledLogOptions {
    fn default() -> Self {
        SledLogOptions {
            max_batch_requests: 1024,
            cache_capacity: None,
            journal_capacity: 64 << 20,
        }
    }
}

/// The sled-backed [`EventLog`].
pub struct SledLog {
    shared: Arc<Shared>,
    /// `None` only during drop, so the writer sees the channel close and exits.
    requests: Option<mpsc::Sender<Pending>>,
    writer: Option<JoinHandle<()>>,
}

/// State both the writer thread and readers see.
struct Shared {
    db: sled::Db,
    /// sled's data file, for [`SledLog::db_sync`].
    data_path: std::path::PathBuf,
    tree: sled::Tree,
    /// Updated only by the sync thread, only after a commit is durable, and before the head
    /// is published: anything a reader finds here is durable.
    index: RwLock<Index>,
    /// Acknowledged records not applied to sled yet; extended by the sync thread before it
    /// updates the index, so every indexed position is in sled or here.
    tail: RwLock<Unapplied>,
    /// The tail's encoded size (see [`Shared::tail_bytes`]).
    tail_bytes: AtomicUsize,
    /// Batches the sync thread has published; it is idle when that is every batch the writer
    /// handed it ([`Writer::handed`]).
    synced: AtomicU64,
    /// Held while applying the tail, so two appliers (the apply thread, the writer before a
    /// checkpoint, [`SledLog::apply_tail`]) never pack the same records twice.
    applying: Mutex<()>,
    head: watch::Sender<Position>,
    poisoned: AtomicBool,
    commits: AtomicU64,
    committed_requests: AtomicU64,
    /// Makes the next commit fail after its chunks were inserted, as a failed flush or sync
    /// would: the only way to exercise the poisoning path without breaking a disk.
    #[cfg(test)]
    fail_next_commit: AtomicBool,
    /// Makes closing skip the final apply and checkpoint, leaving sled as a crash would.
    #[cfg(test)]
    crash_on_close: AtomicBool,
}

/// Group-commit counters since open, for metrics and the append benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Durable group commits (each one `fdatasync`).
    pub commits: u64,
    /// Append requests that wrote records in those commits.
    pub requests: u64,
}

impl CommitStats {
    /// Mean appends per `fdatasync`.
    pub fn mean_batch(&self) -> f64 {
        if self.commits == 0 {
            0.0
        } else {
            self.requests as f64 / self.commits as f64
        }
    }
}

/// See [`Shared::tail`].
struct Unapplied {
    /// sled holds every record up to this position.
    applied: Position,
    /// The records after it.
    records: Tail,
}

impl Shared {
    /// Applies every record of the tail to sled as one batch (not durably: checkpoints do
    /// that) and drops them from the tail.
    fn apply_tail(&self) -> Result<(), sled::Error> {
        let _applying = self.applying.lock().expect("apply lock poisoned");
        let (batch, records, last) = {
            let tail = self.tail.read().expect("tail lock poisoned");
            let Some(&(last, _)) = tail.records.spans.last() else {
                return Ok(());
            };
            let batch = pack_chunks(&tail.records.encoded, &tail.records.spans);
            (batch, tail.records.spans.len(), last)
        };
        self.tree.apply_batch(batch)?;
        let mut tail = self.tail.write().expect("tail lock poisoned");
        tail.records.drain_front(records);
        tail.applied = last;
        self.tail_bytes
            .store(tail.records.encoded.len(), Ordering::Release);
        Ok(())
    }

    /// The tail's size, as last set under its write lock: read on every commit without
    /// taking the lock.
    fn tail_bytes(&self) -> usize {
        self.tail_bytes.load(Ordering::Acquire)
    }
}

#[derive(Default)]
struct Index {
    /// Positions of each stream's events; a stream's version is the length.
    streams: HashMap<String, Vec<Position>>,
    /// The first result of each keyed append.
    idempotency: HashMap<String, Appended>,
}

/// One caller's transaction: one or more stream appends that commit together or not at all.
struct Pending {
    reqs: Vec<AppendRequest>,
    reply: oneshot::Sender<Result<Vec<Appended>, AppendError>>,
}

impl SledLog {
    /// Opens (or creates) the log in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<SledLog, LogError> {
        SledLog::open_with(dir, SledLogOptions::default())
    }

    /// Opens (or creates) the log in `dir`, scanning it once to rebuild the indexes. A damaged
    /// log fails to open (run [`crate::verify::verify_dir`] to see all of the damage) rather
    /// than accepting appends on top of it.
    pub fn open_with(dir: impl AsRef<Path>, options: SledLogOptions) -> Result<SledLog, LogError> {
        let dir = dir.as_ref();
        let db = open_db(dir, options.cache_capacity)?;
        let tree = db.open_tree(LOG_TREE)?;
        let (mut journal, data_file) = recover(dir, &db, &tree, options.journal_capacity)?;
        let (index, head) = rebuild_index(&tree)?;
        journal.start(head + 1)?;
        let (head_tx, _) = watch::channel(head);
        let shared = Arc::new(Shared {
            db,
            data_path: self::data_file(dir),
            tree,
            index: RwLock::new(index),
            tail: RwLock::new(Unapplied {
                applied: head,
                records: Tail::default(),
            }),
            tail_bytes: AtomicUsize::new(0),
            synced: AtomicU64::new(0),
            applying: Mutex::new(()),
            head: head_tx,
            poisoned: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            committed_requests: AtomicU64::new(0),
            #[cfg(test)]
            fail_next_commit: AtomicBool::new(false),
            #[cfg(test)]
            crash_on_close: AtomicBool::new(false),
        });
        let (requests, queue) = mpsc::channel();
        let applier = Arc::new(spawn_applier(Arc::clone(&shared))?);
        let writer = Writer {
            shared: Arc::clone(&shared),
            queue,
            data_file,
            journal,
            syncer: spawn_syncer(Arc::clone(&shared), Arc::clone(&applier))?,
            applier,
            carried: None,
            handed: 0,
            in_flight: InFlight::default(),
            max_batch: options.max_batch_requests.max(1),
            next_position: head + 1,
        };
        let writer = std::thread::Builder::new()
            .name("eventlog-writer".into())
            .spawn(move || writer.run())?;
        Ok(SledLog {
            shared,
            requests: Some(requests),
            writer: Some(writer),
        })
    }

    /// The sled database the log lives in, so subscribers can keep their state and
    /// checkpoints in their own trees of the same database.
    pub fn db(&self) -> &sled::Db {
        &self.shared.db
    }

    /// A handle that makes the whole database durable (see [`DbSync`]).
    pub fn db_sync(&self) -> Result<DbSync, LogError> {
        Ok(DbSync {
            db: self.shared.db.clone(),
            data_file: Arc::new(File::open(&self.shared.data_path)?),
        })
    }

    /// Iterates over every durable record with a position greater than `after`, decoding as
    /// it goes. The fast path under `read_all`, and the baseline the replay benchmark
    /// compares the projections against.
    pub fn scan_raw(&self, after: Position) -> Records {
        Records::of(&self.shared, after, self.head())
    }

    /// Applies every acknowledged record still held in memory to sled now (not durably), for
    /// tools and tests that look at the log's sled tree directly.
    pub fn apply_tail(&self) -> Result<(), LogError> {
        Ok(self.shared.apply_tail()?)
    }

    /// Group commits so far (since open).
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            commits: self.shared.commits.load(Ordering::Relaxed),
            requests: self.shared.committed_requests.load(Ordering::Relaxed),
        }
    }

    /// True once a failed group commit has poisoned the log.
    pub fn is_poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::Acquire)
    }

    fn read_stream_sync(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let positions: Vec<Position> = {
            let index = self.shared.index.read().expect("index lock poisoned");
            let Some(all) = index.streams.get(stream) else {
                return Ok(Vec::new());
            };
            let skip = usize::try_from(from_version.saturating_sub(1)).unwrap_or(usize::MAX);
            all.iter().skip(skip).take(limit).copied().collect()
        };
        // The tail's records of the stream are copied out first (see "Reads" in the module
        // docs); everything up to `applied` is then in sled.
        let (applied, in_tail) = {
            let tail = self.shared.tail.read().expect("tail lock poisoned");
            let mut copied = Vec::new();
            for &position in positions.iter().filter(|&&p| p > tail.applied) {
                match tail.records.slice(position, position) {
                    Some((p, bytes)) if p == position => copied.extend_from_slice(bytes),
                    _ => {
                        return Err(LogError::Layout {
                            position,
                            detail: format!("indexed event of stream {stream:?} is missing"),
                        })
                    }
                }
            }
            (tail.applied, copied)
        };
        let mut out = Vec::with_capacity(positions.len());
        let mut cursor: Option<Records> = None;
        let (in_sled, after_sled) =
            positions.split_at(positions.partition_point(|&p| p <= applied));
        for &position in in_sled {
            // A stream's events often sit close together (one append, one apply):
            // walk forward when the next one is near instead of seeking from the top.
            let near = cursor
                .as_ref()
                .is_some_and(|c| c.next_position <= position && position - c.next_position < 64);
            if !near {
                cursor = Some(Records::new(&self.shared.tree, position - 1, Position::MAX));
            }
            let records = cursor.as_mut().expect("cursor set above");
            records.after = position - 1;
            match records.next() {
                Some(Ok(event)) => out.push(event),
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(LogError::Layout {
                        position,
                        detail: format!("indexed event of stream {stream:?} is missing"),
                    })
                }
            }
        }
        let mut offset = 0;
        for &position in after_sled {
            let (event, len) = decode_record(&in_tail[offset..])
                .map_err(|source| LogError::Corrupt { position, source })?;
            if event.envelope.position != position {
                return Err(LogError::Layout {
                    position,
                    detail: format!("record claims position {}", event.envelope.position),
                });
            }
            offset += len;
            out.push(event);
        }
        Ok(out)
    }
}

impl Drop for SledLog {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish its current commit and exit; joining it
        // means the database is released when the log is dropped, so it can be reopened.
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("event log writer thread panicked");
            }
        }
    }
}

// Reads run inline on the calling task: sled serves them from its page cache at memory speed
// and a read is bounded by `limit`, so they are short; callers replaying a whole log should
// do so in bounded batches (as `Subscription` does).
#[async_trait]
impl EventLog for SledLog {
    async fn append(&self, req: AppendRequest) -> Result<Appended, AppendError> {
        let mut appended = self.append_many(vec![req]).await?;
        Ok(appended.pop().expect("one result per request"))
    }

    async fn append_many(&self, reqs: Vec<AppendRequest>) -> Result<Vec<Appended>, AppendError> {
        if reqs.is_empty() || reqs.iter().any(|r| r.events.is_empty()) {
            return Err(AppendError::Empty);
        }
        // The transaction's key travels on every record it writes (see `Writer::commit`).
        let key_len = reqs[0].idempotency_key.as_ref().map_or(0, String::len);
        for req in &reqs {
            for event in &req.events {
                let size = codec::record_len(
                    req.stream.len()
                        + event.tenant.len()
                        + event.actor.len()
                        + event.correlation_id.len()
                        + key_len,
                    event.payload.len(),
                );
                if size > MAX_RECORD_BYTES {
                    return Err(AppendError::TooLarge {
                        size,
                        max: MAX_RECORD_BYTES,
                    });
                }
            }
        }
        if self.is_poisoned() {
            return Err(AppendError::Poisoned);
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .as_ref()
            .ok_or(AppendError::Closed)?
            .send(Pending { reqs, reply })
            .map_err(|_| AppendError::Closed)?;
        answer.await.map_err(|_| AppendError::Closed)?
    }

    fn idempotent_result(&self, key: &str) -> Option<Appended> {
        let index = self.shared.index.read().expect("index lock poisoned");
        index.idempotency.get(key).map(|first| Appended {
            replayed: true,
            ..*first
        })
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.read_stream_sync(stream, from_version, limit)
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let until = self
            .head()
            .min(after.saturating_add(u64::try_from(limit).unwrap_or(u64::MAX)));
        if until <= after {
            return Ok(Vec::new());
        }
        // Sized up front: growing the vector record by record was an eighth of a catch-up's
        // reading time. Capped, for callers that pass no real limit.
        let expected =
            usize::try_from(until - after).map_or(READ_RESERVE_MAX, |n| n.min(READ_RESERVE_MAX));
        let mut records = Vec::with_capacity(expected);
        self.scan(after, until, &mut |record| {
            records.push(record.owned());
            ControlFlow::Continue(())
        })?;
        Ok(records)
    }

    fn scan(
        &self,
        after: Position,
        until: Position,
        visit: &mut dyn FnMut(RecordRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), LogError> {
        Records::of(&self.shared, after, until.min(self.head())).visit(visit)
    }

    fn stream_version(&self, stream: &str) -> u64 {
        let index = self.shared.index.read().expect("index lock poisoned");
        index.streams.get(stream).map_or(0, |p| p.len() as u64)
    }

    fn head(&self) -> Position {
        *self.shared.head.borrow()
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.shared.head.subscribe()
    }
}

/// Replays into sled what the commit journal holds beyond sled's last record, and makes sled
/// durable (so the journal's files may be reused). Returns the journal, ready for
/// [`Journal::start`], and sled's data file for later checkpoints.
pub(crate) fn recover(
    dir: &Path,
    db: &sled::Db,
    tree: &sled::Tree,
    journal_capacity: u64,
) -> Result<(Journal, File), LogError> {
    let data_file = File::open(self::data_file(dir))?;
    let (journal, tail) = Journal::open(dir, journal_capacity, last_position(tree)?)?;
    if let Some((first, _)) = tail.spans.first() {
        tracing::info!(
            first,
            records = tail.spans.len(),
            "replaying the commit journal into the log"
        );
        tree.apply_batch(pack_chunks(&tail.encoded, &tail.spans))?;
    }
    // Even with nothing to replay: what sled recovered may sit only in the page cache (after
    // a killed process), and the journal is about to be reused.
    checkpoint(db, &data_file)?;
    Ok((journal, data_file))
}

/// Makes everything applied to sled so far durable: its buffers written, then its data file
/// synced.
fn checkpoint(db: &sled::Db, data_file: &File) -> std::io::Result<()> {
    db.flush()?;
    data_file.sync_data()
}

/// Makes the log's whole sled database durable on demand, for state kept beside the log that
/// an event refers to (a secret stored by fingerprint, a sealing key): appends make only the
/// log durable, so such state must be synced before the event that needs it is appended.
#[derive(Clone)]
pub struct DbSync {
    db: sled::Db,
    data_file: Arc<File>,
}

impl DbSync {
    /// The database this handle syncs.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Everything written to the database so far survives power loss once this returns.
    pub fn sync(&self) -> std::io::Result<()> {
        checkpoint(&self.db, &self.data_file)
    }
}

/// The position of sled's last record, found from the end by reading frame lengths only, so a
/// damaged record body does not hide where the log ends (`verify` reports it).
fn last_position(tree: &sled::Tree) -> Result<Position, LogError> {
    // The position of the continuation parts seen just before (in reverse) a part 0.
    let mut continued: Option<Position> = None;
    for chunk in tree.iter().rev() {
        let (key, value) = chunk?;
        let Some((position, part)) = parse_chunk_key(&key) else {
            continue;
        };
        if part != 0 {
            continued = Some(position);
            continue;
        }
        if continued == Some(position) {
            // A part 0 with continuation parts holds one record split across them.
            return Ok(position);
        }
        let mut last = position - 1;
        for frame in frames(&value) {
            last += 1;
            frame.map_err(|source| LogError::Corrupt {
                position: last,
                source,
            })?;
        }
        return Ok(last);
    }
    Ok(0)
}

/// sled's data file in a log directory: sled 0.34.7 keeps all non-blob data in this one file,
/// and holds an exclusive lock on it while the database is open.
pub fn data_file(dir: &Path) -> std::path::PathBuf {
    dir.join("db")
}

/// How long an open waits for another holder of the directory's lock to let go.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

pub(crate) fn open_db(dir: &Path, cache_capacity: Option<u64>) -> Result<sled::Db, LogError> {
    let mut config = sled::Config::new().path(dir);
    if let Some(bytes) = cache_capacity {
        config = config.cache_capacity(bytes);
    }
    // sled 0.34.7 releases its file lock only when its background threads drop their last
    // reference to the database, shortly *after* the last handle is dropped; so a restart
    // in the same process (tests, `halley rebuild` after a stop) can find the lock still
    // held for a moment. Wait a bounded time rather than fail; a lock held by a running
    // server still fails, just not at once.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock") =>
            {
                if std::time::Instant::now() >= deadline {
                    return Err(sled::Error::Io(e).into());
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return Ok(result?),
        }
    }
}

/// The one scan at open: checks the log's shape as it goes (gapless positions from 1,
/// contiguous stream versions) because the indexes are only right if the log is. Reads the
/// records borrowed, so a record of a known stream allocates nothing.
fn rebuild_index(tree: &sled::Tree) -> Result<(Index, Position), LogError> {
    let mut index = Index::default();
    let mut head = 0;
    let mut records = Records::new(tree, 0, Position::MAX);
    while let Some(indexed) = records.step(|record| index.add(&record.envelope, head)) {
        head = indexed??;
    }
    Ok((index, head))
}

impl Index {
    /// Files the record after position `head`; returns its position.
    fn add(&mut self, env: &Envelope<&str>, head: Position) -> Result<Position, LogError> {
        if env.position != head + 1 {
            return Err(LogError::Layout {
                position: env.position,
                detail: format!("expected position {}", head + 1),
            });
        }
        // Look up before inserting so the common case (a known stream) allocates nothing.
        let positions = match self.streams.get_mut(env.stream) {
            Some(positions) => positions,
            None => self.streams.entry(env.stream.to_owned()).or_default(),
        };
        positions.push(env.position);
        if env.stream_version != positions.len() as u64 {
            return Err(LogError::Layout {
                position: env.position,
                detail: format!(
                    "stream {:?} at version {}, expected {}",
                    env.stream,
                    env.stream_version,
                    positions.len()
                ),
            });
        }
        if let Some(key) = env.idempotency_key {
            match self.idempotency.get_mut(key) {
                Some(first) => {
                    first.last = env.position;
                    first.stream_version = env.stream_version;
                }
                None => {
                    let first = Appended {
                        first: env.position,
                        last: env.position,
                        stream_version: env.stream_version,
                        replayed: false,
                    };
                    self.idempotency.insert(key.to_owned(), first);
                }
            }
        }
        Ok(env.position)
    }
}

pub(crate) fn chunk_key(position: Position, part: u32) -> [u8; 12] {
    let mut key = [0; 12];
    key[..8].copy_from_slice(&position.to_be_bytes());
    key[8..].copy_from_slice(&part.to_be_bytes());
    key
}

pub(crate) fn parse_chunk_key(key: &[u8]) -> Option<(Position, u32)> {
    let key: &[u8; 12] = key.try_into().ok()?;
    let position = u64::from_be_bytes(key[..8].try_into().expect("8 bytes"));
    let part = u32::from_be_bytes(key[8..].try_into().expect("4 bytes"));
    Some((position, part))
}

/// The records of one part-0 chunk and its continuation parts.
pub(crate) struct Group {
    pub(crate) position: Position,
    pub(crate) parts: u32,
    pub(crate) bytes: GroupBytes,
}

/// Most groups are one chunk, read in place; only split records are joined into a copy.
pub(crate) enum GroupBytes {
    Chunk(sled::IVec),
    Joined(Vec<u8>),
}

impl std::ops::Deref for GroupBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            GroupBytes::Chunk(v) => v,
            GroupBytes::Joined(v) => v,
        }
    }
}

/// Walks the chunks in key order and hands out groups. After an error it carries on with the
/// next chunk, so `verify` can report everything; readers stop at the first error.
pub(crate) struct Groups {
    chunks: sled::Iter,
    peeked: Option<(sled::IVec, sled::IVec)>,
    last_position: Position,
}

impl Groups {
    /// Groups starting with the one that holds `position` (or the first group, if none
    /// starts at or before it).
    pub(crate) fn containing(tree: &sled::Tree, position: Position) -> Result<Groups, LogError> {
        let start = match tree.range(..=chunk_key(position, u32::MAX)).next_back() {
            Some(found) => {
                let (key, _) = found?;
                let (first, _) = parse_chunk_key(&key).ok_or_else(|| LogError::Layout {
                    position,
                    detail: format!("malformed chunk key {key:02x?}"),
                })?;
                first
            }
            None => 0,
        };
        Ok(Groups {
            chunks: tree.range(chunk_key(start, 0)..),
            peeked: None,
            last_position: start,
        })
    }

    fn next_chunk(&mut self) -> Option<Result<(sled::IVec, sled::IVec), LogError>> {
        self.peeked
            .take()
            .map(Ok)
            .or_else(|| self.chunks.next().map(|r| r.map_err(LogError::from)))
    }
}

impl Iterator for Groups {
    type Item = Result<Group, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (key, value) = match self.next_chunk()? {
            Ok(chunk) => chunk,
            Err(e) => return Some(Err(e)),
        };
        let Some((position, part)) = parse_chunk_key(&key) else {
            return Some(Err(LogError::Layout {
                position: self.last_position,
                detail: format!("malformed chunk key {key:02x?}"),
            }));
        };
        self.last_position = position;
        if part != 0 {
            return Some(Err(LogError::Layout {
                position,
                detail: format!("chunk part {part} without its part 0"),
            }));
        }
        let mut bytes = GroupBytes::Chunk(value);
        let mut parts = 1;
        loop {
            let (key, value) = match self.next_chunk() {
                None => break,
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => return Some(Err(e)),
            };
            match parse_chunk_key(&key) {
                Some((p, part)) if p == position => {
                    if part != parts {
                        return Some(Err(LogError::Layout {
                            position,
                            detail: format!("chunk part {part} follows part {}", parts - 1),
                        }));
                    }
                    let mut joined = match bytes {
                        GroupBytes::Chunk(first) => first.to_vec(),
                        GroupBytes::Joined(v) => v,
                    };
                    joined.extend_from_slice(&value);
                    bytes = GroupBytes::Joined(joined);
                    parts += 1;
                }
                _ => {
                    self.peeked = Some((key, value));
                    break;
                }
            }
        }
        Some(Ok(Group {
            position,
            parts,
            bytes,
        }))
    }
}

/// Decoded records in position order, from `after + 1` up to `until` (inclusive): from sled up
/// to `sled_until`, then from a copy of the tail. Stops at the first error, which names the
/// position it was reading.
pub struct Records {
    /// sled's groups; `None` once sled is read as far as this iterator takes it.
    groups: Option<Groups>,
    /// Finding the starting chunk failed; reported by the first `next`.
    seek_error: Option<LogError>,
    group: Option<Group>,
    offset: usize,
    next_position: Position,
    after: Position,
    until: Position,
    sled_until: Position,
    /// The records after `sled_until` that were in the tail, as one group.
    tail: Option<Group>,
    failed: bool,
}

impl Records {
    /// Records from sled only (at open, before there is a tail).
    fn new(tree: &sled::Tree, after: Position, until: Position) -> Records {
        Records::with_tail(tree, after, until, until, None)
    }

    /// Records from sled and the tail, as a reader sees them (see "Reads" in the module docs).
    fn of(shared: &Shared, after: Position, until: Position) -> Records {
        let (sled_until, tail) = {
            let tail = shared.tail.read().expect("tail lock poisoned");
            let copied =
                tail.records
                    .slice(after.max(tail.applied) + 1, until)
                    .map(|(position, bytes)| Group {
                        position,
                        parts: 1,
                        bytes: GroupBytes::Joined(bytes.to_vec()),
                    });
            (until.min(tail.applied), copied)
        };
        Records::with_tail(&shared.tree, after, until, sled_until, tail)
    }

    fn with_tail(
        tree: &sled::Tree,
        after: Position,
        until: Position,
        sled_until: Position,
        tail: Option<Group>,
    ) -> Records {
        let (groups, seek_error) = if after >= sled_until && tail.is_some() {
            // Everything wanted is in the tail's copy.
            (None, None)
        } else {
            match Groups::containing(tree, after.saturating_add(1)) {
                Ok(groups) => (Some(groups), None),
                Err(e) => (None, Some(e)),
            }
        };
        Records {
            groups,
            seek_error,
            group: None,
            offset: 0,
            next_position: 0,
            after,
            until,
            sled_until,
            tail,
            failed: false,
        }
    }

    fn fail<T>(&mut self, e: LogError) -> Option<Result<T, LogError>> {
        self.failed = true;
        Some(Err(e))
    }

    /// Hands the records to `visit`, borrowed from the chunks they lie in, until it breaks or a
    /// record fails (the error is returned).
    fn visit(
        &mut self,
        visit: &mut dyn FnMut(RecordRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), LogError> {
        while let Some(step) = self.step(&mut *visit) {
            if step?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Reads the next record and returns what `f` makes of it, borrowed from the chunk it lies
    /// in; both [`Records::visit`] and the iterator (which copies each record out) read this
    /// way.
    fn step<T>(&mut self, f: impl FnOnce(RecordRef<'_>) -> T) -> Option<Result<T, LogError>> {
        loop {
            if self.failed {
                return None;
            }
            if let Some(e) = self.seek_error.take() {
                return self.fail(e);
            }
            let Some(group) = &self.group else {
                let next = match self.groups.as_mut().and_then(Iterator::next) {
                    Some(Ok(group)) if group.position <= self.sled_until || self.tail.is_none() => {
                        Ok(group)
                    }
                    Some(Err(e)) => Err(e),
                    // sled is read up to `sled_until`; the rest is in the tail's copy.
                    _ => {
                        self.groups = None;
                        Ok(self.tail.take()?)
                    }
                };
                match next {
                    Ok(group) => {
                        // The first group sets the position; after that, each group must
                        // start where the previous one ended.
                        if self.next_position == 0 {
                            if self.after == 0 && group.position != 1 {
                                return self.fail(LogError::Layout {
                                    position: 1,
                                    detail: format!("log starts at position {}", group.position),
                                });
                            }
                            self.next_position = group.position;
                        } else if group.position != self.next_position {
                            return self.fail(LogError::Layout {
                                position: self.next_position,
                                detail: format!("next chunk starts at position {}", group.position),
                            });
                        }
                        if group.position > self.until {
                            return None;
                        }
                        self.group = Some(group);
                        self.offset = 0;
                    }
                    Err(e) => return self.fail(e),
                }
                continue;
            };
            if self.offset >= group.bytes.len() {
                self.group = None;
                continue;
            }
            let position = self.next_position;
            if position > self.until {
                return None;
            }
            if self.groups.is_some() && position > self.sled_until {
                // The rest of this sled group was applied after the tail was copied: read it
                // from the copy.
                self.group = None;
                self.groups = None;
                continue;
            }
            let bytes = &group.bytes[self.offset..];
            if position <= self.after {
                // Skipping: only the frame is read, so skipped records cost no crc or decode.
                match frame_len(bytes) {
                    Ok(len) => {
                        self.offset += len;
                        self.next_position += 1;
                    }
                    Err(source) => return self.fail(LogError::Corrupt { position, source }),
                }
                continue;
            }
            match decode_record_ref(bytes) {
                Ok((record, len)) => {
                    let claimed = record.envelope.position;
                    if claimed != position {
                        return self.fail(LogError::Layout {
                            position,
                            detail: format!("record claims position {claimed}"),
                        });
                    }
                    let made = f(record);
                    self.offset += len;
                    self.next_position += 1;
                    return Some(Ok(made));
                }
                Err(source) => return self.fail(LogError::Corrupt { position, source }),
            }
        }
    }
}

impl Iterator for Records {
    type Item = Result<RecordedEvent, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step(|record| record.owned())
    }
}

/// The single owner of appends. Everything it decides (positions, versions, idempotency) is
/// checked against the published index plus the requests earlier in the same batch, which is
/// race-free because no one else writes.
struct Writer {
    shared: Arc<Shared>,
    queue: mpsc::Receiver<Pending>,
    /// sled's data file, synced by checkpoints (see [`Journal`]).
    data_file: File,
    journal: Journal,
    /// Syncs, publishes and answers each batch written while the writer goes on with the
    /// next (see "Durability" in the module docs).
    syncer: Worker<ToSync>,
    /// Wakes the apply thread; shared with the syncer, which publishes most batches.
    applier: Arc<Worker<()>>,
    /// A request taken from the queue to see whether anyone was waiting: the next batch's
    /// first.
    carried: Option<Pending>,
    /// Batches handed to the syncer (see [`Shared::synced`]).
    handed: u64,
    /// What the batch handed to the syncer last changes, until the next batch is handed over
    /// (by then the syncer has published it).
    in_flight: InFlight,
    max_batch: usize,
    next_position: Position,
}

/// The versions and idempotency keys a batch being synced will publish, which the next batch
/// is staged against.
#[derive(Default)]
struct InFlight {
    versions: HashMap<String, u64>,
    keys: HashMap<String, Appended>,
}

/// The `eventlog-apply` thread: applies the tail to sled whenever the syncer says it has grown
/// to [`APPLY_BYTES`]. Holds at most one wake-up: a signal sent while one is pending is the
/// same signal.
fn spawn_applier(shared: Arc<Shared>) -> std::io::Result<Worker<()>> {
    Worker::spawn("eventlog-apply", 1, move |()| match shared.apply_tail() {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            // The records stay in the tail and the journal; what sled holds can no longer be
            // trusted, so nothing more is accepted.
            tracing::error!(error = %e, "applying the tail to sled failed; poisoning the event log");
            shared.poisoned.store(true, Ordering::Release);
            ControlFlow::Break(())
        }
    })
}

/// What the writer hands the syncer.
enum ToSync {
    Batch(Written),
    /// Nothing to do: the hand-over itself means every batch before it is published.
    Drain,
}

/// A batch as the writer leaves it: its records written to the journal (if it has any), its
/// answers decided.
struct Written {
    batch: Vec<Pending>,
    outcomes: Vec<Outcome>,
    /// The group as written, and each record's position and bytes in it; empty if the batch
    /// writes nothing.
    encoded: Vec<u8>,
    spans: Vec<(Position, Range<usize>)>,
    new_keys: HashMap<String, Appended>,
    /// The position after the batch's last record.
    next: Position,
    /// The journal file to sync; `None` if the batch wrote nothing.
    journal: Option<JournalSync>,
}

/// The `eventlog-sync` thread: `fdatasync`s each written batch while the writer stages and
/// writes the next, then publishes the batch (tail, indexes, head) and answers its callers.
/// A hand-over waits for the previous batch to be done, so at most one batch is in flight.
fn spawn_syncer(shared: Arc<Shared>, applier: Arc<Worker<()>>) -> std::io::Result<Worker<ToSync>> {
    Worker::spawn("eventlog-sync", 0, move |message| {
        if let ToSync::Batch(written) = message {
            sync_and_publish(&shared, &applier, written);
            shared.synced.fetch_add(1, Ordering::Release);
        }
        ControlFlow::Continue(())
    })
}

fn sync_and_publish(shared: &Shared, applier: &Worker<()>, written: Written) {
    let Written {
        batch,
        outcomes,
        encoded,
        spans,
        new_keys,
        next,
        journal,
    } = written;
    if shared.poisoned.load(Ordering::Acquire) {
        // An earlier batch failed after this one was staged. Its records may be on disk but
        // must not be acknowledged, nor published over the failed batch's gap; and its
        // answers may rest on what the failed batch would have published (a replay of a key
        // that batch wrote), so none of them stands but its rejections.
        fail_batch(batch, outcomes, &AppendError::Poisoned);
        return;
    }
    if let Some(journal) = journal {
        let synced = journal.sync();
        #[cfg(test)]
        let synced = synced.and_then(|()| {
            if shared.fail_next_commit.swap(false, Ordering::AcqRel) {
                return Err(std::io::Error::other("injected sync failure"));
            }
            Ok(())
        });
        if let Err(e) = synced {
            tracing::error!(error = %e, "group commit failed; poisoning the event log");
            shared.poisoned.store(true, Ordering::Release);
            fail_batch(batch, outcomes, &AppendError::Io(Arc::new(e)));
            return;
        }
        debug_assert_eq!(
            spans[0].0,
            *shared.head.borrow() + 1,
            "batches are published in order"
        );
        let tail_bytes = {
            let mut tail = shared.tail.write().expect("tail lock poisoned");
            tail.records.extend(&encoded, &spans);
            let bytes = tail.records.encoded.len();
            shared.tail_bytes.store(bytes, Ordering::Release);
            bytes
        };
        if tail_bytes >= APPLY_BYTES {
            // Full: a wake-up is already pending. Stopped: the apply thread failed (poisoned).
            applier.try_send(());
        }
        let mut index = shared.index.write().expect("index lock poisoned");
        let mut written = 0;
        for (pending, outcome) in batch.iter().zip(&outcomes) {
            if let Outcome::Write(appended) = outcome {
                written += 1;
                for (req, a) in pending.reqs.iter().zip(appended) {
                    // Looked up before inserting: a known stream costs no key copy.
                    match index.streams.get_mut(&req.stream) {
                        Some(positions) => positions.extend(a.first..=a.last),
                        None => {
                            let positions = (a.first..=a.last).collect();
                            index.streams.insert(req.stream.clone(), positions);
                        }
                    }
                }
            }
        }
        index.idempotency.extend(new_keys);
        drop(index);
        shared.commits.fetch_add(1, Ordering::Relaxed);
        shared
            .committed_requests
            .fetch_add(written, Ordering::Relaxed);
        shared.head.send_replace(next - 1);
    }
    for (pending, outcome) in batch.into_iter().zip(outcomes) {
        let result = match outcome {
            Outcome::Answer(result) => result,
            Outcome::Write(appended) => Ok(appended),
        };
        answer(pending.reply, result);
    }
}

/// Answers a batch that was not committed: its rejections stand, its writes fail with `error`.
fn fail_batch(batch: Vec<Pending>, outcomes: Vec<Outcome>, error: &AppendError) {
    for (pending, outcome) in batch.into_iter().zip(outcomes) {
        let result = match outcome {
            Outcome::Answer(Err(rejected)) => Err(rejected),
            _ => Err(error.clone()),
        };
        answer(pending.reply, result);
    }
}

/// What one transaction of a batch comes to.
enum Outcome {
    /// Answered without writing: rejected, or replaying an earlier keyed append.
    Answer(Result<Vec<Appended>, AppendError>),
    /// Records encoded into this batch, one result per request.
    Write(Vec<Appended>),
}

/// The batch being assembled: encoded records and what they will change in the index.
struct Staged<'a> {
    /// Room for the journal's group header, then the records.
    encoded: Vec<u8>,
    spans: Vec<(Position, Range<usize>)>,
    versions: HashMap<&'a str, u64>,
    new_keys: HashMap<String, Appended>,
    next: Position,
}

impl Writer {
    fn run(mut self) {
        // Blocks for one request, then takes whatever queued up meanwhile: while a commit
        // is syncing, the next batch gathers, which is the whole group-commit mechanism.
        while let Some(first) = self.carried.take().or_else(|| self.queue.recv().ok()) {
            let mut bytes = payload_bytes(&first);
            let mut batch = vec![first];
            // Bytes bound a batch too, so a burst of bulk appends (imports) cannot make one
            // commit buffer hundreds of megabytes.
            while batch.len() < self.max_batch && bytes < BATCH_BYTES {
                match self.queue.try_recv() {
                    Ok(pending) => {
                        bytes += payload_bytes(&pending);
                        batch.push(pending);
                    }
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
        // The syncer publishes the batch in flight and lets go of the apply thread, whose
        // last holder this is: dropping it joins the thread.
        self.syncer.stop();
        drop(self.applier);
        #[cfg(test)]
        if self.shared.crash_on_close.load(Ordering::Acquire) {
            return;
        }
        // Closing: leave sled durable, so the next open has nothing to replay.
        if !self.shared.poisoned.load(Ordering::Acquire) {
            let closed = self
                .shared
                .apply_tail()
                .map_err(std::io::Error::from)
                .and_then(|()| checkpoint(&self.shared.db, &self.data_file));
            if let Err(e) = closed {
                tracing::error!(error = %e, "final checkpoint of the event log failed");
            }
        }
    }

    /// Stages and writes `batch`, then hands it to the syncer, which has by then published
    /// the batch before; or, for a lone request with nobody else waiting and the syncer idle,
    /// syncs and publishes it here, sparing the caller two thread wake-ups.
    fn commit(&mut self, batch: Vec<Pending>) {
        if self.shared.poisoned.load(Ordering::Acquire) {
            for pending in batch {
                answer(pending.reply, Err(AppendError::Poisoned));
            }
            return;
        }
        let mut staged = Staged {
            encoded: vec![0; GROUP_HEADER_LEN],
            spans: Vec::new(),
            versions: HashMap::new(),
            new_keys: HashMap::new(),
            next: self.next_position,
        };
        let outcomes: Vec<Outcome> = {
            let index = self.shared.index.read().expect("index lock poisoned");
            batch
                .iter()
                .map(|pending| stage(&index, &self.in_flight, &mut staged, &pending.reqs))
                .collect()
        };
        let Staged {
            mut encoded,
            spans,
            versions,
            new_keys,
            next,
        } = staged;
        if !spans.is_empty() {
            if let Err(e) = self.write(&mut encoded, &spans) {
                tracing::error!(error = %e, "group commit failed; poisoning the event log");
                self.shared.poisoned.store(true, Ordering::Release);
                fail_batch(batch, outcomes, &AppendError::Io(Arc::new(e)));
                return;
            }
        }
        self.next_position = next;
        let lone = batch.len() == 1 && self.alone();
        // What the next batch is staged against while this one is in flight; nothing when it
        // is published here.
        self.in_flight = if lone {
            InFlight::default()
        } else {
            InFlight {
                versions: versions
                    .into_iter()
                    .map(|(stream, version)| (stream.to_owned(), version))
                    .collect(),
                keys: new_keys.clone(),
            }
        };
        let journal = (!spans.is_empty()).then(|| self.journal.sync_handle());
        let written = Written {
            batch,
            outcomes,
            encoded,
            spans,
            new_keys,
            next,
            journal,
        };
        if lone {
            sync_and_publish(&self.shared, &self.applier, written);
        } else {
            self.handed += 1;
            // Waits for the syncer to be done with the batch before; it has stopped only if
            // the writer is closing, which this thread is not.
            let handed = self.syncer.send(ToSync::Batch(written));
            debug_assert!(handed, "the sync thread outlives the writer loop");
        }
    }

    /// Whether the syncer is idle and no request is waiting, for a lone request to be synced
    /// here. Under load the queue empties for moments between batches, so only single-request
    /// batches ask: syncing a larger one here would stall the requests arriving meanwhile.
    fn alone(&mut self) -> bool {
        if self.shared.synced.load(Ordering::Acquire) != self.handed {
            return false;
        }
        if self.carried.is_none() {
            self.carried = self.queue.try_recv().ok();
        }
        self.carried.is_none()
    }

    /// Writes a group to the journal (not durably: the syncer does that).
    fn write(
        &mut self,
        encoded: &mut [u8],
        spans: &[(Position, Range<usize>)],
    ) -> std::io::Result<()> {
        let first = spans[0].0;
        if self.journal.is_full_for(encoded.len() - GROUP_HEADER_LEN) {
            // The other file is about to be overwritten: what it covers must be in sled,
            // durably, first; and so must the batch in flight, which a failed sync could
            // otherwise leave as a gap before this batch in the next file.
            self.syncer.send(ToSync::Drain);
            self.shared.apply_tail()?;
            checkpoint(&self.shared.db, &self.data_file)?;
            self.journal.rotate(first)?;
        } else if self.shared.tail_bytes() >= TAIL_MAX_BYTES {
            self.shared.apply_tail()?;
        }
        self.journal.write(first, encoded)
    }
}

/// Checks one transaction against the index plus what the batch already staged, and encodes
/// its records if every request is admitted. A rejected request rejects the whole
/// transaction, so nothing of it is staged.
fn stage<'a>(
    index: &Index,
    in_flight: &InFlight,
    staged: &mut Staged<'a>,
    reqs: &'a [AppendRequest],
) -> Outcome {
    let key = reqs[0].idempotency_key.as_deref();
    if let Some(k) = key {
        let known = (staged.new_keys.get(k))
            .or(in_flight.keys.get(k))
            .or(index.idempotency.get(k));
        if let Some(first) = known {
            return Outcome::Answer(Ok(vec![Appended {
                replayed: true,
                ..*first
            }]));
        }
    }
    let (encoded_len, spans_len, next) = (staged.encoded.len(), staged.spans.len(), staged.next);
    let mut restore: Vec<(&str, Option<u64>)> = Vec::new();
    let mut results = Vec::with_capacity(reqs.len());
    for req in reqs {
        let actual = (staged.versions.get(req.stream.as_str()))
            .or(in_flight.versions.get(&req.stream))
            .copied()
            .unwrap_or_else(|| index.streams.get(&req.stream).map_or(0, |p| p.len() as u64));
        if !req.expected.admits(actual) {
            // Undo what earlier requests of this transaction staged.
            staged.encoded.truncate(encoded_len);
            staged.spans.truncate(spans_len);
            staged.next = next;
            for (stream, version) in restore.into_iter().rev() {
                match version {
                    Some(v) => staged.versions.insert(stream, v),
                    None => staged.versions.remove(stream),
                };
            }
            return Outcome::Answer(Err(AppendError::Conflict {
                stream: req.stream.clone(),
                expected: req.expected,
                actual,
            }));
        }
        let first = staged.next;
        for (i, event) in req.events.iter().enumerate() {
            let start = staged.encoded.len();
            let at = codec::RecordAt {
                position: staged.next,
                stream: &req.stream,
                stream_version: actual + 1 + i as u64,
                idempotency_key: key,
            };
            codec::encode_new_event_into(&mut staged.encoded, &at, event);
            staged
                .spans
                .push((staged.next, start..staged.encoded.len()));
            staged.next += 1;
        }
        let appended = Appended {
            first,
            last: staged.next - 1,
            stream_version: actual + req.events.len() as u64,
            replayed: false,
        };
        restore.push((
            req.stream.as_str(),
            staged.versions.insert(&req.stream, appended.stream_version),
        ));
        results.push(appended);
    }
    if let Some(k) = key {
        // Rebuilt from the log, a key's extent is its first..last record, whatever streams
        // they are on; remember it the same way now.
        let last = results.last().expect("at least one request");
        staged.new_keys.insert(
            k.to_owned(),
            Appended {
                first: results[0].first,
                ..*last
            },
        );
    }
    Outcome::Write(results)
}

fn payload_bytes(pending: &Pending) -> usize {
    pending
        .reqs
        .iter()
        .flat_map(|r| &r.events)
        .map(|e| e.payload.len())
        .sum()
}

fn answer(
    reply: oneshot::Sender<Result<Vec<Appended>, AppendError>>,
    result: Result<Vec<Appended>, AppendError>,
) {
    if reply.send(result).is_err() {
        // The caller stopped waiting; the outcome stands (and is durable if it was a write).
        tracing::debug!("append caller went away before its answer");
    }
}

/// Cuts the records of one apply (contiguous in `encoded`, one span per record, positions
/// ascending) into chunks; see the module docs for the layout.
fn pack_chunks(encoded: &[u8], spans: &[(Position, Range<usize>)]) -> sled::Batch {
    let mut batch = sled::Batch::default();
    // The open chunk: its first position and where its bytes start in `encoded`.
    let mut open: Option<(Position, usize)> = None;
    let mut end = 0;
    for (position, span) in spans {
        if span.len() > CHUNK_MAX {
            if let Some((first, start)) = open.take() {
                batch.insert(&chunk_key(first, 0), &encoded[start..end]);
            }
            for (part, bytes) in encoded[span.clone()].chunks(CHUNK_MAX).enumerate() {
                let part = u32::try_from(part).expect("records are far below 4 GiB");
                batch.insert(&chunk_key(*position, part), bytes);
            }
            continue;
        }
        if let Some((first, start)) = open {
            if span.end - start > CHUNK_MAX {
                batch.insert(&chunk_key(first, 0), &encoded[start..end]);
                open = None;
            }
        }
        if open.is_none() {
            open = Some((*position, span.start));
        }
        end = span.end;
    }
    if let Some((first, start)) = open {
        batch.insert(&chunk_key(first, 0), &encoded[start..end]);
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExpectedVersion, NewEvent};

    fn one_event(stream: &str) -> AppendRequest {
        AppendRequest {
            stream: stream.into(),
            expected: ExpectedVersion::Any,
            events: vec![NewEvent {
                tenant: "root".into(),
                type_code: 1,
                schema_version: 1,
                recorded_at_us: 0,
                actor: "system".into(),
                correlation_id: "c".into(),
                payload: b"x".to_vec(),
            }],
            idempotency_key: None,
        }
    }

    #[tokio::test]
    async fn a_failed_commit_acknowledges_nothing_and_poisons_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = SledLog::open(dir.path()).unwrap();
            log.append(one_event("s")).await.unwrap();
            log.shared.fail_next_commit.store(true, Ordering::Release);
            assert!(matches!(
                log.append(one_event("s")).await,
                Err(AppendError::Io(_))
            ));
            assert!(log.is_poisoned());
            // Nothing of the failed commit is visible, and nothing more is accepted.
            assert_eq!((log.head(), log.stream_version("s")), (1, 1));
            assert_eq!(log.read_all(0, 10).await.unwrap().len(), 1);
            assert!(matches!(
                log.append(one_event("t")).await,
                Err(AppendError::Poisoned)
            ));
        }
        // The failed commit's records may or may not have reached the disk (its outcome is
        // unknown to the caller), but the log reopens consistent and writable either way.
        let log = SledLog::open(dir.path()).unwrap();
        assert!(log.head() == 1 || log.head() == 2);
        assert!(crate::verify::verify(&log).unwrap().is_clean());
        log.append(one_event("s")).await.unwrap();
    }

    /// A batch staged while an earlier one was syncing may answer from what that batch was
    /// to publish (a replay of its key); once it failed, only rejections stand.
    #[tokio::test]
    async fn once_poisoned_nothing_staged_is_acknowledged_but_rejections() {
        let dir = tempfile::tempdir().unwrap();
        let log = SledLog::open(dir.path()).unwrap();
        log.append(one_event("s")).await.unwrap();
        let (replay_reply, replayed) = oneshot::channel();
        let (conflict_reply, conflicted) = oneshot::channel();
        let conflict = AppendError::Conflict {
            stream: "s".into(),
            expected: ExpectedVersion::NoStream,
            actual: 2,
        };
        let written = Written {
            batch: vec![
                Pending {
                    reqs: vec![one_event("s")],
                    reply: replay_reply,
                },
                Pending {
                    reqs: vec![one_event("s")],
                    reply: conflict_reply,
                },
            ],
            outcomes: vec![
                Outcome::Answer(Ok(vec![Appended {
                    first: 2,
                    last: 2,
                    stream_version: 2,
                    replayed: true,
                }])),
                Outcome::Answer(Err(conflict)),
            ],
            encoded: Vec::new(),
            spans: Vec::new(),
            new_keys: HashMap::new(),
            next: 2,
            journal: None,
        };
        log.shared.poisoned.store(true, Ordering::Release);
        let applier = Worker::spawn("test-apply", 1, |()| ControlFlow::Continue(())).unwrap();
        sync_and_publish(&log.shared, &applier, written);
        assert!(matches!(
            replayed.await.unwrap(),
            Err(AppendError::Poisoned)
        ));
        assert!(matches!(
            conflicted.await.unwrap(),
            Err(AppendError::Conflict { actual: 2, .. })
        ));
        assert_eq!(log.head(), 1);
    }

    fn sized_event(stream: &str, len: usize) -> AppendRequest {
        let mut req = one_event(stream);
        req.events[0].payload = vec![stream.len() as u8; len];
        req
    }

    fn positions(events: &[RecordedEvent]) -> Vec<Position> {
        events.iter().map(|e| e.envelope.position).collect()
    }

    /// Records in sled's tree, by position, read straight from the chunks.
    fn in_sled(tree: &sled::Tree) -> Vec<Position> {
        Records::new(tree, 0, Position::MAX)
            .map(|e| e.unwrap().envelope.position)
            .collect()
    }

    #[tokio::test]
    async fn records_only_in_the_tail_are_read_like_any_other() {
        let dir = tempfile::tempdir().unwrap();
        let log = SledLog::open(dir.path()).unwrap();
        for i in 0..6 {
            log.append(sized_event(["a", "bb"][i % 2], 100))
                .await
                .unwrap();
        }
        assert!(in_sled(&log.shared.tree).is_empty(), "below APPLY_BYTES");
        assert_eq!(
            positions(&log.read_all(0, 100).await.unwrap()),
            [1, 2, 3, 4, 5, 6]
        );
        assert_eq!(positions(&log.read_all(2, 3).await.unwrap()), [3, 4, 5]);
        assert!(log.read_all(6, 10).await.unwrap().is_empty());
        assert_eq!(
            positions(&log.read_stream("bb", 2, 10).await.unwrap()),
            [4, 6]
        );
        let scanned: Vec<_> = log.scan_raw(3).map(|e| e.unwrap()).collect();
        assert_eq!(positions(&scanned), [4, 5, 6]);
        assert_eq!(scanned[0].payload, vec![2; 100]);
        let mut sub = crate::Subscription::new(Arc::new(log), 1);
        assert_eq!(positions(&sub.try_next_batch(2).await.unwrap()), [2, 3]);
    }

    #[tokio::test]
    async fn reads_straddling_sled_and_the_tail_see_both_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = SledLog::open(dir.path()).unwrap();
        // Chunk-sized and split records on both sides of the boundary.
        let sizes = [10, CHUNK_MAX, 3 * CHUNK_MAX, 10, 10];
        for (i, len) in sizes.iter().enumerate() {
            log.append(sized_event(["a", "bb"][i % 2], *len))
                .await
                .unwrap();
        }
        log.apply_tail().unwrap();
        for (i, len) in sizes.iter().enumerate() {
            log.append(sized_event(["a", "bb"][i % 2], *len))
                .await
                .unwrap();
        }
        assert_eq!(in_sled(&log.shared.tree), [1, 2, 3, 4, 5]);
        let all: Vec<Position> = (1..=10).collect();
        assert_eq!(positions(&log.read_all(0, 100).await.unwrap()), all);
        for after in 0..10 {
            for limit in 1..=10 {
                let expected: Vec<Position> = (after + 1..=10).take(limit).collect();
                let read = log.read_all(after, limit).await.unwrap();
                assert_eq!(positions(&read), expected, "after {after} limit {limit}");
            }
            let scanned: Vec<_> = log.scan_raw(after).map(|e| e.unwrap()).collect();
            assert_eq!(positions(&scanned), all[after as usize..]);
            // `scan` hands over the records after `after` up to `until`, capped at the head,
            // and stops when told.
            for until in after..=12 {
                let mut visited = Vec::new();
                log.scan(after, until, &mut |record| {
                    visited.push(record.owned());
                    ControlFlow::Continue(())
                })
                .unwrap();
                let expected: Vec<Position> = (after + 1..=until.min(10)).collect();
                assert_eq!(positions(&visited), expected, "after {after} until {until}");
                assert_eq!(
                    visited,
                    log.read_all(after, 12).await.unwrap()[..expected.len()]
                );
            }
            let mut visited = Vec::new();
            log.scan(after, 10, &mut |record| {
                visited.push(record.envelope.position);
                ControlFlow::Break(())
            })
            .unwrap();
            assert_eq!(
                visited,
                all[after as usize..]
                    .iter()
                    .take(1)
                    .copied()
                    .collect::<Vec<_>>()
            );
        }
        assert_eq!(
            positions(&log.read_stream("a", 2, 10).await.unwrap()),
            [3, 5, 6, 8, 10]
        );
        let bb = log.read_stream("bb", 1, 10).await.unwrap();
        assert_eq!(positions(&bb), [2, 4, 7, 9]);
        assert_eq!(bb[2].payload.len(), CHUNK_MAX);
        assert!(crate::verify::verify(&log).unwrap().is_clean());
        assert_eq!(in_sled(&log.shared.tree), all);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_racing_the_apply_thread_see_every_record_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(SledLog::open(dir.path()).unwrap());
        // Enough bytes for several applies while the readers run.
        let total: Position = 4 * (APPLY_BYTES / 1000) as Position;
        let writer = {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                for i in 0..total {
                    let reqs = (0..4)
                        .map(|j| sized_event(&format!("s{}", (i + j) % 7), 1000 / 4))
                        .collect();
                    log.append_many(reqs).await.unwrap();
                }
            })
        };
        let mut rounds = 0;
        while !writer.is_finished() || rounds < 10 {
            rounds += 1;
            let head = log.head();
            let after = head.saturating_sub(300);
            let read = log.read_all(after, 1000).await.unwrap();
            assert!(read.len() as u64 >= head - after);
            assert_eq!(
                positions(&read),
                (after + 1..=after + read.len() as u64).collect::<Vec<_>>()
            );
            let scanned = log.scan_raw(after).count() as u64;
            assert!(scanned >= head - after);
            let stream = log.read_stream("s3", 1, usize::MAX).await.unwrap();
            assert!(stream
                .iter()
                .enumerate()
                .all(|(i, e)| e.envelope.stream_version == i as u64 + 1));
            tokio::task::yield_now().await;
        }
        writer.await.unwrap();
        assert!(
            !in_sled(&log.shared.tree).is_empty(),
            "the apply thread ran"
        );
        assert_eq!(
            log.read_all(0, usize::MAX).await.unwrap().len() as u64,
            4 * total
        );
    }

    #[tokio::test]
    async fn acknowledged_records_never_applied_come_back_from_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = SledLog::open(dir.path()).unwrap();
            for i in 0..3 {
                log.append(sized_event("a", 10 + i)).await.unwrap();
            }
            log.apply_tail().unwrap();
            for i in 3..8 {
                log.append(sized_event("a", 10 + i)).await.unwrap();
            }
            log.shared.crash_on_close.store(true, Ordering::Release);
        }
        {
            let db = open_db(dir.path(), None).unwrap();
            let tree = db.open_tree(LOG_TREE).unwrap();
            assert!(in_sled(&tree).len() <= 3, "the tail never reached sled");
        }
        let log = SledLog::open(dir.path()).unwrap();
        let all = log.read_all(0, 100).await.unwrap();
        assert_eq!(positions(&all), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(all
            .iter()
            .enumerate()
            .all(|(i, e)| e.payload.len() == 10 + i));
        assert_eq!(log.stream_version("a"), 8);
        assert!(crate::verify::verify(&log).unwrap().is_clean());
    }

    #[test]
    fn a_tail_slice_is_clamped_to_what_the_tail_holds() {
        let mut tail = Tail::default();
        let encoded = b"..aabbbcccc";
        tail.extend(encoded, &[(6, 2..4), (7, 4..7), (8, 7..11)]);
        assert_eq!(tail.slice(7, 8), Some((7, &b"bbbcccc"[..])));
        assert_eq!(tail.slice(1, 6), Some((6, &b"aa"[..])));
        assert_eq!(tail.slice(8, 100), Some((8, &b"cccc"[..])));
        assert_eq!(tail.slice(8, 7), None, "from after until, both inside");
        assert_eq!(tail.slice(9, 100), None);
        assert_eq!(tail.slice(1, 5), None);
        tail.drain_front(2);
        assert_eq!(tail.slice(0, 100), Some((8, &b"cccc"[..])));
    }

    #[test]
    fn packs_whole_records_into_chunks_and_splits_big_ones() {
        let sizes = [1500, 1500, 1500, 9000, 10];
        let mut encoded = Vec::new();
        let mut spans = Vec::new();
        for (i, len) in sizes.into_iter().enumerate() {
            let start = encoded.len();
            encoded.extend(std::iter::repeat_n(i as u8, len));
            spans.push((i as Position + 1, start..encoded.len()));
        }
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.apply_batch(pack_chunks(&encoded, &spans)).unwrap();
        let layout: Vec<_> = db
            .iter()
            .map(|kv| {
                let (k, v) = kv.unwrap();
                (parse_chunk_key(&k).unwrap(), v.len())
            })
            .collect();
        assert_eq!(
            layout,
            [
                ((1, 0), 3000), // records 1 and 2; record 3 would overflow the chunk
                ((3, 0), 1500),
                ((4, 0), CHUNK_MAX), // record 4 is split into parts of its own
                ((4, 1), CHUNK_MAX),
                ((4, 2), 9000 - 2 * CHUNK_MAX),
                ((5, 0), 10),
            ]
        );
        // Concatenated in key order, the chunks are the byte stream again.
        let joined: Vec<u8> = db
            .iter()
            .values()
            .flat_map(|v| v.unwrap().to_vec())
            .collect();
        assert_eq!(joined, encoded);
    }
}
