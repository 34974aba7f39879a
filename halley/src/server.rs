//! `halley serve`: every long-running part is started here, and stopped here in reverse order.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use api::agent::{DeviceHub, SweepRequest};
use api::{ApiConfig, AppState, KeyValue, StoreError};
use domain::JobId;
use eventlog::Position;
use eventlog::{EventLog, SledLog};
use projections::{ProjectionError, ProjectionHandle, Projector, ProjectorConfig, ReadModels};
use scheduler::{Dispatcher, Scheduler, TickReport, TickRequest};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use webhooks::{DeliveryConfig, StreamConfig, StreamHub, Webhooks};
use writer::{Clock, SystemClock, Writer};

/// What `start` needs; the rest of [`crate::Config`] is process-wide (logging).
#[derive(Clone)]
pub struct ServeOptions {
    pub data_dir: PathBuf,
    /// `host:port`; port 0 picks a free one (see [`RunningServer::addr`]).
    pub listen: String,
    /// The root admin's password on a first start; `None`: generate one (see
    /// [`RunningServer::generated_admin_password`]).
    pub admin_password: Option<String>,
    pub api: ApiConfig,
    /// Time for the writer and the API (token expiry, lockouts); tests pass a manual clock.
    pub clock: Arc<dyn Clock>,
    /// Webhook delivery: retry schedule (`HALLEY_WEBHOOK_RETRY_SCHEDULE`), timeouts, bounds.
    pub webhooks: DeliveryConfig,
}

impl ServeOptions {
    /// Options for `data_dir` and `listen` with the API's defaults and a generated root
    /// password.
    pub fn new(data_dir: PathBuf, listen: String) -> ServeOptions {
        ServeOptions {
            data_dir,
            listen,
            admin_password: None,
            api: ApiConfig::default(),
            clock: Arc::new(SystemClock),
            webhooks: DeliveryConfig::default(),
        }
    }
}

/// The sled trees the API keeps its secrets in (signing keys, the SMTP sealing key) and its
/// refresh-token families; they live beside the log in the same database.
const SECRETS_TREE: &str = "secrets";
const REFRESH_TREE: &str = "refresh";

/// [`api::KeyValue`] over a sled tree. Flushing syncs the whole database: the SMTP sealing key
/// must be durable before any event sealed with it is, and appends make only the log durable.
struct SledTree {
    tree: sled::Tree,
    sync: eventlog::DbSync,
}

impl KeyValue for SledTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.tree
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| StoreError(e.to_string()))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.tree
            .insert(key, value)
            .map(|_| ())
            .map_err(|e| StoreError(e.to_string()))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.sync.sync().map_err(|e| StoreError(e.to_string()))
    }
}

/// How often running jobs of devices gone for longer than the grace period are abandoned.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

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
    writer_task: JoinHandle<()>,
    devices: Arc<DeviceHub>,
    /// Asks the abandonment sweeper for an immediate sweep; dropping it stops the sweeper.
    sweep: mpsc::Sender<SweepRequest>,
    sweeper_task: JoinHandle<()>,
    /// Asks the scheduler for a tick now (tests with a manual clock).
    scheduler_ticks: mpsc::Sender<TickRequest>,
    stop_scheduler: oneshot::Sender<()>,
    scheduler_task: JoinHandle<()>,
    /// Turned true at shutdown: stops webhook delivery and the event-stream hub.
    stop_webhooks: watch::Sender<bool>,
    webhooks_task: JoinHandle<Result<(), webhooks::WebhookError>>,
    stream_task: JoinHandle<Result<(), webhooks::WebhookError>>,
    webhooks: Webhooks,
    read_models: ProjectionHandle<ReadModels>,
    startup_head: Position,
    log: Arc<SledLog>,
    generated_admin_password: Option<String>,
}

/// Opens the log in `options.data_dir` (created if missing), loads the read models from their
/// snapshot and catches them up with the log, starts the command writer on their state (so it
/// reflects exactly the log head), keeps the read models tailing the log, creates the root
/// admin on a first start, and binds the HTTP server. Returns once the socket is bound.
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
    let mut projector = projector;
    projector
        .catch_up()
        .await
        .context("replaying the log into the read models")?;
    let read_models = projector.handle();
    let clock = Arc::clone(&options.clock);
    // Nothing else appends before the writer exists, so the caught-up state is the head's.
    let writer_state = {
        let models = read_models.read();
        anyhow::ensure!(
            models.position() == log.head(),
            "read models at {} after catching up to {}",
            models.position(),
            log.head()
        );
        models.state().clone()
    };
    let (writer, writer_task) = Writer::start(
        Arc::clone(&log) as Arc<dyn EventLog>,
        writer_state,
        Arc::clone(&clock),
    );
    let (stop_projector, stopped) = oneshot::channel::<()>();
    let projector_task = tokio::spawn(projector.run(async {
        // A dropped sender means the server is going away without a clean shutdown: stop too.
        stopped.await.ok();
    }));

    let db_sync = log.db_sync().context("opening the database for syncs")?;
    let open_tree = |name: &str| -> anyhow::Result<Arc<dyn KeyValue>> {
        let tree = log
            .db()
            .open_tree(name)
            .with_context(|| format!("opening the {name} tree"))?;
        Ok(Arc::new(SledTree {
            tree,
            sync: db_sync.clone(),
        }))
    };
    let secrets = open_tree(SECRETS_TREE)?;
    let api_config = options.api.clone();
    let auth = {
        let (secrets, refresh, config) = (
            Arc::clone(&secrets),
            open_tree(REFRESH_TREE)?,
            api_config.clone(),
        );
        let now = clock.now_secs();
        // Hashing the dummy password is slow on purpose.
        tokio::task::spawn_blocking(move || api::Auth::open(&secrets, refresh, &config, now))
            .await
            .context("setting up authentication")??
    };
    let stats_source = Arc::clone(&log);
    // Delivery is a durable subscriber with its own checkpoint in the log's database; the
    // stream hub shares its counters so `/metrics` reads one place.
    let webhooks = Webhooks::open(
        &db_sync,
        Arc::clone(&log) as Arc<dyn EventLog>,
        writer.clone(),
        Arc::clone(&clock),
        options.webhooks.clone(),
    )
    .context("opening webhook delivery")?;
    let stream = StreamHub::new(
        Arc::clone(&log) as Arc<dyn EventLog>,
        StreamConfig::default(),
        webhooks.metrics_handle(),
    );
    let devices = Arc::new(DeviceHub::new(Arc::clone(&clock)));
    let state = AppState {
        log: Arc::clone(&log) as Arc<dyn EventLog>,
        commit_stats: Arc::new(move || stats_source.commit_stats()),
        read_models: read_models.clone(),
        startup_head,
        writer,
        clock,
        auth: Arc::new(auth),
        secrets: Arc::new(api::secrets::SecretBox::open(&secrets)?),
        idempotency: Arc::default(),
        config: Arc::new(api_config),
        devices: Arc::clone(&devices),
        webhooks: webhooks.clone(),
        stream: stream.clone(),
    };
    let generated_admin_password =
        api::bootstrap::ensure_root_admin(&state, options.admin_password.clone())
            .await
            .context("creating the root admin")?;
    // The scheduler starts after the root admin so its first tick sees a settled log; it
    // catches up with runs that came due while the server was down.
    let scheduler = Scheduler::open(
        Arc::clone(&log) as Arc<dyn EventLog>,
        read_models.clone(),
        state.writer.clone(),
        Arc::clone(&devices) as Arc<dyn Dispatcher>,
        chrono::DateTime::from_timestamp(state.clock.now_secs(), 0).unwrap_or_default(),
    )
    .await
    .context("loading the scheduler")?;
    let (scheduler_ticks, tick_requests) = mpsc::channel(8);
    let (stop_scheduler, scheduler_stopped) = oneshot::channel::<()>();
    let scheduler_task =
        tokio::spawn(
            scheduler.run(Arc::clone(&state.clock), tick_requests, async {
                // A dropped sender means the server is going away: stop too.
                scheduler_stopped.await.ok();
            }),
        );
    let (stop_webhooks, webhooks_stopped) = watch::channel(false);
    let webhooks_task = tokio::spawn({
        let (webhooks, stop) = (webhooks.clone(), webhooks_stopped.clone());
        async move { webhooks.run(stop).await }
    });
    let stream_task = tokio::spawn(async move { stream.run(webhooks_stopped).await });
    let state = web::Data::new(state);
    let (sweep, sweep_requests) = mpsc::channel(8);
    let sweeper_task = tokio::spawn(api::agent::run_abandon_sweeper(
        state.clone(),
        SWEEP_EVERY,
        sweep_requests,
    ));
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
        writer_task,
        devices,
        sweep,
        sweeper_task,
        scheduler_ticks,
        stop_scheduler,
        scheduler_task,
        stop_webhooks,
        webhooks_task,
        stream_task,
        webhooks,
        read_models,
        startup_head,
        log,
        generated_admin_password,
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

    /// The root admin password generated on this first start, to be shown once; `None` when
    /// the root admin already existed or its password was given.
    pub fn generated_admin_password(&self) -> Option<&str> {
        self.generated_admin_password.as_deref()
    }

    /// The live device connections; the scheduler dispatches through it
    /// (`Arc<DeviceHub>` is a `scheduler::Dispatcher`).
    pub fn devices(&self) -> &Arc<DeviceHub> {
        &self.devices
    }

    /// Runs a scheduler tick now, at the server clock's time (tests move their manual clock,
    /// then call this), and returns what it did once it is written.
    pub async fn tick_scheduler(&self) -> anyhow::Result<TickReport> {
        let (reply, answer) = oneshot::channel();
        self.scheduler_ticks
            .send(reply)
            .await
            .map_err(|_| anyhow::anyhow!("the scheduler stopped"))?;
        Ok(answer.await.context("the scheduler stopped")??)
    }

    /// Runs the abandonment sweep now (tests move their manual clock past the grace period,
    /// then call this) and returns the jobs it marked abandoned.
    pub async fn sweep_abandoned(&self) -> anyhow::Result<Vec<JobId>> {
        let (reply, answer) = oneshot::channel();
        self.sweep
            .send(reply)
            .await
            .map_err(|_| anyhow::anyhow!("the abandonment sweeper stopped"))?;
        Ok(answer.await.context("the abandonment sweeper stopped")??)
    }

    /// Webhook delivery, for tests that read its delivery log or metrics directly.
    pub fn webhooks(&self) -> &Webhooks {
        &self.webhooks
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
        // Agent sockets never end by themselves; close them so draining does not wait.
        self.devices.close_all("server shutting down");
        // Graceful: stop accepting, let in-flight requests finish (up to DRAIN_SECS).
        self.http.stop(true).await;
        let http = self.http_task.await.context("HTTP server task")?;
        // The scheduler holds a writer handle and waits on the read models: stop it first.
        if self.stop_scheduler.send(()).is_err() {
            tracing::debug!("scheduler had already stopped");
        }
        drop(self.scheduler_ticks);
        self.scheduler_task.await.context("scheduler task")?;
        // Delivery records outcomes through the writer (410 disables an endpoint): stop it
        // before the writer. Attempts cut short stay pending for the next start.
        self.stop_webhooks.send_replace(true);
        let delivery = self.webhooks_task.await.context("webhook delivery task")?;
        let stream = self.stream_task.await.context("event stream task")?;
        drop(self.webhooks);
        // The sweeper holds a writer handle too.
        drop(self.sweep);
        self.sweeper_task
            .await
            .context("abandonment sweeper task")?;
        // The HTTP workers held the last writer handles; the writer ends once they are gone.
        self.writer_task.await.context("command writer task")?;

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
        delivery.context("webhook delivery")?;
        stream.context("event stream hub")?;
        projector.context("projector")?;
        flushed.context("flushing the database")?;
        tracing::info!("halley stopped");
        Ok(())
    }
}
