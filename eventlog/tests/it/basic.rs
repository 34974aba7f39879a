//! Appends, reads, optimistic concurrency, idempotency, subscriptions and checkpoints.

use std::sync::Arc;

use eventlog::{
    AppendError, AppendRequest, Appended, Checkpoints, EventLog, ExpectedVersion, SledLog,
    Subscription, CHUNK_MAX,
};

use crate::{event, events, payload, request};

fn appended(first: u64, last: u64, stream_version: u64) -> Appended {
    Appended {
        first,
        last,
        stream_version,
        replayed: false,
    }
}

#[tokio::test]
async fn appends_get_gapless_positions_and_per_stream_versions() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledLog::open(dir.path()).unwrap();
    assert_eq!(log.head(), 0);
    let a = log
        .append(request("a", ExpectedVersion::NoStream, events("a", 2)))
        .await
        .unwrap();
    let b = log
        .append(request("b", ExpectedVersion::Any, events("b", 1)))
        .await
        .unwrap();
    let a2 = log
        .append(request("a", ExpectedVersion::Exact(2), events("a", 1)))
        .await
        .unwrap();
    assert_eq!(
        (a, b, a2),
        (appended(1, 2, 2), appended(3, 3, 1), appended(4, 4, 3))
    );
    assert_eq!(
        (
            log.head(),
            log.stream_version("a"),
            log.stream_version("zz")
        ),
        (4, 3, 0)
    );

    let all = log.read_all(0, 100).await.unwrap();
    let summary: Vec<_> = all
        .iter()
        .map(|e| {
            (
                e.envelope.position,
                e.envelope.stream.as_str(),
                e.envelope.stream_version,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [(1, "a", 1), (2, "a", 2), (3, "b", 1), (4, "a", 3)]
    );
    assert_eq!(all[1].payload, b"a#1");
    assert_eq!(all[1].envelope.tenant, "ten_test");
    assert_eq!(all[1].envelope.idempotency_key, None);

    let tail = log.read_all(2, 1).await.unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].envelope.position, 3);
    assert!(log.read_all(4, 10).await.unwrap().is_empty());

    let stream: Vec<_> = log
        .read_stream("a", 2, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.envelope.position, e.envelope.stream_version))
        .collect();
    assert_eq!(stream, [(2, 2), (4, 3)]);
    assert_eq!(log.read_stream("a", 1, 1).await.unwrap().len(), 1);
    assert!(log.read_stream("nope", 1, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn expected_version_conflicts_report_both_versions_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledLog::open(dir.path()).unwrap();
    log.append(request("s", ExpectedVersion::NoStream, events("s", 2)))
        .await
        .unwrap();

    let check = |expected: ExpectedVersion| {
        let log = &log;
        async move {
            match log.append(request("s", expected, events("s", 1))).await {
                Err(AppendError::Conflict {
                    stream,
                    expected: e,
                    actual,
                }) => (stream, e, actual),
                other => panic!("expected a conflict, got {other:?}"),
            }
        }
    };
    assert_eq!(
        check(ExpectedVersion::NoStream).await,
        ("s".into(), ExpectedVersion::NoStream, 2)
    );
    assert_eq!(
        check(ExpectedVersion::Exact(1)).await,
        ("s".into(), ExpectedVersion::Exact(1), 2)
    );
    assert_eq!(
        check(ExpectedVersion::Exact(3)).await,
        ("s".into(), ExpectedVersion::Exact(3), 2)
    );
    let message = log
        .append(request("s", ExpectedVersion::Exact(7), events("s", 1)))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("Exact(7)") && message.contains("actual version 2"),
        "{message}"
    );
    assert_eq!(log.head(), 2);

    let any = log
        .append(request("s", ExpectedVersion::Any, events("s", 1)))
        .await
        .unwrap();
    assert_eq!(any, appended(3, 3, 3));
    assert!(matches!(
        log.append(request("s", ExpectedVersion::Any, vec![])).await,
        Err(AppendError::Empty)
    ));
}

/// Requests that reach the writer together: in-batch checks must see earlier requests.
#[tokio::test]
async fn conflicts_within_one_group_commit_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SledLog::open(dir.path()).unwrap());
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                log.append(request("one", ExpectedVersion::NoStream, events("one", 1)))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(a) => {
                won += 1;
                assert_eq!(a, appended(1, 1, 1));
            }
            Err(AppendError::Conflict { actual, .. }) => assert_eq!(actual, 1),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((won, log.head()), (1, 1));
}

fn keyed(key: &str, expected: ExpectedVersion, n: usize) -> AppendRequest {
    AppendRequest {
        idempotency_key: Some(key.into()),
        ..request("k", expected, events("k", n))
    }
}

#[tokio::test]
async fn idempotency_key_replays_the_first_result_also_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let log = SledLog::open(dir.path()).unwrap();
        log.append(request("other", ExpectedVersion::Any, events("o", 1)))
            .await
            .unwrap();
        let first = log
            .append(keyed("key-1", ExpectedVersion::NoStream, 3))
            .await
            .unwrap();
        assert_eq!(first, appended(2, 4, 3));
        log.append(request("k", ExpectedVersion::Exact(3), events("k", 1)))
            .await
            .unwrap();
        // A retry replays even though its expected version no longer holds.
        let retry = log
            .append(keyed("key-1", ExpectedVersion::NoStream, 3))
            .await
            .unwrap();
        assert_eq!(
            retry,
            Appended {
                replayed: true,
                ..first
            }
        );
        assert_eq!(log.head(), 5);
        let stored = log.read_all(1, 3).await.unwrap();
        assert!(stored
            .iter()
            .all(|e| e.envelope.idempotency_key.as_deref() == Some("key-1")));
        first
    };
    let log = SledLog::open(dir.path()).unwrap();
    let retry = log
        .append(keyed("key-1", ExpectedVersion::Any, 1))
        .await
        .unwrap();
    assert_eq!(
        retry,
        Appended {
            replayed: true,
            ..first
        }
    );
    assert_eq!((log.head(), log.stream_version("k")), (5, 4));
    let fresh = log
        .append(keyed("key-2", ExpectedVersion::Exact(4), 1))
        .await
        .unwrap();
    assert_eq!(fresh, appended(6, 6, 5));
}

#[tokio::test]
async fn concurrent_retries_with_one_key_append_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SledLog::open(dir.path()).unwrap());
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let log = Arc::clone(&log);
            tokio::spawn(async move { log.append(keyed("same", ExpectedVersion::Any, 2)).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap().unwrap());
    }
    assert_eq!(results.iter().filter(|a| !a.replayed).count(), 1);
    assert!(results
        .iter()
        .all(|a| (a.first, a.last, a.stream_version) == (1, 2, 2)));
    assert_eq!(log.head(), 2);
}

#[tokio::test]
async fn events_larger_than_a_chunk_are_split_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [
        10,
        CHUNK_MAX - 100,
        CHUNK_MAX,
        3 * CHUNK_MAX + 7,
        0,
        20_000,
        5,
    ];
    {
        let log = SledLog::open(dir.path()).unwrap();
        let batch = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| event(payload(i as u64, len)))
            .collect();
        log.append(request("big", ExpectedVersion::Any, batch))
            .await
            .unwrap();
        for (i, &len) in sizes.iter().enumerate() {
            log.append(request(
                "big",
                ExpectedVersion::Any,
                vec![event(payload(i as u64, len))],
            ))
            .await
            .unwrap();
        }
    }
    let log = SledLog::open(dir.path()).unwrap();
    let all = log.read_all(0, 100).await.unwrap();
    assert_eq!(all.len(), 2 * sizes.len());
    for (i, e) in all.iter().enumerate() {
        let k = i % sizes.len();
        assert_eq!(e.payload, payload(k as u64, sizes[k]), "position {}", i + 1);
    }
    // Starting inside a split record's group, and reading a stream point by point.
    let from_big = log.read_all(3, 2).await.unwrap();
    assert_eq!(from_big[0].payload, payload(3, sizes[3]));
    let tail = log.read_stream("big", 12, 10).await.unwrap();
    assert_eq!(tail.len(), 3);
    assert_eq!(tail[0].payload, payload(4, sizes[4]));
    assert!(eventlog::verify::verify(&log).unwrap().is_clean());
}

#[tokio::test]
async fn subscription_catches_up_then_follows_live_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<SledLog> = Arc::new(SledLog::open(dir.path()).unwrap());
    log.append(request("s", ExpectedVersion::Any, events("s", 5)))
        .await
        .unwrap();
    let mut sub = Subscription::new(log.clone(), 2);
    let caught_up = sub.next_batch(2).await.unwrap();
    assert_eq!(positions(&caught_up), [3, 4]);
    assert_eq!(positions(&sub.next_batch(10).await.unwrap()), [5]);
    assert!(sub.try_next_batch(10).await.unwrap().is_empty());
    assert_eq!(sub.position(), 5);

    let waiting = tokio::spawn(async move {
        let batch = sub.next_batch(10).await.unwrap();
        (positions(&batch), sub)
    });
    log.append(request("t", ExpectedVersion::Any, events("t", 2)))
        .await
        .unwrap();
    let (live, sub) = waiting.await.unwrap();
    assert_eq!(live, [6, 7]);
    assert_eq!(sub.position(), 7);
}

fn positions(events: &[eventlog::RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.envelope.position).collect()
}

#[tokio::test]
async fn checkpoint_commits_atomically_with_effects_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = SledLog::open(dir.path()).unwrap();
        log.append(request("s", ExpectedVersion::Any, events("s", 3)))
            .await
            .unwrap();
        let cp = Checkpoints::open(log.db(), "counter").unwrap();
        assert_eq!(cp.load().unwrap(), 0);
        let mut effects = sled::Batch::default();
        effects.insert("count", &3u64.to_be_bytes());
        cp.commit(effects, 3).unwrap();
        // Another consumer's tree is separate.
        assert_eq!(
            Checkpoints::open(log.db(), "other")
                .unwrap()
                .load()
                .unwrap(),
            0
        );
        assert!(cp.tree().get("count").unwrap().is_some());
    }
    let log = SledLog::open(dir.path()).unwrap();
    let cp = Checkpoints::open(log.db(), "counter").unwrap();
    assert_eq!(cp.load().unwrap(), 3);
    assert_eq!(
        cp.tree().get("count").unwrap().unwrap().as_ref(),
        &3u64.to_be_bytes()
    );
}

#[tokio::test]
async fn a_transaction_over_several_streams_commits_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledLog::open(dir.path()).unwrap();
    log.append(request("a", ExpectedVersion::NoStream, events("a", 1)))
        .await
        .unwrap();

    // The second request's conflict rejects the first as well.
    let err = log
        .append_many(vec![
            request("b", ExpectedVersion::NoStream, events("b", 2)),
            request("a", ExpectedVersion::NoStream, events("a", 1)),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::Conflict { actual: 1, .. }),
        "{err:?}"
    );
    assert_eq!(log.head(), 1);
    assert_eq!(log.stream_version("b"), 0);

    let mut txn = vec![
        request("b", ExpectedVersion::NoStream, events("b", 2)),
        request("a", ExpectedVersion::Exact(1), events("a", 1)),
    ];
    txn[0].idempotency_key = Some("txn".into());
    let done = log.append_many(txn.clone()).await.unwrap();
    assert_eq!(done, vec![appended(2, 3, 2), appended(4, 4, 2)]);
    let replay = log.append_many(txn).await.unwrap();
    assert_eq!(
        replay,
        vec![Appended {
            replayed: true,
            ..appended(2, 4, 2)
        }]
    );
    assert_eq!(log.idempotent_result("txn"), Some(replay[0]));
    drop(log);

    // The key's extent comes back from the log alone.
    let log = SledLog::open(dir.path()).unwrap();
    assert_eq!(log.idempotent_result("txn"), Some(replay[0]));
    assert_eq!(log.head(), 4);
}
