//! The `halley` command line: `serve`, `verify`, `rebuild`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use halley::{ops, Config, ServeOptions};
use indicatif::{ProgressBar, ProgressStyle};

/// Event-sourced, multi-tenant control plane for managed backup fleets.
///
/// Configuration: built-in defaults, then ./halley.toml, then HALLEY_* environment variables
/// (HALLEY_DATA_DIR, HALLEY_LISTEN, HALLEY_LOG, HALLEY_LOG_FORMAT, HALLEY_ADMIN_PASSWORD, …),
/// then these flags.
#[derive(Parser)]
#[command(name = "halley", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: open the log, start the read models, serve HTTP.
    Serve {
        /// Data directory [env: HALLEY_DATA_DIR] [default: ./data]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Listen address, host:port [env: HALLEY_LISTEN] [default: 127.0.0.1:8080]
        #[arg(long)]
        listen: Option<String>,
    },
    /// Scan the whole log (crc, gapless positions, stream versions); exit 1 on any problem.
    Verify {
        /// Data directory [env: HALLEY_DATA_DIR] [default: ./data]
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Rebuild every read model from the log and store it as their snapshot.
    Rebuild {
        /// Data directory [env: HALLEY_DATA_DIR] [default: ./data]
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("halley: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut config = Config::load()?;
    halley::telemetry::init(&config)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cli.command {
        Command::Serve { data_dir, listen } => {
            config.data_dir = data_dir.unwrap_or(config.data_dir);
            config.listen = listen.unwrap_or(config.listen);
            runtime.block_on(serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { data_dir } => {
            let report = ops::verify(&data_dir.unwrap_or(config.data_dir))?;
            print!("{report}");
            Ok(if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Rebuild { data_dir } => {
            let data_dir = data_dir.unwrap_or(config.data_dir);
            runtime.block_on(rebuild(&data_dir))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let retry_schedule = webhooks::parse_retry_schedule(&config.webhook_retry_schedule)
        .context("webhook_retry_schedule (HALLEY_WEBHOOK_RETRY_SCHEDULE)")?;
    let server = halley::start(&ServeOptions {
        admin_password: Some(config.admin_password).filter(|p| !p.is_empty()),
        api: api::ApiConfig {
            access_token_ttl_secs: config.access_token_ttl_secs,
            body_limit_bytes: config.body_limit_bytes,
            argon2: api::Argon2Params {
                memory_kib: config.argon2_memory_kib,
                iterations: config.argon2_iterations,
                parallelism: 1,
            },
            job_abandon_grace_secs: config.job_abandon_grace_secs,
        },
        webhooks: webhooks::DeliveryConfig {
            retry_schedule,
            ..webhooks::DeliveryConfig::default()
        },
        ..ServeOptions::new(config.data_dir, config.listen)
    })
    .await?;
    println!("halley listening on {}", server.url());
    if let Some(password) = server.generated_admin_password() {
        // Shown once: it is stored only as an argon2id hash.
        eprintln!(
            "halley: created root admin `admin` with password {password}\n\
             halley: log in with: curl -s {}/api/v1/auth/login -H 'content-type: application/json' \
             -d '{{\"username\":\"admin\",\"password\":\"{password}\"}}'",
            server.url()
        );
    }
    shutdown_signal().await?;
    eprintln!("halley: shutting down");
    server.shutdown().await
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        ctrl_c = tokio::signal::ctrl_c() => ctrl_c.context("waiting for Ctrl-C"),
        _ = term.recv() => Ok(()),
    }
}

async fn rebuild(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} rebuilding [{bar:40}] {pos}/{len} positions, {per_sec}, eta {eta}",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    let rebuilt = ops::rebuild(data_dir, |p| {
        bar.set_length(p.target);
        bar.set_position(p.position);
    })
    .await?;
    bar.finish_and_clear();
    println!(
        "rebuilt read models from {} events up to position {} in {:.2?}: {:.0} events/s",
        rebuilt.events,
        rebuilt.position,
        rebuilt.elapsed,
        rebuilt.events_per_sec()
    );
    Ok(())
}
