use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use domain::commands::*;
use domain::ids::{PolicyId, TenantId, TenantRef, WebhookId};
use domain::model::{PolicySpec, TenantSpec, WebhookLevel, WebhookSpec};
use domain::{Command, State};
use eventlog::{DbSync, EventLog, SledLog};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;
use webhooks::{DeliveryConfig, Secret, Webhooks};
use writer::{Clock, CommandMeta, Committed, ManualClock, Writer};

/// How a receiver answers.
#[derive(Clone, Debug)]
pub enum Mode {
    Ok,
    /// Every other request gets a 500.
    FailHalf,
    /// Never answers.
    Hang,
    /// Always this status, with this `Retry-After` if any.
    Status(u16, Option<&'static str>),
}

#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: String,
    /// What the receiver answered (0 for a request it never answered).
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

struct ReceiverState {
    mode: Mutex<Mode>,
    got: Mutex<Vec<Received>>,
    requests: AtomicUsize,
    changed: watch::Sender<usize>,
}

/// A webhook receiver: an actix-web server on an ephemeral port that records every request.
pub struct Receiver {
    pub url: String,
    state: Arc<ReceiverState>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<ReceiverState>>,
) -> HttpResponse {
    let n = state.requests.fetch_add(1, Ordering::SeqCst);
    let mode = state.mode.lock().unwrap().clone();
    let (status, retry_after) = match mode {
        Mode::Ok => (200, None),
        Mode::FailHalf if n.is_multiple_of(2) => (500, None),
        Mode::FailHalf => (204, None),
        Mode::Hang => (0, None),
        Mode::Status(code, retry_after) => (code, retry_after),
    };
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let received = Received {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        answered: status,
    };
    let total = {
        let mut got = state.got.lock().unwrap();
        got.push(received);
        got.len()
    };
    state.changed.send_replace(total);
    if status == 0 {
        std::future::pending::<()>().await;
    }
    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    if let Some(value) = retry_after {
        response.insert_header(("retry-after", value));
    }
    response.finish()
}

impl Receiver {
    pub fn start(mode: Mode) -> Receiver {
        let (changed, _) = watch::channel(0);
        let state = Arc::new(ReceiverState {
            mode: Mutex::new(mode),
            got: Mutex::new(Vec::new()),
            requests: AtomicUsize::new(0),
            changed,
        });
        let data = web::Data::new(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            url: format!("http://{addr}/hook"),
            state,
            handle,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn all(&self) -> Vec<Received> {
        self.state.got.lock().unwrap().clone()
    }

    /// The requests answered with a 2xx.
    pub fn delivered(&self) -> Vec<Received> {
        self.all().into_iter().filter(Received::ok).collect()
    }

    /// Waits (with a generous guard, never a fixed sleep) until `n` requests have arrived.
    pub async fn wait_for_requests(&self, n: usize) {
        let mut rx = self.state.changed.subscribe();
        tokio::time::timeout(Duration::from_secs(60), rx.wait_for(|got| *got >= n))
            .await
            .expect("the receiver did not get the requests in time")
            .unwrap();
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

/// Verifies a Standard Webhooks signature header, written from the specification alone:
/// any `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` in the space-separated list
/// made with `secret` counts.
pub fn verifies(secret: &str, received: &Received) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let signed = format!(
        "{}.{}.{}",
        received.header("webhook-id"),
        received.header("webhook-timestamp"),
        received.body
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    received
        .header("webhook-signature")
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

pub const START_US: i64 = 1_700_000_000_000_000;

pub fn tenant_id(n: u128) -> TenantId {
    TenantId::new(1_700_000_000_000, n)
}

pub fn webhook_id(n: u128) -> WebhookId {
    WebhookId::new(1_700_000_000_000, n)
}

/// A compressed retry schedule: 1 s, 2 s, 4 s, with a short request timeout.
pub fn fast_config() -> DeliveryConfig {
    DeliveryConfig {
        retry_schedule: [1, 2, 4].map(Duration::from_secs).to_vec(),
        request_timeout: Duration::from_secs(2),
        ..DeliveryConfig::default()
    }
}

pub struct World {
    /// Kept so the database outlives the test.
    pub _dir: tempfile::TempDir,
    sync: DbSync,
    pub log: Arc<dyn EventLog>,
    pub clock: Arc<ManualClock>,
    pub writer: Writer,
    pub hooks: Webhooks,
    pub config: DeliveryConfig,
}

impl World {
    pub async fn new(config: DeliveryConfig) -> World {
        let dir = tempfile::tempdir().unwrap();
        let sled_log = SledLog::open(dir.path()).unwrap();
        let sync = sled_log.db_sync().unwrap();
        let log: Arc<dyn EventLog> = Arc::new(sled_log);
        let clock = Arc::new(ManualClock::new(START_US));
        let (writer, _task) = Writer::start(log.clone(), State::new(), clock.clone());
        let hooks = Webhooks::open(
            &sync,
            log.clone(),
            writer.clone(),
            clock.clone(),
            config.clone(),
        )
        .unwrap();
        World {
            _dir: dir,
            sync,
            log,
            clock,
            writer,
            hooks,
            config,
        }
    }

    /// A restart of the webhooks service: everything in memory is gone, the database stays.
    pub fn restart_hooks(&mut self) {
        self.hooks = Webhooks::open(
            &self.sync,
            self.log.clone(),
            self.writer.clone(),
            self.clock.clone(),
            self.config.clone(),
        )
        .unwrap();
    }

    pub async fn exec(&self, command: impl Into<Command>) -> Committed {
        let meta = CommandMeta {
            actor: "adm_test".into(),
            correlation_id: "test".into(),
            idempotency_key: None,
            expected_version: None,
        };
        self.writer.execute(meta, command.into()).await.unwrap()
    }

    pub async fn tenant(&self, n: u128) -> TenantId {
        let id = tenant_id(n);
        self.exec(CreateTenant {
            tenant_id: id,
            spec: TenantSpec {
                name: format!("Tenant {n}"),
                slug: format!("t{n}"),
                hosts: vec![],
                suspended: false,
            },
        })
        .await;
        id
    }

    pub async fn policy(&self, tenant: TenantRef, n: u128) -> u64 {
        self.exec(CreatePolicy {
            policy_id: PolicyId::new(1_700_000_000_000, n),
            tenant,
            spec: PolicySpec {
                name: format!("Policy {n}"),
                description: String::new(),
                is_default: false,
                random_delay_secs: None,
                settings: BTreeMap::new(),
            },
        })
        .await
        .position
    }

    /// Creates an endpoint through the same path the API will use; returns its secret.
    pub async fn webhook(
        &self,
        id: WebhookId,
        tenant: TenantRef,
        url: &str,
        event_types: &[u16],
        enabled: bool,
    ) -> Secret {
        let (secret, fingerprint) = self.hooks.new_secret().await.unwrap();
        self.exec(CreateWebhook {
            webhook_id: id,
            tenant,
            spec: WebhookSpec {
                name: "hook".into(),
                url: url.into(),
                event_types: event_types.iter().copied().collect(),
                level: WebhookLevel::Full,
                custom_headers: [("x-halley-test".to_owned(), "yes".to_owned())]
                    .into_iter()
                    .collect(),
                enabled,
            },
            secret_fingerprint: fingerprint,
        })
        .await;
        secret
    }

    /// Runs until idle, moving the clock past each retry, until nothing is left to send.
    pub async fn deliver_everything(&self) {
        for _ in 0..=self.config.retry_schedule.len() + 1 {
            self.hooks.run_until_idle().await.unwrap();
            if self.hooks.metrics().queue_depth == 0 {
                return;
            }
            self.advance_past_next_retry();
        }
        self.hooks.run_until_idle().await.unwrap();
    }

    /// Moves the clock past the longest retry delay (scheduled delay with full jitter).
    pub fn advance_past_next_retry(&self) {
        let longest = self
            .config
            .retry_schedule
            .iter()
            .max()
            .copied()
            .unwrap_or_default();
        let secs = (longest.as_secs_f64() * (1.0 + self.config.jitter)).ceil() as i64 + 1;
        self.clock.advance_secs(secs);
    }

    pub fn now_secs(&self) -> i64 {
        self.clock.now_secs()
    }
}
