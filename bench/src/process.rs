//! What this process uses, read from `/proc/self`.

use anyhow::Context;

/// Resident set size in bytes, from `/proc/self/status`.
pub fn resident_bytes() -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .context("no VmRSS in /proc/self/status")?;
    Ok(kb * 1024)
}

/// CPU time (user + system, every thread) used so far, in seconds, from `/proc/self/stat`.
/// Beside a wall-clock rate it shows how much of a change is work saved rather than a
/// quieter machine: on two shared cores wall-clock figures swing by a quarter between runs.
pub fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // The command name (field 2) may hold spaces; the fields after its `)` are fixed.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("/proc/self/stat has a command name")?
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15, the 12th and 13th after the name.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("/proc/self/stat too short")?
            .parse()
            .context("/proc/self/stat cpu ticks")
    };
    // Linux reports these in USER_HZ, 100 on every architecture it supports.
    Ok((ticks(11)? + ticks(12)?) as f64 / 100.0)
}
