//! `halley verify` and `halley rebuild`: offline operations on a data directory. Both need the
//! server stopped (sled locks its directory).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use eventlog::verify::Report;
use eventlog::{EventLog, SledLog};
use projections::{ReadModels, RebuildProgress};

/// Scans the whole log in `data_dir`: crc of every record, gapless positions, stream versions.
pub fn verify(data_dir: &Path) -> anyhow::Result<Report> {
    ensure_exists(data_dir)?;
    eventlog::verify::verify_dir(data_dir)
        .map_err(|e| in_use(data_dir, e))
        .with_context(|| format!("verifying the log in {}", data_dir.display()))
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rebuilt {
    pub events: u64,
    pub position: eventlog::Position,
    pub elapsed: Duration,
}

impl Rebuilt {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Rebuilds every read model from the log in `data_dir` and stores the result as their
/// snapshots, so the next `serve` starts from it. `progress` is called after every batch.
pub async fn rebuild(
    data_dir: &Path,
    progress: impl FnMut(RebuildProgress),
) -> anyhow::Result<Rebuilt> {
    ensure_exists(data_dir)?;
    let dir = data_dir.to_path_buf();
    let log = tokio::task::spawn_blocking(move || SledLog::open(&dir))
        .await
        .context("opening the event log")?
        .map_err(|e| in_use(data_dir, e))
        .with_context(|| format!("opening the event log in {}", data_dir.display()))?;
    let log = Arc::new(log);
    let started = Instant::now();
    let rebuilt = projections::rebuild::<ReadModels>(
        Arc::clone(&log) as Arc<dyn EventLog>,
        REBUILD_BATCH,
        progress,
    )
    .await
    .context("rebuilding the read models")?;
    let elapsed = started.elapsed();
    rebuilt
        .save(log.db())
        .context("storing the rebuilt read models")?;
    log.db().flush().context("flushing the database")?;
    Ok(Rebuilt {
        events: rebuilt.events,
        position: rebuilt.position,
        elapsed,
    })
}

/// Records per `read_all` during a rebuild: large enough that per-batch overhead vanishes.
const REBUILD_BATCH: usize = 8192;

/// sled refuses a directory another process has open; say so in the operator's terms.
fn in_use(data_dir: &Path, error: eventlog::LogError) -> anyhow::Error {
    // sled reports the lock failure only as text inside an IO error.
    if error.to_string().contains("could not acquire lock") {
        anyhow::anyhow!(
            "{} is in use by another process; stop the halley server first",
            data_dir.display()
        )
    } else {
        error.into()
    }
}

/// sled would happily create an empty database where the operator mistyped a path.
fn ensure_exists(data_dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        eventlog::data_file(data_dir).exists(),
        "{} holds no halley data (no sled database)",
        data_dir.display()
    );
    Ok(())
}
