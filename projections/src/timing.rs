//! Replay speed, printed rather than asserted (tests never assert on timing). Runs only with
//! HALLEY_TIMING=1, best in release: `HALLEY_TIMING=1 cargo test --release -p projections
//! timing -- --nocapture`. The `bench replay` binary is the measurement of record.

use std::sync::Arc;
use std::time::Instant;

use domain::events::*;
use domain::ids::{DeviceId, JobId, TenantId, TenantRef, UserId};
use domain::model::{Classification, JobProgress, JobStatus, JobTotals};
use domain::Event;
use eventlog::{AppendRequest, EventLog, ExpectedVersion, SledLog};

use crate::testkit::new_event;
use crate::{rebuild, Projector, ProjectorConfig, ReadModels};

/// The events of job `n`: started, one progress report, completed.
fn job_events(n: u64, tenant: TenantRef, user: UserId, device: DeviceId) -> Vec<Event> {
    let job_id = JobId::new(n, u128::from(n));
    let at = 1_700_000_000 + n as i64;
    vec![
        JobStarted {
            job_id,
            tenant,
            user_id: user,
            device_id: device,
            item_id: None,
            vault_id: None,
            schedule_id: None,
            classification: Classification::Backup,
            started_at: at,
            client_version: "24.1.0".into(),
        }
        .into(),
        JobProgressed {
            job_id,
            tenant,
            user_id: user,
            progress: JobProgress {
                bytes_done: 1 << 20,
                items_done: 10,
                items_total: 20,
            },
        }
        .into(),
        JobCompleted {
            job_id,
            tenant,
            user_id: user,
            status: JobStatus::Success,
            ended_at: at + 60,
            totals: JobTotals {
                total_bytes: 1 << 30,
                upload_bytes: 1 << 20,
                download_bytes: 0,
                total_files: 1_000,
                total_dirs: 10,
            },
        }
        .into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timing_replay_speed() {
    if std::env::var_os("HALLEY_TIMING").is_none() {
        eprintln!("skipped: set HALLEY_TIMING=1 to measure replay speed");
        return;
    }
    let events: u64 = std::env::var("HALLEY_TIMING_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(SledLog::open(dir.path()).expect("open"));

    let tenants: Vec<TenantRef> = (1..=4)
        .map(|t| TenantRef::Tenant(TenantId::new(t, 1)))
        .collect();
    let writers = 64u64;
    let jobs = events / 3;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let log = Arc::clone(&log);
        let tenants = tenants.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = w;
            while n < jobs {
                let tenant = tenants[(n % 4) as usize];
                let user = UserId::new(n % 1_000, 7);
                let device = DeviceId::new(n % 1_000, 9);
                let records = job_events(n, tenant, user, device)
                    .iter()
                    .map(|e| new_event(e, 0))
                    .collect();
                log.append(AppendRequest {
                    stream: JobId::new(n, u128::from(n)).to_string(),
                    expected: ExpectedVersion::NoStream,
                    events: records,
                    idempotency_key: None,
                })
                .await
                .expect("append");
                n += writers;
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let head = log.head();
    eprintln!("appended {head} events in {:?}", started.elapsed());

    let started = Instant::now();
    let mut scanned = 0u64;
    for record in log.scan_raw(0) {
        std::hint::black_box(record.expect("record"));
        scanned += 1;
    }
    let raw = head as f64 / started.elapsed().as_secs_f64();
    assert!(scanned >= head);

    let started = Instant::now();
    let mut decoded = 0u64;
    for record in log.scan_raw(0) {
        let record = record.expect("record");
        let env = &record.envelope;
        domain::codec::decode(env.type_code, env.schema_version, &record.payload).expect("decode");
        decoded += 1;
    }
    let raw_and_payload = decoded as f64 / started.elapsed().as_secs_f64();

    let records: Vec<_> = log.scan_raw(0).map(|r| r.expect("record")).collect();
    let started = Instant::now();
    let events: Vec<Event> = records
        .iter()
        .map(|r| {
            domain::codec::decode(r.envelope.type_code, r.envelope.schema_version, &r.payload)
                .expect("decode")
        })
        .collect();
    let decode_only = head as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut state = domain::State::new();
    for event in &events {
        state.apply(event);
    }
    let state_only = head as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut models = ReadModels::default();
    for event in &events {
        models.apply_event(event);
    }
    let models_only = head as f64 / started.elapsed().as_secs_f64();
    drop((records, events, state, models));
    eprintln!(
        "payload decode alone {decode_only:.0}/s, State::apply alone {state_only:.0}/s, \
         ReadModels::apply_event alone {models_only:.0}/s"
    );

    let started = Instant::now();
    let rebuilt = rebuild::<ReadModels>(log.clone(), 1024, |_| {})
        .await
        .expect("rebuild");
    let replay = rebuilt.events as f64 / started.elapsed().as_secs_f64();
    drop(rebuilt);

    let started = Instant::now();
    let mut projector: Projector<ReadModels> = Projector::open(
        log.clone(),
        log.db(),
        ProjectorConfig {
            batch_size: 1024,
            snapshot_every: u64::MAX,
        },
    )
    .expect("open");
    projector.catch_up().await.expect("catch up");
    let runner = head as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let snapshot = projector
        .snapshot()
        .await
        .expect("snapshot")
        .expect("stored");
    let snapshot_time = started.elapsed();
    drop(projector);
    let started = Instant::now();
    let reopened: Projector<ReadModels> =
        Projector::open(log.clone(), log.db(), ProjectorConfig::default()).expect("reopen");
    let load_time = started.elapsed();
    assert_eq!(reopened.position(), head);

    eprintln!(
        "events {head}: raw scan {raw:.0}/s, scan+payload decode {raw_and_payload:.0}/s, \
         rebuild {replay:.0}/s ({:.0}% of raw), projector catch-up {runner:.0}/s; \
         snapshot {} bytes in {snapshot_time:?}, loaded in {load_time:?}",
        100.0 * replay / raw,
        snapshot.bytes,
    );
}
