//! Damaged data is found and named: reads fail with the position, `verify` lists it, and the
//! log refuses to open on top of it.

use eventlog::verify::{verify, verify_dir, Problem};
use eventlog::{
    decode_record, CodecError, EventLog, ExpectedVersion, LogError, SledLog, CHUNK_MAX, LOG_TREE,
};

use crate::{event, events, payload, request};

/// Chunk key layout: `[first position: u64 BE][part: u32 BE]`.
fn key(position: u64, part: u32) -> Vec<u8> {
    let mut k = position.to_be_bytes().to_vec();
    k.extend_from_slice(&part.to_be_bytes());
    k
}

/// Flips one byte of the chunk `key` at `offset`, behind the log's back.
fn flip(tree: &sled::Tree, key: &[u8], offset: usize) {
    let mut bytes = tree.get(key).unwrap().expect("chunk exists").to_vec();
    bytes[offset] ^= 0x40;
    tree.insert(key, bytes).unwrap();
}

/// Byte offset of the `n`th record (0-based) inside a chunk.
fn record_offset(chunk: &[u8], n: usize) -> usize {
    let mut offset = 0;
    for _ in 0..n {
        offset += decode_record(&chunk[offset..]).unwrap().1;
    }
    offset
}

#[tokio::test]
async fn crc_mismatch_names_the_position_on_read_open_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = SledLog::open(dir.path()).unwrap();
        // One group commit: positions 1..=10 share the chunk keyed (1, 0).
        log.append(request("s", ExpectedVersion::Any, events("s", 10)))
            .await
            .unwrap();
        log.apply_tail().unwrap();
        let tree = log.db().open_tree(LOG_TREE).unwrap();
        let chunk = tree.get(key(1, 0)).unwrap().unwrap();
        let fifth = record_offset(&chunk, 4);
        let fifth_len = decode_record(&chunk[fifth..]).unwrap().1;
        flip(&tree, &key(1, 0), fifth + fifth_len - 1); // last payload byte of position 5

        let err = log.read_all(0, 100).await.unwrap_err();
        assert!(
            matches!(
                err,
                LogError::Corrupt {
                    position: 5,
                    source: CodecError::Crc { .. }
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("position 5"), "{err}");
        // Records before and after it still read; reading it from its stream fails the same way.
        assert_eq!(log.read_all(0, 4).await.unwrap().len(), 4);
        assert_eq!(log.read_all(5, 100).await.unwrap().len(), 5);
        assert!(matches!(
            log.read_stream("s", 5, 1).await,
            Err(LogError::Corrupt { position: 5, .. })
        ));

        let report = verify(&log).unwrap();
        assert_eq!(report.problem_count, 1, "{report}");
        assert!(matches!(
            report.problems[0],
            Problem::Corrupt {
                position: 5,
                error: CodecError::Crc { .. }
            }
        ));
    }
    assert!(matches!(
        SledLog::open(dir.path()),
        Err(LogError::Corrupt { position: 5, .. })
    ));
    let report = verify_dir(dir.path()).unwrap();
    assert!(!report.is_clean());
    assert!(
        report.to_string().contains("position 5: corrupt record"),
        "{report}"
    );
}

#[tokio::test]
async fn damage_inside_a_split_record_names_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledLog::open(dir.path()).unwrap();
    log.append(request("s", ExpectedVersion::Any, events("s", 2)))
        .await
        .unwrap();
    let big = event(payload(7, 3 * CHUNK_MAX));
    log.append(request("s", ExpectedVersion::Any, vec![big]))
        .await
        .unwrap();
    log.apply_tail().unwrap();
    let tree = log.db().open_tree(LOG_TREE).unwrap();
    flip(&tree, &key(3, 2), 10);
    assert!(matches!(
        log.read_all(2, 10).await,
        Err(LogError::Corrupt {
            position: 3,
            source: CodecError::Crc { .. }
        })
    ));
    assert_eq!(log.read_all(0, 2).await.unwrap().len(), 2);
}

#[tokio::test]
async fn verify_is_clean_on_a_good_log_and_reports_gaps_and_layout() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = SledLog::open(dir.path()).unwrap();
        for (i, stream) in ["a", "b", "a", "c"].iter().enumerate() {
            let mut evs = events(stream, 3);
            evs.push(event(payload(i as u64, 9000)));
            log.append(request(stream, ExpectedVersion::Any, evs))
                .await
                .unwrap();
        }
        let report = verify(&log).unwrap();
        assert!(report.is_clean(), "{report}");
        assert_eq!((report.records, report.streams, report.head), (16, 3, 16));
        assert!(
            report.chunks >= 4 * 4,
            "each 9000-byte event takes 3 chunks"
        );
        assert!(report.to_string().contains("clean"));

        // Lose the group commit at positions 1..=4 (its small records and the split one).
        log.apply_tail().unwrap();
        let tree = log.db().open_tree(LOG_TREE).unwrap();
        let lost: Vec<_> = tree
            .range(key(1, 0)..key(5, 0))
            .keys()
            .map(Result::unwrap)
            .collect();
        assert!(lost.len() >= 4);
        for k in &lost {
            tree.remove(k).unwrap();
        }
        // And leave an orphaned continuation part behind.
        tree.insert(key(20, 1), b"stray".to_vec()).unwrap();
    }
    let report = verify_dir(dir.path()).unwrap();
    assert_eq!(report.records, 12, "{report}");
    assert_eq!(report.problems.len(), 3, "{report}");
    assert_eq!(
        report.problems[0],
        Problem::Gap {
            expected: 1,
            found: 5
        }
    );
    assert!(matches!(
        &report.problems[1],
        Problem::StreamVersion { position: 9, stream, expected: 1, found: 5 } if stream == "a"
    ));
    assert!(matches!(
        report.problems[2],
        Problem::Layout { position: 20, .. }
    ));
    assert!(matches!(
        SledLog::open(dir.path()),
        Err(LogError::Layout { .. })
    ));
}
