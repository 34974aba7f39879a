//! The commit journal: records sled had not persisted come back from it at open, across the
//! journal's file rotations, and a torn journal tail (never acknowledged) is ignored.

use std::path::Path;

use eventlog::{EventLog, ExpectedVersion, SledLog, SledLogOptions, LOG_TREE};

use crate::{event, payload, request};

/// Small enough that a few dozen appends rotate the journal's files several times.
fn small_journal() -> SledLogOptions {
    SledLogOptions {
        journal_capacity: 16 << 10,
        ..SledLogOptions::default()
    }
}

fn chunk_key(position: u64, part: u32) -> Vec<u8> {
    let mut key = position.to_be_bytes().to_vec();
    key.extend_from_slice(&part.to_be_bytes());
    key
}

/// Appends `n` single-event appends of 700 bytes each and returns every record's payload.
/// Each is applied to sled at once, so every record has a chunk of its own that a test can
/// remove as a crash would.
async fn fill(log: &SledLog, n: u64) -> Vec<Vec<u8>> {
    let mut payloads = Vec::new();
    for i in 0..n {
        let p = payload(i, 700);
        payloads.push(p.clone());
        log.append(request(
            &format!("s{}", i % 5),
            ExpectedVersion::Any,
            vec![event(p)],
        ))
        .await
        .unwrap();
        log.apply_tail().unwrap();
    }
    payloads
}

async fn payloads_of(dir: &Path) -> Vec<Vec<u8>> {
    let log = SledLog::open_with(dir, small_journal()).unwrap();
    let all = log.read_all(0, 10_000).await.unwrap();
    assert!(eventlog::verify::verify(&log).unwrap().is_clean());
    all.into_iter().map(|e| e.payload).collect()
}

#[tokio::test]
async fn records_sled_lost_come_back_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let written = {
        let log = SledLog::open_with(dir.path(), small_journal()).unwrap();
        let written = fill(&log, 60).await;
        // What a crash does to sled's unpersisted tail: the last records are gone from sled
        // (the journal, rotated several times by now, still holds them).
        let tree = log.db().open_tree(LOG_TREE).unwrap();
        for position in 51..=60 {
            tree.remove(chunk_key(position, 0)).unwrap();
        }
        written
    };
    assert_eq!(payloads_of(dir.path()).await, written);
    // Recovery checkpointed sled and started a new cycle: appends carry on from there.
    let log = SledLog::open_with(dir.path(), small_journal()).unwrap();
    assert_eq!(log.head(), 60);
    let more = fill(&log, 3).await;
    drop(log);
    assert_eq!(payloads_of(dir.path()).await[60..], more[..]);
}

#[tokio::test]
async fn a_torn_journal_tail_is_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let written = {
        let log = SledLog::open_with(dir.path(), SledLogOptions::default()).unwrap();
        let written = fill(&log, 10).await;
        let tree = log.db().open_tree(LOG_TREE).unwrap();
        tree.remove(chunk_key(10, 0)).unwrap();
        written
    };
    // Tear the last group: its crc no longer matches, as if the crash hit it mid-write. Its
    // append was never acknowledged, so the log ends before it.
    let journal = ["journal.0", "journal.1"]
        .iter()
        .map(|f| dir.path().join(f))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .unwrap();
    let bytes = std::fs::read(&journal).unwrap();
    let last_payload_byte = bytes.iter().rposition(|&b| b != 0).unwrap();
    let mut torn = bytes;
    torn[last_payload_byte] ^= 0xff;
    std::fs::write(&journal, torn).unwrap();
    assert_eq!(payloads_of(dir.path()).await, written[..9]);
}

#[tokio::test]
async fn records_written_while_the_journal_grows_come_back_from_it() {
    let dir = tempfile::tempdir().unwrap();
    // 48 appends of 256 KiB: the journal's first file grows through three 4 MiB steps while
    // commits write into it, partly into steps the grower thread prepared. Concurrent
    // appenders, so the steps are crossed by group commits of several appends.
    let mut written = Vec::new();
    {
        let log = std::sync::Arc::new(SledLog::open(dir.path()).unwrap());
        let mut tasks = Vec::new();
        for writer in 0..4u64 {
            let log = std::sync::Arc::clone(&log);
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for i in 0..12 {
                    let p = payload(writer * 100 + i, 256 << 10);
                    let appended = log
                        .append(request(
                            &format!("w{writer}"),
                            ExpectedVersion::Any,
                            vec![event(p.clone())],
                        ))
                        .await
                        .unwrap();
                    mine.push((appended.first, p));
                }
                mine
            }));
        }
        for task in tasks {
            written.extend(task.await.unwrap());
        }
        // Everything sled has is lost: the records must all come back from the journal, which
        // has not rotated (64 MiB files), so its cycle starts at position 1.
        log.apply_tail().unwrap();
        log.db().open_tree(LOG_TREE).unwrap().clear().unwrap();
    }
    written.sort();
    let log = SledLog::open(dir.path()).unwrap();
    let all = log.read_all(0, 100).await.unwrap();
    assert_eq!(
        all.into_iter()
            .map(|e| (e.envelope.position, e.payload))
            .collect::<Vec<_>>(),
        written
    );
    assert!(eventlog::verify::verify(&log).unwrap().is_clean());
}
