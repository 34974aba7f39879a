//! The property the whole system leans on: under many concurrent appenders, positions are
//! gapless and unique, stream versions contiguous, every byte reads back, and a subscriber
//! sees each event exactly once, in order — before and after a reopen.

use std::collections::HashMap;
use std::sync::Arc;

use eventlog::{AppendError, EventLog, ExpectedVersion, SledLog, Subscription};
use proptest::prelude::*;

use crate::{event, payload, request};

/// One append in the plan: its stream, whether it uses optimistic concurrency, and the
/// sizes of its events.
#[derive(Debug, Clone)]
struct PlannedAppend {
    stream: usize,
    exact: bool,
    sizes: Vec<usize>,
}

fn planned_append() -> impl Strategy<Value = PlannedAppend> {
    // Mostly small events, some spanning several 4 KiB chunks.
    let size = prop_oneof![8 => 0usize..600, 1 => 4000usize..20_000];
    (
        0usize..6,
        any::<bool>(),
        proptest::collection::vec(size, 1..4),
    )
        .prop_map(|(stream, exact, sizes)| PlannedAppend {
            stream,
            exact,
            sizes,
        })
}

/// What one task appended: (request id, result).
type Done = Vec<(usize, eventlog::Appended)>;

async fn run_plan(log: Arc<SledLog>, writers: usize, plan: Vec<PlannedAppend>) -> Done {
    let plan = Arc::new(plan);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let log = Arc::clone(&log);
            let plan = Arc::clone(&plan);
            tokio::spawn(async move {
                let mut done = Vec::new();
                for id in (w..plan.len()).step_by(writers) {
                    let p = &plan[id];
                    let stream = format!("str_{}", p.stream);
                    loop {
                        let expected = if p.exact {
                            ExpectedVersion::Exact(log.stream_version(&stream))
                        } else {
                            ExpectedVersion::Any
                        };
                        let evs = p
                            .sizes
                            .iter()
                            .enumerate()
                            .map(|(i, &len)| event(payload(seed(id, i), len)))
                            .collect();
                        match log.append(request(&stream, expected, evs)).await {
                            Ok(a) => {
                                done.push((id, a));
                                break;
                            }
                            // Someone else appended in between: retry on the new version.
                            Err(AppendError::Conflict {
                                expected: ExpectedVersion::Exact(v),
                                actual,
                                ..
                            }) => assert!(actual > v, "versions only grow"),
                            Err(e) => panic!("append failed: {e}"),
                        }
                    }
                }
                done
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

fn seed(id: usize, i: usize) -> u64 {
    (id as u64) << 8 | i as u64
}

async fn check_log(log: &SledLog, plan: &[PlannedAppend], done: &Done) {
    // Where each event should be, from the acknowledgements alone.
    let mut expected: HashMap<u64, (String, Vec<u8>)> = HashMap::new();
    for (id, a) in done {
        let p = &plan[*id];
        assert_eq!(a.last - a.first + 1, p.sizes.len() as u64);
        for (i, &len) in p.sizes.iter().enumerate() {
            let previous = expected.insert(
                a.first + i as u64,
                (format!("str_{}", p.stream), payload(seed(*id, i), len)),
            );
            assert!(previous.is_none(), "position {} handed out twice", a.first);
        }
    }
    let total = expected.len() as u64;
    assert_eq!(log.head(), total);

    let all = log.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(all.len() as u64, total);
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for (i, e) in all.iter().enumerate() {
        let env = &e.envelope;
        assert_eq!(env.position, i as u64 + 1, "gapless");
        let (stream, bytes) = &expected[&env.position];
        assert_eq!(&env.stream, stream);
        assert!(e.payload == *bytes, "payload at {} differs", env.position);
        let v = versions.entry(stream).or_insert(0);
        *v += 1;
        assert_eq!(env.stream_version, *v, "contiguous versions");
    }
    for (stream, &v) in &versions {
        assert_eq!(log.stream_version(stream), v);
        let read = log.read_stream(stream, 1, usize::MAX).await.unwrap();
        assert_eq!(read.len() as u64, v);
        for e in &read {
            assert_eq!(e, &all[e.envelope.position as usize - 1]);
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

fn run_case(writers: usize, plan: Vec<PlannedAppend>) {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(SledLog::open(dir.path()).unwrap());
        let mut sub = Subscription::new(log.clone(), 0);
        let total: u64 = plan.iter().map(|p| p.sizes.len() as u64).sum();
        let subscriber = tokio::spawn(async move {
            let mut seen = Vec::new();
            while (seen.len() as u64) < total {
                seen.extend(sub.next_batch(37).await.unwrap());
            }
            seen
        });
        let done = run_plan(Arc::clone(&log), writers, plan.clone()).await;
        check_log(&log, &plan, &done).await;
        let seen = subscriber.await.unwrap();
        assert_eq!(seen, log.read_all(0, usize::MAX).await.unwrap());
        assert!(eventlog::verify::verify(&log).unwrap().is_clean());
        drop(log);

        let log = SledLog::open(dir.path()).unwrap();
        check_log(&log, &plan, &done).await;
        let report = eventlog::verify::verify(&log).unwrap();
        assert!(report.is_clean(), "{report}");
        assert_eq!(report.records, total);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn concurrent_appenders_keep_the_log_consistent(
        writers in 1usize..48,
        plan in proptest::collection::vec(planned_append(), 1..300),
    ) {
        run_case(writers, plan);
    }
}

/// A lone append is synced by the writer itself, a burst's batches by the sync thread while
/// the writer goes on: switching between the two, every batch is still published in order.
#[test]
fn lone_appends_between_bursts_keep_their_order() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(SledLog::open(dir.path()).unwrap());
        let mut acknowledged: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut seed = 0;
        for round in 0..60 {
            let burst = if round % 3 == 0 { 1 } else { 24 };
            let appends: Vec<_> = (0..burst)
                .map(|i| {
                    seed += 1;
                    let bytes = payload(seed, 50 + i);
                    let log = Arc::clone(&log);
                    tokio::spawn(async move {
                        let stream = format!("str_{}", i % 5);
                        let req =
                            request(&stream, ExpectedVersion::Any, vec![event(bytes.clone())]);
                        (log.append(req).await.unwrap().first, bytes)
                    })
                })
                .collect();
            for append in appends {
                let (position, bytes) = append.await.unwrap();
                assert!(acknowledged.insert(position, bytes).is_none());
            }
        }
        let mut log = Some(log);
        for _reopened in [false, true] {
            let log = match log.take() {
                Some(log) => log,
                None => Arc::new(SledLog::open(dir.path()).unwrap()),
            };
            let all = log.read_all(0, usize::MAX).await.unwrap();
            assert_eq!(all.len(), acknowledged.len());
            for (i, record) in all.iter().enumerate() {
                assert_eq!(record.envelope.position, i as u64 + 1, "gapless");
                assert!(record.payload == acknowledged[&record.envelope.position]);
            }
            assert!(eventlog::verify::verify(&log).unwrap().is_clean());
            drop(log);
        }
    });
}
