//! The raw baseline: what this file system gives a plain file, measured in the same run as
//! the log so the comparison holds on whatever disk the benchmark runs on.
//!
//! The records go into a file region that was written and synced beforehand, cycling through
//! it. That is the steady state of the log's commit journal, whose files are zero-filled ahead
//! of the groups written into them, so the log's `fdatasync`s have no file-size change to
//! journal. Appending past the end of a plain file instead forces a journal commit on every
//! `fdatasync` (ext4), a cost the log does not pay, so that baseline would flatter the log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

/// The preallocated region records cycle through.
const REGION_BYTES: u64 = 32 << 20;

/// A plain file region, written and synced once, that records are then appended to.
pub struct RawFile<'a> {
    region: Region<'a>,
}

impl<'a> RawFile<'a> {
    pub fn create(path: &'a Path) -> anyhow::Result<RawFile<'a>> {
        Ok(RawFile {
            region: Region::create(path)?,
        })
    }

    /// Writes `batch` records of `record_len` bytes with one write and one `fdatasync` per
    /// batch, for about `duration`; returns records per second.
    pub fn batched_limit(
        &mut self,
        record_len: usize,
        batch: usize,
        duration: Duration,
    ) -> anyhow::Result<f64> {
        let batch = batch.max(1);
        let buf = vec![0xA5u8; record_len * batch];
        let start = Instant::now();
        let mut records = 0u64;
        while start.elapsed() < duration {
            self.region.append_durably(&buf)?;
            records += batch as u64;
        }
        Ok(records as f64 / start.elapsed().as_secs_f64())
    }

    /// Times (µs) of `samples` writes of a single `record_len`-byte record, each followed by
    /// `fdatasync`.
    pub fn single_fsyncs(&mut self, record_len: usize, samples: usize) -> anyhow::Result<Vec<u64>> {
        let buf = vec![0x5Au8; record_len];
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let start = Instant::now();
            self.region.append_durably(&buf)?;
            times.push(start.elapsed().as_micros() as u64);
        }
        Ok(times)
    }

    pub fn remove(self) -> anyhow::Result<()> {
        self.region.remove()
    }
}

struct Region<'a> {
    path: &'a Path,
    file: File,
    offset: u64,
}

impl<'a> Region<'a> {
    fn create(path: &'a Path) -> anyhow::Result<Region<'a>> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..REGION_BYTES / zeros.len() as u64 {
            file.write_all(&zeros)
                .context("preallocating the raw file")?;
        }
        file.sync_all()
            .context("syncing the preallocated raw file")?;
        Ok(Region {
            path,
            file,
            offset: 0,
        })
    }

    fn append_durably(&mut self, buf: &[u8]) -> anyhow::Result<()> {
        if self.offset + buf.len() as u64 > REGION_BYTES {
            self.offset = 0;
        }
        self.file
            .write_all_at(buf, self.offset)
            .context("raw write")?;
        self.file.sync_data().context("raw fdatasync")?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn remove(self) -> anyhow::Result<()> {
        drop(self.file);
        std::fs::remove_file(self.path).with_context(|| format!("removing {}", self.path.display()))
    }
}
