//! The commit journal: where a group commit becomes durable before it is acknowledged.
//!
//! # Why not sled's own flush
//!
//! sled 0.34.7's `flush` writes its buffers and waits for `sync_file_range`, and its data file
//! keeps growing, so the `fdatasync` that makes a commit power-loss durable also has to commit
//! the file system's journal (new blocks, new size) on nearly every commit: two disk waits and
//! a metadata commit per group. The journal instead appends each group commit's bytes to a
//! file whose blocks were written (zero-filled) beforehand, and one `fdatasync` of that file,
//! with no metadata to commit, is the whole cost of durability. sled gets the records later, in
//! larger batches (see [`crate::SledLog`]), and persists them at its own pace; the journal only
//! has to cover what sled may not have persisted yet.
//!
//! # Layout
//!
//! Two files, `journal.0` and `journal.1`, used in turns (*cycles*). A cycle starts with a
//! file header (magic, cycle number, first position, crc) at offset 0, followed by groups:
//! `[payload length: u32 LE][crc32c: u32 LE][first position: u64 LE][payload]`, where the
//! payload is the group commit's encoded records (each framed with its own crc, see
//! [`crate::codec`]) and the crc covers the first position and the payload. Bytes after the
//! last group are zeros or an older cycle's groups, whose positions are lower: reading stops at
//! the first group that fails its crc or does not continue the positions, which is also how a
//! group torn by a crash (never acknowledged) is left out.
//!
//! # Reuse
//!
//! A file is reused for a new cycle only after a checkpoint (sled `flush`, then `fdatasync` of
//! sled's data file) has made everything the journal held durable in sled too. A checkpoint
//! happens when the current file reaches its capacity, after recovery, and on close.
//!
//! # Recovery
//!
//! At open, before the log's indexes are built, the records of both files' cycles that come
//! after sled's last record are applied to sled, then a checkpoint makes them durable there
//! and a new cycle starts.

use std::fs::{File, OpenOptions};
use std::ops::{ControlFlow, Range};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::codec::{decode_record, frames};
use crate::error::LogError;
use crate::worker::Worker;
use crate::Position;

const MAGIC: &[u8; 8] = b"HLYJRNL1";
const FILE_HEADER_LEN: u64 = 32;
/// The bytes a group's buffer starts with, left free for [`Journal::write`] to fill in.
pub(crate) const GROUP_HEADER_LEN: usize = 16;
/// Files grow by zero-filled steps of this size, so block allocation (a metadata commit) is
/// paid once per step rather than on every commit. A grower thread adds the next step (and
/// makes it durable) once the current file has less than a step left, so commits normally
/// find their blocks already there; a commit that outruns it grows the file itself.
const GROW_STEP: u64 = 4 << 20;

/// The records the journal holds beyond what sled has: contiguous encoded records, one span
/// per record, positions ascending from the first one after sled's last. Found at recovery,
/// and kept in memory by the log for the acknowledged records it has not applied to sled yet.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    pub(crate) encoded: Vec<u8>,
    pub(crate) spans: Vec<(Position, Range<usize>)>,
}

impl Tail {
    /// Adds records that continue the tail (`spans` index into `encoded`, whose bytes outside
    /// them are not copied).
    pub(crate) fn extend(&mut self, encoded: &[u8], spans: &[(Position, Range<usize>)]) {
        let (Some((_, first)), Some((_, last))) = (spans.first(), spans.last()) else {
            return;
        };
        let (from, to) = (first.start, self.encoded.len());
        self.encoded.extend_from_slice(&encoded[from..last.end]);
        self.spans.extend(
            spans
                .iter()
                .map(|(p, r)| (*p, r.start - from + to..r.end - from + to)),
        );
    }

    /// Forgets the first `records` records (once they are in sled).
    pub(crate) fn drain_front(&mut self, records: usize) {
        let Some((_, first_kept)) = self.spans.get(records) else {
            self.encoded.clear();
            self.spans.clear();
            return;
        };
        let cut = first_kept.start;
        self.encoded.drain(..cut);
        self.spans.drain(..records);
        for (_, r) in &mut self.spans {
            *r = r.start - cut..r.end - cut;
        }
    }

    /// The encoded records at positions `from..=until` (clamped to what the tail holds), and
    /// the position of the first one.
    pub(crate) fn slice(&self, from: Position, until: Position) -> Option<(Position, &[u8])> {
        if from > until {
            return None;
        }
        let (first, _) = self.spans.first()?;
        let start = usize::try_from(from.saturating_sub(*first)).ok()?;
        let end = usize::try_from(until.checked_sub(*first)?).ok()?;
        let (position, start) = self.spans.get(start)?;
        let end = self.spans.get(end).or(self.spans.last())?.1.end;
        Some((*position, &self.encoded[start.start..end]))
    }
}

/// One journal file and how far it has been written with zeros or data.
struct JournalFile {
    file: File,
    /// The file's length: past what the current cycle has written, zeros. Raised only under
    /// `growing`, and read without it: the commit path writes below it, the grower above.
    len: AtomicU64,
    /// Held while zeros are written past `len`, so the commit path and the grower never
    /// write the same bytes.
    growing: Mutex<()>,
}

impl JournalFile {
    fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    /// Zero-fills the file up to `target` if it is shorter, then, with `sync`, makes the new
    /// blocks durable before anyone may write into them. Without `sync` the caller's next
    /// `fdatasync` does that.
    fn grow_to(&self, target: u64, sync: bool) -> std::io::Result<()> {
        let _growing = self.growing.lock().expect("journal grow lock poisoned");
        let mut len = self.len();
        if len >= target {
            return Ok(());
        }
        let zeros = vec![0u8; (1 << 20).min(usize::try_from(target - len).unwrap_or(1 << 20))];
        while len < target {
            let n = zeros
                .len()
                .min(usize::try_from(target - len).unwrap_or(usize::MAX));
            self.file.write_all_at(&zeros[..n], len)?;
            len += n as u64;
        }
        if sync {
            self.file.sync_data()?;
        }
        self.len.store(len, Ordering::Release);
        Ok(())
    }
}

/// The `eventlog-grow` thread, which grows journal files ahead of the commits writing into
/// them.
type Grower = Worker<(Arc<JournalFile>, u64)>;

/// A request that finds the queue full is dropped, and a failure (a full disk) stops the
/// thread: either way the commit path grows the file itself when it finds no room, and fails
/// the commit if it cannot.
fn spawn_grower() -> std::io::Result<Grower> {
    Worker::spawn(
        "eventlog-grow",
        4,
        |(file, target): (Arc<JournalFile>, u64)| match file.grow_to(target, true) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        },
    )
}

/// `fdatasync` of the journal file a group went to (see [`Journal::sync_handle`]). A sync
/// that starts after a write returned covers it, whatever is written meanwhile.
pub(crate) struct JournalSync(Arc<JournalFile>);

impl JournalSync {
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        self.0.file.sync_data()
    }
}

pub(crate) struct Journal {
    files: [Arc<JournalFile>; 2],
    /// Index into `files` of the cycle being written.
    current: usize,
    cycle: u64,
    /// Where the next group goes in the current file.
    offset: u64,
    /// A new cycle starts once a group would end beyond this (a group larger than the whole
    /// file still goes in, growing it).
    capacity: u64,
    /// Started by the first write. Dropping the journal joins it, so that no zeros are
    /// written into a file after the journal is gone (a reopened journal writes there).
    grower: Option<Grower>,
    /// The length the grower was last asked to give the current file.
    requested: u64,
}

/// A cycle found on disk: its number and the groups that read back intact, in order.
struct Cycle {
    number: u64,
    groups: Vec<(Position, Vec<u8>)>,
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir` and returns the records it holds after
    /// position `after` (sled's last record). Call [`Journal::start`] once they are in sled and
    /// checkpointed.
    pub(crate) fn open(
        dir: &Path,
        capacity: u64,
        after: Position,
    ) -> Result<(Journal, Tail), LogError> {
        let open = |i: usize| -> std::io::Result<Arc<JournalFile>> {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(dir.join(format!("journal.{i}")))?;
            let len = AtomicU64::new(file.metadata()?.len());
            Ok(Arc::new(JournalFile {
                file,
                len,
                growing: Mutex::new(()),
            }))
        };
        let files = [open(0)?, open(1)?];
        let mut cycles: Vec<(usize, Cycle)> = Vec::new();
        for (i, f) in files.iter().enumerate() {
            if let Some(cycle) = read_cycle(f)? {
                cycles.push((i, cycle));
            }
        }
        cycles.sort_by_key(|(_, c)| c.number);
        let last_cycle = cycles.last().map_or(0, |(_, c)| c.number);
        // The new cycle goes into the file the newest cycle is not in: that file's records are
        // the older ones, and all of both files is in sled once recovery has checkpointed.
        let current = cycles.last().map_or(0, |(i, _)| 1 - i);
        let mut tail = Tail::default();
        let mut next = after + 1;
        for (_, cycle) in cycles {
            for (first, payload) in cycle.groups {
                append_tail(&mut tail, &mut next, first, &payload)?;
            }
        }
        Ok((
            Journal {
                files,
                current,
                cycle: last_cycle,
                offset: 0,
                capacity,
                grower: None,
                requested: 0,
            },
            tail,
        ))
    }

    /// Starts a new cycle in the file not written last, whose first group will hold
    /// `first_position`. Everything the journal held must already be durable in sled.
    pub(crate) fn start(&mut self, first_position: Position) -> std::io::Result<()> {
        self.cycle += 1;
        let mut header = [0u8; FILE_HEADER_LEN as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..16].copy_from_slice(&self.cycle.to_le_bytes());
        header[16..24].copy_from_slice(&first_position.to_le_bytes());
        let crc = crc32c::crc32c(&header[..24]);
        header[24..28].copy_from_slice(&crc.to_le_bytes());
        self.offset = 0;
        self.write_at_offset(&header)?;
        Ok(())
    }

    /// True when a group of `payload_len` bytes should go into a new cycle (after a
    /// checkpoint) rather than the current file.
    pub(crate) fn is_full_for(&self, payload_len: usize) -> bool {
        self.offset > FILE_HEADER_LEN
            && self.offset + (GROUP_HEADER_LEN + payload_len) as u64 > self.capacity
    }

    /// Switches to the other file for the next cycle. Everything written so far must be
    /// durable in sled (the caller checkpoints first).
    pub(crate) fn rotate(&mut self, first_position: Position) -> std::io::Result<()> {
        self.current = 1 - self.current;
        self.requested = 0;
        self.start(first_position)
    }

    /// Writes one group (not yet durable: see [`Journal::sync`]). `group` is
    /// [`GROUP_HEADER_LEN`] bytes for the header, filled in here, then the payload: the
    /// caller encodes behind the header's room so that the group is one write.
    pub(crate) fn write(
        &mut self,
        first_position: Position,
        group: &mut [u8],
    ) -> std::io::Result<()> {
        let (header, payload) = group.split_at_mut(GROUP_HEADER_LEN);
        let payload_len = u32::try_from(payload.len()).expect("a group commit is below 4 GiB");
        header[0..4].copy_from_slice(&payload_len.to_le_bytes());
        header[4..8].copy_from_slice(&group_crc(first_position, payload).to_le_bytes());
        header[8..16].copy_from_slice(&first_position.to_le_bytes());
        self.write_at_offset(group)
    }

    /// What makes every group written so far durable, for another thread to call while this
    /// one writes the next groups.
    pub(crate) fn sync_handle(&self) -> JournalSync {
        JournalSync(Arc::clone(&self.files[self.current]))
    }

    fn write_at_offset(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let end = self.offset + bytes.len() as u64;
        let f = Arc::clone(&self.files[self.current]);
        if end > f.len() {
            // Zero-fill first: writing into blocks that already exist is what keeps the
            // commit's fdatasync free of metadata (see the module docs). This happens when
            // the grower is behind or a file is new; the commit's fdatasync makes the step
            // durable with the group that needed it.
            f.grow_to(end.div_ceil(GROW_STEP) * GROW_STEP, false)?;
        }
        f.file.write_all_at(bytes, self.offset)?;
        self.offset = end;
        let len = f.len();
        if len - end < GROW_STEP && len + GROW_STEP > self.requested {
            self.requested = len + GROW_STEP;
            if self.grower.is_none() {
                self.grower = Some(spawn_grower()?);
            }
            let grower = self.grower.as_ref().expect("spawned above");
            // The grower only stops early after a failure, which the next growth here meets.
            grower.try_send((f, self.requested));
        }
        Ok(())
    }
}

/// Adds the records of one group that come after `*next - 1` to the tail, checking that the
/// journal continues the log without a gap.
fn append_tail(
    tail: &mut Tail,
    next: &mut Position,
    first: Position,
    payload: &[u8],
) -> Result<(), LogError> {
    for (position, frame) in (first..).zip(frames(payload)) {
        let frame = frame.map_err(|source| LogError::Corrupt { position, source })?;
        let bytes = &payload[frame];
        if position == *next {
            // The group's crc passed, so a record failing here is a bug, not a torn write.
            let (event, _) =
                decode_record(bytes).map_err(|source| LogError::Corrupt { position, source })?;
            if event.envelope.position != position {
                return Err(LogError::Layout {
                    position,
                    detail: format!("journal record claims position {}", event.envelope.position),
                });
            }
            let start = tail.encoded.len();
            tail.encoded.extend_from_slice(bytes);
            tail.spans.push((position, start..tail.encoded.len()));
            *next += 1;
        } else if position > *next {
            return Err(LogError::Layout {
                position: *next,
                detail: format!(
                    "the log ends at {} but the journal continues at {position}",
                    *next - 1
                ),
            });
        }
    }
    Ok(())
}

/// Reads the cycle a file holds: `None` if its header is missing or damaged (a new file, or a
/// header torn by a crash before anything of its cycle was acknowledged).
fn read_cycle(f: &JournalFile) -> std::io::Result<Option<Cycle>> {
    let file_len = f.len();
    if file_len < FILE_HEADER_LEN {
        return Ok(None);
    }
    let mut header = [0u8; FILE_HEADER_LEN as usize];
    f.file.read_exact_at(&mut header, 0)?;
    let crc = u32::from_le_bytes(header[24..28].try_into().expect("4 bytes"));
    if &header[..8] != MAGIC || crc != crc32c::crc32c(&header[..24]) {
        return Ok(None);
    }
    let number = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    let mut expected = u64::from_le_bytes(header[16..24].try_into().expect("8 bytes"));
    let mut groups = Vec::new();
    let mut offset = FILE_HEADER_LEN;
    loop {
        if offset + GROUP_HEADER_LEN as u64 > file_len {
            break;
        }
        let mut head = [0u8; GROUP_HEADER_LEN];
        f.file.read_exact_at(&mut head, offset)?;
        let len = u64::from(u32::from_le_bytes(head[0..4].try_into().expect("4 bytes")));
        let crc = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
        let first = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
        let end = offset + GROUP_HEADER_LEN as u64 + len;
        if len == 0 || first != expected || end > file_len {
            break;
        }
        let mut payload = vec![0u8; usize::try_from(len).expect("checked against the file")];
        f.file
            .read_exact_at(&mut payload, offset + GROUP_HEADER_LEN as u64)?;
        if crc != group_crc(first, &payload) {
            break;
        }
        // The crc passed, so the frames are whole.
        expected = first + frames(&payload).take_while(Result::is_ok).count() as u64;
        groups.push((first, payload));
        offset = end;
    }
    Ok(Some(Cycle { number, groups }))
}

/// A group's crc covers its first position and its payload.
fn group_crc(first_position: Position, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&first_position.to_le_bytes()), payload)
}
