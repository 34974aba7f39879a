//! Quick local figures, not benchmarks (those are `bench append` / `bench replay`): how fast
//! the open scan rebuilds the indexes, and a rough durable append rate. Gated by
//! `HALLEY_TIMING=1`; `HALLEY_TIMING_EVENTS` sets the log size (default 200,000). Meaningful
//! only in a release build. Nothing here asserts on time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlog::{EventLog, ExpectedVersion, SledLog};

use crate::{event, payload, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_scan_and_append_rates() {
    if std::env::var("HALLEY_TIMING").as_deref() != Ok("1") {
        eprintln!("skipped: set HALLEY_TIMING=1 (and build with --release) for timings");
        return;
    }
    let total: u64 = std::env::var("HALLEY_TIMING_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();

    // Durable appends of 300-byte events from 64 concurrent writers, for about 2 s.
    let log = Arc::new(SledLog::open(dir.path()).unwrap());
    let started = Instant::now();
    let writers: Vec<_> = (0..64)
        .map(|w| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut n = 0u64;
                while started.elapsed() < Duration::from_secs(2) {
                    let stream = format!("dev_{w}");
                    let e = event(payload(n, 300));
                    log.append(request(&stream, ExpectedVersion::Any, vec![e]))
                        .await
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut appended = 0;
    for w in writers {
        appended += w.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let stats = log.commit_stats();
    eprintln!(
        "append: 64 writers, 300-byte events: {:.0} events/s durable, mean batch {:.1} over {} fdatasyncs",
        appended as f64 / secs,
        stats.mean_batch(),
        stats.commits
    );

    // Fill the log to `total` with large appends, then time a cold open (the index scan).
    while log.head() < total {
        let n = (total - log.head()).min(1000) as usize;
        let stream = format!("usr_{}", log.head() % 5000);
        let evs = (0..n).map(|i| event(payload(i as u64, 300))).collect();
        log.append(request(&stream, ExpectedVersion::Any, evs))
            .await
            .unwrap();
    }
    drop(log);
    let started = Instant::now();
    let db = sled::open(dir.path()).unwrap();
    let sled_open = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let bytes: usize = db
        .open_tree(eventlog::LOG_TREE)
        .unwrap()
        .iter()
        .values()
        .map(|v| v.unwrap().len())
        .sum();
    eprintln!(
        "cold sled iteration alone: {bytes} bytes in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    drop(db);
    let started = Instant::now();
    let log = SledLog::open(dir.path()).unwrap();
    let open = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut scanned = 0u64;
    for e in log.scan_raw(0) {
        e.unwrap();
        scanned += 1;
    }
    let scan = started.elapsed().as_secs_f64();
    eprintln!(
        "open: {} events indexed in {:.2} s = {:.0} events/s (sled's own open: {:.2} s); \
         warm scan_raw + decode: {:.0} events/s",
        log.head(),
        open,
        log.head() as f64 / open,
        sled_open,
        scanned as f64 / scan
    );
}
