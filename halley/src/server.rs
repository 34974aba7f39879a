//! `halley serve`: every long-running part is started here, and stopped here in reverse order.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use api::AppState;
use eventlog::Position;
use eventlog::{EventLog, SledLog};
use projections::{ProjectionError, ProjectionHandle, Projector, ProjectorConfig, ReadModels};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What `start` needs; the rest of [`crate::Config`] is process-wide (logging).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub data_dir: PathBuf,
    /// `host:port`; port 0 picks a free one (see [`RunningServer::addr`]).
    pub listen: String,
}

/// How long in-flight requests get to finish once shutdown begins.
const DRAIN_SECS: u64 = 30;

/// A started server. Dropping it without [`RunningServer::shutdown`] skips the final snapshot
/// (harmless: the next start replays a longer tail).
pub struct RunningServer {
    addr: SocketAddr,
    http: ServerHandle,
    http_task: JoinHandle<std::io::Result<()>>,
    stop_projector: oneshot::Sender<()>,
    projector_task: JoinHandle<Result<(), ProjectionError>>,
    read_models: ProjectionHandle<ReadModels>,
    startup_head: Position,
    log: Arc<SledLog>,
}

/// Opens the log in `options.data_dir` (created if missing), loads the read models from their
/// snapshot and starts tailing the log, and binds the HTTP server. Returns once the socket is
/// bound; `/readyz` turns 200 when the read models have caught up with the log.
pub async fn start(options: &ServeOptions) -> anyhow::Result<RunningServer> {
    let data_dir = options.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    // Opening scans the whole log to rebuild its indexes: blocking work.
    let log = tokio::task::spawn_blocking(move || SledLog::open(&data_dir))
        .await
        .context("opening the event log")?
        .with_context(|| format!("opening the event log in {}", options.data_dir.display()))?;
    let log = Arc::new(log);
    let startup_head = log.head();

    let projector: Projector<ReadModels> = Projector::open(
        Arc::clone(&log) as Arc<dyn EventLog>,
        log.db(),
        ProjectorConfig::default(),
    )
    .context("loading the read models")?;
    let read_models = projector.handle();
    let (stop_projector, stopped) = oneshot::channel::<()>();
    let projector_task = tokio::spawn(projector.run(async {
        // A dropped sender means the server is going away without a clean shutdown: stop too.
        stopped.await.ok();
    }));

    let stats_source = Arc::clone(&log);
    let state = web::Data::new(AppState {
        log: Arc::clone(&log) as Arc<dyn EventLog>,
        commit_stats: Arc::new(move || stats_source.commit_stats()),
        read_models: read_models.clone(),
        startup_head,
    });
    let listener = TcpListener::bind(&options.listen)
        .with_context(|| format!("binding {}", options.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    // Signals are handled by the caller, which then calls `shutdown`: actix's own handler
    // would stop HTTP without stopping the projector.
    let server =
        HttpServer::new(move || App::new().app_data(state.clone()).configure(api::configure))
            .disable_signals()
            .shutdown_timeout(DRAIN_SECS)
            .listen(listener)
            .context("starting the HTTP server")?
            .run();
    let http = server.handle();
    let http_task = tokio::spawn(server);
    tracing::info!(%addr, head = startup_head, "halley serving");

    Ok(RunningServer {
        addr,
        http,
        http_task,
        stop_projector,
        projector_task,
        read_models,
        startup_head,
        log,
    })
}

impl RunningServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port`, with the port actually bound.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The log the server appends to, for tests and in-process tools.
    pub fn log(&self) -> &Arc<SledLog> {
        &self.log
    }

    /// The read models the API answers from.
    pub fn read_models(&self) -> &ProjectionHandle<ReadModels> {
        &self.read_models
    }

    /// Resolves once the read models have replayed the log as it was at start (when
    /// `/readyz` turns 200); fails if the projector stopped first.
    pub async fn ready(&self) -> anyhow::Result<()> {
        self.read_models
            .wait_for(self.startup_head)
            .await
            .context("replaying the log into the read models")
    }

    /// Drains in-flight requests, stops the projector (which snapshots the read models), and
    /// flushes and closes the log. Errors are returned after every step has been attempted.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        // Graceful: stop accepting, let in-flight requests finish (up to DRAIN_SECS).
        self.http.stop(true).await;
        let http = self.http_task.await.context("HTTP server task")?;

        if self.stop_projector.send(()).is_err() {
            tracing::debug!("projector had already stopped");
        }
        let projector = self.projector_task.await.context("projector task")?;

        // The snapshot is a plain sled insert; make it durable before the process exits.
        let log = self.log;
        let flushed = tokio::task::spawn_blocking(move || {
            let flushed = log.db().flush();
            drop(log);
            flushed
        })
        .await
        .context("closing the event log")?;

        http.context("HTTP server")?;
        projector.context("projector")?;
        flushed.context("flushing the database")?;
        tracing::info!("halley stopped");
        Ok(())
    }
}
