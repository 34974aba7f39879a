//! The raw baseline: what this file system gives a plain file, measured in the same run as
//! the log so the comparison holds on whatever disk the benchmark runs on.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

/// Appends `batch` records of `record_len` bytes per write and one `fdatasync` per batch, for
/// about `duration`; returns records per second.
pub fn batched_limit(
    path: &Path,
    record_len: usize,
    batch: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let mut file = create(path)?;
    let buf = vec![0xA5u8; record_len * batch.max(1)];
    let start = Instant::now();
    let mut records = 0u64;
    while start.elapsed() < duration {
        file.write_all(&buf).context("raw append")?;
        file.sync_data().context("raw fdatasync")?;
        records += batch.max(1) as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(path).context("removing the raw file")?;
    Ok(records as f64 / secs)
}

/// Median time of one append of a single `record_len`-byte record followed by `fdatasync`.
pub fn single_fsync_p50(
    path: &Path,
    record_len: usize,
    samples: usize,
) -> anyhow::Result<Duration> {
    let mut file = create(path)?;
    let buf = vec![0x5Au8; record_len];
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        file.write_all(&buf).context("raw append")?;
        file.sync_data().context("raw fdatasync")?;
        times.push(start.elapsed());
    }
    std::fs::remove_file(path).context("removing the raw file")?;
    times.sort();
    Ok(times[times.len() / 2])
}

fn create(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}
