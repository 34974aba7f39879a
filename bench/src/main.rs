//! Benchmarks for halley's log and read models. Each measurement prints one JSON object on its
//! own line on stdout and nothing else goes there; progress and logs go to stderr.

mod api;
mod append;
mod process;
mod raw;
mod replay;
mod scheduler;
mod search;
mod webhooks;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The HTTP API on loopback (in-process server, temporary data directory): user reads, a
    /// filtered user list, durable protected-item creates, logins and user creations, next
    /// to a trivial actix-web handler measured in the same run.
    Api {
        /// Concurrent connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Seconds of load per endpoint.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Users to create (the user-creation measurement) and then read.
        #[arg(long, default_value_t = 1_000)]
        users: usize,
        /// Where the server's data directory goes (a temporary directory when omitted).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Durable appends of 300-byte events from concurrent writers, next to the raw file limit.
    Append {
        /// Concurrent writers; 1, 16 and 64 in turn when omitted.
        #[arg(long)]
        writers: Option<usize>,
        /// Seconds of appending per writer count.
        #[arg(long, default_value_t = 4.0)]
        seconds: f64,
        /// Where the logs and the raw file go (a temporary directory when omitted). Use the
        /// file system you want measured.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Replay a log of realistic domain events through the projection runner into the read
    /// models, next to a raw scan + decode of the same log.
    Replay {
        /// Events to write and replay.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Where the log goes (a temporary directory when omitted).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Load schedules into the scheduler's due index (computing each one's first run), then
    /// time one tick taking 1,000 due runs among 10,000 and among all schedules.
    Scheduler {
        /// Schedules to load.
        #[arg(long, default_value_t = 1_000_000)]
        schedules: usize,
    },
    /// Job search on the read models (queries a, b, c of one tenant) next to SQLite holding
    /// the same rows, and the read models' memory per job.
    Search {
        /// Jobs in the history, spread over 30 days.
        #[arg(long, default_value_t = 1_000_000)]
        jobs: usize,
        #[arg(long, default_value_t = 100)]
        tenants: usize,
        /// Runs of each query on each engine.
        #[arg(long, default_value_t = 300)]
        runs: usize,
    },
    /// Events fanned out to local HTTP endpoints through durable, signed webhook delivery,
    /// next to a plain POST loop against the same receivers with the same concurrency.
    Webhooks {
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        #[arg(long, default_value_t = 10)]
        endpoints: usize,
        /// Requests in flight per endpoint, for both the dispatcher and the plain loop.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Where the log goes (a temporary directory when omitted).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cli.command {
        Command::Api {
            connections,
            seconds,
            users,
            dir,
        } => {
            let (_guard, dir) = work_dir(dir)?;
            let duration = std::time::Duration::from_secs_f64(seconds);
            let report = runtime.block_on(api::run(&dir, connections, duration, users))?;
            for (line, baseline_rps) in &report.lines {
                println!("{}", line.to_json(*baseline_rps));
            }
        }
        Command::Append {
            writers,
            seconds,
            dir,
        } => {
            let (_guard, dir) = work_dir(dir)?;
            let counts = writers.map_or_else(|| vec![1, 16, 64], |n| vec![n]);
            let duration = std::time::Duration::from_secs_f64(seconds);
            for writers in counts {
                let result = runtime.block_on(append::run(&dir, writers, duration))?;
                println!("{}", result.to_json());
            }
        }
        Command::Replay { events, dir } => {
            let (_guard, dir) = work_dir(dir)?;
            let result = runtime.block_on(replay::run(&dir, events))?;
            println!("{}", result.to_json());
        }
        Command::Scheduler { schedules } => {
            let result = scheduler::run(schedules)?;
            println!("{}", result.to_json());
        }
        Command::Search {
            jobs,
            tenants,
            runs,
        } => {
            let report = search::run(jobs, tenants, runs)?;
            println!("{}", report.memory);
            for result in report.searches {
                println!("{}", result.to_json());
            }
        }
        Command::Webhooks {
            events,
            endpoints,
            concurrency,
            dir,
        } => {
            let (_guard, dir) = work_dir(dir)?;
            let result = runtime.block_on(webhooks::run(&dir, events, endpoints, concurrency))?;
            println!("{}", result.to_json());
        }
    }
    Ok(())
}

/// The directory to work in, created if missing; a temporary one (removed on drop) if none.
fn work_dir(dir: Option<PathBuf>) -> anyhow::Result<(Option<tempfile::TempDir>, PathBuf)> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            Ok((None, dir))
        }
        None => {
            let tmp = tempfile::tempdir().context("creating a temporary directory")?;
            let path = tmp.path().to_path_buf();
            Ok((Some(tmp), path))
        }
    }
}
