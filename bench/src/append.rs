//! `bench append`: N tokio tasks appending single 300-byte events to random streams, each
//! waiting for its durable acknowledgement before the next, for a fixed time.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use eventlog::{AppendRequest, Envelope, EventLog, ExpectedVersion, NewEvent, SledLog};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::raw;

const PAYLOAD_BYTES: usize = 300;
const STREAMS: u64 = 10_000;
/// Single-record fdatasync samples per trial for `raw_fsync_us`.
const RAW_FSYNC_SAMPLES: usize = 100;

pub struct AppendResult {
    writers: usize,
    events_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    raw_limit_events_per_sec: f64,
    raw_fsync_us: u64,
    mean_batch: f64,
}

impl AppendResult {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "name": "append",
            "writers": self.writers,
            "events_per_sec": self.events_per_sec.round(),
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "raw_limit_events_per_sec": self.raw_limit_events_per_sec.round(),
            "raw_fsync_us": self.raw_fsync_us,
            "mean_batch": (self.mean_batch * 10.0).round() / 10.0,
        })
    }
}

/// The log and the raw file take turns in this many rounds, so a disk that gets busier or
/// quieter during the run (other processes' I/O) weighs on both sides alike.
const ROUNDS: u32 = 4;

pub async fn run(dir: &Path, writers: usize, duration: Duration) -> anyhow::Result<AppendResult> {
    let log_dir = dir.join(format!("append-{writers}"));
    if log_dir.exists() {
        std::fs::remove_dir_all(&log_dir)
            .with_context(|| format!("clearing {}", log_dir.display()))?;
    }
    let raw_path = dir.join(format!("raw-{writers}.bin"));
    let mut raw = raw::RawFile::create(&raw_path)?;
    let record_len = record_len();

    let mut latencies = Vec::new();
    let mut log_time = Duration::ZERO;
    let (mut raw_records, mut raw_time) = (0.0, Duration::ZERO);
    let mut fsyncs = Vec::new();
    let (mut commits, mut requests) = (0, 0);
    for round in 0..ROUNDS {
        // Open for this round only: the raw file is then measured without the log's
        // background threads (sled's flusher and I/O pool) competing for the disk.
        let log = Arc::new(SledLog::open(&log_dir).context("opening the log")?);
        let started = Instant::now();
        let deadline = started + duration / ROUNDS;
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let log = Arc::clone(&log);
                let seed = u64::from(round) << 32 | w as u64;
                tokio::spawn(async move { writer(log, seed, deadline).await })
            })
            .collect();
        for task in tasks {
            latencies.extend(task.await.context("writer task")??);
        }
        log_time += started.elapsed();
        let stats = log.commit_stats();
        drop(log);
        (commits, requests) = (commits + stats.commits, requests + stats.requests);
        // Each request carries one event, so appends per fdatasync = events per fdatasync.
        let batch = stats.mean_batch().round().max(1.0) as usize;
        let raw_duration = Duration::from_millis(700) / ROUNDS;
        let rate = raw.batched_limit(record_len, batch, raw_duration)?;
        raw_records += rate * raw_duration.as_secs_f64();
        raw_time += raw_duration;
        fsyncs.extend(raw.single_fsyncs(record_len, RAW_FSYNC_SAMPLES / ROUNDS as usize)?);
    }
    let mean_batch = eventlog::CommitStats { commits, requests }.mean_batch();
    raw.remove()?;
    std::fs::remove_dir_all(&log_dir).with_context(|| format!("removing {}", log_dir.display()))?;

    let events = latencies.len() as u64;
    latencies.sort_unstable();
    fsyncs.sort_unstable();
    Ok(AppendResult {
        writers,
        events_per_sec: events as f64 / log_time.as_secs_f64(),
        p50_us: percentile(&latencies, 0.50),
        p99_us: percentile(&latencies, 0.99),
        raw_limit_events_per_sec: raw_records / raw_time.as_secs_f64(),
        raw_fsync_us: percentile(&fsyncs, 0.50),
        mean_batch,
    })
}

async fn writer(log: Arc<SledLog>, seed: u64, deadline: Instant) -> anyhow::Result<Vec<u64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let stream = format!("bench-{}", rng.gen_range(0..STREAMS));
        let req = AppendRequest {
            stream,
            expected: ExpectedVersion::Any,
            events: vec![event(&mut rng)],
            idempotency_key: None,
        };
        let start = Instant::now();
        log.append(req).await.context("append")?;
        latencies.push(start.elapsed().as_micros() as u64);
    }
    Ok(latencies)
}

fn event(rng: &mut StdRng) -> NewEvent {
    let mut payload = vec![0u8; PAYLOAD_BYTES];
    rng.fill(&mut payload[..]);
    NewEvent {
        tenant: "ten_01JBENCHTENANT000000000000".into(),
        type_code: 4200,
        schema_version: 1,
        recorded_at_us: 1_790_000_000_000_000,
        actor: "dev_01JBENCHDEVICE000000000000".into(),
        correlation_id: "01JBENCHCORRELATION0000000".into(),
        payload,
    }
}

/// The encoded size of one benchmark record, frame included: what the raw file appends.
fn record_len() -> usize {
    let sample = event(&mut StdRng::seed_from_u64(0));
    let envelope = Envelope {
        position: 1_000_000,
        stream: format!("bench-{}", STREAMS - 1),
        stream_version: 100,
        tenant: sample.tenant,
        type_code: sample.type_code,
        schema_version: sample.schema_version,
        recorded_at_us: sample.recorded_at_us,
        actor: sample.actor,
        correlation_id: sample.correlation_id,
        idempotency_key: None,
    };
    eventlog::encode_record(&envelope, &sample.payload).len()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}
