//! Durable subscriber checkpoints, saved atomically with the effects they cover.

use std::fmt;

use crate::error::LogError;
use crate::Position;

/// The key under which a consumer's checkpoint lives in its own tree. Consumers keep their
/// own keys elsewhere; a leading `0xff` sorts after any text key.
pub const CHECKPOINT_KEY: &[u8] = b"\xff\xffcheckpoint";

/// One consumer's checkpoint and state, in a sled tree of its own (`sub/<consumer>`) in the
/// log's database.
///
/// The consumer writes its effects (read-model rows, outbox entries, …) into [`Self::tree`]
/// through a [`sled::Batch`] and calls [`Self::commit`] with the position the batch covers:
/// sled applies the effects and the checkpoint together or not at all, so after a crash the
/// consumer restarts from a position that matches its state exactly.
///
/// Effects that live outside the tree (an email sent, a webhook posted, a file written)
/// cannot join that batch; they must be idempotent by event position — keyed by it, or
/// checked against it — because after a crash they may be redone for events past the last
/// committed checkpoint.
///
/// A commit is not fsynced by itself: losing recent commits only means replaying the tail of
/// the log. sled's periodic flush persists them, as do the log's checkpoints (see
/// [`crate::DbSync`]).
#[derive(Clone)]
pub struct Checkpoints {
    tree: sled::Tree,
}

impl Checkpoints {
    /// Opens (creating if needed) the tree of `consumer`.
    pub fn open(db: &sled::Db, consumer: &str) -> Result<Checkpoints, LogError> {
        Ok(Checkpoints {
            tree: db.open_tree(format!("sub/{consumer}"))?,
        })
    }

    /// The last committed position (0 if the consumer never committed).
    pub fn load(&self) -> Result<Position, LogError> {
        match self.tree.get(CHECKPOINT_KEY)? {
            None => Ok(0),
            Some(bytes) => {
                let bytes: [u8; 8] = bytes.as_ref().try_into().map_err(|_| LogError::Layout {
                    position: 0,
                    detail: format!("checkpoint value of {} bytes", bytes.len()),
                })?;
                Ok(Position::from_be_bytes(bytes))
            }
        }
    }

    /// Applies `effects` and moves the checkpoint to `position`, atomically.
    pub fn commit(&self, mut effects: sled::Batch, position: Position) -> Result<(), LogError> {
        effects.insert(CHECKPOINT_KEY, &position.to_be_bytes());
        self.tree.apply_batch(effects)?;
        Ok(())
    }

    /// The consumer's own tree, for reading its state (and building its batches' keys).
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }
}

impl fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoints")
            .field("tree", &String::from_utf8_lossy(&self.tree.name()))
            .finish()
    }
}
