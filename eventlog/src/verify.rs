//! A full scan of the log that checks everything a reader relies on and reports what it
//! finds, instead of stopping at the first problem: the crc and envelope of every record,
//! gapless positions from 1, the chunk layout, and contiguous versions in every stream.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::codec::decode_record;
use crate::error::{CodecError, LogError};
use crate::sled_log::{open_db, recover, Groups, SledLog, SledLogOptions, LOG_TREE};
use crate::{EventLog, Position};

/// How many problems a report lists; the rest are only counted.
pub const MAX_LISTED_PROBLEMS: usize = 20;

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Records that decoded.
    pub records: u64,
    /// sled values (chunks) scanned.
    pub chunks: u64,
    /// Bytes of chunk data scanned.
    pub bytes: u64,
    pub streams: u64,
    /// The highest position found.
    pub head: Position,
    /// Every problem found, including those not listed.
    pub problem_count: u64,
    /// The first [`MAX_LISTED_PROBLEMS`] problems, in log order.
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.problem_count == 0
    }

    fn problem(&mut self, problem: Problem) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(problem);
        }
    }
}

/// One thing wrong with the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The record that should hold `position` does not check out; the rest of its chunk group
    /// is skipped, since record boundaries after it are unknown.
    #[error("position {position}: corrupt record: {error}")]
    Corrupt {
        position: Position,
        error: CodecError,
    },
    #[error("position {position}: {detail}")]
    Layout { position: Position, detail: String },
    #[error("positions jump from {expected} to {found}")]
    Gap { expected: Position, found: Position },
    #[error("position {position}: stream {stream:?} at version {found}, expected {expected}")]
    StreamVersion {
        position: Position,
        stream: String,
        expected: u64,
        found: u64,
    },
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} records in {} streams, head {}, {} chunks, {} bytes: {}",
            self.records,
            self.streams,
            self.head,
            self.chunks,
            self.bytes,
            if self.is_clean() {
                "clean".to_string()
            } else {
                format!("{} problem(s)", self.problem_count)
            }
        )?;
        for problem in &self.problems {
            writeln!(f, "  {problem}")?;
        }
        if self.problem_count > self.problems.len() as u64 {
            writeln!(
                f,
                "  … and {} more",
                self.problem_count - self.problems.len() as u64
            )?;
        }
        Ok(())
    }
}

/// Verifies an open log, up to its durable head (appends in flight are not looked at). The
/// acknowledged records the log still holds in memory are applied to sled first, so the scan
/// covers exactly what is stored.
pub fn verify(log: &SledLog) -> Result<Report, LogError> {
    let head = log.head();
    log.apply_tail()?;
    scan(&log.db().open_tree(LOG_TREE)?, head)
}

/// Verifies the log in `dir` without building its indexes, so it also works on a log that
/// no longer opens as a [`SledLog`]. The log must not be open elsewhere.
pub fn verify_dir(dir: impl AsRef<Path>) -> Result<Report, LogError> {
    let db = open_db(dir.as_ref(), None)?;
    let tree = db.open_tree(LOG_TREE)?;
    // Acknowledged records may still be only in the commit journal; replaying them is what
    // opening the log does too.
    recover(
        dir.as_ref(),
        &db,
        &tree,
        SledLogOptions::default().journal_capacity,
    )?;
    scan(&tree, Position::MAX)
}

fn scan(tree: &sled::Tree, until: Position) -> Result<Report, LogError> {
    let mut report = Report::default();
    let mut expected = 1;
    // Stream → last version seen.
    let mut streams: HashMap<String, u64> = HashMap::new();
    // After a corrupt record, events were skipped: stream versions may then jump forward.
    let mut skipped_some = false;
    for group in Groups::containing(tree, 0)? {
        let group = match group {
            Ok(group) => group,
            Err(LogError::Layout { position, detail }) => {
                report.problem(Problem::Layout { position, detail });
                skipped_some = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        if group.position > until {
            break;
        }
        report.chunks += u64::from(group.parts);
        report.bytes += group.bytes.len() as u64;
        if group.position != expected {
            report.problem(Problem::Gap {
                expected,
                found: group.position,
            });
            expected = group.position;
        }
        let mut offset = 0;
        while offset < group.bytes.len() {
            let (event, len) = match decode_record(&group.bytes[offset..]) {
                Ok(decoded) => decoded,
                Err(error) => {
                    report.problem(Problem::Corrupt {
                        position: expected,
                        error,
                    });
                    skipped_some = true;
                    // Positions of the rest of the group are unknown: take the next group's.
                    expected = Position::MAX;
                    break;
                }
            };
            offset += len;
            let env = event.envelope;
            if env.position != expected {
                report.problem(Problem::Layout {
                    position: expected,
                    detail: format!("record claims position {}", env.position),
                });
            }
            report.records += 1;
            report.head = report.head.max(env.position);
            let last = streams.get(&env.stream).copied().unwrap_or(0);
            let in_order =
                env.stream_version == last + 1 || (skipped_some && env.stream_version > last);
            if !in_order {
                report.problem(Problem::StreamVersion {
                    position: env.position,
                    stream: env.stream.clone(),
                    expected: last + 1,
                    found: env.stream_version,
                });
            }
            streams.insert(env.stream, env.stream_version);
            expected = env.position + 1;
        }
    }
    report.streams = streams.len() as u64;
    Ok(report)
}
