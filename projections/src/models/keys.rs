//! [`JobKeys`]: an ordered set of `(time, job id)` keys, the shape of every job index (start
//! time, end time, posting lists).
//!
//! Jobs reach the log roughly in time order, so almost every insert lands at or near the end
//! of its index: a `BTreeSet` pays a root-to-leaf walk and node bookkeeping for each of them,
//! which was a quarter of a replay. Here the keys live in sorted chunks of at most [`CHUNK`];
//! an insert after the last key is a push, one near the end shifts a few keys of the last
//! chunk, and an insert anywhere else (a history loaded out of order) finds its chunk by
//! binary search and shifts at most a chunk's worth of keys.

use std::fmt;
use std::ops::Bound;

use domain::ids::JobId;
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One index entry: a time in Unix seconds (start or end) and the job.
pub(crate) type JobKey = (i64, JobId);

/// Largest chunk. A full chunk splits in two, except the last one when the key goes after
/// everything: it starts a new chunk, so keys filed in order fill their chunks.
const CHUNK: usize = 512;

/// A position: chunk index (the tail's is `head.len()`) and offset in it.
type At = (usize, usize);

/// An ordered set of [`JobKey`]s. Serialized as the sorted sequence of its keys, exactly as
/// the `BTreeSet` it replaces, so snapshots do not change.
#[derive(Clone, Default)]
pub(crate) struct JobKeys {
    /// The chunks before the tail: sorted, disjoint, each non-empty and at most [`CHUNK`] long.
    head: Vec<Vec<JobKey>>,
    /// The last chunk, after every key of `head`; empty only when the set is. It is kept here
    /// rather than in `head` because a set is mostly reached through a map of many (a user's
    /// posting list), so its chunks are rarely in cache: an insert after everything then reads
    /// only this struct before it writes the key.
    tail: Vec<JobKey>,
    len: usize,
    /// The greatest key (the tail's last), copied here for the same reason.
    greatest: Option<JobKey>,
}

impl JobKeys {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn first(&self) -> Option<&JobKey> {
        self.head.first().unwrap_or(&self.tail).first()
    }

    pub(crate) fn last(&self) -> Option<&JobKey> {
        self.greatest.as_ref()
    }

    fn chunk(&self, c: usize) -> &[JobKey] {
        self.head.get(c).unwrap_or(&self.tail)
    }

    /// The chunk that holds `key` or would: the first whose last key is not below it. Only for
    /// a `key` that is not after everything.
    fn chunk_of(&self, key: &JobKey) -> usize {
        self.head.partition_point(|c| c[c.len() - 1] < *key)
    }

    /// Adds `key`; `false` if it was there already.
    pub(crate) fn insert(&mut self, key: JobKey) -> bool {
        if self.greatest.is_none_or(|greatest| key > greatest) {
            if self.tail.len() == CHUNK {
                // A chunk after a full one will most likely fill too; a set's first chunk
                // grows as needed (most posting lists stay short).
                let full = std::mem::replace(&mut self.tail, Vec::with_capacity(CHUNK));
                self.head.push(full);
            }
            self.tail.push(key);
            self.greatest = Some(key);
            self.len += 1;
            return true;
        }
        // Not after everything, so some chunk's last key is ≥ `key`.
        let c = self.chunk_of(&key);
        let in_tail = c == self.head.len();
        let chunk = if in_tail {
            &mut self.tail
        } else {
            &mut self.head[c]
        };
        let Err(i) = chunk.binary_search(&key) else {
            return false;
        };
        chunk.insert(i, key);
        if chunk.len() > CHUNK {
            let upper = chunk.split_off(CHUNK / 2);
            if in_tail {
                let lower = std::mem::replace(&mut self.tail, upper);
                self.head.push(lower);
            } else {
                self.head.insert(c + 1, upper);
            }
        }
        self.len += 1;
        true
    }

    /// Removes `key`; `false` if it was not there.
    pub(crate) fn remove(&mut self, key: &JobKey) -> bool {
        if self.greatest.is_none_or(|greatest| *key > greatest) {
            return false;
        }
        let c = self.chunk_of(key);
        let in_tail = c == self.head.len();
        let chunk = if in_tail {
            &mut self.tail
        } else {
            &mut self.head[c]
        };
        let Ok(i) = chunk.binary_search(key) else {
            return false;
        };
        chunk.remove(i);
        if chunk.is_empty() {
            if in_tail {
                self.tail = self.head.pop().unwrap_or_default();
            } else {
                self.head.remove(c);
            }
        }
        self.len -= 1;
        self.greatest = self.tail.last().copied();
        true
    }

    /// Every key, in order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        self.between((0, 0), self.end())
    }

    /// The position after the last key.
    fn end(&self) -> At {
        (self.head.len(), self.tail.len())
    }

    /// The keys within `(lo, hi)`, in order; empty (never a panic) when the bounds cross.
    pub(crate) fn range(&self, (lo, hi): (Bound<JobKey>, Bound<JobKey>)) -> Iter<'_> {
        let start = match lo {
            Bound::Included(k) => self.seek(|x| *x < k),
            Bound::Excluded(k) => self.seek(|x| *x <= k),
            Bound::Unbounded => (0, 0),
        };
        let end = match hi {
            Bound::Included(k) => self.seek(|x| *x <= k),
            Bound::Excluded(k) => self.seek(|x| *x < k),
            Bound::Unbounded => self.end(),
        };
        self.between(start, end)
    }

    /// The first position whose key is not `before`, for a `before` that holds for a prefix
    /// of the keys.
    fn seek(&self, before: impl Fn(&JobKey) -> bool) -> At {
        let c = self.head.partition_point(|c| before(&c[c.len() - 1]));
        (c, self.chunk(c).partition_point(&before))
    }

    fn between(&self, start: At, end: At) -> Iter<'_> {
        let empty = Iter {
            front: [].iter(),
            middle: [].iter(),
            back: [].iter(),
            len: 0,
        };
        if start >= end {
            return empty;
        }
        let ((sc, so), (ec, eo)) = (start, end);
        if sc == ec {
            return Iter {
                front: self.chunk(sc)[so..eo].iter(),
                len: eo - so,
                ..empty
            };
        }
        // `ec` is at most the tail's index, so the chunks between are all in `head`.
        let middle = &self.head[sc + 1..ec];
        let back = &self.chunk(ec)[..eo];
        let front = &self.chunk(sc)[so..];
        Iter {
            len: front.len() + middle.iter().map(Vec::len).sum::<usize>() + back.len(),
            front: front.iter(),
            middle: middle.iter(),
            back: back.iter(),
        }
    }

    /// Builds the set from keys in any order (a snapshot holds them sorted).
    fn from_keys(mut keys: Vec<JobKey>) -> JobKeys {
        if !keys.is_sorted_by(|a, b| a < b) {
            keys.sort_unstable();
            keys.dedup();
        }
        let mut head: Vec<Vec<JobKey>> = keys.chunks(CHUNK).map(<[JobKey]>::to_vec).collect();
        let tail = head.pop().unwrap_or_default();
        JobKeys {
            len: keys.len(),
            greatest: tail.last().copied(),
            head,
            tail,
        }
    }
}

/// Keys of a [`JobKeys`] in order, from either end.
#[derive(Clone)]
pub(crate) struct Iter<'a> {
    front: std::slice::Iter<'a, JobKey>,
    middle: std::slice::Iter<'a, Vec<JobKey>>,
    back: std::slice::Iter<'a, JobKey>,
    len: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a JobKey;

    fn next(&mut self) -> Option<&'a JobKey> {
        loop {
            if let Some(key) = self.front.next() {
                self.len -= 1;
                return Some(key);
            }
            match self.middle.next() {
                Some(chunk) => self.front = chunk.iter(),
                None => {
                    let key = self.back.next()?;
                    self.len -= 1;
                    return Some(key);
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(key) = self.back.next_back() {
                self.len -= 1;
                return Some(key);
            }
            match self.middle.next_back() {
                Some(chunk) => self.back = chunk.iter(),
                None => {
                    let key = self.front.next_back()?;
                    self.len -= 1;
                    return Some(key);
                }
            }
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// Equal sets, however their keys are chunked (a set loaded from a snapshot is chunked
/// differently from the one that was saved).
impl PartialEq for JobKeys {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for JobKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for JobKeys {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for JobKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = JobKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence of (time, job id) keys")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JobKeys, A::Error> {
                let mut keys = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(key) = seq.next_element()? {
                    keys.push(key);
                }
                Ok(JobKeys::from_keys(keys))
            }
        }
        deserializer.deserialize_seq(Keys)
    }
}

#[cfg(test)]
mod tests;
