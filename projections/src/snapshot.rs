//! Snapshots: a read model's whole state and the position it reflects, committed in one sled
//! batch (the consumer's [`Checkpoints`]) so that they can never disagree.

use eventlog::{Checkpoints, Position};
use serde::{de::DeserializeOwned, Serialize};

use crate::ProjectionError;

/// Format byte of a snapshot encoded with bincode 2.0.1 (serde, standard configuration).
pub const FORMAT_BINCODE_2_0_1: u8 = 1;

/// Key of the snapshot in the consumer's tree; the checkpoint next to it is its position.
const SNAPSHOT_KEY: &[u8] = b"snapshot";

/// format byte + schema (u32 BE).
const HEADER_LEN: usize = 1 + 4;

/// What the store held for a projection.
#[derive(Debug)]
pub enum Loaded<M> {
    /// No snapshot yet: start from position 0.
    Missing,
    /// A usable snapshot.
    Found { position: Position, model: M },
    /// A snapshot exists but cannot be used (other format, older schema, corrupt); the
    /// caller rebuilds from the log and the next snapshot overwrites it.
    Unusable { reason: String },
}

/// One projection's snapshot, kept as a durable consumer of the log: tree `sub/<name>` of
/// the log's database holds the encoded model, and the consumer checkpoint beside it holds
/// the position it reflects. Both are written in one batch.
///
/// The batch is not flushed by itself: losing it in a crash only means replaying a longer
/// tail, and the log's next group commit flushes the same database. It can never claim more
/// than the log holds, because projectors read only durable records (and the loader checks
/// it against the head anyway).
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    checkpoints: Checkpoints,
}

impl SnapshotStore {
    /// Opens the store of the projection named `name` in `db` (the log's database).
    pub fn open(db: &sled::Db, name: &str) -> Result<Self, ProjectionError> {
        Ok(Self {
            checkpoints: Checkpoints::open(db, name)?,
        })
    }

    /// Loads the snapshot, accepting only `schema` in the current format.
    pub fn load<M: DeserializeOwned>(&self, schema: u32) -> Result<Loaded<M>, ProjectionError> {
        let position = self.checkpoints.load()?;
        let bytes = self.checkpoints.tree().get(SNAPSHOT_KEY)?;
        Ok(match bytes {
            None if position == 0 => Loaded::Missing,
            None => Loaded::Unusable {
                reason: format!("checkpoint at {position} but no snapshot"),
            },
            Some(bytes) => match decode(&bytes, schema) {
                Ok(model) => Loaded::Found { position, model },
                Err(reason) => Loaded::Unusable { reason },
            },
        })
    }

    /// Stores `model` as the state at `position`; returns the encoded size in bytes.
    pub fn save<M: Serialize>(
        &self,
        schema: u32,
        position: Position,
        model: &M,
    ) -> Result<usize, ProjectionError> {
        let bytes = encode(schema, model)?;
        self.put(position, bytes)
    }

    pub(crate) fn put(&self, position: Position, bytes: Vec<u8>) -> Result<usize, ProjectionError> {
        let len = bytes.len();
        let mut batch = sled::Batch::default();
        batch.insert(SNAPSHOT_KEY, bytes);
        self.checkpoints.commit(batch, position)?;
        Ok(len)
    }
}

pub(crate) fn encode<M: Serialize>(schema: u32, model: &M) -> Result<Vec<u8>, ProjectionError> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + 4096);
    bytes.push(FORMAT_BINCODE_2_0_1);
    bytes.extend_from_slice(&schema.to_be_bytes());
    bincode::serde::encode_into_std_write(model, &mut bytes, bincode::config::standard())
        .map_err(|e| ProjectionError::SnapshotEncode(e.to_string()))?;
    Ok(bytes)
}

pub(crate) fn decode<M: DeserializeOwned>(bytes: &[u8], schema: u32) -> Result<M, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "snapshot is {} bytes, shorter than its header",
            bytes.len()
        ));
    }
    let (header, body) = bytes.split_at(HEADER_LEN);
    if header[0] != FORMAT_BINCODE_2_0_1 {
        return Err(format!("unknown snapshot format byte {}", header[0]));
    }
    let stored = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if stored != schema {
        return Err(format!(
            "snapshot schema {stored}, this build reads {schema}"
        ));
    }
    match bincode::serde::decode_from_slice::<M, _>(body, bincode::config::standard()) {
        Ok((model, read)) if read == body.len() => Ok(model),
        Ok((_, read)) => Err(format!(
            "snapshot body has {} trailing bytes",
            body.len() - read
        )),
        Err(e) => Err(format!("snapshot body does not decode: {e}")),
    }
}
