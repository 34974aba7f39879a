//! `bench replay`: a log of realistic domain events (a fleet of tenants, users and devices,
//! then mostly jobs started and finished), replayed from empty through the projection runner
//! into the read models, next to a raw sled scan + decode of the same log (every record
//! read from sled and its payload decoded into its domain event, nothing applied) and a scan
//! of the records alone (frame, crc and envelope, payloads left as bytes). Both scans read
//! the way the replay does, borrowing each record from sled's pages.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use eventlog::{AppendRequest, EventLog, ExpectedVersion, SledLog};
use fixtures::{Fleet, FleetConfig};
use projections::{Projector, ProjectorConfig, ReadModels};
use serde_json::json;

use crate::process;

/// Events per append while filling the log. The projections decode payloads and ignore the
/// envelope's stream, so filling with large appends to synthetic streams keeps the global
/// order of the fleet's events (which the read models depend on) at a fraction of the fsyncs.
const EVENTS_PER_APPEND: usize = 1000;

pub struct ReplayResult {
    events: u64,
    events_per_sec: f64,
    /// The raw sled scan + decode: the reading and decoding a replay cannot avoid, without
    /// applying anything.
    raw_scan_events_per_sec: f64,
    /// The records alone, payloads not decoded.
    envelope_scan_events_per_sec: f64,
    /// CPU time of every thread per event: replay, raw scan, envelope scan.
    cpu_us_per_event: f64,
    raw_scan_cpu_us_per_event: f64,
    envelope_scan_cpu_us_per_event: f64,
}

impl ReplayResult {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "name": "replay",
            "events": self.events,
            "events_per_sec": self.events_per_sec.round(),
            "raw_scan_events_per_sec": self.raw_scan_events_per_sec.round(),
            "envelope_scan_events_per_sec": self.envelope_scan_events_per_sec.round(),
            "cpu_us_per_event": micros(self.cpu_us_per_event),
            "raw_scan_cpu_us_per_event": micros(self.raw_scan_cpu_us_per_event),
            "envelope_scan_cpu_us_per_event": micros(self.envelope_scan_cpu_us_per_event),
        })
    }
}

/// Rounded to nanoseconds.
fn micros(us: f64) -> f64 {
    (us * 1000.0).round() / 1000.0
}

pub async fn run(dir: &Path, events: usize) -> anyhow::Result<ReplayResult> {
    let log_dir = dir.join("replay");
    if log_dir.exists() {
        std::fs::remove_dir_all(&log_dir)
            .with_context(|| format!("clearing {}", log_dir.display()))?;
    }
    let log = Arc::new(SledLog::open(&log_dir).context("opening the log")?);
    fill(&log, events).await?;
    let head = log.head();

    // Everything in sled, so the scans and the replay read sled alone.
    log.apply_tail()
        .context("applying the log's tail to sled")?;
    let envelopes = scan(&log, false)?;
    let raw = scan(&log, true)?;
    anyhow::ensure!(
        envelopes.events == head && raw.events == head,
        "the scans saw {} and {} of {head} events",
        envelopes.events,
        raw.events
    );

    // The log is fresh, so the runner finds no snapshot and starts from position 0. No
    // periodic snapshot: this measures applying events, not encoding the model.
    let mut projector: Projector<ReadModels> = Projector::open(
        Arc::clone(&log) as Arc<dyn EventLog>,
        log.db(),
        ProjectorConfig {
            snapshot_every: u64::MAX,
            ..ProjectorConfig::default()
        },
    )
    .context("opening the projector")?;
    let cpu = process::cpu_seconds()?;
    let started = Instant::now();
    let caught_up = projector.catch_up().await.context("replaying")?;
    let replay_secs = started.elapsed().as_secs_f64();
    let replay_cpu = process::cpu_seconds()? - cpu;
    anyhow::ensure!(
        caught_up.position == head,
        "replay stopped at {} of {head}",
        caught_up.position
    );

    let rebuilt = caught_up.applied;
    drop(projector);
    drop(log);
    std::fs::remove_dir_all(&log_dir).with_context(|| format!("removing {}", log_dir.display()))?;
    Ok(ReplayResult {
        events: rebuilt,
        events_per_sec: rebuilt as f64 / replay_secs,
        raw_scan_events_per_sec: raw.events_per_sec(),
        envelope_scan_events_per_sec: envelopes.events_per_sec(),
        cpu_us_per_event: replay_cpu * 1e6 / rebuilt as f64,
        raw_scan_cpu_us_per_event: raw.cpu_us_per_event(),
        envelope_scan_cpu_us_per_event: envelopes.cpu_us_per_event(),
    })
}

/// One pass over the whole log on this thread.
struct Scan {
    events: u64,
    secs: f64,
    cpu_secs: f64,
}

impl Scan {
    fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.secs
    }

    fn cpu_us_per_event(&self) -> f64 {
        self.cpu_secs * 1e6 / self.events as f64
    }
}

/// Reads every record (frame, crc, envelope) as the log hands it to a replay, borrowed from
/// its storage; with `payloads`, also decodes each payload into its domain event, as the
/// read models need it.
fn scan(log: &SledLog, payloads: bool) -> anyhow::Result<Scan> {
    let cpu = process::cpu_seconds()?;
    let started = Instant::now();
    let mut events = 0u64;
    let mut failed = None;
    log.scan(0, log.head(), &mut |record| {
        if payloads {
            let envelope = &record.envelope;
            match domain::codec::decode(envelope.type_code, envelope.schema_version, record.payload)
            {
                Ok(event) => {
                    std::hint::black_box(&event);
                }
                Err(e) => {
                    failed = Some(
                        anyhow::Error::new(e)
                            .context(format!("decoding position {}", envelope.position)),
                    );
                    return ControlFlow::Break(());
                }
            }
        }
        events += 1;
        std::hint::black_box(&record);
        ControlFlow::Continue(())
    })
    .context("scanning")?;
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(Scan {
        events,
        secs: started.elapsed().as_secs_f64(),
        cpu_secs: process::cpu_seconds()? - cpu,
    })
}

async fn fill(log: &SledLog, events: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut fleet = Fleet::new(FleetConfig::default());
    let mut written = 0;
    let mut batch_no = 0u64;
    while written < events {
        let n = EVENTS_PER_APPEND.min(events - written);
        let batch = fleet
            .by_ref()
            .take(n)
            .map(|g| fixtures::new_event(&g))
            .collect();
        log.append(AppendRequest {
            stream: format!("replay-{batch_no}"),
            expected: ExpectedVersion::NoStream,
            events: batch,
            idempotency_key: None,
        })
        .await
        .context("filling the log")?;
        written += n;
        batch_no += 1;
    }
    eprintln!(
        "replay: wrote {written} events in {:.1?}",
        started.elapsed()
    );
    Ok(())
}
